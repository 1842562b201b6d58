package policies

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
)

// The platform profile (profiles/daaas, a kustomization) must admit the
// platform's real workloads and deny their insecure variants with messages
// a data scientist can act on. Layout:
//
//	profiles/daaas/workloads/inventory.yaml   cluster state the referential rules read
//	profiles/daaas/workloads/admitted/*.yaml  every object must be admitted
//	profiles/daaas/workloads/denied/*.yaml    every object must be denied
//	profiles/daaas/workloads/expectations.yaml
//	    - file: denied/<file>.yaml
//	      denies: ["<regex on 'Kind/constraint: message'>", ...]

const profile = "profiles/daaas"

type expectation struct {
	File   string   `yaml:"file"`
	Denies []string `yaml:"denies"`
}

func loadProfile(t *testing.T) (*policy.Engine, *eval.Policies, []*manifest.Document) {
	t.Helper()
	e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointGator))
	if err != nil {
		t.Fatal(err)
	}
	pols, err := eval.LoadPolicies(context.Background(), e, []string{profile})
	if err != nil {
		t.Fatalf("loading the profile: %v", err)
	}
	inv, err := eval.ReadManifests([]string{filepath.Join(profile, "workloads", "inventory.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, pols, inv
}

// profileEngine loads the profile once; each review adds its file's
// objects to the inventory and restores the inventory afterwards, so files
// do not see each other.
type profileEngine struct {
	e    *policy.Engine
	pols *eval.Policies
	inv  []*manifest.Document
}

func (p *profileEngine) review(t *testing.T, path string) []*eval.Object {
	t.Helper()
	ctx := context.Background()
	docs, err := eval.ReadManifests([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := eval.Review(ctx, p.e, p.pols, p.inv, docs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.e.WipeData(ctx); err != nil {
		t.Fatal(err)
	}
	return objs
}

func newProfileEngine(t *testing.T) *profileEngine {
	t.Helper()
	e, pols, inv := loadProfile(t)
	return &profileEngine{e: e, pols: pols, inv: inv}
}

func describe(r policy.Result) string {
	return fmt.Sprintf("%s/%s: %s", r.Kind, r.Constraint, r.Message)
}

func TestProfile_Loads(t *testing.T) {
	_, pols, _ := loadProfile(t)
	if pols.Templates < 40 {
		t.Errorf("the profile loads %d templates, want the whole library", pols.Templates)
	}
	if pols.Constraints < 30 {
		t.Errorf("the profile sets %d constraints", pols.Constraints)
	}
}

func TestProfile_AdmitsPlatformWorkloads(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(profile, "workloads", "admitted", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no admitted workloads (%v)", err)
	}
	p := newProfileEngine(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, o := range p.review(t, f) {
				for _, r := range o.Results {
					if r.Has(policy.ActionDeny) {
						t.Errorf("%s denied: %s", o.Doc.Ref(), describe(r))
					}
				}
			}
		})
	}
}

func TestProfile_DeniesInsecureVariants(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(profile, "workloads", "expectations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var exps []expectation
	if err := yaml.Unmarshal(raw, &exps); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(profile, "workloads", "denied", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no denied variants (%v)", err)
	}
	covered := map[string]bool{}
	p := newProfileEngine(t)
	for _, exp := range exps {
		covered[filepath.Clean(exp.File)] = true
		t.Run(exp.File, func(t *testing.T) {
			objs := p.review(t, filepath.Join(profile, "workloads", exp.File))
			var denies []string
			for _, o := range objs {
				for _, r := range o.Results {
					if r.Has(policy.ActionDeny) {
						denies = append(denies, describe(r))
					}
				}
			}
			if len(denies) == 0 {
				t.Fatal("admitted, want denied")
			}
			sort.Strings(denies)
			for _, want := range exp.Denies {
				re, err := regexp.Compile(want)
				if err != nil {
					t.Fatalf("expectation %q: %v", want, err)
				}
				found := false
				for _, d := range denies {
					found = found || re.MatchString(d)
				}
				if !found {
					t.Errorf("no denial matches %q; denials:\n  %s", want, strings.Join(denies, "\n  "))
				}
			}
		})
	}
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join(profile, "workloads"), f)
		if !covered[rel] {
			t.Errorf("%s has no entry in expectations.yaml", rel)
		}
	}
}
