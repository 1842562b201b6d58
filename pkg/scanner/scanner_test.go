package scanner

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/scantest"
	"github.com/statcan/daaas-guard/pkg/scan/trivy"
)

// TestSetup_Database covers what Setup makes of --db-dir without an API
// server: a database not there yet is waited for; one that is there but
// unusable, or a directory that cannot hold one, is an error naming it.
func TestSetup_Database(t *testing.T) {
	const metadata = `{"Version":2,"UpdatedAt":"2026-08-20T06:00:00Z","NextUpdate":"2026-08-21T06:00:00Z","DownloadedAt":"2026-08-20T06:00:00Z"}`
	for _, tc := range []struct {
		name string
		// dir prepares the database directory under root.
		dir func(t *testing.T, root string) string
		// wantErr is in Setup's error; empty when Setup must succeed and
		// wait for the database.
		wantErr string
	}{
		{name: "no directory yet", dir: func(t *testing.T, root string) string {
			return filepath.Join(root, "db")
		}},
		{name: "empty directory", dir: func(t *testing.T, root string) string { return root }},
		{name: "metadata.json still missing", dir: func(t *testing.T, root string) string {
			write(t, filepath.Join(root, "trivy.db"), "partial")
			return root
		}},
		{name: "corrupt metadata.json", wantErr: "metadata.json", dir: func(t *testing.T, root string) string {
			write(t, filepath.Join(root, "trivy.db"), "")
			write(t, filepath.Join(root, "metadata.json"), "{not json")
			return root
		}},
		{name: "trivy.db is not a database", wantErr: "trivy.db", dir: func(t *testing.T, root string) string {
			write(t, filepath.Join(root, "trivy.db"), strings.Repeat("not a bolt file\n", 1024))
			write(t, filepath.Join(root, "metadata.json"), metadata)
			return root
		}},
		{name: "db-dir is a file", wantErr: "not a directory", dir: func(t *testing.T, root string) string {
			f := filepath.Join(root, "trivy.db")
			write(t, f, "")
			return f
		}},
		{name: "db-dir unset", wantErr: "directory is required", dir: func(*testing.T, string) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DBDir: tc.dir(t, t.TempDir()), HealthAddr: "0", MetricsAddr: "0",
				Metrics: prometheus.NewRegistry(), SecondInstance: true, Log: testr.New(t)}
			// Nothing here reaches the API server. NewManager's pod cache
			// would ask it for a mapping at once: a plain manager will do.
			mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{Scheme: Scheme(),
				HealthProbeBindAddress: "0", Metrics: metricsserver.Options{BindAddress: "0"}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Setup(mgr, cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, trivy.ErrDBNotFound) {
					t.Fatalf("Setup error %v, want one about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup with no database yet: %v", err)
			}
			defer s.Close()
			if s.Scheduler() != nil {
				t.Error("a scheduler exists without a database")
			}
			want := "waiting for the vulnerability database in " + cfg.DBDir + " (trivy.db and metadata.json)"
			if err := s.dbReady(nil); err == nil || err.Error() != want {
				t.Errorf("readiness %v, want %q", err, want)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSetup_WaitsForTheDatabase starts the scanner on a control plane with
// no database in --db-dir: the rest of the manager runs, readiness says
// what is missing and no image is scanned; once the database is moved in,
// as an operator would, the pod's image gets its verdict.
func TestSetup_WaitsForTheDatabase(t *testing.T) {
	bin := filepath.Join("..", "..", "hack", "controlplane", "bin")
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			if os.Getenv("DAAAS_GUARD_E2E") == "1" {
				t.Fatalf("%s is missing: run hack/controlplane/build.sh", b)
			}
			t.Skipf("%s is missing (hack/controlplane/build.sh builds it)", b)
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin,
		CRDDirectoryPaths: []string{filepath.Join("..", "..", "manifests", "base", "crds")}, ErrorIfCRDPathMissing: true}
	rc, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()

	reg := scantest.NewRegistry()
	defer reg.Close()
	img, err := scantest.VulnerableImage()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := reg.Push("etl:vulnerable", img)
	if err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	dbDir := filepath.Join(root, "db") // as on a fresh volume: not even the directory
	health := freeAddr(t)
	// A layer cache too, as deployed: each look for the database must
	// leave it closed for the next.
	cfg := Config{DBDir: dbDir, CacheDir: filepath.Join(root, "cache"), DBCheckInterval: 50 * time.Millisecond, HealthAddr: health, MetricsAddr: "0",
		ShutdownGrace: 5 * time.Second, Metrics: prometheus.NewRegistry(), Log: testr.New(t)}
	mgr, err := NewManager(rc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Setup(mgr, cfg)
	if err != nil {
		t.Fatalf("Setup without a database: %v", err)
	}
	defer s.Close()
	// Stands for the audit and the cluster scans, which cmd/scanner adds
	// after Setup.
	othersRan := make(chan struct{})
	if err := mgr.Add(manager.RunnableFunc(func(context.Context) error { close(othersRan); return nil })); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	c, err := client.New(rc, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etl", Namespace: "default"},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "etl", Image: reg.Host + "/etl@" + digest}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}

	select {
	case <-othersRan:
	case <-time.After(30 * time.Second):
		t.Fatal("the rest of the manager did not start")
	}
	wantWaiting := "waiting for the vulnerability database in " + dbDir + " (trivy.db and metadata.json)"
	eventually(t, "readiness names the missing database", func() bool {
		code, body := get(health + "/readyz/vulnerability-database")
		return code == http.StatusInternalServerError && strings.Contains(body, wantWaiting)
	})
	// Many checks go by; none may start scanning.
	time.Sleep(20 * cfg.DBCheckInterval)
	list := &v1alpha1.ImageScanList{}
	if err := c.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 || s.Scheduler() != nil {
		t.Fatalf("image scanning ran without a database: %d ImageScans", len(list.Items))
	}

	// The database is built aside and moved in whole.
	built := filepath.Join(root, "building")
	if err := scantest.BuildDB(built, time.Date(2026, 8, 20, 6, 0, 0, 0, time.UTC), scantest.DefaultAdvisories); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(built, dbDir); err != nil {
		t.Fatal(err)
	}

	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		t.Fatal(err)
	}
	is := &v1alpha1.ImageScan{}
	eventually(t, "the pod's image is scanned", func() bool {
		err := c.Get(ctx, client.ObjectKey{Name: name}, is)
		return err == nil && is.Status.Scanned()
	})
	if diff := cmp.Diff(v1alpha1.SeverityCounts{Critical: 1}, is.Status.Vulnerabilities); diff != "" {
		t.Errorf("verdict (-want +got):\n%s", diff)
	}
	if code, body := get(health + "/readyz"); code != http.StatusOK {
		t.Errorf("readiness with the database: %d %s", code, body)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(addr string) (int, string) {
	resp, err := http.Get("http://" + addr)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}
