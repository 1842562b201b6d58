// Package target implements the Kubernetes admission target,
// admission.k8s.gatekeeper.sh, for the constraint framework: it turns
// admission requests and plain objects into the review that Rego sees as
// input.review, decides in Go which constraints match a review, and lays
// referential data out as Gatekeeper does under data.inventory.
//
// The review has the JSON shape of a Kubernetes AdmissionRequest, which is
// what Gatekeeper policies are written against; on DELETE, object holds the
// deleted object (oldObject), so policies need not special-case it.
package target

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/handler"
	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/statcan/daaas-guard/pkg/match"
)

// Name is the target name templates declare in spec.targets[].target.
const Name = "admission.k8s.gatekeeper.sh"

// Errors the target reports. They reach callers wrapped by the constraint
// framework, so test them with errors.Is.
var (
	ErrReview       = errors.New("cannot build a review")
	ErrMissingOld   = errors.New("a DELETE review needs oldObject")
	ErrMatchSpec    = errors.New("invalid spec.match")
	ErrUnknownInput = errors.New("unsupported review input")
)

// Request is an admission request with the context the API server does
// not send: the Namespace object (for namespaceSelector) and the source.
type Request struct {
	AdmissionRequest *admissionv1.AdmissionRequest
	Namespace        *corev1.Namespace
	Source           string

	// reviewed is the review last built from this request: what was
	// parsed for the policies serves its caller too (ObjectMetadata).
	reviewed *Review
}

// ObjectMetadata returns the labels and annotations of the request's
// object (the old object of a DELETE) as its review parsed them, so that
// the caller need not decode the object again; the labels are matching's,
// shared, not to be modified. ok is false until the request has been
// reviewed, when it has no object, and when either is not an object of
// strings (null is none).
func (r *Request) ObjectMetadata() (labels, annotations map[string]string, ok bool) {
	if r.reviewed == nil || r.reviewed.object == nil {
		return nil, nil, false
	}
	obj, isObj := r.reviewed.object.(ast.Object)
	if !isObj {
		return nil, nil, false
	}
	var meta ast.Object
	if t := obj.Get(ast.InternedTerm("metadata")); t != nil {
		switch v := t.Value.(type) {
		case ast.Object:
			meta = v
		case ast.Null:
		default:
			return nil, nil, false
		}
	}
	if !r.reviewed.objectLabelsOK {
		return nil, nil, false
	}
	labels = r.reviewed.targets[0].Object.Labels // the object's target comes first
	if annotations, ok = stringMap(meta, "annotations"); !ok {
		return nil, nil, false
	}
	return labels, annotations, true
}

// stringMap is obj[key] as a map of strings: nil when obj or the key is
// missing or null, ok false when it is anything but an object of strings.
func stringMap(obj ast.Object, key string) (map[string]string, bool) {
	if obj == nil {
		return nil, true
	}
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return nil, true
	}
	switch v := t.Value.(type) {
	case ast.Null:
		return nil, true
	case ast.Object:
		m := make(map[string]string, v.Len())
		err := v.Iter(func(k, val *ast.Term) error {
			ks, ok1 := k.Value.(ast.String)
			vs, ok2 := val.Value.(ast.String)
			if !ok1 || !ok2 {
				return errNonStringLabel
			}
			m[string(ks)] = string(vs)
			return nil
		})
		return m, err == nil
	default:
		return nil, false
	}
}

// Object is a stored object reviewed outside admission (audit, CLI): it
// becomes an admission request with the given operation (usually none).
type Object struct {
	Object    *unstructured.Unstructured
	Namespace *corev1.Namespace
	Operation admissionv1.Operation
	Source    string
}

// Target is the admission target handler. The zero value is ready to use.
// It keeps the Namespaces it has seen as data, so that namespaceSelector
// works for reviews that do not carry their Namespace.
type Target struct {
	namespaces namespaceCache
}

var (
	_ handler.TargetHandler = &Target{}
	_ handler.Cacher        = &Target{}
)

