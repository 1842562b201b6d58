package clusterscan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/internal/testenv"
)

// The reconciler tests run against a real kube-apiserver and etcd (built
// by hack/controlplane/build.sh). There is no kubelet and no Job
// controller: the tests create each Job's pod, mark it and the Job
// finished, and serve the pod's log through a LogSource.

var testCfg *rest.Config

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return testenv.Main(m, &testCfg, filepath.Join("pkg", "clusterscan", "testdata", "crds"))
}

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// cluster is what a test needs of the control plane.
func cluster(t *testing.T) client.Client {
	t.Helper()
	if testCfg == nil {
		t.Skip("no control plane (hack/controlplane/build.sh builds it)")
	}
	c, err := client.New(testCfg, client.Options{Scheme: testScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The scanner runs as its service account, with the namespace, accounts
// and RBAC of manifests/base/clusterscan.yaml, so the tests also prove that
// this RBAC is enough.
var (
	rbacOnce sync.Once
	rbacErr  error
)

// asScanner returns the control plane's config acting as the scanner.
func asScanner(t *testing.T) *rest.Config {
	t.Helper()
	rbacOnce.Do(func() {
		c, err := client.New(testCfg, client.Options{Scheme: testScheme()})
		if err != nil {
			rbacErr = err
			return
		}
		rbacErr = testenv.CreateFile(context.Background(), c, filepath.Join("manifests", "base", "clusterscan.yaml"))
	})
	if rbacErr != nil {
		t.Fatal(rbacErr)
	}
	return testenv.AsScanner(testCfg)
}

// startScanner runs a manager with the scans, as the scanner, until the
// test ends.
func startScanner(t *testing.T, o Options) {
	t.Helper()
	mgr, err := ctrl.NewManager(asScanner(t), ctrl.Options{
		Scheme:     testScheme(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:     zap.New(zap.UseDevMode(true), zap.WriteTo(testWriter{t})),
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Metrics = prometheus.NewRegistry()
	o.Log = mgr.GetLogger().WithName("clusterscan")
	if err := Setup(mgr, o); err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr, 30*time.Second)
}

// testWriter sends controller logs to the test's log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// fakeLogs serves pod logs set by the test.
type fakeLogs struct {
	mu   sync.Mutex
	logs map[string][]byte // namespace/pod/container
}

func (f *fakeLogs) set(ns, pod, container string, log []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logs == nil {
		f.logs = map[string][]byte{}
	}
	f.logs[ns+"/"+pod+"/"+container] = log
}

func (f *fakeLogs) Logs(_ context.Context, ns, pod, container string, limit int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.logs[ns+"/"+pod+"/"+container]
	if !ok {
		return nil, fmt.Errorf("no log for container %s of pod %s/%s", container, ns, pod)
	}
	if int64(len(l)) > limit {
		return nil, fmt.Errorf("the log of pod %s/%s is longer than %d bytes", ns, pod, limit)
	}
	return l, nil
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// eventually polls cond until it returns "" or the deadline passes, then
// fails with its last answer.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// cleanup removes the cluster-scoped objects a test made.
func cleanup(t *testing.T, c client.Client, objs ...client.Object) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, o := range objs {
			if err := c.DeleteAllOf(ctx, o); err != nil {
				t.Errorf("cleaning up %T: %v", o, err)
			}
		}
	})
}
