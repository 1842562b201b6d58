// Package admission holds the suite's admission handlers. They follow
// controller-runtime's admission.Handler shape: the webhook server decodes
// the AdmissionReview, recovers panics and encodes the response; a handler
// reads as a ladder of guard clauses and reports metrics once.
package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/target"
)

// NamespaceGetter returns a Namespace by name, or nil when it does not
// exist; it reads a cache, never the API server.
type NamespaceGetter interface {
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// ValidatorConfig is everything the validating handler needs.
type ValidatorConfig struct {
	Engine     *policy.Engine
	Namespaces NamespaceGetter
	Exemptions *Exemptions
	Metrics    *Metrics
	Log        logr.Logger
	// ServiceAccount is the webhook's own user
	// (system:serviceaccount:<ns>:<name>); its requests are always allowed,
	// so the suite never blocks itself.
	ServiceAccount string
	// MaxInFlight bounds the reviews evaluated at once; more wait. The
	// default is GOMAXPROCS: evaluation is pure computation, and more at
	// once only share the processors and lengthen every review.
	MaxInFlight int
	// EvalTimeout bounds one review (queueing included); it must stay
	// below the webhook configuration's timeoutSeconds so that the API
	// server gets a clear answer rather than a timeout.
	EvalTimeout time.Duration
	// Ready, when set, must report true before requests are reviewed.
	Ready func() bool
	// Expansion, when set, returns the current ExpansionTemplates: a
	// workload is also reviewed through the objects it will create.
	Expansion func() *expansion.Set
	// Images, when set, also reviews pipeline runs on their images'
	// vulnerability verdicts (pkg/imagegate).
	Images ImageReviewer
	// Queued, when set, is called whenever a review has to wait for an
	// evaluation slot (serving.Scaler.Queued).
	Queued func()
}

// ImageReviewer reviews the images a request would run. It reads memory
// only: it must never call the network on the admission path. Messages
// carry their own source prefix.
type ImageReviewer interface {
	// known, when set, is the object's labels and annotations as the
	// review parsed them. deniedElsewhere is set when the constraints deny
	// the request already: the reviewer then asks for nothing on its
	// behalf (no image scans). admitted, when not nil, records what the
	// admission used (ImageException use): the handler calls it once, and
	// only when its final answer, constraints included, admits the request.
	ReviewRequest(ctx context.Context, req admission.Request, ns *corev1.Namespace, known *metav1.ObjectMeta, deniedElsewhere bool) (denies, warnings []string, admitted func())
}

// Validator is the validating admission handler.
type Validator struct {
	cfg ValidatorConfig
	sem chan struct{}
}

var _ admission.Handler = &Validator{}

// NewValidator checks the configuration and builds the handler.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	switch {
	case cfg.Engine == nil:
		return nil, errors.New("admission: the validator needs an engine")
	case cfg.Exemptions == nil:
		return nil, errors.New("admission: the validator needs exemptions (at least its own namespace)")
	case cfg.Metrics == nil:
		return nil, errors.New("admission: the validator needs metrics")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = runtime.GOMAXPROCS(0)
	}
	if cfg.EvalTimeout <= 0 {
		cfg.EvalTimeout = 2500 * time.Millisecond
	}
	return &Validator{cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight)}, nil
}

// Handle reviews one admission request.
func (v *Validator) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	start := time.Now()
	decision := DecisionAllow
	v.cfg.Metrics.InFlight.Inc()
	defer func() {
		v.cfg.Metrics.InFlight.Dec()
		op, kind := string(req.Operation), req.Kind.Kind
		v.cfg.Metrics.Requests.WithLabelValues(op, kind, decision).Inc()
		v.cfg.Metrics.Duration.WithLabelValues(op, kind, decision).Observe(time.Since(start).Seconds())
	}()

	if req.UserInfo.Username != "" && req.UserInfo.Username == v.cfg.ServiceAccount {
		decision = DecisionExempt
		return admission.Allowed("daaas-guard does not review its own requests")
	}
	if ns := reviewedNamespace(req); v.cfg.Exemptions.Exempt(ns) {
		decision = DecisionExempt
		return admission.Allowed(fmt.Sprintf("namespace %q is exempt", ns))
	}
	if v.cfg.Ready != nil && !v.cfg.Ready() {
		decision = DecisionError
		return admission.Errored(http.StatusServiceUnavailable,
			errors.New("daaas-guard is still loading its policies; retry shortly"))
	}

	ctx, cancel := context.WithTimeout(ctx, v.cfg.EvalTimeout)
	defer cancel()
	if err := v.takeSlot(ctx); err != nil {
		decision = DecisionError
		return admission.Errored(http.StatusServiceUnavailable, err)
	}
	defer func() { <-v.sem }()

	in := &target.Request{AdmissionRequest: &req.AdmissionRequest, Source: match.SourceOriginal}
	if req.Namespace != "" && v.cfg.Namespaces != nil {
		ns, err := v.cfg.Namespaces.Namespace(ctx, req.Namespace)
		if err != nil {
			decision = DecisionError
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %q: %w", req.Namespace, err))
		}
		in.Namespace = ns
	}

	evalStart := time.Now()
	result, err := v.cfg.Engine.Review(ctx, in, policy.AtEnforcementPoint(policy.EnforcementPointWebhook))
	if err == nil && v.cfg.Expansion != nil && req.Object.Raw != nil && req.Operation != admissionv1.Delete {
		var derived []policy.Result
		derived, err = v.derived(ctx, req, in.Namespace)
		result.Results = append(result.Results, derived...)
	}
	v.cfg.Metrics.Evaluation.Observe(time.Since(evalStart).Seconds())
	switch {
	case ctx.Err() != nil:
		decision = DecisionError
		return admission.Errored(http.StatusGatewayTimeout,
			fmt.Errorf("daaas-guard could not finish evaluating %s %s/%s within %v", req.Kind.Kind, req.Namespace, req.Name, v.cfg.EvalTimeout))
	case err != nil && result == nil:
		decision = DecisionError
		return admission.Errored(http.StatusInternalServerError, err)
	case err != nil:
		// Partial results: deny on what we have, and say the rest failed.
		v.cfg.Log.Error(err, "partial review", "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name)
	}
	var imageDenies, imageWarns []string
	var imagesAdmitted func()
	if v.cfg.Images != nil {
		var known *metav1.ObjectMeta
		// The gate reads the parsed metadata of pods only; other kinds
		// would build their annotations for nothing.
		if req.Kind.Group == "" && req.Kind.Kind == "Pod" {
			if labels, annotations, ok := in.ObjectMetadata(); ok {
				known = &metav1.ObjectMeta{Labels: labels, Annotations: annotations}
			}
		}
		// The constraints have answered: the gate is told whether they deny,
		// so that it requests no scan for a request that cannot pass.
		deniedElsewhere := err != nil || result.Denies()
		imageDenies, imageWarns, imagesAdmitted = v.cfg.Images.ReviewRequest(ctx, req, in.Namespace, known, deniedElsewhere)
	}
	resp = v.respond(req, result, err, imageDenies, imageWarns, &decision)
	// Only now is it known whether anything denied the request: an
	// exception that let an image through is used only if the request is
	// admitted.
	if resp.Allowed && imagesAdmitted != nil {
		imagesAdmitted()
	}
	return resp
}