// GetName returns the target name.
func (t *Target) GetName() string { return Name }

// MatchSchema returns the schema of spec.match for generated constraint CRDs.
func (t *Target) MatchSchema() apiextensions.JSONSchemaProps { return matchSchema() }

// GetCache exposes the Namespace cache to the framework, which fills it
// from AddData and empties it from RemoveData.
func (t *Target) GetCache() handler.Cache { return &t.namespaces }

// Namespace returns a Namespace previously added as data, or nil.
func (t *Target) Namespace(name string) *corev1.Namespace { return t.namespaces.get(name) }

// ProcessData places an object in the inventory:
// cluster/<groupVersion>/<kind>/<name> or
// namespace/<namespace>/<groupVersion>/<kind>/<name>.
func (t *Target) ProcessData(obj interface{}) (bool, []string, interface{}, error) {
	var u *unstructured.Unstructured
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		u = o
	case unstructured.Unstructured:
		u = &o
	case WipeData:
		switch o.Scope {
		case "cluster", "namespace":
			return true, []string{o.Scope}, nil, nil
		default:
			return true, nil, nil, fmt.Errorf("%w: WipeData scope must be cluster or namespace", ErrReview)
		}
	default:
		return false, nil, nil, nil
	}
	gvk := u.GroupVersionKind()
	switch {
	case gvk.Version == "":
		return true, nil, nil, fmt.Errorf("%w: %s %q has no apiVersion", ErrReview, gvk.Kind, u.GetName())
	case gvk.Kind == "":
		return true, nil, nil, fmt.Errorf("%w: object %q has no kind", ErrReview, u.GetName())
	}
	return true, InventoryKey(gvk, u.GetNamespace(), u.GetName()), u.Object, nil
}

// WipeData, passed to RemoveData, removes all cluster-scoped
// (Scope "cluster") or all namespaced (Scope "namespace") inventory at
// once; data.inventory itself stays, as it is before any data is added.
type WipeData struct{ Scope string }

// InventoryKey is the path of an object below data.inventory.
func InventoryKey(gvk schema.GroupVersionKind, namespace, name string) []string {
	if namespace == "" {
		return []string{"cluster", gvk.GroupVersion().String(), gvk.Kind, name}
	}
	return []string{"namespace", namespace, gvk.GroupVersion().String(), gvk.Kind, name}
}

// HandleReview accepts *Request, *Object, admission requests and
// unstructured objects (reviewed with no operation, as audit does).
func (t *Target) HandleReview(obj interface{}) (bool, interface{}, error) {
	var r *Review
	var err error
	switch in := obj.(type) {
	case *Review:
		return true, in, nil
	case *Request:
		if in.AdmissionRequest == nil {
			return false, nil, fmt.Errorf("%w: request is nil", ErrReview)
		}
		r = &Review{AdmissionRequest: *in.AdmissionRequest, namespace: in.Namespace, source: in.Source}
	case Request:
		return t.HandleReview(&in)
	case *admissionv1.AdmissionRequest:
		r = &Review{AdmissionRequest: *in}
	case admissionv1.AdmissionRequest:
		r = &Review{AdmissionRequest: in}
	case *Object:
		r, err = fromObject(in)
	case Object:
		r, err = fromObject(&in)
	case *unstructured.Unstructured:
		r, err = fromObject(&Object{Object: in})
	case unstructured.Unstructured:
		r, err = fromObject(&Object{Object: &in})
	default:
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	if err := r.prepare(); err != nil {
		return false, nil, err
	}
	if in, ok := obj.(*Request); ok {
		in.reviewed = r
	}
	return true, r, nil
}

// NewReview builds the review for an input HandleReview accepts. Building
// it once and passing the *Review to the engine saves decoding the object
// for every enforcement point or retry.
func (t *Target) NewReview(obj interface{}) (*Review, error) {
	handled, r, err := t.HandleReview(obj)
	if err != nil {
		return nil, err
	}
	if !handled {
		return nil, fmt.Errorf("%w: %T", ErrUnknownInput, obj)
	}
	return r.(*Review), nil
}

func fromObject(in *Object) (*Review, error) {
	if in.Object == nil {
		return nil, fmt.Errorf("%w: object is nil", ErrReview)
	}
	raw, err := in.Object.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s %q: %w", ErrReview, in.Object.GetKind(), in.Object.GetName(), err)
	}
	gvk := in.Object.GroupVersionKind()
	req := admissionv1.AdmissionRequest{
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      in.Object.GetName(),
		Namespace: in.Object.GetNamespace(),
		Operation: in.Operation,
	}
	if in.Operation == admissionv1.Delete {
		req.OldObject = runtime.RawExtension{Raw: raw}
	} else {
		req.Object = runtime.RawExtension{Raw: raw}
	}
	return &Review{AdmissionRequest: req, namespace: in.Namespace, source: in.Source}, nil
}

