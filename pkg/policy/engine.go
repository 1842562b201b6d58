// Package policy is the suite's policy engine: it evaluates Gatekeeper
// ConstraintTemplates and constraints, unmodified, with Gatekeeper's
// semantics, through the constraint framework and its Rego driver. The
// webhook, the audit and guardctl all use it.
//
// Beyond what Gatekeeper checks, the engine validates constraints strictly
// (unknown fields, parameter types, enforcement actions) and reports every
// problem with the file, line and field it comes from when the objects were
// read from files.
package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	corev1 "k8s.io/api/core/v1"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/statcan/daaas-guard/pkg/target"
)

// Enforcement points, named as Gatekeeper names them so that
// scopedEnforcementActions written for Gatekeeper keep their meaning.
const (
	EnforcementPointWebhook = "validation.gatekeeper.sh"
	EnforcementPointAudit   = "audit.gatekeeper.sh"
	EnforcementPointGator   = "gator.gatekeeper.sh"
)

// Enforcement actions.
const (
	ActionDeny   = "deny"
	ActionWarn   = "warn"
	ActionDryRun = "dryrun"
	ActionScoped = "scoped"
)

// networkBuiltins are disabled by default: policies are evaluated on the
// admission path and must not reach the network (Gatekeeper's manifests
// disable http.send for the same reason).
var networkBuiltins = []string{"http.send", "net.lookup_ip_addr"}

type options struct {
	frameworkReview   bool
	enforcementPoints []string
	tracing           bool
	printHook         print.Hook
	allowNetwork      bool
	noVM              bool
	reviewCache       int
	noDetails         bool
	counts            *EvaluatorCounts
	newDriver         func() (drivers.Driver, error)
}

// Option configures an Engine.
type Option func(*options)

// WithEnforcementPoints sets the enforcement points the engine serves;
// by default it serves the webhook, audit and gator points.
func WithEnforcementPoints(eps ...string) Option {
	return func(o *options) { o.enforcementPoints = eps }
}

// WithTracing records an evaluation trace with every review.
func WithTracing(on bool) Option { return func(o *options) { o.tracing = on } }

// WithPrintOutput sends the output of Rego print() calls to w.
func WithPrintOutput(w io.Writer) Option {
	return func(o *options) { o.printHook = printWriter{w} }
}

// WithDriver replaces the engine's Rego driver with one newDriver makes,
// for example the constraint framework's stock driver (drivers/rego.New),
// to check that both give the same results.
func WithDriver(newDriver func() (drivers.Driver, error)) Option {
	return func(o *options) { o.newDriver = newDriver }
}

// WithNetworkBuiltins allows http.send and net.lookup_ip_addr.
func WithNetworkBuiltins(allow bool) Option { return func(o *options) { o.allowNetwork = allow } }

// EvaluatorCounts counts constraint evaluations by the evaluator that ran
// them.
type EvaluatorCounts struct {
	VM, Topdown atomic.Int64
	// CacheHits and CacheMisses count the VM runs the review cache
	// answered and those it did not (WithReviewCache).
	CacheHits, CacheMisses atomic.Int64
}

func (c *EvaluatorCounts) cached(hit bool) {
	switch {
	case c == nil:
	case hit:
		c.CacheHits.Add(1)
	default:
		c.CacheMisses.Add(1)
	}
}

// WithEvaluatorCounts counts each constraint evaluation in c.
func WithEvaluatorCounts(c *EvaluatorCounts) Option { return func(o *options) { o.counts = c } }

// WithReviewCache keeps the reads and results of the last n VM runs and
// answers a review that would repeat one of them without evaluating it
// (pkg/policy/vmcache.go); 0, the default, keeps none.
func WithReviewCache(n int) Option { return func(o *options) { o.reviewCache = n } }

// WithoutDetails leaves the details of violations out of results (their
// Details are nil): for callers that read messages only, such as the
// admission webhook. Details were about 40% of the allocations of
// converting a violation out of the VM. Results keep Gatekeeper's count
// and order otherwise: two violations with the same message and different
// details are still two results. A driver given with WithDriver keeps
// them.
func WithoutDetails() Option { return func(o *options) { o.noDetails = true } }

// WithTopdownOnly evaluates every template with OPA's topdown evaluator,
// never with the VM: the reference the VM is compared against.
func WithTopdownOnly() Option { return func(o *options) { o.noVM = true } }

// WithFrameworkReview matches reviews to constraints with the constraint
// framework's Client.Review, as Gatekeeper does, instead of the engine's
// own loop (match.go): the reference that loop is compared against.
func WithFrameworkReview() Option { return func(o *options) { o.frameworkReview = true } }

type printWriter struct{ w io.Writer }

func (p printWriter) Print(_ print.Context, msg string) error {
	_, err := fmt.Fprintln(p.w, msg)
	return err
}

