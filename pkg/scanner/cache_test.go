package scanner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/statcan/daaas-guard/pkg/scan"
)

// TestNewManager_CachesWorkflowsTrimmed checks, on a control plane, that
// the manager's cache holds Argo Workflows as scan.TrimWorkload leaves
// them, whether listed when the informer starts or seen by its watch:
// the transform only works if the objects it gets say their kind.
func TestNewManager_CachesWorkflowsTrimmed(t *testing.T) {
	bin := filepath.Join("..", "..", "hack", "controlplane", "bin")
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			if os.Getenv("DAAAS_GUARD_E2E") == "1" {
				t.Fatalf("%s is missing: run hack/controlplane/build.sh", b)
			}
			t.Skipf("%s is missing (hack/controlplane/build.sh builds it)", b)
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin, ErrorIfCRDPathMissing: true,
		CRDDirectoryPaths: []string{filepath.Join("..", "..", "test", "e2e", "testdata", "crds", "argoproj.io_workflows.yaml")}}
	rc, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	mgr, err := NewManager(rc, Config{HealthAddr: "0", MetricsAddr: "0", SecondInstance: true, Log: testr.New(t)})
	if err != nil {
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

	nodes := map[string]any{}
	for i := range 200 {
		nodes[fmt.Sprintf("train-%d", i)] = map[string]any{"phase": "Succeeded", "message": strings.Repeat("x", 200)}
	}
	workflow := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
			"metadata": map[string]any{"namespace": "default", "name": name},
			"spec": map[string]any{"entrypoint": "main", "templates": []any{map[string]any{"name": "main",
				"container": map[string]any{"image": "acr.example.ca/train:1", "command": []any{"python", "train.py"}}}}},
			"status": map[string]any{"phase": "Running", "nodes": nodes},
		}}
	}
	want := map[string]any{"templates": []any{map[string]any{"name": "main",
		"container": map[string]any{"image": "acr.example.ca/train:1"}}}}
	cached := func(name string) (*unstructured.Unstructured, error) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(scan.WorkflowGVK)
		return u, mgr.GetCache().Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, u)
	}
	check := func(u *unstructured.Unstructured) {
		t.Helper()
		if diff := cmp.Diff(want, u.Object["spec"]); diff != "" {
			t.Errorf("cached spec of %s (-want +got):\n%s", u.GetName(), diff)
		}
		if st, ok := u.Object["status"]; ok {
			t.Errorf("cached status of %s: %v, want none", u.GetName(), st)
		}
	}

	// Listed: there before the informer starts (the cache's first Get
	// starts it).
	if err := c.Create(ctx, workflow("listed")); err != nil {
		t.Fatal(err)
	}
	u, err := cached("listed")
	if err != nil {
		t.Fatal(err)
	}
	check(u)
	// Watched: created once the informer runs.
	if err := c.Create(ctx, workflow("watched")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache sees the new workflow", func() bool { u, err = cached("watched"); return err == nil })
	check(u)
}
