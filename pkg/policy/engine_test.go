package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/target"
)

// echoTemplate violates for every object in scope and says which operation
// and which object it saw, so tests can check what policies receive.
const echoTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8secho
spec:
  crd:
    spec:
      names:
        kind: K8sEcho
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8secho
        violation[{"msg": msg, "details": {"op": input.review.operation}}] {
          msg := sprintf("%v %v/%v", [input.review.operation, input.review.object.kind, input.review.object.metadata.name])
        }
`

// deleteOnlyTemplate applies only to DELETE at the webhook.
const deleteOnlyTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sprotected
spec:
  crd:
    spec:
      names:
        kind: K8sProtected
  targets:
    - target: admission.k8s.gatekeeper.sh
      operations: ["DELETE"]
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sprotected
              violation contains {"msg": msg} if {
                input.review.object.metadata.labels.protected == "true"
                msg := sprintf("%v is protected and cannot be deleted", [input.review.object.metadata.name])
              }
`

// ownerTemplate compares object and oldObject on UPDATE.
const ownerTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8simmutableowner
spec:
  crd:
    spec:
      names:
        kind: K8sImmutableOwner
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8simmutableowner
              violation contains {"msg": msg} if {
                input.review.operation == "UPDATE"
                old := input.review.oldObject.metadata.labels.owner
                new := object.get(input.review.object.metadata, ["labels", "owner"], "")
                old != new
                msg := sprintf("label owner is immutable: %v -> %v", [old, new])
              }
`

// guardrailsTemplate reads referential data: the Namespace must carry a
// label and hold a NetworkPolicy named by a parameter.
const guardrailsTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sguardrails
spec:
  crd:
    spec:
      names:
        kind: K8sGuardrails
      validation:
        openAPIV3Schema:
          type: object
          properties:
            policy:
              type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sguardrails
              import data.lib.inv.netpols
              violation contains {"msg": msg} if {
                ns := input.review.object.metadata.namespace
                not netpols(ns)[input.parameters.policy]
                msg := sprintf("namespace %v has no NetworkPolicy %v", [ns, input.parameters.policy])
              }
              violation contains {"msg": msg} if {
                ns := input.review.object.metadata.namespace
                not data.inventory.cluster.v1.Namespace[ns].metadata.labels["app.kubernetes.io/part-of"]
                msg := sprintf("namespace %v is not a Kubeflow profile", [ns])
              }
            libs:
              - |
                package lib.inv
                netpols(ns) := object.get(data.inventory, ["namespace", ns, "networking.k8s.io/v1", "NetworkPolicy"], {})
`

// paramsTemplate has a typed parameter schema (v1: unknown fields rejected).
const paramsTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sparams
spec:
  crd:
    spec:
      names:
        kind: K8sParams
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items:
                type: string
            exempt:
              type: boolean
            mode:
              type: string
              enum: [strict, lax]
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sparams
        violation[{"msg": "never"}] { false }
`

// legacyTemplate is v1beta1 without a schema: legacySchema defaults to
// true there, so any parameters are accepted.
const legacyTemplate = `apiVersion: templates.gatekeeper.sh/v1beta1
kind: ConstraintTemplate
metadata:
  name: k8slegacy
spec:
  crd:
    spec:
      names:
        kind: K8sLegacy
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8slegacy
        violation[{"msg": msg}] { msg := sprintf("legacy %v", [input.parameters.anything]) }
`

const alphaTemplate = `apiVersion: templates.gatekeeper.sh/v1alpha1
kind: ConstraintTemplate
metadata:
  name: k8salpha
spec:
  crd:
    spec:
      names:
        kind: K8sAlpha
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8salpha
        violation[{"msg": "alpha"}] { input.review.object.kind == "Pod" }