// Engine holds templates, constraints and referential data, and reviews
// objects against them. Reviews may run concurrently with each other and
// with changes.
type Engine struct {
	client *constraintclient.Client
	target *target.Target
	driver drivers.Driver

	// mu serialises changes: the framework client supports concurrent
	// reviews but not concurrent changes.
	mu          sync.Mutex
	state       sync.RWMutex
	templates   map[string]*Template        // by kind
	constraints map[string]*constraintEntry // by kind/name
	eps         []string                    // enforcement points
	// reviewing is held for reading by every review from matching to the
	// driver's answer, and for writing while a constraint or template is
	// removed: a review never hands the driver a constraint it has
	// already forgotten.
	reviewing sync.RWMutex
	viaClient bool // WithFrameworkReview

	namespaces namespaceForms
}

// namespaceForms keeps the forms of a Namespace that every review in it
// needs (the map the framework passes along, and its Rego value), by UID,
// for the resourceVersion they were made from: converting the Namespace
// on every review was 5% of the webhook's CPU per pod created.
type namespaceForms struct {
	mu    sync.Mutex
	byUID map[types.UID]nsForms
}

type nsForms struct {
	resourceVersion string
	m               map[string]interface{}
	v               ast.Value
}

// maxNamespaceForms bounds the cache: past it, it starts again.
const maxNamespaceForms = 4096

// get returns ns as a map and as a Rego value, converted once per
// resourceVersion. A Namespace without UID or resourceVersion (read from a
// file) is converted every time. The map is shared: read it only.
func (c *namespaceForms) get(ns *corev1.Namespace) (map[string]interface{}, ast.Value, error) {
	cacheable := ns.UID != "" && ns.ResourceVersion != ""
	if cacheable {
		c.mu.Lock()
		f, ok := c.byUID[ns.UID]
		c.mu.Unlock()
		if ok && f.resourceVersion == ns.ResourceVersion {
			return f.m, f.v, nil
		}
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ns)
	if err != nil {
		return nil, nil, err
	}
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		return nil, nil, err
	}
	if cacheable {
		c.mu.Lock()
		if c.byUID == nil || len(c.byUID) >= maxNamespaceForms {
			c.byUID = map[types.UID]nsForms{}
		}
		c.byUID[ns.UID] = nsForms{resourceVersion: ns.ResourceVersion, m: m, v: v}
		c.mu.Unlock()
	}
	return m, v, nil
}

// New creates an empty engine.
func New(opts ...Option) (*Engine, error) {
	o := options{enforcementPoints: []string{EnforcementPointWebhook, EnforcementPointAudit, EnforcementPointGator}}
	for _, opt := range opts {
		opt(&o)
	}
	var driver drivers.Driver
	var err error
	if o.newDriver != nil {
		driver, err = o.newDriver()
	} else {
		driver, err = newRegoDriver(o)
	}
	if err != nil {
		return nil, fmt.Errorf("creating Rego driver: %w", err)
	}
	tgt := &target.Target{}
	client, err := constraintclient.NewClient(
		constraintclient.Targets(tgt),
		constraintclient.Driver(driver),
		constraintclient.EnforcementPoints(o.enforcementPoints...),
	)
	if err != nil {
		return nil, fmt.Errorf("creating constraint client: %w", err)
	}
	return &Engine{
		client:      client,
		target:      tgt,
		driver:      driver,
		templates:   map[string]*Template{},
		constraints: map[string]*constraintEntry{},
		eps:         o.enforcementPoints,
		viaClient:   o.frameworkReview,
	}, nil
}

// Target returns the admission target, e.g. to build reviews.
func (e *Engine) Target() *target.Target { return e.target }

// AddTemplate compiles a template and makes its constraint kind known. On
// error the engine is unchanged and keeps serving its other templates.
func (e *Engine) AddTemplate(ctx context.Context, t *Template) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state.RLock()
	prev := e.templates[t.Kind]
	e.state.RUnlock()
	if prev != nil && prev.Name != t.Name {
		return &TemplateError{Template: t.Name, File: fileOf(t.source), Field: "spec.crd.spec.names.kind",
			Line: lineOf(t.source, "spec", "crd"), Msg: fmt.Sprintf("kind %s is already defined by template %q", t.Kind, prev.Name)}
	}
	if _, err := e.client.AddTemplate(ctx, t.core); err != nil {
		return t.compileError(err)
	}
	e.state.Lock()
	e.templates[t.Kind] = t
	e.state.Unlock()
	return nil
}

