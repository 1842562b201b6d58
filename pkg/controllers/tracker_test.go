package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/policy"
)

const trackerNamespace = "daaas-guard"

// trackerScheme knows Config, CRDs, ConstraintTemplates and the given
// constraint kinds; the fake client's REST mapper answers "no match" for
// any other constraint kind, as the API server does before a CRD exists.
func trackerScheme(t *testing.T, constraintKinds ...string) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := configv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	gvks := []schema.GroupVersionKind{TemplateGVK}
	for _, k := range constraintKinds {
		gvks = append(gvks, ConstraintGVK(k))
	}
	for _, gvk := range gvks {
		scheme.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		scheme.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
	}
	return scheme
}

// rego is the source of a template of the kind: it compiles unless broken.
func rego(kind string, broken bool) string {
	pkg := strings.ToLower(kind)
	if broken {
		return "package " + pkg + "\nviolation[{\"msg\": msg}] {\n  msg := \n}\n"
	}
	return "package " + pkg + "\nviolation[{\"msg\": \"denied\"}] {\n  input.review.object.metadata.name == \"forbidden\"\n}\n"
}

// newTemplate returns a ConstraintTemplate defining kind (none if kind is
// empty) at the given generation.
func newTemplate(t *testing.T, name, kind string, generation int64, broken bool) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	src := "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: " + name + "\nspec: {}\n"
	if kind != "" {
		body, err := yaml.Marshal(map[string]interface{}{
			"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
			"metadata": map[string]interface{}{"name": name},
			"spec": map[string]interface{}{
				"crd":     map[string]interface{}{"spec": map[string]interface{}{"names": map[string]interface{}{"kind": kind}}},
				"targets": []interface{}{map[string]interface{}{"target": "admission.k8s.gatekeeper.sh", "rego": rego(kind, broken)}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		src = string(body)
	}
	if err := yaml.Unmarshal([]byte(src), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetGeneration(generation)
	return u
}

func mustTemplate(t *testing.T, u *unstructured.Unstructured) *policy.Template {
	t.Helper()
	tmpl, err := policy.NewTemplate(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func newConstraint(kind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ConstraintGVK(kind))
	u.SetName(name)
	return u
}

func newConfig(syncOnly ...configv1alpha1.GVK) *configv1alpha1.Config {
	return &configv1alpha1.Config{
		ObjectMeta: metav1.ObjectMeta{Name: configv1alpha1.ConfigName, Namespace: trackerNamespace},
		Spec:       configv1alpha1.ConfigSpec{Sync: configv1alpha1.SyncSpec{SyncOnly: syncOnly}},
	}
}

// Everything present at start must be observed before the tracker is
// ready, and nothing counts before Populate has listed it.
func TestTracker_WaitsForEverythingPresentAtStart(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(trackerScheme(t, "K8sAllowed")).WithObjects(
		newTemplate(t, "k8sallowed", "K8sAllowed", 1, false),
		newConstraint("K8sAllowed", "a"), newConstraint("K8sAllowed", "b"),
		newTemplate(t, "k8snocrd", "K8sNoCRD", 1, false), // its kind is not served: no constraints
		newTemplate(t, "nokind", "", 1, false),
		newConfig(configv1alpha1.GVK{Version: "v1", Kind: "Namespace"}),
	).Build()
	tr := NewTracker()
	if tr.Ready() {
		t.Fatal("ready before Populate")
	}
	if err := tr.Check()(nil); err == nil || !strings.Contains(err.Error(), "listing") {
		t.Fatalf("Check before Populate = %v, want an error about listing", err)
	}
	tr.observe(configKey) // the controllers may be faster than Populate
	if err := tr.Populate(context.Background(), c, trackerNamespace); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"constraint/K8sAllowed/a", "constraint/K8sAllowed/b", "data//v1, Kind=Namespace",
		"template/k8sallowed", "template/k8snocrd", "template/nokind",
	}
	if diff := cmp.Diff(want, tr.Pending()); diff != "" {
		t.Fatalf("Pending() after Populate (-want +got):\n%s", diff)
	}

	steps := []struct {
		name    string
		observe func()
	}{
		{"template k8sallowed", func() { tr.templateProcessed("k8sallowed", 1, "K8sAllowed") }},
		{"template k8snocrd", func() { tr.templateProcessed("k8snocrd", 1, "K8sNoCRD") }},
		{"template nokind", func() { tr.templateProcessed("nokind", 1, "") }},
		{"constraint a", func() { tr.observe(constraintKey("K8sAllowed", "a")) }},
		{"synced Namespaces", func() { tr.observe(dataKey(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"})) }},
		{"constraint b", func() { tr.observe(constraintKey("K8sAllowed", "b")) }},
	}
	for i, s := range steps {
		if tr.Ready() {
			t.Fatalf("ready before %s was observed; pending %v", s.name, tr.Pending())
		}
		if err := tr.Check()(nil); err == nil {
			t.Fatalf("Check passes before %s was observed", s.name)
		}
		s.observe()
		if got, want := len(tr.Pending()), len(steps)-1-i; got != want {
			t.Fatalf("after %s: %d pending (%v), want %d", s.name, got, tr.Pending(), want)
		}
	}
	if !tr.Ready() {
		t.Fatalf("not ready once everything was observed; pending %v", tr.Pending())
	}
	if err := tr.Check()(nil); err != nil {
		t.Fatalf("Check once ready: %v", err)
	}
}

// A template's constraints stop holding readiness back once the template
// reconciler has found that they can never be loaded, whether it found so
// before or after Populate listed them; otherwise they keep doing so.
func TestTracker_TemplateOutcomes(t *testing.T) {
	constraints := []string{"constraint/K8sAllowed/a", "constraint/K8sAllowed/b"}
	tests := []struct {
		name    string
		outcome func(*Tracker)
		want    []string // pending once the template key is observed
	}{
		{"loaded", func(tr *Tracker) { tr.templateProcessed("k8sallowed", 2, "K8sAllowed") }, constraints},
		{"cannot be compiled", func(tr *Tracker) { tr.templateProcessed("k8sallowed", 2, "") }, nil},
		{"now defines another kind", func(tr *Tracker) { tr.templateProcessed("k8sallowed", 3, "K8sOther") }, nil},
		{"deleted", func(tr *Tracker) { tr.templateRemoved("k8sallowed") }, nil},
		// The listed version is newer than the broken one: it may compile.
		{"broken version older than the listed one", func(tr *Tracker) { tr.templateProcessed("k8sallowed", 1, "") }, constraints},
		{"another template cannot be compiled", func(tr *Tracker) {
			tr.templateProcessed("k8sallowed", 2, "K8sAllowed")
			tr.templateProcessed("other", 1, "")
		}, constraints},
	}
	for _, tc := range tests {
		for _, order := range []string{"after Populate", "before Populate"} {
			t.Run(tc.name+" "+order, func(t *testing.T) {
				c := fake.NewClientBuilder().WithScheme(trackerScheme(t, "K8sAllowed")).WithObjects(
					newTemplate(t, "k8sallowed", "K8sAllowed", 2, true),
					newConstraint("K8sAllowed", "a"), newConstraint("K8sAllowed", "b"),
				).Build()
				tr := NewTracker()
				if order == "before Populate" {
					tc.outcome(tr)
				}
				if err := tr.Populate(context.Background(), c, trackerNamespace); err != nil {
					t.Fatal(err)
				}
				if order == "after Populate" {
					tc.outcome(tr)
				}
				var got []string
				if p := tr.Pending(); len(p) > 0 {
					got = p
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Fatalf("Pending() (-want +got):\n%s", diff)
				}
				if tr.Ready() != (len(tc.want) == 0) {
					t.Fatalf("Ready() = %v with %v pending", tr.Ready(), got)
				}
			})
		}
	}
}

// Only "this kind is not served" means a template has no constraints; any
// other error listing them must not let the replica report ready, and
// Populate must be able to start again.
func TestTracker_PopulateListErrors(t *testing.T) {
	kindGR := schema.GroupResource{Group: "constraints.gatekeeper.sh", Resource: "k8sallowed"}
	tests := []struct {
		name    string
		err     error
		wantErr bool
		want    []string // pending after the failed or successful Populate
	}{
		{"kind not served", &meta.NoKindMatchError{GroupKind: ConstraintGVK("K8sAllowed").GroupKind()}, false, []string{"template/k8sallowed"}},
		{"not found", apierrors.NewNotFound(kindGR, ""), false, []string{"template/k8sallowed"}},
		{"API server unavailable", apierrors.NewServiceUnavailable("etcd leader changed"), true, []string{}},
		{"timeout", apierrors.NewTimeoutError("list timed out", 1), true, []string{}},
		{"forbidden", apierrors.NewForbidden(kindGR, "", errors.New("RBAC")), true, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			failing := true
			c := fake.NewClientBuilder().WithScheme(trackerScheme(t, "K8sAllowed")).WithObjects(
				newTemplate(t, "k8sallowed", "K8sAllowed", 1, false),
				newConstraint("K8sAllowed", "a"),
			).WithInterceptorFuncs(interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if failing && list.GetObjectKind().GroupVersionKind() == ConstraintGVK("K8sAllowedList") {
						return tc.err
					}
					return c.List(ctx, list, opts...)
				},
			}).Build()
			tr := NewTracker()
			err := tr.Populate(context.Background(), c, trackerNamespace)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Populate() error = %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "K8sAllowed constraints of ConstraintTemplate k8sallowed") {
				t.Errorf("Populate() error %q does not name the kind and template", err)
			}
			if diff := cmp.Diff(tc.want, tr.Pending()); diff != "" {
				t.Fatalf("Pending() (-want +got):\n%s", diff)
			}
			tr.templateProcessed("k8sallowed", 1, "K8sAllowed")
			if tr.Ready() != !tc.wantErr {
				t.Fatalf("Ready() = %v after Populate() returned %v", tr.Ready(), err)
			}
			if !tc.wantErr {
				return
			}
			// The caller retries; once the list works the constraint is waited for.
			failing = false
			if err := tr.Populate(context.Background(), c, trackerNamespace); err != nil {
				t.Fatalf("Populate() again: %v", err)
			}
			if diff := cmp.Diff([]string{"constraint/K8sAllowed/a"}, tr.Pending()); diff != "" {
				t.Fatalf("Pending() after the retry (-want +got):\n%s", diff)
			}
		})
	}
}

// The reconciler's side of the outcomes above: after a restart, a template
// edited into a Rego error must not leave its constraints waited for, or
// the replica would never become ready; a template that compiles keeps
// them waited for until they are loaded.
func TestTemplateReconciler_ReleasesConstraintsOfBrokenTemplates(t *testing.T) {
	tests := []struct {
		name     string
		broken   bool
		readOnly bool
		// watched says an earlier version of the template is loaded, with
		// its constraints watched: they stay loaded, so are waited for.
		watched bool
		want    []string
	}{
		{"broken", true, false, false, nil},
		{"broken, read-only", true, true, false, nil},
		{"broken, earlier version loaded", true, false, true, []string{"constraint/K8sAllowed/a"}},
		{"compiles, read-only", false, true, false, []string{"constraint/K8sAllowed/a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := newTemplate(t, "k8sallowed", "K8sAllowed", 1, tc.broken)
			c := fake.NewClientBuilder().WithScheme(trackerScheme(t, "K8sAllowed")).
				WithObjects(tmpl, newConstraint("K8sAllowed", "a")).
				WithStatusSubresource(tmpl).Build()
			engine, err := policy.New()
			if err != nil {
				t.Fatal(err)
			}
			tr := NewTracker()
			if err := tr.Populate(context.Background(), c, trackerNamespace); err != nil {
				t.Fatal(err)
			}
			r := &TemplateReconciler{Client: c, Engine: engine, Constraints: &ConstraintReconciler{watched: map[string]bool{}}, Tracker: tr,
				Metrics: NewMetrics(prometheus.NewRegistry()), PodID: "pod-0", ReadOnly: tc.readOnly,
				Log: logr.Discard(), kinds: map[string]string{}}
			if tc.watched {
				if err := engine.AddTemplate(context.Background(), mustTemplate(t, newTemplate(t, "k8sallowed", "K8sAllowed", 1, false))); err != nil {
					t.Fatal(err)
				}
				r.kinds["k8sallowed"] = "K8sAllowed"
				r.Constraints.watched["K8sAllowed"] = true
			}
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "k8sallowed"}}); err != nil {
				t.Fatal(err)
			}
			var got []string
			if p := tr.Pending(); len(p) > 0 {
				got = p
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("Pending() after Reconcile (-want +got):\n%s", diff)
			}
			if tc.broken && !tc.readOnly {
				// The status, not readiness, is where the error shows.
				cur := &unstructured.Unstructured{}
				cur.SetGroupVersionKind(TemplateGVK)
				if err := c.Get(context.Background(), client.ObjectKey{Name: "k8sallowed"}, cur); err != nil {
					t.Fatal(err)
				}
				byPod, _, _ := unstructured.NestedSlice(cur.Object, "status", "byPod")
				if len(byPod) != 1 || !strings.Contains(fmt.Sprint(byPod[0]), "rego_error") {
					t.Fatalf("status.byPod = %v, want this replica's entry with a rego_error", byPod)
				}
			}
		})
	}
}

// An object Populate listed may be deleted before the informer serving its
// kind first lists it; no reconciler then hears of it. releaseDeleted must
// stop waiting for it, and only for it, once the API server no longer has
// it.
func TestTracker_ReleaseDeleted(t *testing.T) {
	atStart := []string{
		"config",
		"constraint/K8sAllowed/a", "constraint/K8sAllowed/b", "constraint/K8sOther/x",
		"data//v1, Kind=Namespace", "data//v1, Kind=Pod",
		"template/k8sallowed", "template/k8sother",
	}
	without := func(gone ...string) []string {
		var out []string
		for _, k := range atStart {
			if !slices.Contains(gone, k) {
				out = append(out, k)
			}
		}
		return out
	}
	deleting := func(obj client.Object) func(context.Context, client.Client) error {
		return func(ctx context.Context, c client.Client) error { return c.Delete(ctx, obj) }
	}
	unavailable := apierrors.NewServiceUnavailable("etcd leader changed")
	tests := []struct {
		name string
		// change is made to the cluster once Populate has listed it.
		change func(context.Context, client.Client) error
		// listErr and getErr answer the re-check's reads of constraints of
		// failKind and of the Config.
		failKind string
		listErr  error
		getErr   error
		wantErr  bool
		released []string
	}{
		{name: "nothing deleted"},
		{
			name:     "constraint deleted",
			change:   deleting(newConstraint("K8sAllowed", "b")),
			released: []string{"constraint/K8sAllowed/b"},
		},
		{
			name: "constraint being deleted",
			change: func(ctx context.Context, c client.Client) error {
				b := newConstraint("K8sAllowed", "b")
				if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
					return err
				}
				b.SetFinalizers([]string{"example.com/hold"})
				if err := c.Update(ctx, b); err != nil {
					return err
				}
				return c.Delete(ctx, b)
			},
			released: []string{"constraint/K8sAllowed/b"},
		},
		{
			name: "constraint deleted and created again",
			change: func(ctx context.Context, c client.Client) error {
				if err := c.Delete(ctx, newConstraint("K8sAllowed", "b")); err != nil {
					return err
				}
				return c.Create(ctx, newConstraint("K8sAllowed", "b"))
			},
		},
		{
			// Its constraint still exists until the garbage collector
			// removes the CRD, but it can never be loaded.
			name:     "template deleted",
			change:   deleting(newTemplate(t, "k8sother", "K8sOther", 1, false)),
			released: []string{"constraint/K8sOther/x", "template/k8sother"},
		},
		{
			name:     "constraint kind no longer served",
			failKind: "K8sOther",
			listErr:  &meta.NoKindMatchError{GroupKind: ConstraintGVK("K8sOther").GroupKind()},
			released: []string{"constraint/K8sOther/x"},
		},
		{
			name:     "constraints cannot be listed",
			change:   deleting(newConstraint("K8sAllowed", "b")),
			failKind: "K8sAllowed",
			listErr:  unavailable,
			wantErr:  true,
		},
		{
			name:     "Config deleted",
			change:   deleting(newConfig()),
			released: []string{"config", "data//v1, Kind=Namespace", "data//v1, Kind=Pod"},
		},
		{
			name: "Config no longer syncs Pods",
			change: func(ctx context.Context, c client.Client) error {
				cfg := newConfig()
				if err := c.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
					return err
				}
				cfg.Spec.Sync.SyncOnly = []configv1alpha1.GVK{{Version: "v1", Kind: "Namespace"}}
				return c.Update(ctx, cfg)
			},
			released: []string{"data//v1, Kind=Pod"},
		},
		{
			name:    "Config cannot be read",
			change:  deleting(newConfig()),
			getErr:  unavailable,
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			listed := false
			c := fake.NewClientBuilder().WithScheme(trackerScheme(t, "K8sAllowed", "K8sOther")).WithObjects(
				newTemplate(t, "k8sallowed", "K8sAllowed", 1, false),
				newConstraint("K8sAllowed", "a"), newConstraint("K8sAllowed", "b"),
				newTemplate(t, "k8sother", "K8sOther", 1, false),
				newConstraint("K8sOther", "x"),
				newConfig(configv1alpha1.GVK{Version: "v1", Kind: "Namespace"}, configv1alpha1.GVK{Version: "v1", Kind: "Pod"}),
			).WithInterceptorFuncs(interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if listed && tc.listErr != nil && list.GetObjectKind().GroupVersionKind() == ConstraintGVK(tc.failKind+"List") {
						return tc.listErr
					}
					return c.List(ctx, list, opts...)
				},
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, isConfig := obj.(*configv1alpha1.Config); listed && isConfig && tc.getErr != nil {
						return tc.getErr
					}
					return c.Get(ctx, key, obj, opts...)
				},
			}).Build()
			tr := NewTracker()
			if err := tr.Populate(ctx, c, trackerNamespace); err != nil {
				t.Fatal(err)
			}
			listed = true
			if diff := cmp.Diff(atStart, tr.Pending()); diff != "" {
				t.Fatalf("Pending() after Populate (-want +got):\n%s", diff)
			}
			if tc.change != nil {
				if err := tc.change(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			released, err := tr.releaseDeleted(ctx, c, trackerNamespace)
			if (err != nil) != tc.wantErr {
				t.Fatalf("releaseDeleted() error = %v, want an error: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.released, released); diff != "" {
				t.Errorf("releaseDeleted() released (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(without(tc.released...), tr.Pending()); diff != "" {
				t.Errorf("Pending() after releaseDeleted (-want +got):\n%s", diff)
			}
			if tr.Ready() {
				t.Errorf("ready while %v still exist and are not loaded", tr.Pending())
			}
		})
	}
}