`

func doc(t *testing.T, src string) *manifest.Document {
	t.Helper()
	docs, err := manifest.Parse("test.yaml", []byte(src), manifest.Options{})
	if err != nil {
		t.Fatalf("parsing fixture: %v", err)
	}
	if len(docs) != 1 {
		t.Fatalf("fixture has %d objects, want 1", len(docs))
	}
	return docs[0]
}

func newEngine(t *testing.T, templates ...string) *Engine {
	t.Helper()
	return newEngineWith(t, nil, templates...)
}

func newEngineWith(t *testing.T, opts []Option, templates ...string) *Engine {
	t.Helper()
	e, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range templates {
		d := doc(t, src)
		tm, err := NewTemplate(d.Object, d)
		if err != nil {
			t.Fatalf("NewTemplate: %v", err)
		}
		if err := e.AddTemplate(context.Background(), tm); err != nil {
			t.Fatalf("AddTemplate: %v", err)
		}
	}
	return e
}

func constraint(kind, name string, spec string) string {
	return fmt.Sprintf("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: %s\nmetadata:\n  name: %s\nspec:\n%s", kind, name, spec)
}

func addConstraint(t *testing.T, e *Engine, src string) {
	t.Helper()
	d := doc(t, src)
	if err := e.AddConstraint(context.Background(), d.Object, d); err != nil {
		t.Fatalf("AddConstraint: %v", err)
	}
}

func podObj(ns, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]interface{}{"name": name, "namespace": ns},
		"spec":       map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "main", "image": "registry.example/app:1"}}},
	}}
	if labels != nil {
		u.SetLabels(labels)
	}
	return u
}

func raw(t *testing.T, u *unstructured.Unstructured) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

func request(t *testing.T, op admissionv1.Operation, obj, old *unstructured.Unstructured) *target.Request {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID:       "uid-1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Operation: op,
		UserInfo:  authUser("alice@statcan.gc.ca"),
	}
	if obj != nil {
		req.Object = raw(t, obj)
		req.Name, req.Namespace = obj.GetName(), obj.GetNamespace()
	}
	if old != nil {
		req.OldObject = raw(t, old)
		req.Name, req.Namespace = old.GetName(), old.GetNamespace()
	}
	return &target.Request{AdmissionRequest: req, Source: match.SourceOriginal}
}

func messages(r *Response) []string {
	var out []string
	for _, res := range r.Results {
		out = append(out, res.Message)
	}
	return out
}

type resultSummary struct {
	Constraint string
	Actions    []string
}

func summarize(r *Response) []resultSummary {
	var out []resultSummary
	for _, res := range r.Results {
		out = append(out, resultSummary{Constraint: res.Constraint, Actions: res.Actions})
	}
	return out
}

func TestReview_EnforcementActionsPerEnforcementPoint(t *testing.T) {
	e := newEngine(t, echoTemplate)
	addConstraint(t, e, constraint("K8sEcho", "a-deny", "  enforcementAction: deny\n"))
	addConstraint(t, e, constraint("K8sEcho", "b-warn", "  enforcementAction: warn\n"))
	addConstraint(t, e, constraint("K8sEcho", "c-dryrun", "  enforcementAction: dryrun\n"))
	addConstraint(t, e, constraint("K8sEcho", "d-default", "  match: {}\n"))
	addConstraint(t, e, constraint("K8sEcho", "e-scoped", `  enforcementAction: scoped
  scopedEnforcementActions:
    - action: deny
      enforcementPoints: [{name: validation.gatekeeper.sh}]
    - action: warn
      enforcementPoints: [{name: "*"}]