// RemoveTemplate drops a template and all of its constraints.
func (e *Engine) RemoveTemplate(ctx context.Context, kind string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state.RLock()
	t := e.templates[kind]
	e.state.RUnlock()
	if t == nil {
		return nil
	}
	e.reviewing.Lock()
	defer e.reviewing.Unlock()
	if _, err := e.client.RemoveTemplate(ctx, t.core); err != nil {
		return fmt.Errorf("removing ConstraintTemplate %q: %w", t.Name, err)
	}
	e.state.Lock()
	defer e.state.Unlock()
	delete(e.templates, kind)
	for key := range e.constraints {
		if strings.HasPrefix(key, kind+"/") {
			delete(e.constraints, key)
		}
	}
	return nil
}

// Template returns the template that defines a constraint kind.
func (e *Engine) Template(kind string) *Template {
	e.state.RLock()
	defer e.state.RUnlock()
	return e.templates[kind]
}

// Templates lists the templates, sorted by name.
func (e *Engine) Templates() []*Template {
	e.state.RLock()
	defer e.state.RUnlock()
	out := make([]*Template, 0, len(e.templates))
	for _, t := range e.templates {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Constraints lists the constraints, sorted by kind and name.
func (e *Engine) Constraints() []*unstructured.Unstructured {
	e.state.RLock()
	defer e.state.RUnlock()
	out := make([]*unstructured.Unstructured, 0, len(e.constraints))
	for _, k := range slices.Sorted(maps.Keys(e.constraints)) {
		out = append(out, e.constraints[k].obj)
	}
	return out
}

// AddConstraint validates a constraint against its template's schema and
// adds it. src may be nil.
func (e *Engine) AddConstraint(ctx context.Context, u *unstructured.Unstructured, src Source) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	kind := u.GetKind()
	e.state.RLock()
	t := e.templates[kind]
	e.state.RUnlock()
	cerr := &ConstraintError{Kind: kind, Name: u.GetName(), File: fileOf(src), Line: lineOf(src)}
	if t == nil {
		cerr.Problems = []FieldProblem{{Field: "kind", Line: lineOf(src, "kind"),
			Msg: fmt.Sprintf("no ConstraintTemplate defines kind %q", kind)}}
		return cerr
	}
	crd, err := e.client.CreateCRD(ctx, t.core)
	if err != nil {
		return t.compileError(err)
	}
	if problems, schema := validateConstraint(u, crd, src); len(problems) > 0 {
		cerr.Problems, cerr.Schema = problems, schema
		return cerr
	}
	entry, err := newConstraintEntry(e.target, u, e.eps)
	if err == nil {
		_, err = e.client.AddConstraint(ctx, u)
	}
	if err != nil {
		cerr.Err = err
		cerr.Problems = []FieldProblem{{Msg: err.Error()}}
		return cerr
	}
	// Reviews see it from here on, once the driver has it.
	e.state.Lock()
	e.constraints[kind+"/"+u.GetName()] = entry
	e.state.Unlock()
	return nil
}

// RemoveConstraint drops a constraint.
func (e *Engine) RemoveConstraint(ctx context.Context, u *unstructured.Unstructured) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reviewing.Lock()
	defer e.reviewing.Unlock()
	if _, err := e.client.RemoveConstraint(ctx, u); err != nil {
		return fmt.Errorf("removing constraint %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	e.state.Lock()
	delete(e.constraints, u.GetKind()+"/"+u.GetName())
	e.state.Unlock()
	return nil
}

// AddData puts an object into data.inventory. Namespaces added this way
// also serve namespaceSelector for reviews that do not carry their
// Namespace.
func (e *Engine) AddData(ctx context.Context, u *unstructured.Unstructured) error {
	done, err := e.addDataDirect(ctx, u)
	if !done {
		_, err = e.client.AddData(ctx, u)
	}
	if err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrData, u.GetKind(), u.GetName(), err)
	}
	return nil
}

// addDataDirect does what the constraint framework's AddData does for our
// own driver, without its round trip of every object through JSON (most
// of the cost of syncing a Pod): the object is converted to a Rego value
// exactly as the round trip would leave it. done is false when the
// object holds a value the conversion leaves to the framework.
func (e *Engine) addDataDirect(ctx context.Context, u *unstructured.Unstructured) (done bool, err error) {
	d, ok := e.driver.(*regoDriver)
	if !ok {
		return false, nil
	}
	handled, key, data, err := e.target.ProcessData(u)
	if err != nil || !handled {
		return true, err
	}
	v, ok := roundTripValue(data)
	if !ok {
		return false, nil
	}
	// The framework fills the target's cache first: removing from it
	// cannot fail, so the two cannot disagree.
	if err := e.target.GetCache().Add(key, data); err != nil {
		return true, err
	}
	return true, d.AddData(ctx, e.target.GetName(), key, v)
}

