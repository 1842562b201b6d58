package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/match"
)

// Discoverer lists the API server's resources in their preferred
// versions; discovery.DiscoveryInterface is one.
type Discoverer interface {
	ServerPreferredResources() ([]*metav1.APIResourceList, error)
}

// auditKind is one kind a pass lists. Among a pass's unlisted kinds, one
// whose Kind is "*" stands for every kind of a group version that
// discovery failed for: the pass cannot tell which kinds it serves, nor
// their scope.
type auditKind struct {
	gvk        schema.GroupVersionKind
	resource   string
	namespaced bool
	// named: a constraint or an ExpansionTemplate names the kind itself,
	// rather than through "*".
	named bool
}

// wholeGroup reports whether k stands for every kind of its group.
func (k auditKind) wholeGroup() bool { return k.gvk.Kind == match.Wildcard }

// covers reports whether gk is k's kind, or of the group k stands for.
func (k auditKind) covers(gk schema.GroupKind) bool {
	return k.gvk.Group == gk.Group && (k.wholeGroup() || k.gvk.Kind == gk.Kind)
}

// underWildcard are the kinds "*" does not bring in: Secrets (the audit
// does not read secret data unless a constraint names Secret), Events
// (transient, numerous) and the audit's own reports.
var underWildcard = map[schema.GroupKind]bool{
	{Group: "", Kind: "Secret"}:                            true,
	{Group: "", Kind: "Event"}:                             true,
	{Group: "events.k8s.io", Kind: "Event"}:                true,
	{Group: "wgpolicyk8s.io", Kind: "PolicyReport"}:        true,
	{Group: "wgpolicyk8s.io", Kind: "ClusterPolicyReport"}: true,
}

// kindsOf returns the match.kinds entries of the constraints; a
// constraint without any stands for every kind.
func kindsOf(constraints []*unstructured.Unstructured) ([]match.Kinds, error) {
	var out []match.Kinds
	for _, c := range constraints {
		ks, err := constraintKinds(c)
		if err != nil {
			return nil, err
		}
		out = append(out, ks...)
	}
	return out, nil
}

// constraintKinds returns one constraint's match.kinds entries, or a
// single empty entry (every kind) when it has none.
func constraintKinds(c *unstructured.Unstructured) ([]match.Kinds, error) {
	raw, _, _ := unstructured.NestedFieldNoCopy(c.Object, "spec", "match")
	m := match.Match{}
	if mm, ok := raw.(map[string]interface{}); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(mm, &m); err != nil {
			return nil, fmt.Errorf("%s %q: spec.match: %w", c.GetKind(), c.GetName(), err)
		}
	}
	if len(m.Kinds) == 0 {
		return []match.Kinds{{}}, nil
	}
	return m.Kinds, nil
}

// selects reports whether these match.kinds entries make a pass list gk,
// and whether one of those that do names it.
func selects(want []match.Kinds, gk schema.GroupKind) (selected, named bool) {
	for _, k := range want {
		if ok, byName := accepts(k, gk); ok && (byName || !underWildcard[gk]) {
			selected = true
			named = named || byName
		}
	}
	return selected, named
}

// unlistedFor returns the kinds among unlisted whose objects a constraint
// with these match.kinds entries could have found violations on.
// Expansion carries a workload's findings to the constraints on the kinds
// it derives, possibly through several templates; rather than follow
// those chains, an unlisted kind that expansion applies to counts for
// every constraint. That may keep a status that could have been updated,
// never the reverse.
func unlistedFor(want []match.Kinds, unlisted []auditKind, set *expansion.Set) []schema.GroupKind {
	var out []schema.GroupKind
	for _, k := range unlisted {
		gk := k.gvk.GroupKind()
		if k.wholeGroup() {
			if selectsGroup(want, gk.Group) || (set != nil && set.AppliesToGroup(gk.Group)) {
				out = append(out, gk)
			}
			continue
		}
		if selected, _ := selects(want, gk); selected || (set != nil && set.AppliesTo(k.gvk)) {
			out = append(out, gk)
		}
	}
	return out
}

// selectsGroup reports whether these match.kinds entries could make a
// pass list some kind of group, whichever kinds it serves: an entry that
// accepts the group may name one of them, or take them through "*".
func selectsGroup(want []match.Kinds, group string) bool {
	for _, k := range want {
		if listAccepts(k.APIGroups, group) {
			return true
		}
	}
	return false
}

// undiscovered returns, for each group version that discovery failed for
// (as discovery.ErrGroupDiscoveryFailed gives them) whose group the
// constraints' kinds or expansion may reach, an unlisted kind standing
// for every kind of that group; sorted. Left out of the pass, those kinds
// would read as kinds that do not exist, and the constraints on them as
// compliant.
func undiscovered(failed map[schema.GroupVersion]error, want []match.Kinds, set *expansion.Set) []auditKind {
	var out []auditKind
	for gv := range failed {
		if selectsGroup(want, gv.Group) || (set != nil && set.AppliesToGroup(gv.Group)) {
			out = append(out, auditKind{gvk: gv.WithKind(match.Wildcard)})
		}
	}
	slices.SortFunc(out, func(a, b auditKind) int { return compareGroupVersions(a.gvk.GroupVersion(), b.gvk.GroupVersion()) })
	return out
}

func compareGroupVersions(a, b schema.GroupVersion) int {
	return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Version, b.Version))
}

// accepts reports whether an entry accepts gk, and whether it names the
// kind itself rather than through "*" or an empty list.
func accepts(k match.Kinds, gk schema.GroupKind) (ok, named bool) {
	if !listAccepts(k.APIGroups, gk.Group) || !listAccepts(k.Kinds, gk.Kind) {
		return false, false
	}
	return true, slices.Contains(k.Kinds, gk.Kind)
}

func listAccepts(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, match.Wildcard) || slices.Contains(list, v)
}

// resolveKinds picks, from the server's listable resources, those the
// constraints' kinds select and those expansion derives objects from,
// sorted by group, version and kind.
func resolveKinds(resources []*metav1.APIResourceList, want []match.Kinds, set *expansion.Set) []auditKind {
	seen := map[schema.GroupKind]bool{}
	var out []auditKind
	for _, list := range resources {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			gvk := gv.WithKind(r.Kind)
			if seen[gvk.GroupKind()] {
				continue
			}
			expanded := set != nil && set.AppliesTo(gvk)
			selected, named := selects(want, gvk.GroupKind())
			selected, named = selected || expanded, named || expanded
			if !selected {
				continue
			}
			seen[gvk.GroupKind()] = true
			out = append(out, auditKind{gvk: gvk, resource: r.Name, namespaced: r.Namespaced, named: named})
		}
	}
	slices.SortFunc(out, func(a, b auditKind) int {
		return cmp.Or(cmp.Compare(a.gvk.Group, b.gvk.Group), cmp.Compare(a.gvk.Version, b.gvk.Version), cmp.Compare(a.gvk.Kind, b.gvk.Kind))
	})
	return out
}
