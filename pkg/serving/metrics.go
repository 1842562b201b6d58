package serving

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
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
// (what kubebuilder scaffolds since v4; its error logs limited by
// quietFilter): metrics and the scanner's full reports tell an attacker
// what to attack. The filter wraps extra too. The
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
	o.FilterProvider = quietFilter
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

// FailureLogEvery is how often the metrics filter may log a failed
// authentication or authorisation at error level.
const FailureLogEvery = 10 * time.Second

// quietFilter is controller-runtime's authentication and authorisation
// filter with its error logs limited to one per FailureLogEvery. The
// filter logs an error, with a stack trace in production logging, for
// every request whose bearer token the API server rejects (it answers
// those 500, not 401): anyone who can reach the port could fill the
// logs. A problem that lasts (the API server refusing our TokenReviews)
// is still logged, with the count of those left out.
func quietFilter(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	filter, err := filters.WithAuthenticationAndAuthorization(c, hc)
	if err != nil {
		return nil, err
	}
	return func(log logr.Logger, handler http.Handler) (http.Handler, error) {
		return filter(limitErrors(log, FailureLogEvery, time.Now), handler)
	}, nil
}

// limitErrors returns log with its Error calls limited to one per every;
// the next one logged says how many were left out. Info is untouched.
func limitErrors(log logr.Logger, every time.Duration, now func() time.Time) logr.Logger {
	sink := log.GetSink()
	if sink == nil {
		return log
	}
	// The wrapper is one more frame between the caller and the sink.
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1)
	}
	return log.WithSink(errorLimiter{LogSink: sink, every: every, now: now, state: &limiterState{}})
}

type limiterState struct {
	mu      sync.Mutex
	next    time.Time
	dropped int
}

// errorLimiter is a logr.LogSink whose copies (WithName, WithValues)
// share one limit.
type errorLimiter struct {
	logr.LogSink
	every time.Duration
	now   func() time.Time
	state *limiterState
}

func (s errorLimiter) Error(err error, msg string, kv ...any) {
	st := s.state
	st.mu.Lock()
	now := s.now()
	if now.Before(st.next) {
		st.dropped++
		st.mu.Unlock()
		return
	}
	dropped := st.dropped
	st.dropped, st.next = 0, now.Add(s.every)
	st.mu.Unlock()
	if dropped > 0 {
		kv = append(kv[:len(kv):len(kv)], "leftOut", dropped)
	}
	s.LogSink.Error(err, msg, kv...)
}

func (s errorLimiter) WithValues(kv ...any) logr.LogSink {
	s.LogSink = s.LogSink.WithValues(kv...)
	return s
}

func (s errorLimiter) WithName(name string) logr.LogSink {
	s.LogSink = s.LogSink.WithName(name)
	return s
}
