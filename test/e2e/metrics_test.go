package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/statcan/daaas-guard/internal/testenv"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/scanner"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

// TestMetrics_SecureServing serves the webhook's and the scanner's metrics
// addresses as deployed (--metrics-secure): HTTPS, answering only callers
// whose bearer token the API server authenticates (TokenReview) and who may
// get the path (SubjectAccessReview). Each process asks as its own
// ServiceAccount with the manifests' RBAC, and the reader roles are the
// manifests' own (rbac-metrics.yaml). The callers are ServiceAccounts with
// tokens from the TokenRequest API, as `kubectl create token` gets them.
func TestMetrics_SecureServing(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	docs, err := manifest.ReadFile(filepath.Join(repoRoot(t), "manifests", "base", "rbac-metrics.yaml"), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := c.client.Create(ctx, d.Object); err != nil {
			t.Fatalf("creating %s %s: %v", d.Object.GetKind(), d.Object.GetName(), err)
		}
		t.Cleanup(func() { _ = c.client.Delete(ctx, d.Object) })
	}

	// The scraper is bound to the metrics reader only later, to see the
	// binding make the difference; the triager reads reports only.
	scraper := c.serviceAccountToken(t, "e2e-metrics-scraper")
	triager := c.serviceAccountToken(t, "e2e-reports-triager")
	c.bindClusterRole(t, "e2e-reports-triager", "daaas-guard-reports-reader")

	webhookAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	wm, err := webhook.NewManager(c.asWebhook, webhook.Config{HealthAddr: "0", MetricsAddr: webhookAddr, MetricsSecure: true,
		Log: zap.New(zap.Level(zapLevel()))})
	if err != nil {
		t.Fatal(err)
	}
	serveMetrics(t, wm, webhookAddr)

	reportDir := t.TempDir()
	reportName := "sha256-" + strings.Repeat("ab", 32) + ".json"
	const report = `{"ArtifactName":"etl@sha256:abab"}`
	if err := os.WriteFile(filepath.Join(reportDir, reportName), []byte(report), 0o600); err != nil {
		t.Fatal(err)
	}
	asScanner := rest.CopyConfig(c.cfg)
	asScanner.Impersonate = rest.ImpersonationConfig{
		UserName: scannerSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + guardNamespace, "system:authenticated"},
	}
	scannerAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	sm, err := scanner.NewManager(asScanner, scanner.Config{Namespace: guardNamespace, ReportDir: reportDir,
		HealthAddr: "0", MetricsAddr: scannerAddr, MetricsSecure: true, Log: zap.New(zap.Level(zapLevel()))})
	if err != nil {
		t.Fatal(err)
	}
	serveMetrics(t, sm, scannerAddr)

	webhookMetrics := "https://" + webhookAddr + "/metrics"
	scannerMetrics := "https://" + scannerAddr + "/metrics"
	scannerReport := "https://" + scannerAddr + scanner.ReportsPath + reportName
	for _, tc := range []struct {
		name, url, token string
		want             []int
	}{
		{"webhook, no token", webhookMetrics, "", []int{http.StatusUnauthorized}},
		// The TokenReview says "invalid bearer token" as an error, which
		// controller-runtime's filter answers with 500: refused either way.
		{"webhook, a token the API server does not know", webhookMetrics, "not-a-token",
			[]int{http.StatusUnauthorized, http.StatusInternalServerError}},
		{"webhook, a token without the role", webhookMetrics, scraper, []int{http.StatusForbidden}},
		{"webhook, a token with the reports role only", webhookMetrics, triager, []int{http.StatusForbidden}},
		{"scanner, no token", scannerMetrics, "", []int{http.StatusUnauthorized}},
		{"scanner report, no token", scannerReport, "", []int{http.StatusUnauthorized}},
		{"scanner, a token with the reports role only", scannerMetrics, triager, []int{http.StatusForbidden}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := metricsGet(t, tc.url, tc.token); !slices.Contains(tc.want, code) {
				t.Errorf("GET %s: %d %q, want %v", tc.url, code, body, tc.want)
			}
		})
	}

	c.bindClusterRole(t, "e2e-metrics-scraper", "daaas-guard-metrics-reader")
	// RBAC takes effect within moments; a denial the process saw before is
	// remembered for up to 30s (controller-runtime's filter), hence the
	// retries where access is now expected.
	allowed := func(t *testing.T, url, token, want string) {
		t.Helper()
		eventually(t, 45*time.Second, func() error {
			code, body := metricsGet(t, url, token)
			if code != http.StatusOK || !strings.Contains(body, want) {
				return fmt.Errorf("GET %s: %d, body %.200q; want 200 with %q", url, code, body, want)
			}
			return nil
		})
	}
	t.Run("scanner, a token with the metrics role", func(t *testing.T) {
		allowed(t, scannerMetrics, scraper, "# TYPE ")
	})
	t.Run("scanner report, a token with the metrics role only", func(t *testing.T) {
		if code, body := metricsGet(t, scannerReport, scraper); code != http.StatusForbidden {
			t.Errorf("GET %s: %d %q, want 403: the metrics reader must not read vulnerability reports", scannerReport, code, body)
		}
	})
	t.Run("scanner report, a token with the reports role", func(t *testing.T) {
		allowed(t, scannerReport, triager, report)
	})
	t.Run("webhook, the same token once bound to the metrics role", func(t *testing.T) {
		allowed(t, webhookMetrics, scraper, "daaas_guard_engine_constraint_evaluations_total")
	})
}

// serveMetrics starts mgr, which serves metrics on addr, until the test
// ends.
func serveMetrics(t *testing.T, mgr manager.Manager, addr string) {
	t.Helper()
	stopped := testenv.RunManager(t, mgr, 20*time.Second)
	eventually(t, 30*time.Second, func() error {
		select {
		case <-stopped: // the cleanup reports its error
			t.Fatalf("manager serving metrics on %s stopped", addr)
		default:
		}
		if !listening(addr) {
			return fmt.Errorf("nothing listens on %s", addr)
		}
		return nil
	})
}

// metricsGet gets url over TLS, with token as bearer token unless empty.
// The servers' certificates are self-signed: not verified, but the
// connection must be TLS 1.2 or later.
func metricsGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test server
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("GET %s: not served over TLS 1.2 or later (%+v)", url, resp.TLS)
	}
	body, err := readAllLimited(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// serviceAccountToken creates a ServiceAccount in the guard's namespace and
// returns a token for it from the TokenRequest API.
func (c *cluster) serviceAccountToken(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: guardNamespace, Name: name}}
	if err := c.client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.client.Delete(ctx, sa) })
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}
	if err := c.client.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("requesting a token for %s: %v", name, err)
	}
	if tr.Status.Token == "" {
		t.Fatalf("no token for %s", name)
	}
	return tr.Status.Token
}

// bindClusterRole binds the ClusterRole to the ServiceAccount in the
// guard's namespace until the test ends.
func (c *cluster) bindClusterRole(t *testing.T, serviceAccount, role string) {
	t.Helper()
	ctx := context.Background()
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: serviceAccount + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: guardNamespace, Name: serviceAccount}},
	}
	if err := c.client.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.client.Delete(ctx, client.Object(b)) })
}
