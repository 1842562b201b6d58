// Package eval reviews arbitrary manifests offline against a directory of
// ConstraintTemplates and constraints, conftest-style: as gator test does,
// the manifests themselves (and any extra data files) are also the
// referential data (data.inventory), so policies that look at other
// objects, such as required NetworkPolicies in a namespace, see them.
package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/kustomize"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/target"
)

// ErrNoPolicies is returned when the policy directories hold no template.
var ErrNoPolicies = errors.New("no ConstraintTemplates found")

// Policies is what was loaded from the policy directories.
type Policies struct {
	Templates   int
	Constraints int
	Files       int
	// Expansion derives Pods from workloads (and the like) with the
	// ExpansionTemplates found next to the policies; it may be empty.
	Expansion *expansion.Set
}

// PolicySet is the policy documents read from policy paths, not yet loaded
// into an engine.
type PolicySet struct {
	Templates   []*manifest.Document
	Constraints []*manifest.Document
	Expansion   *expansion.Set
	Files       int
}

// ReadPolicies reads the ConstraintTemplates, constraints and
// ExpansionTemplates under paths (files, directories read recursively, or
// kustomizations, which are rendered). Other objects (fixtures, suites)
// are skipped. A file that cannot be read, or no template at all, is an
// error.
func ReadPolicies(paths []string) (*PolicySet, error) {
	set := &PolicySet{}
	var expansions []*expansion.Template
	var errs []error
	for _, p := range paths {
		docs, n, err := documents(p, manifest.Options{AllowUntyped: true, KeepLists: true}, nil)
		if err != nil {
			return nil, err
		}
		set.Files += n
		for _, d := range docs {
			switch {
			case policy.IsTemplate(d.Object):
				set.Templates = append(set.Templates, d)
			case policy.IsConstraint(d.Object):
				set.Constraints = append(set.Constraints, d)
			case expansion.IsTemplate(d.Object):
				t, err := expansion.FromObject(d.Object)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", d.Pos(), err))
					continue
				}
				expansions = append(expansions, t)
			}
		}
	}
	if len(set.Templates) == 0 {
		errs = append(errs, fmt.Errorf("%w under %s", ErrNoPolicies, strings.Join(paths, ", ")))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	set.Expansion = expansion.NewSet(expansions...)
	return set, nil
}

// Load adds the templates, then the constraints, to the engine; keep, when
// not nil, selects the constraint kinds to load. Every template or
// constraint that cannot be used is reported.
func (s *PolicySet) Load(ctx context.Context, e *policy.Engine, keep func(kind string) bool) (*Policies, error) {
	var errs []error
	out := &Policies{Files: s.Files, Expansion: s.Expansion}
	for _, d := range s.Templates {
		t, err := policy.NewTemplate(d.Object, d)
		if err == nil && keep != nil && !keep(t.Kind) {
			continue
		}
		if err == nil {
			err = e.AddTemplate(ctx, t)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Templates++
	}
	for _, d := range s.Constraints {
		if keep != nil && !keep(d.Object.GetKind()) {
			continue
		}
		if err := e.AddConstraint(ctx, d.Object, d); err != nil {
			errs = append(errs, err)
			continue
		}
		out.Constraints++
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// LoadPolicies reads the policies under paths and adds them all to the
// engine; see ReadPolicies and PolicySet.Load.
func LoadPolicies(ctx context.Context, e *policy.Engine, paths []string) (*Policies, error) {
	set, err := ReadPolicies(paths)
	if err != nil {
		return nil, err
	}
	return set.Load(ctx, e, nil)
}

// Object is one reviewed object and what the constraints said about it.
type Object struct {
	Doc     *manifest.Document
	Results []policy.Result
}

// Verdict is "deny" when a result denies the object, "warn" when one warns,
// and "pass" otherwise (dry-run results are recorded, not acted on).
func (o *Object) Verdict() string {
	verdict := "pass"
	for i := range o.Results {
		switch {
		case o.Results[i].Has(policy.ActionDeny):
			return policy.ActionDeny
		case o.Results[i].Has(policy.ActionWarn):
			verdict = policy.ActionWarn
		}
	}
	return verdict
}

// Report is the outcome of an evaluation.
type Report struct {
	Policies *Policies
	Objects  []*Object
}

// Denied counts objects that at least one constraint denies.
func (r *Report) Denied() int {
	n := 0
	for _, o := range r.Objects {
		if o.Verdict() == policy.ActionDeny {
			n++
		}
	}
	return n
}

// ExitCode is 1 when an object is denied, else 0.
func (r *Report) ExitCode() int {
	if r.Denied() > 0 {
		return 1
	}
	return 0
}

// Review adds data and manifests as inventory, then reviews every
// manifest at gator's enforcement point, as an object being created
// outside admission (no operation, no user), together with the objects the
// policies' ExpansionTemplates derive from it.
func Review(ctx context.Context, e *policy.Engine, pols *Policies, data, manifests []*manifest.Document) ([]*Object, error) {
	for _, group := range [][]*manifest.Document{data, manifests} {
		for _, d := range group {
			if err := e.AddData(ctx, d.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Pos(), err)
			}
		}
	}
	out := make([]*Object, 0, len(manifests))
	for _, d := range manifests {
		var ns *corev1.Namespace
		if name := d.Object.GetNamespace(); name != "" {
			ns = e.Target().Namespace(name)
		}
		resp, err := e.ReviewExpanded(ctx, &target.Object{Object: d.Object, Namespace: ns, Source: match.SourceOriginal},
			pols.Expansion, policy.AtEnforcementPoint(policy.EnforcementPointGator))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Pos(), err)
		}
		out = append(out, &Object{Doc: d, Results: resp.Results})
	}
	return out, nil
}

// ReadManifests reads every path ("-" for stdin; a directory holding a
// kustomization is rendered with kustomize, other directories are read
// recursively) and flattens Lists into their items. Kustomization files are
// build instructions, not objects, and are left out.
func ReadManifests(paths []string, stdin io.Reader) ([]*manifest.Document, error) {
	var out []*manifest.Document
	for _, p := range paths {
		docs, _, err := documents(p, manifest.Options{}, stdin)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if d.Object.GroupVersionKind().Group != "kustomize.config.k8s.io" {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// documents reads one path and says how many files it read.
func documents(path string, opts manifest.Options, stdin io.Reader) ([]*manifest.Document, int, error) {
	if path == "-" {
		docs, err := manifest.Read(manifest.Stdin, stdin, opts)
		return docs, 1, err
	}
	if info, err := os.Stat(path); err == nil && info.IsDir() && kustomize.IsKustomization(path) {
		docs, err := kustomize.Build(path, opts)
		return docs, 1, err
	}
	files, err := manifest.Files([]string{path}, ".yaml", ".yml", ".json")
	if err != nil {
		return nil, 0, err
	}
	var out []*manifest.Document
	for _, f := range files {
		docs, err := manifest.ReadFile(f, opts)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, docs...)
	}
	return out, len(files), nil
}
