// Package match decides whether an object is in scope of a constraint's
// spec.match block, with the semantics Gatekeeper documents for
// constraints.gatekeeper.sh (website/docs/howto.md, "The match field"):
// every matcher that is set must agree (they are ANDed), an unset matcher
// matches everything, and namespace matchers also apply to cluster-scoped
// objects unless scope says otherwise.
package match

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Scope values accepted in spec.match.scope.
const (
	ScopeAll        = "*"
	ScopeCluster    = "Cluster"
	ScopeNamespaced = "Namespaced"
)

// Source values accepted in spec.match.source. Objects reviewed as they were
// submitted are "Original"; objects derived from a workload's pod template
// are "Generated".
const (
	SourceAll       = "All"
	SourceOriginal  = "Original"
	SourceGenerated = "Generated"
)

// Wildcard is the value that matches every API group or kind.
const Wildcard = "*"

// ErrMatch wraps every error raised while evaluating a match block. Callers
// (the policy engine) turn such errors into an "autoreject" result, as
// Gatekeeper does, so that a constraint that cannot decide fails closed.
var ErrMatch = errors.New("cannot evaluate match criteria")

// Match mirrors the JSON shape of spec.match in a Gatekeeper constraint.
type Match struct {
	Source             string                `json:"source,omitempty"`
	Kinds              []Kinds               `json:"kinds,omitempty"`
	Scope              string                `json:"scope,omitempty"`
	Namespaces         []Glob                `json:"namespaces,omitempty"`
	ExcludedNamespaces []Glob                `json:"excludedNamespaces,omitempty"`
	LabelSelector      *metav1.LabelSelector `json:"labelSelector,omitempty"`
	NamespaceSelector  *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	Name               Glob                  `json:"name,omitempty"`
}

// Kinds is one entry of spec.match.kinds. An entry matches when both its
// group list and its kind list accept the object; an empty list or "*"
// accepts anything.
type Kinds struct {
	APIGroups []string `json:"apiGroups,omitempty"`
	Kinds     []string `json:"kinds,omitempty"`
}

// Glob is a name that may carry "*" at its start, its end or both:
// "kube-*" is a prefix, "*-system" a suffix, "*data*" a substring. Without a
// star it must match exactly.
type Glob string

// Matches reports whether s is accepted by the glob.
func (g Glob) Matches(s string) bool {
	p := string(g)
	lead, trail := strings.HasPrefix(p, "*"), strings.HasSuffix(p, "*")
	switch {
	case lead && trail:
		return strings.Contains(s, strings.TrimSuffix(strings.TrimPrefix(p, "*"), "*"))
	case lead:
		return strings.HasSuffix(s, p[1:])
	case trail:
		return strings.HasPrefix(s, p[:len(p)-1])
	default:
		return p == s
	}
}

// matchesGenerateName reports whether an object that only has a
// metadata.generateName could end up with a name the glob accepts. Only
// globs that leave the end of the name open can say so.
func (g Glob) matchesGenerateName(prefix string) bool {
	p := string(g)
	if !strings.HasSuffix(p, "*") {
		return false
	}
	if strings.HasPrefix(p, "*") {
		return strings.Contains(prefix, strings.TrimSuffix(strings.TrimPrefix(p, "*"), "*"))
	}
	return strings.HasPrefix(prefix, p[:len(p)-1])
}

// Object is what matching needs to know about the object under review. It
// is extracted once per review so that many constraints can be matched
// without decoding the object again.
type Object struct {
	Group        string
	Kind         string
	Name         string
	GenerateName string
	Namespace    string
	Labels       map[string]string
}

// IsNamespace reports whether the object is a core/v1 Namespace.
func (o *Object) IsNamespace() bool { return o.Kind == "Namespace" && o.Group == "" }

// Target is an object together with its context: the Namespace it lives in
// (nil when unknown or cluster-scoped) and whether it was submitted as is
// or generated from a workload template.
type Target struct {
	Object    Object
	Namespace *corev1.Namespace
	Source    string
}

// Matcher is a compiled Match: selectors are parsed once, when the
// constraint is added, not on every review.
type Matcher struct {
	m                 Match
	labelSelector     labels.Selector
	namespaceSelector labels.Selector
}

// Compile checks a Match and prepares it for repeated use.
func Compile(m Match) (*Matcher, error) {
	c := &Matcher{m: m}
	var err error
	if m.LabelSelector != nil {
		if c.labelSelector, err = metav1.LabelSelectorAsSelector(m.LabelSelector); err != nil {
			return nil, fmt.Errorf("spec.match.labelSelector: %w", err)
		}
	}
	if m.NamespaceSelector != nil {
		if c.namespaceSelector, err = metav1.LabelSelectorAsSelector(m.NamespaceSelector); err != nil {
			return nil, fmt.Errorf("spec.match.namespaceSelector: %w", err)
		}
	}
	return c, nil
}

