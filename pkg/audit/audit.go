package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
	expansionv1alpha1 "github.com/statcan/daaas-guard/api/expansion/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/controllers"
	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
	"github.com/statcan/daaas-guard/pkg/target"
)

// Auditor runs audit passes: periodically once added to a manager (on the
// leader only), or on demand with RunOnce.
type Auditor struct {
	o          Options
	engine     *policy.Engine
	tracker    *controllers.Tracker
	exemptions *admission.Exemptions
	excluded   []match.Glob
	expansion  func() *expansion.Set
	reader     client.Reader // the API server itself: chunked lists
	writer     client.Client
	discovery  Discoverer
	mapper     meta.RESTMapper
	metrics    *metrics
	log        logr.Logger

	mu         sync.Mutex // one pass at a time
	reportsOff atomic.Bool
	forbidden  sync.Map // GVKs under "*" the scanner may not list, logged once
	last       atomic.Pointer[Summary]
	// published is each constraint's violations gauge as the last pass
	// set it, by constraint key; guarded by mu.
	published map[string]gaugeValue
}

// Summary describes one pass.
type Summary struct {
	Start, End time.Time
	// Kinds and Objects audited; Violations is the true total over every
	// constraint.
	Kinds, Objects, Violations int
	// Problems are what made the pass partial: kinds that could not be
	// listed, objects that could not be reviewed, results not written.
	Problems []string
}

var (
	_ manager.Runnable               = &Auditor{}
	_ manager.LeaderElectionRunnable = &Auditor{}
)

// Setup adds the audit to mgr: a policy engine for the audit enforcement
// point, fed by the template, constraint, Config and ExpansionTemplate
// controllers in read-only mode (the webhook owns template status and
// constraint CRDs), and the periodic pass. The types it reads are added
// to the manager's scheme.
func Setup(mgr manager.Manager, o Options) (*Auditor, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	for _, add := range []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, configv1alpha1.AddToScheme,
		expansionv1alpha1.AddToScheme, policyreport.AddToScheme} {
		if err := add(mgr.GetScheme()); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	engine, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointAudit))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	reg := o.Metrics
	if reg == nil {
		reg = crmetrics.Registry
	}
	log := o.Log
	a := &Auditor{
		o: o, engine: engine, tracker: controllers.NewTracker(),
		exemptions: &admission.Exemptions{Own: o.Namespace},
		reader:     mgr.GetAPIReader(), writer: mgr.GetClient(), discovery: disc, mapper: mgr.GetRESTMapper(),
		metrics: newMetrics(reg), log: log,
	}
	for _, g := range o.ExcludedNamespaces {
		a.excluded = append(a.excluded, match.Glob(g))
	}

	cm := controllers.NewMetrics(reg)
	constraints := &controllers.ConstraintReconciler{Client: mgr.GetClient(), Engine: engine, Tracker: a.tracker,
		Metrics: cm, ReadOnly: true, Log: log.WithName("constraints")}
	if err := constraints.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	templates := &controllers.TemplateReconciler{Client: mgr.GetClient(), Engine: engine, Constraints: constraints,
		Tracker: a.tracker, Metrics: cm, ReadOnly: true, Log: log.WithName("templates")}
	if err := templates.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	config := &controllers.ConfigReconciler{Client: mgr.GetClient(), Engine: engine,
		Exemptions: a.exemptions, Tracker: a.tracker, Namespace: o.Namespace, Process: configv1alpha1.ProcessAudit,
		Log: log.WithName("config")}
	if err := config.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := reg.Register(config); err != nil {
		return nil, err
	}
	expansions := &controllers.ExpansionReconciler{Client: mgr.GetClient(), Log: log.WithName("expansion")}
	if err := expansions.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	a.expansion = expansions.Set
	if err := mgr.Add(a); err != nil {
		return nil, err
	}
	return a, nil
}

// NeedLeaderElection makes only the leader audit.
func (a *Auditor) NeedLeaderElection() bool { return true }

// Start waits until the policies present at start are loaded, runs a
// pass, then one every Interval until ctx ends.
func (a *Auditor) Start(ctx context.Context) error {
	for {
		err := a.tracker.Populate(ctx, a.reader, a.o.Namespace)
		if err == nil {
			break
		}
		a.log.Error(err, "listing policies present at start; retrying")
		if !sleep(ctx, 2*time.Second) {
			return nil
		}
	}
	// Ends once ready: until then, what is deleted before the controllers
	// see it stops being waited for.
	go a.tracker.ReleaseDeleted(ctx, a.reader, a.o.Namespace, a.log)
	waited := time.Now()
	for !a.tracker.Ready() {
		if time.Since(waited) > 30*time.Second {
			a.log.Info("audit waits for policies to load", "pending", a.tracker.Pending())
			waited = time.Now()
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil
		}
	}
	for {
		if _, err := a.RunOnce(ctx); err != nil && ctx.Err() == nil {
			a.log.Error(err, "audit pass failed")
		}
		if !sleep(ctx, a.o.Interval) {
			return nil
		}
	}
}