// Review is what policies see as input.review: an admission request whose
// JSON form is exactly the AdmissionRequest's. The unexported fields carry
// what matching needs and are decoded once.
type Review struct {
	admissionv1.AdmissionRequest

	namespace *corev1.Namespace
	source    string

	// targets are the objects matching looks at: object and, on UPDATE,
	// oldObject, so a change that moves an object out of scope is still
	// reviewed.
	targets []match.Target
	// object and oldObject as Rego values, parsed once for both matching
	// and evaluation, without their metadata.managedFields: that is left
	// raw (objectFields, oldObjectFields) and parsed only if a policy
	// reads it.
	object, oldObject             ast.Value
	objectFields, oldObjectFields []byte
	// objectLabelsOK says that the object's labels, in its match target,
	// are all strings: matching reads any others as none.
	objectLabelsOK bool
	// namespaceValue is the Namespace as a Rego value, when the caller
	// has it already (SetNamespaceValue).
	namespaceValue ast.Value
}

// SetNamespaceValue gives the review its Namespace already converted to a
// Rego value, the value of the map the framework passes along with it:
// every review in a namespace needs it, and converting it is a good part
// of a small review's cost.
func (r *Review) SetNamespaceValue(v ast.Value) { r.namespaceValue = v }

// Deferred is a part of the review left out of its Rego value: the raw
// JSON of the value at Path, below input.review.
type Deferred struct {
	Path []string
	Raw  []byte
}

// managedFields is where an object's metadata.managedFields is, below it.
var managedFields = []string{"metadata", "managedFields"}

// GetAdmissionRequest lets the framework filter templates by operation.
func (r *Review) GetAdmissionRequest() *admissionv1.AdmissionRequest { return &r.AdmissionRequest }

// NamespaceObject returns the Namespace the review carries, if any.
func (r *Review) NamespaceObject() *corev1.Namespace { return r.namespace }

func (r *Review) prepare() error {
	if r.Operation == admissionv1.Delete {
		if r.OldObject.Raw == nil {
			return fmt.Errorf("%w: %s %q", ErrMissingOld, r.Kind.Kind, r.Name)
		}
		r.Object = r.OldObject
	}
	var err error
	if r.Object.Raw != nil {
		if r.object, r.objectFields, err = ParseJSONDeferring(r.Object.Raw, managedFields...); err != nil {
			return fmt.Errorf("%w: %s %q: object: %w", ErrReview, r.Kind.Kind, r.Name, err)
		}
		if err := hasKind(r.object); err != nil {
			return fmt.Errorf("%w: %s %q: object: %w", ErrReview, r.Kind.Kind, r.Name, err)
		}
		t, labelsOK := r.matchTarget(r.object)
		r.targets, r.objectLabelsOK = append(r.targets, t), labelsOK
	}
	if r.OldObject.Raw != nil {
		if r.Operation == admissionv1.Delete {
			r.oldObject, r.oldObjectFields = r.object, r.objectFields // the same document
			return nil
		}
		if r.oldObject, r.oldObjectFields, err = ParseJSONDeferring(r.OldObject.Raw, managedFields...); err != nil {
			return fmt.Errorf("%w: %s %q: oldObject: %w", ErrReview, r.Kind.Kind, r.Name, err)
		}
		if err := hasKind(r.oldObject); err != nil {
			return fmt.Errorf("%w: %s %q: oldObject: %w", ErrReview, r.Kind.Kind, r.Name, err)
		}
		t, _ := r.matchTarget(r.oldObject)
		r.targets = append(r.targets, t)
	}
	return nil
}