// reviewedNamespace is the namespace a request belongs to for exemptions:
// a Namespace object belongs to itself (its creation comes without a
// namespace), so an excluded namespace's own object is excluded too, as
// in the audit and in Gatekeeper's process excluder.
func reviewedNamespace(req admission.Request) string {
	if req.Kind.Group == "" && req.Kind.Kind == "Namespace" {
		return req.Name
	}
	return req.Namespace
}

// takeSlot takes an evaluation slot, waiting until ctx ends, and records
// the wait (0 when a slot was free). A slot freed while reviews wait goes
// to the first of them, so a free one is never taken out of turn.
func (v *Validator) takeSlot(ctx context.Context) error {
	select {
	case v.sem <- struct{}{}:
		v.cfg.Metrics.SlotWait.Observe(0)
		return nil
	default:
	}
	if v.cfg.Queued != nil {
		v.cfg.Queued()
	}
	start := time.Now()
	defer func() { v.cfg.Metrics.SlotWait.Observe(time.Since(start).Seconds()) }()
	select {
	case v.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("daaas-guard is overloaded: no evaluation slot within %v", v.cfg.EvalTimeout)
	}
}

// derived reviews the objects a workload will create (a Deployment's Pod).
func (v *Validator) derived(ctx context.Context, req admission.Request, ns *corev1.Namespace) ([]policy.Result, error) {
	set := v.cfg.Expansion()
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	if set == nil || !set.AppliesTo(gvk) {
		return nil, nil
	}
	parent := &unstructured.Unstructured{}
	if err := parent.UnmarshalJSON(req.Object.Raw); err != nil {
		return nil, fmt.Errorf("decoding %s %s/%s: %w", req.Kind.Kind, req.Namespace, req.Name, err)
	}
	if parent.GetNamespace() == "" {
		parent.SetNamespace(req.Namespace)
	}
	return v.cfg.Engine.ReviewDerived(ctx, parent, ns, req.Operation, set, policy.AtEnforcementPoint(policy.EnforcementPointWebhook))
}

// respond turns results into the answer: every deny message, each prefixed
// by its constraint; warnings for warn; dry-run results only counted.
// Image verdicts (imageDenies, imageWarns) join them.
func (v *Validator) respond(req admission.Request, result *policy.Response, reviewErr error, imageDenies, imageWarns []string, decision *string) admission.Response {
	denies, warns := append([]string(nil), imageDenies...), append([]string(nil), imageWarns...)
	for _, r := range result.Results {
		for _, action := range r.Actions {
			v.cfg.Metrics.Violations.WithLabelValues(r.Kind, r.Constraint, action).Inc()
		}
		msg := fmt.Sprintf("[%s] %s", r.Constraint, r.Message)
		if r.Has(policy.ActionDeny) {
			denies = append(denies, msg)
		}
		if r.Has(policy.ActionWarn) {
			warns = append(warns, msg)
		}
	}
	if reviewErr != nil {
		denies = append(denies, "[daaas-guard] some constraints could not be evaluated: "+reviewErr.Error())
	}
	sort.Strings(denies)
	sort.Strings(warns)
	if len(denies) > 0 {
		*decision = DecisionDeny
		v.cfg.Log.V(1).Info("denied", "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name,
			"operation", req.Operation, "violations", len(denies))
		resp := admission.Denied(strings.Join(denies, "\n"))
		resp.Warnings = warns
		return resp
	}
	if len(warns) > 0 {
		*decision = DecisionWarn
	}
	resp := admission.Allowed("")
	resp.Warnings = warns
	return resp
}