// Ready reports whether the policies present at start are loaded (so that
// a pass audits all of them).
func (a *Auditor) Ready() bool { return a.tracker.Ready() }

// Last returns the summary of the last finished pass, or nil.
func (a *Auditor) Last() *Summary { return a.last.Load() }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pass holds what one pass gathers.
type pass struct {
	constraints map[string]*constraintAcc // kind/name
	reports     map[string]*reportAcc     // namespace; "" for cluster-scoped objects
	// unlisted are the kinds the pass meant to audit but could not list:
	// what it found says nothing about their objects.
	unlisted []auditKind
	summary  Summary
}

type constraintAcc struct {
	obj        *unstructured.Unstructured
	action     string
	violations *capped[Violation]
	// unlisted are the kinds this constraint applies to that the pass
	// could not list: its violations are then not the whole count.
	unlisted []schema.GroupKind
}

func constraintKey(kind, name string) string { return kind + "/" + name }

// RunOnce runs one pass: review every audited object, then write the
// constraints' status and the reports. It returns an error only when
// nothing could be audited; a pass with problems is partial and says so
// in its summary.
func (a *Auditor) RunOnce(ctx context.Context) (*Summary, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := a.o.now()
	p := &pass{constraints: map[string]*constraintAcc{}, reports: map[string]*reportAcc{}}
	p.summary.Start = start
	constraints := a.engine.Constraints()
	for _, c := range constraints {
		act, _, _ := unstructured.NestedString(c.Object, "spec", "enforcementAction")
		if act == "" {
			act = policy.ActionDeny
		}
		p.constraints[constraintKey(c.GetKind(), c.GetName())] = &constraintAcc{obj: c, action: act,
			violations: newCapped(a.o.MaxViolations, compareViolations)}
	}
	set := a.expansion()
	want, err := kindsOf(constraints)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var kinds []auditKind
	if len(constraints) > 0 {
		resources, err := a.discovery.ServerPreferredResources()
		failed, partial := discovery.GroupDiscoveryFailedErrorGroups(err)
		if err != nil && (len(resources) == 0 || !partial) {
			// Nothing discovered, or no telling which groups are missing.
			return nil, fmt.Errorf("audit: discovering the API server's kinds: %w", err)
		}
		// Some group versions failed (an aggregated API down): audit the
		// rest. Their kinds are not absent but unlisted: the constraints
		// that may apply to them keep their status, and so do reports.
		for _, gv := range slices.SortedFunc(maps.Keys(failed), compareGroupVersions) {
			p.problem("discovery of %s: %v", gv, failed[gv])
			a.log.Error(failed[gv], "group version not discovered", "groupVersion", gv.String())
		}
		p.unlisted = undiscovered(failed, want, set)
		kinds = resolveKinds(resources, want, set)
	}
	namespaces, err := a.namespaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	for _, k := range kinds {
		if err := a.auditKind(ctx, p, k, namespaces, set); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if apierrors.IsForbidden(err) && !k.named {
				// Reached only through "*": the RBAC decides what that
				// covers (manifests/base/audit.yaml).
				if _, logged := a.forbidden.LoadOrStore(k.gvk, true); !logged {
					a.log.Info("kind not audited: the scanner may not list it", "group", k.gvk.Group, "kind", k.gvk.Kind)
				}
				continue
			}
			p.problem("%s: %v", k.gvk.GroupKind(), err)
			a.log.Error(err, "kind not audited", "group", k.gvk.Group, "version", k.gvk.Version, "kind", k.gvk.Kind)
			p.unlisted = append(p.unlisted, k)
			continue
		}
		p.summary.Kinds++
	}
	if len(p.unlisted) > 0 {
		for _, c := range p.constraints {
			ks, _ := constraintKinds(c.obj) // kindsOf read the same constraints without error
			c.unlisted = unlistedFor(ks, p.unlisted, set)
		}
	}
	a.publish(ctx, p, start)
	end := a.o.now()
	p.summary.End = end
	result := "complete"
	if len(p.summary.Problems) > 0 {
		result = "partial"
	}
	a.metrics.runs.WithLabelValues(result).Inc()
	a.metrics.duration.Observe(end.Sub(start).Seconds())
	if result == "complete" {
		// A partial pass leaves some statuses as they were, so alerts on
		// the age of the last audit keep counting from the last full one.
		a.metrics.lastRun.Set(float64(end.Unix()))
	}
	s := p.summary
	a.last.Store(&s)
	a.log.Info("audit pass finished", "result", result, "kinds", s.Kinds, "objects", s.Objects,
		"constraints", len(p.constraints), "violations", s.Violations, "duration", end.Sub(start).String(),
		"problems", len(s.Problems))
	return &s, nil
}