// AddDataValue puts an object already converted to its data.inventory
// value (what AddData would store for it, as pkg/inventory parses it from
// the API server's JSON) under its key: the cheap way to sync many
// objects.
func (e *Engine) AddDataValue(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string, v ast.Value) error {
	fail := func(err error) error { return fmt.Errorf("%w: %s %q: %w", ErrData, gvk.Kind, name, err) }
	d, direct := e.driver.(*regoDriver)
	isNamespace := gvk.Group == "" && gvk.Kind == "Namespace"
	if !direct || isNamespace {
		// The stock driver, and the target's Namespace cache, take the
		// object itself. Namespaces are few.
		u, err := valueToUnstructured(v)
		if err != nil {
			return fail(err)
		}
		if !direct {
			return e.AddData(ctx, u)
		}
		if err := e.target.GetCache().Add(target.InventoryKey(gvk, namespace, name), u.Object); err != nil {
			return fail(err)
		}
	}
	if err := d.AddData(ctx, e.target.GetName(), target.InventoryKey(gvk, namespace, name), v); err != nil {
		return fail(err)
	}
	return nil
}

// RemoveDataFor takes the object of that kind, namespace and name out of
// data.inventory.
func (e *Engine) RemoveDataFor(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(namespace)
	u.SetName(name)
	return e.RemoveData(ctx, u)
}

// valueToUnstructured is v as an unstructured object, through JSON.
func valueToUnstructured(v ast.Value) (*unstructured.Unstructured, error) {
	x, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return u, nil
}

// RemoveData takes an object out of data.inventory.
func (e *Engine) RemoveData(ctx context.Context, u *unstructured.Unstructured) error {
	if _, err := e.client.RemoveData(ctx, u); err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrData, u.GetKind(), u.GetName(), err)
	}
	return nil
}

// WipeData empties data.inventory.
func (e *Engine) WipeData(ctx context.Context) error {
	for _, scope := range []string{"cluster", "namespace"} {
		if _, err := e.client.RemoveData(ctx, target.WipeData{Scope: scope}); err != nil {
			return fmt.Errorf("%w: %w", ErrData, err)
		}
	}
	return nil
}

// ReviewOption adjusts one review.
type ReviewOption func(*reviewConfig)

type reviewConfig struct {
	ep      string
	tracing bool
}

// AtEnforcementPoint reviews as the given enforcement point: it selects the
// actions of scoped constraints and, for the webhook point, applies the
// templates' operations.
func AtEnforcementPoint(ep string) ReviewOption { return func(c *reviewConfig) { c.ep = ep } }

// Traced records an evaluation trace for this review.
func Traced(on bool) ReviewOption { return func(c *reviewConfig) { c.tracing = on } }

// Review evaluates an object against every matching constraint. in is
// anything target.Target accepts: *target.Request (admission),
// *target.Object (audit, CLI), an admission request or an unstructured
// object. A partial response comes back together with the error when some
// constraints could not be evaluated.
func (e *Engine) Review(ctx context.Context, in interface{}, opts ...ReviewOption) (*Response, error) {
	cfg := reviewConfig{ep: EnforcementPointGator}
	for _, opt := range opts {
		opt(&cfg)
	}
	r, err := e.target.NewReview(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReview, err)
	}
	ropts := []reviews.ReviewOpt{reviews.EnforcementPoint(cfg.ep), reviews.Tracing(cfg.tracing)}
	if ns := r.NamespaceObject(); ns != nil {
		m, v, err := e.namespaces.get(ns)
		if err != nil {
			return nil, fmt.Errorf("%w: Namespace %q: %w", ErrReview, ns.Name, err)
		}
		r.SetNamespaceValue(v)
		ropts = append(ropts, reviews.Namespace(m))
	}
	resp, rerr := e.review(ctx, r, cfg.ep, ropts)
	out := e.response(resp)
	if rerr != nil {
		return out, fmt.Errorf("%w: %s %q: %w", ErrReview, r.Kind.Kind, r.Name, rerr)
	}
	return out, nil
}

// CRD returns the CustomResourceDefinition of a template's constraint kind,
// as Gatekeeper generates it: group constraints.gatekeeper.sh, versions
// v1beta1 (stored) and v1alpha1, the template's parameter schema under
// spec.parameters and the target's match schema under spec.match.
func (e *Engine) CRD(ctx context.Context, t *Template) (*apiextensionsv1.CustomResourceDefinition, error) {
	internal, err := e.client.CreateCRD(ctx, t.core)
	if err != nil {
		return nil, t.compileError(err)
	}
	out := &apiextensionsv1.CustomResourceDefinition{}
	if err := crdScheme.Convert(internal, out, nil); err != nil {
		return nil, fmt.Errorf("converting the CRD of %s: %w", t.Kind, err)
	}
	out.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	return out, nil
}

var crdScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	apiextensionsinternal.Install(s)
	return s
}()