// hasKind checks that an object sent for review names its kind. Matching
// reads the kind and group from the object, as Gatekeeper does, so an
// object without them would match no constraint and pass unjudged; the
// API server always sends them, and Gatekeeper fails to decode such an
// object too. A null object (nothing to judge) is left to matching.
func hasKind(v ast.Value) error {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil
	}
	for _, key := range []string{"apiVersion", "kind"} {
		t := obj.Get(ast.InternedTerm(key))
		if t == nil {
			return fmt.Errorf("%s is missing", key)
		}
		if s, ok := t.Value.(ast.String); !ok || s == "" {
			return fmt.Errorf("%s must be a non-empty string", key)
		}
	}
	return nil
}

// matchTarget is v as matching sees it, and whether its labels were all
// strings.
func (r *Review) matchTarget(v ast.Value) (match.Target, bool) {
	obj, labelsOK := matchObject(v)
	return match.Target{Object: obj, Namespace: r.namespace, Source: r.source}, labelsOK
}

// Value is the review as policies see it, input.review: the admission
// request's JSON form with the objects already parsed, plus
// namespaceObject (null when the review carries no Namespace). ns is the
// Namespace as JSON-compatible values.
func (r *Review) Value(ns map[string]interface{}) (*ast.Term, error) {
	t, deferred, err := r.DeferredValue(ns)
	if err != nil {
		return nil, err
	}
	v := t.Value
	for _, d := range deferred {
		if v, err = d.Into(v); err != nil {
			return nil, fmt.Errorf("%w: %s %q: %s: %w", ErrReview, r.Kind.Kind, r.Name, strings.Join(d.Path, "."), err)
		}
	}
	return ast.NewTerm(v), nil
}

// DeferredValue is Value without the parts a policy seldom reads, which
// are returned raw with where they belong, for an evaluator that parses
// them when read.
func (r *Review) DeferredValue(ns map[string]interface{}) (*ast.Term, []Deferred, error) {
	v, err := r.value(ns)
	if err != nil {
		return nil, nil, err
	}
	var deferred []Deferred
	if r.objectFields != nil {
		deferred = append(deferred, Deferred{Path: append([]string{"object"}, managedFields...), Raw: r.objectFields})
	}
	if r.oldObjectFields != nil {
		deferred = append(deferred, Deferred{Path: append([]string{"oldObject"}, managedFields...), Raw: r.oldObjectFields})
	}
	return v, deferred, nil
}

// value is the review's Rego value, its objects without the deferred
// parts.
func (r *Review) value(ns map[string]interface{}) (*ast.Term, error) {
	shallow := r.AdmissionRequest
	shallow.Object, shallow.OldObject = runtime.RawExtension{}, runtime.RawExtension{}
	raw, err := json.Marshal(&shallow)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the request: %w", ErrReview, err)
	}
	v, err := ParseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReview, err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: the request is not an object", ErrReview)
	}
	for key, val := range map[string]ast.Value{"object": r.object, "oldObject": r.oldObject} {
		if val == nil {
			val = ast.Null{}
		}
		obj.Insert(ast.StringTerm(key), ast.NewTerm(val))
	}
	if ns != nil && r.namespaceValue != nil {
		obj.Insert(ast.StringTerm("namespaceObject"), ast.NewTerm(r.namespaceValue))
		return ast.NewTerm(obj), nil
	}
	return WithNamespace(obj, ns)
}

