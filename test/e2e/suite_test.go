package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

// The cluster tests run a real kube-apiserver and etcd, built from source
// by hack/controlplane/build.sh; the API server calls the webhook over TLS.
// Without the binaries they are skipped, unless DAAAS_GUARD_E2E=1 (set by
// make test) makes their absence a failure.

const (
	guardNamespace = "daaas-guard"
	guardSA        = "system:serviceaccount:daaas-guard:daaas-guard-webhook"
)

type cluster struct {
	env *envtest.Environment
	cfg *rest.Config
	// asWebhook is cfg acting as the webhook's service account.
	asWebhook *rest.Config
	client    client.Client
	cancel    context.CancelFunc
	done      chan error
	stopped   bool
	guard     *webhook.Webhook
	metrics   string // address of /metrics
}

var (
	clusterOnce sync.Once
	shared      *cluster
	clusterErr  error
)

func controlPlaneDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "hack", "controlplane", "bin")
}

// startCluster starts the control plane and the webhook once for the
// package; tests share them and clean up what they create.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	requireControlPlane(t)
	clusterOnce.Do(func() { shared, clusterErr = newCluster(t) })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return shared
}

// requireControlPlane skips the test without the control plane binaries,
// or fails it under make test (DAAAS_GUARD_E2E=1).
func requireControlPlane(t *testing.T) {
	t.Helper()
	dir := controlPlaneDir(t)
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			if os.Getenv("DAAAS_GUARD_E2E") == "1" {
				t.Fatalf("%s is missing: run hack/controlplane/build.sh", bin)
			}
			t.Skipf("%s is missing (hack/controlplane/build.sh builds it)", bin)
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// fixedFreePort is a free loopback port below Linux's ephemeral range
// (32768 and up by default), which port-0 listeners and outgoing
// connections of tests running alongside draw from.
func fixedFreePort() (string, error) {
	start := 20000 + rand.IntN(10000)
	for p := start; p < start+2000; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free port in %d-%d", start, start+2000)
}

func newCluster(t *testing.T) (*cluster, error) {
	root := repoRoot(t)
	env := &envtest.Environment{
		BinaryAssetsDirectory: controlPlaneDir(t),
		// Our CRDs, and the wg-policy PolicyReport CRDs (generated from
		// pkg/policyreport) that the audit and the compliance report use.
		CRDDirectoryPaths:     []string{filepath.Join(root, "manifests", "base", "crds"), filepath.Join(root, "test", "e2e", "testdata", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	// The webhook configurations are registered only once the webhook
	// serves, as in a cluster; until then the validating one would reject
	// everything (it fails closed). Certificates and the port are prepared
	// now.
	opts := &envtest.WebhookInstallOptions{
		Paths: []string{
			filepath.Join(root, "manifests", "base", "validatingwebhookconfiguration.yaml"),
			filepath.Join(root, "manifests", "base", "mutatingwebhookconfiguration.yaml"),
		},
	}
	if err := opts.PrepWithoutInstalling(); err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c := &cluster{env: env, cfg: cfg, done: make(chan error, 1)}
	c.client, err = client.New(cfg, client.Options{Scheme: webhook.Scheme()})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := c.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: guardNamespace}}); err != nil {
		return nil, err
	}
	// The webhook runs as its own service account with the RBAC the
	// manifests grant, so the tests also prove that RBAC is enough, and the
	// webhook configuration's matchConditions exempt it as in a cluster.
	for _, f := range []string{"serviceaccounts.yaml", "rbac.yaml", "rbac-scanner.yaml"} {
		docs, err := manifest.ReadFile(filepath.Join(root, "manifests", "base", f), manifest.Options{})
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if err := c.client.Create(ctx, d.Object); err != nil {
				return nil, fmt.Errorf("creating %s %s: %w", d.Object.GetKind(), d.Object.GetName(), err)
			}
		}
	}
	c.asWebhook = rest.CopyConfig(cfg)
	c.asWebhook.Impersonate = rest.ImpersonationConfig{
		UserName: guardSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + guardNamespace, "system:authenticated"},
	}
	if c.metrics, err = freePort(); err != nil {
		return nil, err
	}
	health, err := freePort()
	if err != nil {
		return nil, err
	}
	wcfg := webhook.Config{
		Namespace:           guardNamespace,
		PodID:               "e2e-0",
		ServiceAccount:      guardSA,
		Host:                opts.LocalServingHost,
		Port:                opts.LocalServingPort,
		CertDir:             opts.LocalServingCertDir,
		DisableCertRotation: true,
		MayIgnore:           []string{"exempt-*"},
		ReviewCache:         256, // as cmd/webhook runs by default
		HealthAddr:          health,
		MetricsAddr:         c.metrics,
		MetricsSecure:       false, // the tests scrape over plain HTTP; metrics_test.go covers secure serving
		ShutdownGrace:       5 * time.Second,
		Log:                 zap.New(zap.UseDevMode(true), zap.Level(zapLevel())),
	}
	crlog.SetLogger(wcfg.Log) // libraries (certificate rotation) log through the global logger
	if err := c.startWebhook(wcfg); err != nil {
		return nil, err
	}
	if err := opts.Install(cfg); err != nil {
		return nil, fmt.Errorf("registering the webhook: %w", err)
	}
	time.Sleep(time.Second) // the API server picks webhook configurations up asynchronously
	return c, nil
}

func (c *cluster) startWebhook(wcfg webhook.Config) error {
	mgr, err := webhook.NewManager(c.asWebhook, wcfg)
	if err != nil {
		return err
	}
	c.guard, err = webhook.Setup(mgr, wcfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { c.done <- mgr.Start(ctx) }()
	// Ready means the policies are loaded; the server must also be
	// listening. A port found free can be taken by another test before
	// the server binds it: that ends the manager, and the error says so
	// here rather than as a refused connection later.
	addr := net.JoinHostPort(wcfg.Host, strconv.Itoa(wcfg.Port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-c.done:
			c.stopped = true
			cancel()
			return fmt.Errorf("webhook stopped while starting: %w", err)
		default:
		}
		if c.guard.Ready() && listening(addr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook not ready after 30s; waiting for %v", c.guard.Tracker.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening says whether something accepts connections at addr.
func listening(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// stopWebhook stops the in-process webhook (the control plane keeps
// running and keeps calling it).
func (c *cluster) stopWebhook(t testing.TB) {
	t.Helper()
	if c.stopped {
		return
	}
	c.stopped = true
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("webhook stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("webhook did not stop")
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopScanner()
	if shared != nil {
		if !shared.stopped {
			shared.cancel()
			select {
			case <-shared.done:
			case <-time.After(20 * time.Second):
			}
		}
		_ = shared.env.Stop()
	}
	os.Exit(code)
}
