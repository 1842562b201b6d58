// Package expansion derives the objects a workload will create from the
// workload itself, following Gatekeeper's ExpansionTemplates
// (expansion.gatekeeper.sh/v1alpha1, website/docs/expansion.md): a
// Deployment's spec.template becomes the Pod it will run, so that pod
// policies apply to the Deployment before any Pod exists.
package expansion

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of ExpansionTemplates.
const Group = "expansion.gatekeeper.sh"

// maxDepth bounds chains such as CronJob -> Job -> Pod.
const maxDepth = 30

// MessagePrefix is put before the message of every result about a derived
// object, naming the template that derived it, as Gatekeeper does.
func MessagePrefix(template string) string { return fmt.Sprintf("[Implied by %s] ", template) }

// IsTemplate reports whether u is an ExpansionTemplate.
func IsTemplate(u *unstructured.Unstructured) bool {
	return u.GroupVersionKind().Group == Group && u.GetKind() == "ExpansionTemplate"
}

// ApplyTo lists the exact groups, versions and kinds a template applies to.
type ApplyTo struct {
	Groups   []string `json:"groups,omitempty"`
	Versions []string `json:"versions,omitempty"`
	Kinds    []string `json:"kinds,omitempty"`
}

// Template is one ExpansionTemplate.
type Template struct {
	Name string `json:"-"`
	Spec struct {
		ApplyTo        []ApplyTo `json:"applyTo,omitempty"`
		TemplateSource string    `json:"templateSource,omitempty"`
		GeneratedGVK   struct {
			Group   string `json:"group,omitempty"`
			Version string `json:"version,omitempty"`
			Kind    string `json:"kind,omitempty"`
		} `json:"generatedGVK,omitempty"`
		EnforcementAction string `json:"enforcementAction,omitempty"`
	} `json:"spec"`
}

func (t *Template) generated() schema.GroupVersionKind {
	g := t.Spec.GeneratedGVK
	return schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}
}