`))
	tests := []struct {
		ep   string
		want []resultSummary
	}{
		{EnforcementPointWebhook, []resultSummary{
			{"a-deny", []string{"deny"}}, {"b-warn", []string{"warn"}}, {"c-dryrun", []string{"dryrun"}},
			{"d-default", []string{"deny"}}, {"e-scoped", []string{"deny", "warn"}},
		}},
		// "*" includes audit, so the scoped constraint warns there.
		{EnforcementPointAudit, []resultSummary{
			{"a-deny", []string{"deny"}}, {"b-warn", []string{"warn"}}, {"c-dryrun", []string{"dryrun"}},
			{"d-default", []string{"deny"}}, {"e-scoped", []string{"warn"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.ep, func(t *testing.T) {
			resp, err := e.Review(context.Background(), &target.Object{Object: podObj("a", "p", nil)}, AtEnforcementPoint(tc.ep))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(resp)); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReview_ScopedConstraintSkipsUnlistedEnforcementPoint(t *testing.T) {
	e := newEngine(t, echoTemplate)
	// Listing only the webhook opts the constraint out of audit.
	addConstraint(t, e, constraint("K8sEcho", "webhook-only", `  enforcementAction: scoped
  scopedEnforcementActions:
    - action: deny
      enforcementPoints: [{name: validation.gatekeeper.sh}]
