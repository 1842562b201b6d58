// Package controllers keeps the policy engine in step with the cluster:
// ConstraintTemplates (compiled, with their constraint CRDs), constraints of
// every kind (watched as their CRDs appear), and the referential data a
// Gatekeeper Config asks to sync. A readiness tracker holds the webhook back
// until everything present at start-up is loaded.
package controllers

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"

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
type Tracker struct {
	mu        sync.Mutex
	populated bool
	pending   map[string]bool
	seen      map[string]bool
}

// NewTracker returns a tracker that is not ready until Populate has run.
func NewTracker() *Tracker {
	return &Tracker{pending: map[string]bool{}, seen: map[string]bool{}}
}

func templateKey(name string) string             { return "template/" + name }
func constraintKey(kind, name string) string     { return "constraint/" + kind + "/" + name }
func dataKey(gvk schema.GroupVersionKind) string { return "data/" + gvk.String() }

// configKey stands for the Config's exclusions being applied.
const configKey = "config"

// expect adds a key to wait for, unless it was already observed (the
// controllers may be faster than the start-up listing).
func (t *Tracker) expect(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.seen[key] {
		t.pending[key] = true
	}
}

// observe marks a key as processed.
func (t *Tracker) observe(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[key] = true
	delete(t.pending, key)
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
		p := t.Pending()
		if len(p) > 5 {
			p = append(p[:5], fmt.Sprintf("and %d more", len(p)-5))
		}
		if !t.populated {
			return fmt.Errorf("listing policies present at start-up")
		}
		return fmt.Errorf("loading %v", p)
	}
}

// Populate lists, straight from the API server, the templates, their
// constraints and the Config's synced kinds, and expects each of them.
func (t *Tracker) Populate(ctx context.Context, reader client.Reader, namespace string) error {
	templates := &unstructured.UnstructuredList{}
	templates.SetGroupVersionKind(TemplateGVK.GroupVersion().WithKind("ConstraintTemplateList"))
	if err := reader.List(ctx, templates); err != nil {
		return fmt.Errorf("listing ConstraintTemplates: %w", err)
	}
	for _, tmpl := range templates.Items {
		t.expect(templateKey(tmpl.GetName()))
		kind, _, _ := unstructured.NestedString(tmpl.Object, "spec", "crd", "spec", "names", "kind")
		if kind == "" {
			continue
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(ConstraintGVK(kind + "List"))
		if err := reader.List(ctx, list); err != nil {
			continue // the CRD does not exist yet: no constraints can
		}
		for _, c := range list.Items {
			t.expect(constraintKey(kind, c.GetName()))
		}
	}
	cfg := &configv1alpha1.Config{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: configv1alpha1.ConfigName}, cfg)
	if err == nil {
		t.expect(configKey)
		for _, g := range cfg.Spec.Sync.SyncOnly {
			t.expect(dataKey(schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}))
		}
	} else if client.IgnoreNotFound(err) != nil && !isNoMatch(err) {
		return fmt.Errorf("reading Config %s/%s: %w", namespace, configv1alpha1.ConfigName, err)
	}
	t.mu.Lock()
	t.populated = true
	t.mu.Unlock()
	return nil
}