// ReleaseDeleted re-checks until nothing deleted holds readiness back,
// keeps the replica unready while what still exists is not loaded, and
// returns once it is ready.
func TestTracker_ReleaseDeletedUntilReady(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientBuilder().WithScheme(trackerScheme(t, "K8sAllowed", "K8sOther")).WithObjects(
		newTemplate(t, "k8sallowed", "K8sAllowed", 1, false),
		newConstraint("K8sAllowed", "a"), newConstraint("K8sAllowed", "b"),
		newTemplate(t, "k8sother", "K8sOther", 1, false),
		newConstraint("K8sOther", "x"),
	).Build()
	tr := NewTracker()
	tr.recheckEvery = 10 * time.Millisecond
	if released, err := tr.releaseDeleted(ctx, c, trackerNamespace); err != nil || len(released) > 0 {
		t.Fatalf("releaseDeleted() before Populate = %v, %v; want nothing released", released, err)
	}
	if err := tr.Populate(ctx, c, trackerNamespace); err != nil {
		t.Fatal(err)
	}
	// Deleted after Populate listed them, before any controller saw them.
	if err := c.Delete(ctx, newConstraint("K8sAllowed", "b")); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, newTemplate(t, "k8sother", "K8sOther", 1, false)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.ReleaseDeleted(ctx, c, trackerNamespace, logr.Discard())
	}()
	tr.templateProcessed("k8sallowed", 1, "K8sAllowed")

	want := []string{"constraint/K8sAllowed/a"}
	deadline := time.Now().Add(10 * time.Second)
	for !cmp.Equal(want, tr.Pending()) {
		if time.Now().After(deadline) {
			t.Fatalf("Pending() = %v, want %v", tr.Pending(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Several more checks: constraint a still exists, so it is waited for.
	time.Sleep(10 * tr.recheckEvery)
	if tr.Ready() {
		t.Fatal("ready before constraint a, which still exists, was loaded")
	}
	select {
	case <-done:
		t.Fatal("ReleaseDeleted returned before the tracker was ready")
	default:
	}

	tr.observe(constraintKey("K8sAllowed", "a"))
	if !tr.Ready() {
		t.Fatalf("not ready once constraint a was loaded; pending %v", tr.Pending())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ReleaseDeleted did not return once the tracker was ready")
	}
}
