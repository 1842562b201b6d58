// Package manifests holds no code: this test renders every deployment of
// the suite with kustomize, as `kubectl apply -k` would, and checks the
// result against the platform's own policy profile. A security tool's own
// manifests must pass its own policies.
package manifests

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/kustomize"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
)

func TestRenderedManifestsPassTheProfile(t *testing.T) {
	ctx := context.Background()
	profile := filepath.Join("..", "policies", "profiles", "daaas")
	for _, dir := range []string{"base", "overlays/production", "overlays/kind"} {
		t.Run(dir, func(t *testing.T) {
			docs, err := kustomize.Build(dir, manifest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) < 10 {
				t.Fatalf("rendered only %d objects", len(docs))
			}
			e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointGator))
			if err != nil {
				t.Fatal(err)
			}
			pols, err := eval.LoadPolicies(ctx, e, []string{profile})
			if err != nil {
				t.Fatal(err)
			}
			cluster, err := eval.ReadManifests([]string{filepath.Join(profile, "workloads", "inventory.yaml")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := eval.Review(ctx, e, pols, cluster, docs)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				for _, r := range o.Results {
					if r.Has(policy.ActionDeny) {
						t.Errorf("%s %s/%s is denied by %s/%s: %s", o.Doc.Object.GetKind(), o.Doc.Object.GetNamespace(),
							o.Doc.Object.GetName(), r.Kind, r.Constraint, r.Message)
					}
				}
			}
		})
	}
}