func (p *pass) problem(format string, args ...interface{}) {
	// A few problems say enough; a pass over a broken cluster must not
	// hold thousands.
	if len(p.summary.Problems) < 20 {
		p.summary.Problems = append(p.summary.Problems, fmt.Sprintf(format, args...))
	}
}

// excluded reports whether objects in namespace ns are not audited.
func (a *Auditor) excludedNamespace(ns string) bool {
	if ns == "" {
		return false
	}
	if a.exemptions.Exempt(ns) {
		return true
	}
	for _, g := range a.excluded {
		if g.Matches(ns) {
			return true
		}
	}
	return false
}

// namespaces reads every Namespace, for namespaceSelector; a chunk at a
// time, keeping only names and labels.
func (a *Auditor) namespaces(ctx context.Context) (map[string]*corev1.Namespace, error) {
	out := map[string]*corev1.Namespace{}
	cont := ""
	for {
		list := &corev1.NamespaceList{}
		if err := a.reader.List(ctx, list, client.Limit(a.o.ChunkSize), client.Continue(cont)); err != nil {
			return nil, fmt.Errorf("listing Namespaces: %w", err)
		}
		for i := range list.Items {
			ns := &list.Items[i]
			out[ns.Name] = &corev1.Namespace{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
				ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations, UID: ns.UID},
			}
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

// auditKind lists one kind a chunk at a time and reviews each object.
func (a *Auditor) auditKind(ctx context.Context, p *pass, k auditKind, namespaces map[string]*corev1.Namespace, set *expansion.Set) error {
	cont := ""
	reviewed := a.metrics.reviewed.WithLabelValues(k.gvk.Group, k.gvk.Kind)
	reviewErrors := 0
	for {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(k.gvk.GroupVersion().WithKind(k.gvk.Kind + "List"))
		if err := a.reader.List(ctx, list, client.Limit(a.o.ChunkSize), client.Continue(cont)); err != nil {
			return fmt.Errorf("listing: %w", err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			ns := u.GetNamespace()
			if a.excludedNamespace(ns) || (isNamespace(k) && a.excludedNamespace(u.GetName())) {
				// An excluded namespace's own object is excluded too, as
				// Gatekeeper's process excluder does.
				continue
			}
			// The list response leaves apiVersion and kind off its items
			// only for some clients; policies read them.
			u.SetGroupVersionKind(k.gvk)
			u.SetManagedFields(nil)
			if err := a.review(ctx, p, u, namespaces[ns], set); err != nil {
				if reviewErrors == 0 {
					p.problem("%s %s/%s: %v", k.gvk.Kind, ns, u.GetName(), err)
				}
				reviewErrors++
			}
			reviewed.Inc()
			p.summary.Objects++
		}
		if cont = list.GetContinue(); cont == "" {
			break
		}
	}
	if reviewErrors > 1 {
		p.problem("%s: %d objects could not be fully reviewed", k.gvk.Kind, reviewErrors)
	}
	return nil
}

func isNamespace(k auditKind) bool { return k.gvk.Group == "" && k.gvk.Kind == "Namespace" }

// review audits one object as the webhook would review its creation, with
// no user and no operation (as Gatekeeper's audit does), and records the
// results; partial results are recorded with the error.
func (a *Auditor) review(ctx context.Context, p *pass, u *unstructured.Unstructured, ns *corev1.Namespace, set *expansion.Set) error {
	resp, err := a.engine.ReviewExpanded(ctx, &target.Object{Object: u, Namespace: ns, Source: match.SourceOriginal}, set,
		policy.AtEnforcementPoint(policy.EnforcementPointAudit))
	if resp == nil {
		return err
	}
	gvk := u.GroupVersionKind()
	ref := corev1.ObjectReference{APIVersion: u.GetAPIVersion(), Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName(), UID: u.GetUID()}
	rep := p.reports[u.GetNamespace()]
	if rep == nil && a.o.Reports != ReportNone && (len(resp.Results) > 0 || a.o.Reports == ReportAll) {
		rep = newReportAcc(a.o.MaxReportResults)
		p.reports[u.GetNamespace()] = rep
	}
	if len(resp.Results) == 0 {
		if rep != nil {
			rep.pass++
		}
		return err
	}
	for _, r := range resp.Results {
		act := action(r)
		key := constraintKey(r.Kind, r.Constraint)
		c := p.constraints[key]
		if c == nil { // added during the pass: reported from the next one
			continue
		}
		c.action = act
		c.violations.add(Violation{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(),
			Name: u.GetName(), Message: r.Message, EnforcementAction: act})
		p.summary.Violations++
		if rep != nil {
			rep.add(finding{kind: r.Kind, constraint: r.Constraint, action: act, message: r.Message, ref: ref})
		}
	}
	return err
}

var errNoReports = errors.New("the wgpolicyk8s.io/v1alpha2 PolicyReport CRDs are not installed")
