package serving

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// BindMetricsFlags registers --metrics-secure and --metrics-cert-dir, the
// same for every controller-runtime daemon (webhook, scanner).
func BindMetricsFlags(fs *flag.FlagSet, secure *bool, certDir *string) {
	fs.BoolVar(secure, "metrics-secure", true, "serve the metrics address over HTTPS to callers the API server authenticates (TokenReview) and authorises (SubjectAccessReview: get on the path, e.g. nonResourceURLs /metrics); false serves plain HTTP to anyone (local runs only)")
	fs.StringVar(certDir, "metrics-cert-dir", "", "directory of tls.crt and tls.key for the metrics address with --metrics-secure (default: a self-signed certificate generated at start)")
}

// MetricsOptions is how a manager serves /metrics, and extra on the same
// address. Secure serves HTTPS and lets through only requests whose bearer
// token the API server authenticates and whose user may get the path
// (what kubebuilder scaffolds since v4): metrics and the scanner's full
// reports tell an attacker what to attack. The filter wraps extra too. The
// manager's own credentials make the TokenReviews and SubjectAccessReviews.
// certDir, when set, must hold tls.crt and tls.key: controller-runtime
// would otherwise fall back to a self-signed certificate without a word.
func MetricsOptions(addr string, secure bool, certDir string, extra map[string]http.Handler) (metricsserver.Options, error) {
	o := metricsserver.Options{BindAddress: addr, ExtraHandlers: extra}
	if !secure {
		if certDir != "" {
			return o, fmt.Errorf("metrics certificate directory %s is set but metrics are served without TLS", certDir)
		}
		return o, nil
	}
	o.SecureServing = true
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	o.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		// HTTP/1.1 only, as on the admission endpoints and in kubebuilder's
		// scaffold (HTTP/2 rapid reset, CVE-2023-44487); scrapers speak it.
		c.NextProtos = []string{"http/1.1"}
	}}
	if certDir != "" {
		for _, f := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Stat(filepath.Join(certDir, f)); err != nil {
				return o, fmt.Errorf("metrics certificate directory %s: %w", certDir, err)
			}
		}
		o.CertDir = certDir
	}
	return o, nil
}
