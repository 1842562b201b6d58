// Package manifests holds no code: its tests render every deployment of
// the suite with kustomize, as `kubectl apply -k` would, and check the
// result against the platform's own policy profile. A security tool's own
// manifests must pass its own policies.
package manifests

import (
	"context"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// make deploy applies hack/deploy/daaas-templates, waits for the webhook to
// create every template's constraint CRD, then applies the profile. The
// first step must be exactly the profile without its constraints: a
// constraint in it fails on a kind not served yet, and any other object
// missing from it would arrive only with the constraints.
func TestDeployTemplatesAreTheProfileWithoutConstraints(t *testing.T) {
	render := func(dir string) (constraints, others []string) {
		t.Helper()
		docs, err := kustomize.Build(dir, manifest.Options{AllowUntyped: true, KeepLists: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			gvk := d.Object.GroupVersionKind()
			key := gvk.Group + "/" + gvk.Kind + " " + d.Object.GetNamespace() + "/" + d.Object.GetName()
			if gvk.Group == "constraints.gatekeeper.sh" {
				constraints = append(constraints, key)
			} else {
				others = append(others, key)
			}
		}
		sort.Strings(others)
		return constraints, others
	}
	profileConstraints, want := render(filepath.Join("..", "policies", "profiles", "daaas"))
	if len(profileConstraints) == 0 || len(want) == 0 {
		t.Fatalf("the profile rendered %d constraints and %d other objects", len(profileConstraints), len(want))
	}
	firstConstraints, got := render(filepath.Join("..", "hack", "deploy", "daaas-templates"))
	if len(firstConstraints) > 0 {
		t.Errorf("applied before their kinds are served: %v", firstConstraints)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hack/deploy/daaas-templates differs from the profile without its constraints (-profile +first step):\n%s", diff)
	}
}