// Matches reports whether the target is in scope. The criteria are checked
// in Gatekeeper's order, so that when several could fail, the same one
// decides (and the same error is reported).
func (c *Matcher) Matches(t *Target) (bool, error) {
	// Called directly, not through a table of functions: t then stays on
	// the caller's stack (an engine matches every review against every
	// constraint).
	ok, err := c.kinds(t)
	if ok && err == nil {
		ok, err = c.scope(t)
	}
	if ok && err == nil {
		ok, err = c.namespaces(t)
	}
	if ok && err == nil {
		ok, err = c.excludedNamespaces(t)
	}
	if ok && err == nil {
		ok, err = c.labels(t)
	}
	if ok && err == nil {
		ok, err = c.namespaceLabels(t)
	}
	if ok && err == nil {
		ok, err = c.name(t)
	}
	if ok && err == nil {
		ok, err = c.source(t)
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrMatch, err)
	}
	return ok, nil
}

func (c *Matcher) kinds(t *Target) (bool, error) {
	if len(c.m.Kinds) == 0 {
		return true, nil
	}
	for _, k := range c.m.Kinds {
		if acceptsAny(k.Kinds, t.Object.Kind) && acceptsAny(k.APIGroups, t.Object.Group) {
			return true, nil
		}
	}
	return false, nil
}

func acceptsAny(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if s == Wildcard || s == v {
			return true
		}
	}
	return false
}

func (c *Matcher) scope(t *Target) (bool, error) {
	inNamespace := t.Object.Namespace != "" || t.Namespace != nil
	switch c.m.Scope {
	case ScopeCluster:
		return t.Object.IsNamespace() || !inNamespace, nil
	case ScopeNamespaced:
		return !t.Object.IsNamespace() && inNamespace, nil
	default:
		return true, nil
	}
}

// namespaceOf returns the namespace that namespace matchers compare with: a
// Namespace object stands for itself. ok is false for cluster-scoped
// objects, which namespace lists then let through.
func namespaceOf(t *Target) (string, bool) {
	switch {
	case t.Object.IsNamespace():
		return t.Object.Name, true
	case t.Namespace != nil:
		return t.Namespace.Name, true
	case t.Object.Namespace != "":
		return t.Object.Namespace, true
	default:
		return "", false
	}
}

func (c *Matcher) namespaces(t *Target) (bool, error) {
	if len(c.m.Namespaces) == 0 {
		return true, nil
	}
	ns, ok := namespaceOf(t)
	if !ok {
		return true, nil
	}
	for _, g := range c.m.Namespaces {
		if g.Matches(ns) {
			return true, nil
		}
	}
	return false, nil
}

func (c *Matcher) excludedNamespaces(t *Target) (bool, error) {
	if len(c.m.ExcludedNamespaces) == 0 {
		return true, nil
	}
	ns, ok := namespaceOf(t)
	if !ok {
		return true, nil
	}
	for _, g := range c.m.ExcludedNamespaces {
		if g.Matches(ns) {
			return false, nil
		}
	}
	return true, nil
}

func (c *Matcher) labels(t *Target) (bool, error) {
	if c.labelSelector == nil {
		return true, nil
	}
	return c.labelSelector.Matches(labels.Set(t.Object.Labels)), nil
}

func (c *Matcher) namespaceLabels(t *Target) (bool, error) {
	if c.namespaceSelector == nil {
		return true, nil
	}
	if t.Object.IsNamespace() {
		return c.namespaceSelector.Matches(labels.Set(t.Object.Labels)), nil
	}
	if t.Namespace == nil {
		if t.Object.Namespace == "" {
			return true, nil // cluster-scoped: the selector does not apply
		}
		return false, fmt.Errorf("namespaceSelector needs Namespace %q, which is not known", t.Object.Namespace)
	}
	return c.namespaceSelector.Matches(labels.Set(t.Namespace.Labels)), nil
}

func (c *Matcher) name(t *Target) (bool, error) {
	if c.m.Name == "" {
		return true, nil
	}
	return c.m.Name.Matches(t.Object.Name) || c.m.Name.matchesGenerateName(t.Object.GenerateName), nil
}

func (c *Matcher) source(t *Target) (bool, error) {
	want := c.m.Source
	if want == "" {
		want = SourceAll
	}
	if !validSource(want) {
		return false, fmt.Errorf("spec.match.source %q is not one of All, Original, Generated", want)
	}
	if want == SourceAll {
		return true, nil
	}
	if t.Source == "" {
		return false, fmt.Errorf("spec.match.source is %q but the review does not say where %q came from", want, t.Object.Name)
	}
	if !validSource(t.Source) {
		return false, fmt.Errorf("review source %q is not one of All, Original, Generated", t.Source)
	}
	return want == t.Source, nil
}

func validSource(s string) bool {
	return s == SourceAll || s == SourceOriginal || s == SourceGenerated
}