// Into is v with the deferred value parsed and put in its place, in a
// copy of the objects on its path: they may be shared (a DELETE's object
// and oldObject are one document).
func (d Deferred) Into(v ast.Value) (ast.Value, error) {
	obj, ok := v.(ast.Object)
	if !ok || len(d.Path) == 0 {
		return nil, fmt.Errorf("nowhere to put the deferred value in %s", ast.ValueName(v))
	}
	key := ast.StringTerm(d.Path[0])
	var child ast.Value
	var err error
	if len(d.Path) == 1 {
		child, err = ParseJSON(d.Raw)
	} else if t := obj.Get(key); t != nil {
		child, err = Deferred{Path: d.Path[1:], Raw: d.Raw}.Into(t.Value)
	} else {
		err = fmt.Errorf("no %s", d.Path[0])
	}
	if err != nil {
		return nil, err
	}
	cp, err := obj.Map(func(k, v *ast.Term) (*ast.Term, *ast.Term, error) { return k, v, nil })
	if err != nil {
		return nil, err
	}
	cp.Insert(key, ast.NewTerm(child))
	return cp, nil
}

// WithNamespace adds namespaceObject to a review value: the Namespace as
// JSON-compatible values, or null when there is none.
func WithNamespace(review ast.Object, ns map[string]interface{}) (*ast.Term, error) {
	var nsv ast.Value = ast.Null{}
	if ns != nil {
		var err error
		if nsv, err = ast.InterfaceToValue(ns); err != nil {
			return nil, fmt.Errorf("%w: namespace: %w", ErrReview, err)
		}
	}
	review.Insert(ast.StringTerm("namespaceObject"), ast.NewTerm(nsv))
	return ast.NewTerm(review), nil
}

// matchObject reads the parts of an object that matching looks at. It is
// lenient in the way unstructured accessors are: a field of the wrong type
// reads as empty, and labels with a non-string value read as no labels
// (labelsOK false).
func matchObject(v ast.Value) (_ match.Object, labelsOK bool) {
	obj, _ := v.(ast.Object)
	get := func(o ast.Object, key string) ast.Value {
		if o == nil {
			return nil
		}
		if t := o.Get(ast.StringTerm(key)); t != nil {
			return t.Value
		}
		return nil
	}
	str := func(o ast.Object, key string) string {
		s, _ := get(o, key).(ast.String)
		return string(s)
	}
	meta, _ := get(obj, "metadata").(ast.Object)
	group := str(obj, "apiVersion")
	if i := strings.LastIndex(group, "/"); i >= 0 {
		group = group[:i]
	} else {
		group = "" // core group: apiVersion is just "v1"
	}
	lbls, labelsOK := stringMap(meta, "labels")
	if !labelsOK {
		lbls = nil
	}
	return match.Object{
		Group:        group,
		Kind:         str(obj, "kind"),
		Name:         str(meta, "name"),
		GenerateName: str(meta, "generateName"),
		Namespace:    str(meta, "namespace"),
		Labels:       lbls,
	}, labelsOK
}

var errNonStringLabel = errors.New("label value is not a string")

// ValidateConstraint checks the parts of spec.match that the CRD schema
// cannot: label selectors must be well formed and scope must be known.
func (t *Target) ValidateConstraint(u *unstructured.Unstructured) error {
	m, err := decodeMatch(u)
	if err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	base := field.NewPath("spec", "match")
	var errs field.ErrorList
	opts := metavalidation.LabelSelectorValidationOptions{}
	if m.LabelSelector != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(m.LabelSelector, opts, base.Child("labelSelector"))...)
	}
	if m.NamespaceSelector != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(m.NamespaceSelector, opts, base.Child("namespaceSelector"))...)
	}
	switch m.Scope {
	case "", match.ScopeAll, match.ScopeCluster, match.ScopeNamespaced:
	default:
		errs = append(errs, field.NotSupported(base.Child("scope"), m.Scope,
			[]string{match.ScopeAll, match.ScopeCluster, match.ScopeNamespaced}))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrMatchSpec, errs.ToAggregate())
	}
	return nil
}

