// Package controllers keeps the policy engine in step with the cluster:
// ConstraintTemplates (compiled, with their constraint CRDs), constraints of
// every kind (watched as their CRDs appear), and the referential data a
// Gatekeeper Config asks to sync. A readiness tracker holds the webhook back
// until everything present at start-up is loaded.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
)

// TemplateGVK is the version of ConstraintTemplates the controllers read.
var TemplateGVK = schema.GroupVersionKind{Group: "templates.gatekeeper.sh", Version: "v1", Kind: "ConstraintTemplate"}

// ConstraintGVK returns the GVK of a constraint kind.
func ConstraintGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Kind: kind}
}

// Tracker records what existed at start-up and reports ready once each of
// those templates, constraints and synced kinds, and the Config's
// exclusions, has been processed (loaded, or found broken and reported in
// its status). Gatekeeper users have met
// constraints that exist but are not yet enforced after a restart; readiness
// closes that window.
//
// Constraints are only loaded once their template is, so the tracker also
// keeps, per template, the constraints it expects for it and what the
// template reconciler made of the template: when the template cannot be
// compiled (or is gone, or now defines another kind), its constraints can
// never be loaded and stop holding readiness back. Gatekeeper's readiness
// tracker cancels a failing template's expectations for the same reason
// (github.com/open-policy-agent/gatekeeper, pkg/readiness).
//
// An object deleted after Populate listed it may never reach the
// controllers, so ReleaseDeleted stops waiting for what no longer exists.
type Tracker struct {
	mu        sync.Mutex
	populated bool
	pending   map[string]bool
	seen      map[string]bool
	listings  map[string]templateListing // template name -> constraints Populate expects for it
	outcomes  map[string]templateOutcome // template name -> last processed version, until populated
	// recheckEvery is how long ReleaseDeleted waits before each check.
	recheckEvery time.Duration
}

// templateListing is a template as Populate listed it, with the keys of
// its constraints that readiness waits for.
type templateListing struct {
	generation int64
	kind       string
	keys       []string
}

// templateOutcome is the kind whose constraints the engine loads for a
// template after the reconciler processed the given generation; kind is
// empty when none can be loaded.
type templateOutcome struct {
	generation int64
	kind       string
}

// voids reports whether, as far as the outcome knows, the listed
// constraints will never be loaded. An outcome older than the listing says
// nothing about it: the listed version is still to be processed.
func (o templateOutcome) voids(l templateListing) bool {
	return o.generation >= l.generation && o.kind != l.kind
}

// NewTracker returns a tracker that is not ready until Populate has run.
func NewTracker() *Tracker {
	return &Tracker{pending: map[string]bool{}, seen: map[string]bool{},
		listings: map[string]templateListing{}, outcomes: map[string]templateOutcome{},
		recheckEvery: 5 * time.Second}
}

func templateKey(name string) string             { return "template/" + name }
func constraintKey(kind, name string) string     { return "constraint/" + kind + "/" + name }
func dataKey(gvk schema.GroupVersionKind) string { return "data/" + gvk.String() }

// configKey stands for the Config's exclusions being applied.
const configKey = "config"

// expect adds a key to wait for, unless it was already observed (the
// controllers may be faster than the start-up listing). t.mu must be held.
func (t *Tracker) expect(key string) {
	if !t.seen[key] {
		t.pending[key] = true
	}
}

// observe marks a key as processed.
func (t *Tracker) observe(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeLocked(key)
}

func (t *Tracker) observeLocked(key string) {
	t.seen[key] = true
	delete(t.pending, key)
}

// templateProcessed observes a template the reconciler has processed at
// generation. kind is the constraint kind the engine loads for the
// template from then on, or "" when there is none (the template cannot be
// compiled, and no earlier version of it is loaded). Expected constraints
// of any other kind are released: they can never be loaded, so waiting
// for them would keep the replica unready for good, and the template's
// status already says why.
func (t *Tracker) templateProcessed(name string, generation int64, kind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.templateProcessedLocked(name, generation, kind)
}

func (t *Tracker) templateProcessedLocked(name string, generation int64, kind string) {
	t.observeLocked(templateKey(name))
	o := templateOutcome{generation: generation, kind: kind}
	if !t.populated {
		t.outcomes[name] = o // Populate has yet to weigh its listing against it
	}
	if l, ok := t.listings[name]; ok && o.voids(l) {
		for _, k := range l.keys {
			delete(t.pending, k)
		}
		delete(t.listings, name)
	}
}