`))
	resp, err := e.Review(context.Background(), podObj("a", "p", nil), AtEnforcementPoint(EnforcementPointAudit))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 0 {
		t.Errorf("audit got %v, want no results", messages(resp))
	}
	resp, err = e.Review(context.Background(), podObj("a", "p", nil), AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.Denied()); got != 1 {
		t.Errorf("webhook denied %d times, want 1", got)
	}
}

func TestReview_TemplateOperationsApplyAtWebhook(t *testing.T) {
	e := newEngine(t, deleteOnlyTemplate)
	addConstraint(t, e, constraint("K8sProtected", "protect", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	protected := podObj("a", "keep-me", map[string]string{"protected": "true"})
	ctx := context.Background()

	resp, err := e.Review(ctx, request(t, admissionv1.Update, protected, protected), AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 0 {
		t.Errorf("UPDATE got %v; the template only applies to DELETE", messages(resp))
	}
	resp, err = e.Review(ctx, request(t, admissionv1.Delete, nil, protected), AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"keep-me is protected and cannot be deleted"}, messages(resp)); diff != "" {
		t.Errorf("DELETE (-want +got):\n%s", diff)
	}
}

func TestReview_DeleteSeesOldObjectAsObject(t *testing.T) {
	e := newEngine(t, echoTemplate)
	addConstraint(t, e, constraint("K8sEcho", "echo", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	resp, err := e.Review(context.Background(), request(t, admissionv1.Delete, nil, podObj("a", "gone", nil)), AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"DELETE Pod/gone"}, messages(resp)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReview_DeleteWithoutOldObjectIsAnError(t *testing.T) {
	e := newEngine(t, echoTemplate)
	req := request(t, admissionv1.Delete, nil, nil)
	_, err := e.Review(context.Background(), req)
	if !errors.Is(err, ErrReview) || !errors.Is(err, target.ErrMissingOld) {
		t.Fatalf("err = %v, want ErrReview and ErrMissingOld", err)
	}
}

func TestReview_UpdateComparesWithOldObject(t *testing.T) {
	e := newEngine(t, ownerTemplate)
	addConstraint(t, e, constraint("K8sImmutableOwner", "owner", "  match: {}\n"))
	old := podObj("a", "p", map[string]string{"owner": "alice"})
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want []string
	}{
		{"unchanged", podObj("a", "p", map[string]string{"owner": "alice"}), nil},
		{"changed", podObj("a", "p", map[string]string{"owner": "bob"}), []string{"label owner is immutable: alice -> bob"}},
		{"removed", podObj("a", "p", nil), []string{"label owner is immutable: alice -> "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.Review(context.Background(), request(t, admissionv1.Update, tc.obj, old), AtEnforcementPoint(EnforcementPointWebhook))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, messages(resp)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReview_UpdateMatchesWhenOnlyOldObjectIsInScope(t *testing.T) {
	e := newEngine(t, echoTemplate)
	addConstraint(t, e, constraint("K8sEcho", "pb", "  match:\n    labelSelector:\n      matchLabels: {data.statcan.gc.ca/classification: protected-b}\n"))
	old := podObj("a", "p", map[string]string{"data.statcan.gc.ca/classification": "protected-b"})
	declassified := podObj("a", "p", map[string]string{"data.statcan.gc.ca/classification": "unclassified"})
	resp, err := e.Review(context.Background(), request(t, admissionv1.Update, declassified, old), AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 {
		t.Errorf("got %v, want the constraint to apply because the old object was in scope", messages(resp))
	}
}

func TestReview_ReviewCarriesAdmissionRequest(t *testing.T) {
	const tmpl = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8swho
spec:
  crd:
    spec:
      names:
        kind: K8sWho
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8swho
              violation contains {"msg": msg} if {
                user := object.get(input.review, ["userInfo", "username"], "nobody")
                msg := sprintf("%v by %v in %v (ns object %v)", [input.review.operation, user, input.review.namespace, object.get(input.review, ["namespaceObject", "metadata", "name"], "none")])
              }
`
	e := newEngine(t, tmpl)
	addConstraint(t, e, constraint("K8sWho", "who", "  match: {}\n"))
	req := request(t, admissionv1.Create, podObj("alice", "p", nil), nil)
	req.Namespace = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice"}}
	resp, err := e.Review(context.Background(), req, AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CREATE by alice@statcan.gc.ca in alice (ns object alice)"}, messages(resp)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Audit-style reviews carry no operation and no user.
	resp, err = e.Review(context.Background(), podObj("alice", "p", nil), AtEnforcementPoint(EnforcementPointAudit))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{" by nobody in alice (ns object none)"}, messages(resp)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Referential data reaches templates as it changes. With the review
// cache, a change a run read is seen at once, and reviews between changes
// are answered from the cache.
func TestReview_Inventory(t *testing.T) {
	for name, cache := range map[string]int{"uncached": 0, "cached": 16} {
		t.Run(name, func(t *testing.T) { reviewInventory(t, cache) })
	}
}

func reviewInventory(t *testing.T, cache int) {
	ctx := context.Background()
	counts := &EvaluatorCounts{}
	e := newEngineWith(t, []Option{WithReviewCache(cache), WithEvaluatorCounts(counts)}, guardrailsTemplate)
	addConstraint(t, e, constraint("K8sGuardrails", "netpol", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n  parameters:\n    policy: default-deny\n"))
	pod := podObj("alice", "nb", nil)
	review := func() []string {
		t.Helper()
		resp, err := e.Review(ctx, pod, AtEnforcementPoint(EnforcementPointAudit))
		if err != nil {
			t.Fatal(err)
		}
		return messages(resp)
	}
	both := []string{"namespace alice has no NetworkPolicy default-deny", "namespace alice is not a Kubeflow profile"}
	ns := doc(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: alice\n  labels:\n    app.kubernetes.io/part-of: kubeflow-profile\n").Object
	np := doc(t, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: alice\nspec:\n  podSelector: {}\n").Object
	other := doc(t, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-web\n  namespace: bob\nspec:\n  podSelector: {}\n").Object
	for _, s := range []struct {
		name      string
		change    func() error
		want      []string
		hit, miss int64 // with the cache
	}{
		{"empty inventory", nil, both, 0, 1},
		{"again", nil, both, 1, 0},
		{"namespace added", func() error { return e.AddData(ctx, ns) }, both[:1], 0, 1},
		{"policy added", func() error { return e.AddData(ctx, np) }, nil, 0, 1},
		{"again", nil, nil, 1, 0},
		// Another namespace's objects are not read by this review.
		{"unrelated policy added", func() error { return e.AddData(ctx, other) }, nil, 1, 0},
		{"policy removed", func() error { return e.RemoveData(ctx, np) }, both[:1], 0, 1},
		{"namespace relabelled", func() error {
			ns.SetLabels(map[string]string{"team": "analytics"})
			return e.AddData(ctx, ns)
		}, both, 0, 1},
		// Back to the empty inventory of the first review: its run
		// repeats.
		{"wiped", func() error { return e.WipeData(ctx) }, both, 1, 0},
	} {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatal(err)
			}
		}
		h0, m0 := counts.CacheHits.Load(), counts.CacheMisses.Load()
		if diff := cmp.Diff(s.want, review()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
		if cache == 0 {
			s.hit, s.miss = 0, 0
		}
		if h, m := counts.CacheHits.Load()-h0, counts.CacheMisses.Load()-m0; h != s.hit || m != s.miss {
			t.Errorf("%s: %d hits, %d misses; want %d, %d", s.name, h, m, s.hit, s.miss)
		}
	}
}

func TestReview_NamespaceSelectorUsesNamespacesFromData(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, echoTemplate)
	addConstraint(t, e, constraint("K8sEcho", "profiles", "  match:\n    namespaceSelector:\n      matchLabels: {app.kubernetes.io/part-of: kubeflow-profile}\n"))

	// Unknown namespace: the match cannot be decided, so the constraint
	// fails closed with an autoreject result, as in Gatekeeper.
	resp, err := e.Review(ctx, podObj("alice", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || !strings.Contains(resp.Results[0].Message, "namespaceSelector") {
		t.Fatalf("unknown namespace: got %v, want one autoreject result", messages(resp))
	}

	ns := doc(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: alice\n  labels:\n    app.kubernetes.io/part-of: kubeflow-profile\n").Object
	if err := e.AddData(ctx, ns); err != nil {
		t.Fatal(err)
	}
	resp, err = e.Review(ctx, podObj("alice", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{" Pod/p"}, messages(resp)); diff != "" {
		t.Errorf("profile namespace (-want +got):\n%s", diff)
	}
	other := doc(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n").Object
	if err := e.AddData(ctx, other); err != nil {
		t.Fatal(err)
	}
	resp, err = e.Review(ctx, podObj("kube-system", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 0 {
		t.Errorf("non-profile namespace got %v, want none", messages(resp))
	}
}

func TestTemplates_AllServedVersionsAndRegoVersions(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, legacyTemplate, alphaTemplate, paramsTemplate, ownerTemplate)
	// v1beta1 without a schema accepts any parameters (legacySchema).
	addConstraint(t, e, constraint("K8sLegacy", "any", "  parameters:\n    anything: 42\n    more: [1, 2]\n"))
	addConstraint(t, e, constraint("K8sAlpha", "alpha", "  match: {}\n"))
	resp, err := e.Review(ctx, podObj("a", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alpha", "legacy 42"}, messages(resp)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, tm := range e.Templates() {
		if tm.Name == "" || tm.Kind == "" {
			t.Errorf("template without name or kind: %+v", tm)
		}
	}
}

func TestAddConstraint_Validation(t *testing.T) {
	e := newEngine(t, paramsTemplate, echoTemplate)
	tests := []struct {
		name       string
		src        string
		wantSchema bool
		wantIn     []string // substrings of the error
	}{
		{
			name:       "wrong parameter type",
			src:        constraint("K8sParams", "bad-type", "  parameters:\n    labels: owner\n"),
			wantSchema: true,
			wantIn:     []string{`test.yaml:7:`, `constraint K8sParams "bad-type"`, "spec.parameters.labels", "must be of type array, found string"},
		},
		{
			name:       "wrong item type",
			src:        constraint("K8sParams", "bad-item", "  parameters:\n    labels: [owner, 7]\n"),
			wantSchema: true,
			wantIn:     []string{"spec.parameters.labels[1]", "must be of type string"},
		},
		{
			name:       "enum violation",
			src:        constraint("K8sParams", "bad-enum", "  parameters:\n    mode: sometimes\n"),
			wantSchema: true,
			wantIn:     []string{"spec.parameters.mode", `"sometimes"`},
		},
		{
			name:   "unknown parameter",
			src:    constraint("K8sParams", "unknown", "  parameters:\n    labelz: [owner]\n"),
			wantIn: []string{"test.yaml:7:", "spec.parameters.labelz: unknown field"},
		},
		{
			name:   "typo in spec",
			src:    constraint("K8sParams", "typo", "  enforcementActoin: dryrun\n"),
			wantIn: []string{"spec.enforcementActoin: unknown field"},
		},
		{
			name:       "unknown enforcement action",
			src:        constraint("K8sParams", "enforce", "  enforcementAction: enforce\n"),
			wantSchema: true,
			wantIn:     []string{"spec.enforcementAction", `"enforce"`},
		},
		{
			name:       "scoped without actions",
			src:        constraint("K8sParams", "scoped", "  enforcementAction: scoped\n"),
			wantSchema: true,
			wantIn:     []string{"spec.scopedEnforcementActions", "is required"},
		},
		{
			name:       "scoped with an unknown action",
			src:        constraint("K8sParams", "scoped2", "  enforcementAction: scoped\n  scopedEnforcementActions:\n    - action: block\n      enforcementPoints: [{name: '*'}]\n"),
			wantSchema: true,
			wantIn:     []string{"spec.scopedEnforcementActions[0].action"},
		},
		{
			name:   "bad label selector",
			src:    constraint("K8sEcho", "selector", "  match:\n    labelSelector:\n      matchExpressions: [{key: a, operator: Sometimes}]\n"),
			wantIn: []string{"spec.match", "Sometimes"},
		},
		{
			name:       "bad namespace glob",
			src:        constraint("K8sEcho", "glob", "  match:\n    namespaces: [\"Kube System\"]\n"),
			wantSchema: true,
			wantIn:     []string{"spec.match.namespaces[0]"},
		},
		{
			name:   "bad scope",
			src:    constraint("K8sEcho", "scope", "  match:\n    scope: Namespace\n"),
			wantIn: []string{"spec.match.scope", "Namespace"},
		},
		{
			name:   "invalid name",
			src:    constraint("K8sEcho", "Not_A_Name", "  match: {}\n"),
			wantIn: []string{"metadata.name"},
		},
		{
			name:   "unknown kind",
			src:    constraint("K8sNope", "x", "  match: {}\n"),
			wantIn: []string{`no ConstraintTemplate defines kind "K8sNope"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := doc(t, tc.src)
			err := e.AddConstraint(context.Background(), d.Object, d)
			if !errors.Is(err, ErrConstraint) {
				t.Fatalf("err = %v, want ErrConstraint", err)
			}
			if got := errors.Is(err, ErrSchema); got != tc.wantSchema {
				t.Errorf("errors.Is(err, ErrSchema) = %v, want %v (err: %v)", got, tc.wantSchema, err)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	if n := len(e.Constraints()); n != 0 {
		t.Errorf("engine holds %d constraints after only invalid ones", n)
	}
}

func TestAddConstraint_DefaultsFromSchemaReachRego(t *testing.T) {
	const tmpl = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdefaults
spec:
  crd:
    spec:
      names:
        kind: K8sDefaults
      validation:
        openAPIV3Schema:
          type: object
          properties:
            limit:
              type: integer
              default: 3
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sdefaults
        violation[{"msg": msg}] { msg := sprintf("limit %v", [input.parameters.limit]) }
`
	e := newEngine(t, tmpl)
	addConstraint(t, e, constraint("K8sDefaults", "d", "  parameters: {}\n"))
	resp, err := e.Review(context.Background(), podObj("a", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"limit 3"}, messages(resp)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNewTemplate_Errors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		wantIn []string
	}{
		{
			name: "Rego syntax error points at the file line",
			src:  strings.Replace(ownerTemplate, `old != new`, `old != new)`, 1),
			// the Rego text starts on line 17; "old != new)" is Rego line 6
			wantIn: []string{"test.yaml:22:", `ConstraintTemplate "k8simmutableowner"`, "spec.targets[0].code[0].source.rego:6", "rego_parse_error"},
		},
		{
			name:   "Rego v1 keywords under v0 fail",
			src:    strings.Replace(ownerTemplate, "version: v1", "version: v0", 1),
			wantIn: []string{"rego_parse_error"},
		},
		{
			name:   "missing violation rule",
			src:    strings.Replace(echoTemplate, "violation[", "deny[", 1),
			wantIn: []string{"must define the rule violation"},
		},
		{
			name:   "name must be the lowercase kind",
			src:    strings.Replace(echoTemplate, "name: k8secho", "name: echo", 1),
			wantIn: []string{"metadata.name", `"k8secho"`},
		},
		{
			name:   "unknown target",
			src:    strings.Replace(echoTemplate, "admission.k8s.gatekeeper.sh", "admission.k8s.example.com", 1),
			wantIn: []string{"spec.targets[0].target", "unknown target"},
		},
		{
			name:   "unknown operation",
			src:    strings.Replace(deleteOnlyTemplate, `["DELETE"]`, `["REMOVE"]`, 1),
			wantIn: []string{"spec.targets[0].operations[0]", "REMOVE"},
		},
		{
			name:   "unserved version",
			src:    strings.Replace(echoTemplate, "templates.gatekeeper.sh/v1", "templates.gatekeeper.sh/v2", 1),
			wantIn: []string{"apiVersion", `"v2" is not served`},
		},
		{
			name: "CEL-only template",
			src: `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8scel
spec:
  crd:
    spec:
      names:
        kind: K8sCel
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: "true"
                message: never
`,
			wantIn: []string{"has no Rego code (found K8sNativeValidation)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := doc(t, tc.src)
			_, err := NewTemplate(d.Object, d)
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("err = %v, want ErrTemplate", err)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestAddTemplate_CompileErrorIsLocatedAndHarmless(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, echoTemplate)
	addConstraint(t, e, constraint("K8sEcho", "echo", "  match: {}\n"))

	bad := strings.Replace(ownerTemplate, "old != new", "not_a_function(old)", 1)
	d := doc(t, bad)
	tm, err := NewTemplate(d.Object, d) // parses fine: the error is found by the compiler
	if err != nil {
		t.Fatalf("NewTemplate: %v", err)
	}
	err = e.AddTemplate(ctx, tm)
	if !errors.Is(err, ErrTemplate) {
		t.Fatalf("err = %v, want ErrTemplate", err)
	}
	for _, s := range []string{"test.yaml:22:", "spec.targets[0].code[0].source.rego:6", "rego_type_error", "not_a_function"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	// The engine keeps serving what it had.
	resp, err := e.Review(ctx, podObj("a", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 {
		t.Errorf("after a failed template, got %v, want the echo result", messages(resp))
	}
	if e.Template("K8sImmutableOwner") != nil {
		t.Error("a template that failed to compile is registered")
	}
}

func TestRemoveTemplate_DropsItsConstraints(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, echoTemplate, alphaTemplate)
	addConstraint(t, e, constraint("K8sEcho", "echo", "  match: {}\n"))
	addConstraint(t, e, constraint("K8sAlpha", "alpha", "  match: {}\n"))
	if err := e.RemoveTemplate(ctx, "K8sEcho"); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Review(ctx, podObj("a", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alpha"}, messages(resp)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := len(e.Constraints()); got != 1 {
		t.Errorf("%d constraints left, want 1", got)
	}
}

func TestReview_RemovedConstraintNoLongerApplies(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, echoTemplate)
	src := constraint("K8sEcho", "echo", "  match: {}\n")
	addConstraint(t, e, src)
	if err := e.RemoveConstraint(ctx, doc(t, src).Object); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Review(ctx, podObj("a", "p", nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 0 {
		t.Errorf("got %v after removal", messages(resp))
	}
}

func authUser(name string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: name}
}

// Results carry the constraint as it was added: later changes, to the
// constraint in the engine or to the object it was added from, do not
// reach results already given, nor results given before the change.
func TestReview_ResultsCarryTheConstraintAsAdded(t *testing.T) {
	ctx := context.Background()
	e := newEngineWith(t, nil, echoTemplate)
	d := doc(t, constraint("K8sEcho", "echo", "  enforcementAction: deny\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	if err := e.AddConstraint(ctx, d.Object, d); err != nil {
		t.Fatal(err)
	}
	review := func() *unstructured.Unstructured {
		t.Helper()
		resp, err := e.Review(ctx, podObj("alice", "nb", nil))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Results) != 1 {
			t.Fatalf("%d results, want 1", len(resp.Results))
		}
		return resp.Results[0].Object
	}
	action := func(u *unstructured.Unstructured) string {
		a, _, _ := unstructured.NestedString(u.Object, "spec", "enforcementAction")
		return a
	}
	first := review()
	if err := unstructured.SetNestedField(d.Object.Object, "warn", "spec", "enforcementAction"); err != nil {
		t.Fatal(err)
	}
	if got := action(review()); got != "deny" {
		t.Errorf("after a change to the added object: result carries %q, want deny", got)
	}
	if err := e.AddConstraint(ctx, d.Object, d); err != nil {
		t.Fatal(err)
	}
	if got := action(review()); got != "warn" {
		t.Errorf("after the constraint changed: result carries %q, want warn", got)
	}
	if got := action(first); got != "deny" {
		t.Errorf("an earlier result now carries %q, want deny", got)
	}
}

// The Namespace a review carries reaches policies as namespaceObject; the
// engine converts it once per resourceVersion, so a changed Namespace is
// seen at once, whichever evaluator runs.
func TestReview_NamespaceObjectFollowsTheNamespace(t *testing.T) {
	const tmpl = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snslabel
spec:
  crd:
    spec:
      names:
        kind: K8sNsLabel
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8snslabel
              violation contains {"msg": msg} if {
                msg := sprintf("tier %v", [object.get(input.review, ["namespaceObject", "metadata", "labels", "tier"], "none")])
              }
`
	for _, opts := range [][]Option{nil, {WithTopdownOnly()}} {
		e := newEngineWith(t, opts, tmpl)
		addConstraint(t, e, constraint("K8sNsLabel", "tier", "  match: {}\n"))
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice", UID: "u-alice", ResourceVersion: "1", Labels: map[string]string{"tier": "gold"}}}
		review := func() []string {
			t.Helper()
			req := request(t, admissionv1.Create, podObj("alice", "p", nil), nil)
			req.Namespace = ns.DeepCopy()
			resp, err := e.Review(context.Background(), req, AtEnforcementPoint(EnforcementPointWebhook))
			if err != nil {
				t.Fatal(err)
			}
			return messages(resp)
		}
		for i := 0; i < 2; i++ {
			if diff := cmp.Diff([]string{"tier gold"}, review()); diff != "" {
				t.Errorf("review %d (-want +got):\n%s", i, diff)
			}
		}
		ns.Labels["tier"], ns.ResourceVersion = "silver", "2"
		if diff := cmp.Diff([]string{"tier silver"}, review()); diff != "" {
			t.Errorf("after the Namespace changed (-want +got):\n%s", diff)
		}
		// A Namespace read from a file has neither UID nor resourceVersion.
		ns.UID, ns.ResourceVersion, ns.Labels["tier"] = "", "", "bronze"
		if diff := cmp.Diff([]string{"tier bronze"}, review()); diff != "" {
			t.Errorf("a Namespace without identity (-want +got):\n%s", diff)
		}
	}
}