func (t *Template) appliesTo(gvk schema.GroupVersionKind) bool {
	for _, a := range t.Spec.ApplyTo {
		if has(a.Groups, gvk.Group) && has(a.Versions, gvk.Version) && has(a.Kinds, gvk.Kind) {
			return true
		}
	}
	return false
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// FromObject decodes and checks an ExpansionTemplate.
func FromObject(u *unstructured.Unstructured) (*Template, error) {
	t := &Template{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, t); err != nil {
		return nil, fmt.Errorf("ExpansionTemplate %q: %w", u.GetName(), err)
	}
	t.Name = u.GetName()
	switch {
	case t.Name == "":
		return nil, fmt.Errorf("ExpansionTemplate: metadata.name is required")
	case len(t.Name) >= 64:
		return nil, fmt.Errorf("ExpansionTemplate %q: metadata.name must be shorter than 64 characters", t.Name)
	case t.Spec.TemplateSource == "":
		return nil, fmt.Errorf("ExpansionTemplate %q: spec.templateSource is required", t.Name)
	case t.generated() == schema.GroupVersionKind{}:
		return nil, fmt.Errorf("ExpansionTemplate %q: spec.generatedGVK is required", t.Name)
	case len(t.Spec.ApplyTo) == 0:
		return nil, fmt.Errorf("ExpansionTemplate %q: spec.applyTo is required", t.Name)
	case t.appliesTo(t.generated()):
		return nil, fmt.Errorf("ExpansionTemplate %q: generates %v, which it also applies to", t.Name, t.generated())
	}
	return t, nil
}

// Set is a group of templates. Templates that form a cycle (A generates
// what B applies to and B generates what A applies to) are left out, as
// Gatekeeper leaves out conflicting templates.
type Set struct {
	templates []*Template
	Excluded  []string // names of templates left out because of cycles
}

// NewSet builds a set from templates.
func NewSet(templates ...*Template) *Set {
	sorted := append([]*Template(nil), templates...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	s := &Set{}
	onCycle := cyclic(sorted)
	for _, t := range sorted {
		if onCycle[t.Name] {
			s.Excluded = append(s.Excluded, t.Name)
			continue
		}
		s.templates = append(s.templates, t)
	}
	return s
}

// cyclic finds the templates that can reach themselves: t -> u when u
// applies to what t generates.
func cyclic(ts []*Template) map[string]bool {
	next := map[string][]string{}
	for _, t := range ts {
		for _, u := range ts {
			if u.appliesTo(t.generated()) {
				next[t.Name] = append(next[t.Name], u.Name)
			}
		}
	}
	out := map[string]bool{}
	for _, t := range ts {
		seen := map[string]bool{}
		stack := append([]string(nil), next[t.Name]...)
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if n == t.Name {
				out[t.Name] = true
				break
			}
			if seen[n] {
				continue
			}
			seen[n] = true
			stack = append(stack, next[n]...)
		}
	}
	return out
}

// AppliesTo reports whether some template expands objects of this kind.
func (s *Set) AppliesTo(gvk schema.GroupVersionKind) bool {
	for _, t := range s.templates {
		if t.appliesTo(gvk) {
			return true
		}
	}
	return false
}

// AppliesToGroup reports whether some template expands objects of some
// kind of this API group.
func (s *Set) AppliesToGroup(group string) bool {
	for _, t := range s.templates {
		for _, a := range t.Spec.ApplyTo {
			if has(a.Groups, group) {
				return true
			}
		}
	}
	return false
}

// Len is the number of templates in use.
func (s *Set) Len() int { return len(s.templates) }

// Resultant is an object derived from a workload.
type Resultant struct {
	Object *unstructured.Unstructured
	// Template is the ExpansionTemplate that derived it.
	Template string
	// EnforcementAction, when set, replaces the action of results about
	// this object.
	EnforcementAction string
}

// Expand derives every object obj leads to, recursively (a CronJob's Job
// and that Job's Pod). namespace, when not empty, is set on derived
// objects; otherwise they take obj's namespace.
func (s *Set) Expand(obj *unstructured.Unstructured, namespace string) ([]Resultant, error) {
	var out []Resultant
	if err := s.expand(obj, namespace, 0, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Set) expand(obj *unstructured.Unstructured, namespace string, depth int, out *[]Resultant) error {
	if depth >= maxDepth {
		return fmt.Errorf("expanding %s %q: more than %d levels of derived objects", obj.GetKind(), obj.GetName(), maxDepth)
	}
	gvk := obj.GroupVersionKind()
	if gvk.Empty() {
		return fmt.Errorf("cannot expand %q: it has no apiVersion and kind", obj.GetName())
	}
	for _, t := range s.templates {
		if !t.appliesTo(gvk) {
			continue
		}
		child, err := derive(obj, namespace, t)
		if err != nil {
			return err
		}
		if err := s.expand(child, namespace, depth+1, out); err != nil {
			return err
		}
		*out = append(*out, Resultant{Object: child, Template: t.Name, EnforcementAction: t.Spec.EnforcementAction})
	}
	return nil
}

// derive builds the object one template derives from obj: the content at
// templateSource, with the generated kind, the parent's namespace, a name
// made from the parent's and an owner reference to the parent.
func derive(obj *unstructured.Unstructured, namespace string, t *Template) (*unstructured.Unstructured, error) {
	src, found, err := unstructured.NestedMap(obj.Object, strings.Split(t.Spec.TemplateSource, ".")...)
	if err != nil {
		return nil, fmt.Errorf("ExpansionTemplate %q: %s %q: %s is not an object: %w", t.Name, obj.GetKind(), obj.GetName(), t.Spec.TemplateSource, err)
	}
	if !found {
		return nil, fmt.Errorf("ExpansionTemplate %q: %s %q has no %s", t.Name, obj.GetKind(), obj.GetName(), t.Spec.TemplateSource)
	}
	child := &unstructured.Unstructured{Object: src}
	gvk := t.generated()
	child.SetGroupVersionKind(gvk)
	if namespace != "" {
		child.SetNamespace(namespace)
	} else if ns := obj.GetNamespace(); ns != "" {
		child.SetNamespace(ns)
	}
	child.SetName(strings.ToLower(obj.GetName() + "-" + gvk.Kind))
	if obj.GetAPIVersion() != "" && obj.GetKind() != "" && obj.GetName() != "" {
		refs := child.GetOwnerReferences()
		present := false
		for _, r := range refs {
			if r.APIVersion == obj.GetAPIVersion() && r.Kind == obj.GetKind() && r.Name == obj.GetName() {
				present = true
			}
		}
		if !present {
			child.SetOwnerReferences(append(refs, ownerRef(obj)))
		}
	}
	return child, nil
}

func ownerRef(obj *unstructured.Unstructured) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Name: obj.GetName()}
}