func decodeMatch(u *unstructured.Unstructured) (*match.Match, error) {
	raw, found, err := unstructured.NestedFieldNoCopy(u.Object, "spec", "match")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMatchSpec, err)
	}
	if !found || raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMatchSpec, err)
	}
	m := &match.Match{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMatchSpec, err)
	}
	return m, nil
}

// ToMatcher compiles a constraint's spec.match.
func (t *Target) ToMatcher(u *unstructured.Unstructured) (constraints.Matcher, error) {
	m, err := decodeMatch(u)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return everything{}, nil
	}
	c, err := match.Compile(*m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMatchSpec, err)
	}
	return &matcher{c: c, namespaces: &t.namespaces}, nil
}

type everything struct{}

func (everything) Match(interface{}) (bool, error) { return true, nil }

type matcher struct {
	c          *match.Matcher
	namespaces *namespaceCache
}

// Match accepts a review when its object or (on UPDATE) its old object is
// in scope.
func (m *matcher) Match(review interface{}) (bool, error) {
	r, ok := review.(*Review)
	if !ok {
		return false, fmt.Errorf("%w: got %T", ErrUnknownInput, review)
	}
	if len(r.targets) == 0 {
		return false, fmt.Errorf("%w: %s %q has neither object nor oldObject", ErrReview, r.Kind.Kind, r.Name)
	}
	for i := range r.targets {
		t := r.targets[i]
		if t.Namespace == nil && r.Namespace != "" {
			t.Namespace = m.namespaces.get(r.Namespace)
		}
		ok, err := m.c.Matches(&t)
		if err != nil {
			return false, fmt.Errorf("%s %q: %w", r.Kind.Kind, t.Object.Name, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// namespaceCache holds the Namespaces added as data.
type namespaceCache struct {
	mu sync.RWMutex
	m  map[string]*corev1.Namespace
}

var _ handler.Cache = &namespaceCache{}

// Add records obj if it is a Namespace; other data is ignored.
func (c *namespaceCache) Add(key []string, obj interface{}) error {
	m, ok := obj.(map[string]interface{})
	if !ok {
		return fmt.Errorf("%w: cannot cache %T", ErrReview, obj)
	}
	u := unstructured.Unstructured{Object: m}
	if gvk := u.GroupVersionKind(); gvk.Kind != "Namespace" || gvk.Group != "" {
		return nil
	}
	ns := &corev1.Namespace{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, ns); err != nil {
		return fmt.Errorf("%w: Namespace %q: %w", ErrReview, u.GetName(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*corev1.Namespace{}
	}
	c.m[ns.Name] = ns
	return nil
}

// Remove forgets a Namespace by its inventory key; the key ["cluster"]
// (all cluster-scoped data) forgets them all.
func (c *namespaceCache) Remove(key []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(key) == 1 && key[0] == "cluster" {
		c.m = nil
		return
	}
	// cluster/v1/Namespace/<name>
	if len(key) == 4 && key[0] == "cluster" && key[1] == "v1" && key[2] == "Namespace" {
		delete(c.m, key[3])
	}
}

func (c *namespaceCache) get(name string) *corev1.Namespace {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[name]
}

// AdmissionRequestFor builds the CREATE request the API server would send
// for an object, for benchmarks and offline tools that exercise the
// admission path.
func AdmissionRequestFor(u *unstructured.Unstructured) (*admissionv1.AdmissionRequest, error) {
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s %q: %w", ErrReview, u.GetKind(), u.GetName(), err)
	}
	gvk := u.GroupVersionKind()
	return &admissionv1.AdmissionRequest{
		UID:       "00000000-0000-0000-0000-000000000000",
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      u.GetName(),
		Namespace: u.GetNamespace(),
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}, nil
}
