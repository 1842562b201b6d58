// Package testenv runs a package's tests against the local control plane
// (kube-apiserver and etcd built by hack/controlplane/build.sh), for the
// envtest suites of the scanner's packages.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/statcan/daaas-guard/pkg/manifest"
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Main starts the control plane with manifests/base/crds and crdDirs
// (relative to the repository root), sets *cfg, runs the tests and stops
// it. Without the binaries the tests still run with *cfg nil, so cluster
// tests can skip, unless DAAAS_GUARD_E2E=1 asks for them.
func Main(m *testing.M, cfg **rest.Config, crdDirs ...string) int {
	root := Root()
	dir := filepath.Join(root, "hack", "controlplane", "bin")
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			if os.Getenv("DAAAS_GUARD_E2E") == "1" {
				fmt.Fprintf(os.Stderr, "%s is missing: run hack/controlplane/build.sh\n", bin)
				return 1
			}
			return m.Run() // unit tests still run; the cluster tests skip
		}
	}
	paths := []string{filepath.Join(root, "manifests", "base", "crds")}
	for _, d := range crdDirs {
		paths = append(paths, filepath.Join(root, d))
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir, CRDDirectoryPaths: paths, ErrorIfCRDPathMissing: true}
	var err error
	if *cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane: %v\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	return m.Run()
}

// ScannerUser is the scanner's service account as the API server names it.
const ScannerUser = "system:serviceaccount:daaas-guard:daaas-guard-scanner"

// AsScanner returns cfg acting as the scanner's service account.
func AsScanner(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: ScannerUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:daaas-guard", "system:authenticated"}}
	return c
}

// CreateFile creates every object of a manifest file (path relative to the
// repository root).
func CreateFile(ctx context.Context, c client.Client, path string) error {
	docs, err := manifest.ReadFile(filepath.Join(Root(), path), manifest.Options{})
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := c.Create(ctx, d.Object); err != nil {
			return fmt.Errorf("creating %s %s: %w", d.Object.GetKind(), d.Object.GetName(), err)
		}
	}
	return nil
}

// RunManager starts mgr until the test ends; the test fails if mgr
// returns an error, or has not stopped within stopWithin of the end. The
// channel it returns is closed once mgr has returned.
func RunManager(t *testing.T, mgr manager.Manager, stopWithin time.Duration) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var err error
	go func() {
		err = mgr.Start(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(stopWithin):
			t.Error("manager did not stop")
		}
	})
	return stopped
}