// templateRemoved observes a deleted template and releases its
// constraints, which go with its CRD. The outcome outranks any generation
// so that a Populate that listed the template just before it was deleted
// does not expect them either; a template created again under the name
// records its own outcome once reconciled.
func (t *Tracker) templateRemoved(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.templateRemovedLocked(name)
}

func (t *Tracker) templateRemovedLocked(name string) {
	t.templateProcessedLocked(name, math.MaxInt64, "")
}

// Ready reports whether start-up has been listed and all of it processed.
func (t *Tracker) Ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.populated && len(t.pending) == 0
}

// Pending lists what readiness still waits for, for the readiness probe's
// answer and for logs.
func (t *Tracker) Pending() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.pending))
	for k := range t.pending {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Check is a readyz checker.
func (t *Tracker) Check() healthz.Checker {
	return func(*http.Request) error {
		if t.Ready() {
			return nil
		}
		t.mu.Lock()
		populated := t.populated
		t.mu.Unlock()
		if !populated {
			return fmt.Errorf("listing policies present at start-up")
		}
		p := t.Pending()
		if len(p) > 5 {
			p = append(p[:5], fmt.Sprintf("and %d more", len(p)-5))
		}
		return fmt.Errorf("loading %v", p)
	}
}

// Populate lists, straight from the API server, the templates, their
// constraints and the Config's synced kinds, and expects each of them.
// Nothing is expected unless every listing succeeds, so that the caller
// can simply call it again after an error.
func (t *Tracker) Populate(ctx context.Context, reader client.Reader, namespace string) error {
	templates := &unstructured.UnstructuredList{}
	templates.SetGroupVersionKind(TemplateGVK.GroupVersion().WithKind("ConstraintTemplateList"))
	if err := reader.List(ctx, templates); err != nil {
		return fmt.Errorf("listing ConstraintTemplates: %w", err)
	}
	var keys []string
	listings := map[string]templateListing{}
	for _, tmpl := range templates.Items {
		name := tmpl.GetName()
		keys = append(keys, templateKey(name))
		kind, _, _ := unstructured.NestedString(tmpl.Object, "spec", "crd", "spec", "names", "kind")
		if kind == "" {
			continue
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(ConstraintGVK(kind + "List"))
		if err := reader.List(ctx, list); err != nil {
			if notServed(err) {
				continue // the kind is not served yet, so none of its constraints exist
			}
			// Skipping the kind would report ready before its constraints
			// are loaded.
			return fmt.Errorf("listing the %s constraints of ConstraintTemplate %s: %w", kind, name, err)
		}
		l := templateListing{generation: tmpl.GetGeneration(), kind: kind}
		for _, c := range list.Items {
			l.keys = append(l.keys, constraintKey(kind, c.GetName()))
		}
		listings[name] = l
	}
	cfgKeys, err := configKeys(ctx, reader, namespace)
	if err != nil {
		return err
	}
	keys = append(keys, cfgKeys...)

	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		t.expect(k)
	}
	for name, l := range listings {
		if o, ok := t.outcomes[name]; ok && o.voids(l) {
			continue // the reconciler got there first: these cannot be loaded
		}
		t.listings[name] = l
		for _, k := range l.keys {
			t.expect(k)
		}
	}
	t.populated = true
	clear(t.outcomes) // later outcomes are weighed against the listings as they come
	return nil
}

// ReleaseDeleted stops readiness waiting for what Populate listed but was
// deleted since. Such an object may be gone before the informer serving
// its kind first lists it, and then no reconciler ever hears of it. Every
// few seconds until the tracker is ready or ctx ends, the kinds that
// still have something pending are read again from reader, and what is no
// longer there, or is being deleted (which the reconcilers treat as gone),
// is released, as are the kinds the Config no longer syncs; what is still
// there is waited for as before.
//
// The API server is asked, rather than the controllers' caches, because a
// cache may lag behind Populate's listing: an object missing from it may
// simply not have arrived yet. Each check costs one metadata list of
// templates, one per constraint kind with something pending and one read
// of the Config, at most.
//
// Call it once Populate has succeeded, with the same reader and namespace.
func (t *Tracker) ReleaseDeleted(ctx context.Context, reader client.Reader, namespace string, log logr.Logger) {
	tick := time.NewTicker(t.recheckEvery)
	defer tick.Stop()
	for !t.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		released, err := t.releaseDeleted(ctx, reader, namespace)
		if len(released) > 0 {
			log.Info("no longer waiting for what was deleted since start-up", "released", released)
		}
		if err != nil && ctx.Err() == nil {
			log.Error(err, "checking whether what readiness waits for still exists; checking again later")
		}
	}
}

// releaseDeleted is one check of ReleaseDeleted; it returns the keys it
// released. A kind that cannot be read releases nothing.
func (t *Tracker) releaseDeleted(ctx context.Context, reader client.Reader, namespace string) ([]string, error) {
	t.mu.Lock()
	if !t.populated {
		t.mu.Unlock()
		return nil, nil
	}
	var templates, config bool
	constraintKinds := map[string]bool{}
	for k := range t.pending {
		switch {
		case strings.HasPrefix(k, "template/"):
			templates = true
		case strings.HasPrefix(k, "constraint/"):
			kind, _, _ := strings.Cut(strings.TrimPrefix(k, "constraint/"), "/")
			constraintKinds[kind] = true
		case k == configKey || strings.HasPrefix(k, "data/"):
			config = true
		}
	}
	t.mu.Unlock()

	var released []string
	// release drops the pending keys whose object is gone; a template
	// takes its listed constraints with it, as when the reconciler finds
	// it deleted.
	release := func(gone func(key string) bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		before := make([]string, 0, len(t.pending))
		for k := range t.pending {
			before = append(before, k)
		}
		for _, k := range before {
			if !t.pending[k] || !gone(k) {
				continue
			}
			if name, ok := strings.CutPrefix(k, "template/"); ok {
				t.templateRemovedLocked(name)
			} else {
				delete(t.pending, k)
			}
		}
		for _, k := range before {
			if !t.pending[k] {
				released = append(released, k)
			}
		}
	}

	var errs []error
	if templates {
		names, err := existing(ctx, reader, TemplateGVK)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing ConstraintTemplates: %w", err))
		} else {
			release(func(k string) bool {
				name, ok := strings.CutPrefix(k, "template/")
				return ok && !names[name]
			})
		}
	}
	for kind := range constraintKinds {
		names, err := existing(ctx, reader, ConstraintGVK(kind))
		if err != nil {
			errs = append(errs, fmt.Errorf("listing %s constraints: %w", kind, err))
			continue
		}
		release(func(k string) bool {
			name, ok := strings.CutPrefix(k, constraintKey(kind, ""))
			return ok && !names[name]
		})
	}
	if config {
		// The Config, and the kinds it still syncs, are waited for; the
		// ConfigReconciler never observes the others.
		if keys, err := configKeys(ctx, reader, namespace); err != nil {
			errs = append(errs, err)
		} else {
			release(func(k string) bool {
				return (k == configKey || strings.HasPrefix(k, "data/")) && !slices.Contains(keys, k)
			})
		}
	}
	sort.Strings(released)
	return released, errors.Join(errs...)
}

// configKeys reads the Config and returns what readiness waits for on its
// account: the Config itself and each kind it syncs; nothing when there
// is no Config or its kind is not served.
func configKeys(ctx context.Context, reader client.Reader, namespace string) ([]string, error) {
	cfg := &configv1alpha1.Config{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: configv1alpha1.ConfigName}, cfg)
	if err != nil {
		if notServed(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading Config %s/%s: %w", namespace, configv1alpha1.ConfigName, err)
	}
	keys := []string{configKey}
	for _, g := range cfg.Spec.Sync.SyncOnly {
		keys = append(keys, dataKey(schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}))
	}
	return keys, nil
}

// notServed reports whether err says a kind, or the object asked for, is
// not there: the kind not (yet) served, or the object not found.
func notServed(err error) bool { return isNoMatch(err) || apierrors.IsNotFound(err) }

// existing returns the names of the objects of a kind that exist and are
// not being deleted; none when the kind is no longer served.
func existing(ctx context.Context, reader client.Reader, gvk schema.GroupVersionKind) (map[string]bool, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := reader.List(ctx, list); err != nil {
		if notServed(err) {
			return nil, nil
		}
		return nil, err
	}
	names := make(map[string]bool, len(list.Items))
	for _, o := range list.Items {
		if o.DeletionTimestamp == nil {
			names[o.Name] = true
		}
	}
	return names, nil
}
