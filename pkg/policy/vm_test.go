package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	stockrego "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/statcan/daaas-guard/pkg/target"
)

// Every template of the platform profile runs on the VM: one that the
// planner could not take would silently cost the topdown price.
func TestVM_EvaluatesEveryProfileTemplate(t *testing.T) {
	ctx := context.Background()
	docs, err := kustomizeProfile(t)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, d := range docs {
		if !IsTemplate(d.Object) {
			continue
		}
		tm, err := NewTemplate(d.Object, d)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.AddTemplate(ctx, tm); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, tm.Kind)
	}
	// Templates added over more than the build delay may be built in more
	// than one go: wait for the program that has them all.
	p := waitForProgram(t, e, kinds...)
	for kind, err := range p.excluded {
		t.Errorf("%s is left to topdown: %v", kind, err)
	}
}

// waitForProgram waits until the engine's VM program evaluates the given
// templates as they are now, and returns it.
func waitForProgram(t *testing.T, e *Engine, kinds ...string) *vmProgram {
	t.Helper()
	d := e.driver.(*regoDriver)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d.mu.RLock()
		p := d.program()
		var missing []string
		for _, kind := range kinds {
			if !p.evaluates(kind, d.templates[kind]) {
				missing = append(missing, kind)
			}
		}
		d.mu.RUnlock()
		if len(missing) == 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM program does not evaluate %v", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// conflictTemplate fails at run time for objects that set both labels
// (a complete rule with two values), and only for those.
const conflictTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sconflict
spec:
  crd:
    spec:
      names:
        kind: K8sConflict
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sconflict
              owner := input.review.object.metadata.labels.a
              owner := input.review.object.metadata.labels.b
              violation contains {"msg": sprintf("owner %v", [owner])} if owner != "ok"
`

// A template's run-time error is reported for its own constraint, as a
// violation carrying the error, while the other constraints give their
// results: as topdown does, whichever evaluator runs.
func TestVM_RuntimeErrorIsReportedForItsConstraintOnly(t *testing.T) {
	ctx := context.Background()
	review := func(opts []Option, labels map[string]string) []string {
		t.Helper()
		e := newEngineWith(t, opts, conflictTemplate, echoTemplate)
		addConstraint(t, e, constraint("K8sConflict", "conflict", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
		addConstraint(t, e, constraint("K8sEcho", "echo", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
		resp, err := e.Review(ctx, request(t, admissionv1.Create, podObj("alice", "nb", labels), nil), AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			t.Fatal(err)
		}
		return messages(resp)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{"no error", map[string]string{"a": "x"}, []string{"owner x", "CREATE Pod/nb"}},
		{"conflict", map[string]string{"a": "x", "b": "y"}, []string{
			"template:2: eval_conflict_error: complete rules must not produce multiple outputs",
			"CREATE Pod/nb",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := review(nil, tc.labels)
			td := review([]Option{WithTopdownOnly()}, tc.labels)
			if diff := cmp.Diff(td, vm); diff != "" {
				t.Errorf("VM and topdown differ (-topdown +vm):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, vm); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A changed template applies to the very next review: topdown evaluates it
// until the VM program is rebuilt in the background, then the VM does.
func TestVM_ChangedTemplateAppliesAtOnce(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, echoTemplate)
	addConstraint(t, e, constraint("K8sEcho", "echo", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	review := func() []string {
		t.Helper()
		resp, err := e.Review(ctx, request(t, admissionv1.Create, podObj("alice", "nb", nil), nil), AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			t.Fatal(err)
		}
		return messages(resp)
	}
	if diff := cmp.Diff([]string{"CREATE Pod/nb"}, review()); diff != "" {
		t.Fatalf("before the change (-want +got):\n%s", diff)
	}
	changed := strings.Replace(echoTemplate, `msg := sprintf("%v %v/%v"`, `msg := sprintf("changed: %v %v/%v"`, 1)
	d := doc(t, changed)
	tm, err := NewTemplate(d.Object, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddTemplate(ctx, tm); err != nil {
		t.Fatal(err)
	}
	want := []string{"changed: CREATE Pod/nb"}
	if diff := cmp.Diff(want, review()); diff != "" {
		t.Errorf("right after the change (-want +got):\n%s", diff)
	}
	waitForProgram(t, e, "K8sEcho")
	if diff := cmp.Diff(want, review()); diff != "" {
		t.Errorf("after the rebuild (-want +got):\n%s", diff)
	}
}

// print statements reach the print output from the VM as from topdown.
func TestVM_PrintStatements(t *testing.T) {
	const printTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sprint
spec:
  crd:
    spec:
      names:
        kind: K8sPrint
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sprint
              violation contains {"msg": "seen"} if {
                print("reviewing", input.review.object.metadata.name)
              }
`
	// With the review cache, a template that prints is evaluated every
	// time: a cached answer would print nothing.
	for name, opts := range map[string][]Option{"vm": nil, "vm-cached": {WithReviewCache(8)}, "topdown": {WithTopdownOnly()}} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			counts := &EvaluatorCounts{}
			e := newEngineWith(t, append(opts, WithPrintOutput(&out), WithEvaluatorCounts(counts)), printTemplate)
			addConstraint(t, e, constraint("K8sPrint", "print", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
			for i := 0; i < 2; i++ {
				resp, err := e.Review(context.Background(), request(t, admissionv1.Create, podObj("alice", "nb", nil), nil), AtEnforcementPoint(EnforcementPointWebhook))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]string{"seen"}, messages(resp)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
			if n := strings.Count(out.String(), "reviewing nb"); n != 2 {
				t.Errorf("print output %q, want it to say %q twice", out.String(), "reviewing nb")
			}
			if vm := counts.VM.Load(); (name != "topdown") != (vm > 0) {
				t.Errorf("%d evaluations by the VM", vm)
			}
		})
	}
}

// A template with libraries that reads referential data runs on the VM,
// with the results topdown gives.
func TestVM_LibrariesAndInventory(t *testing.T) {
	ctx := context.Background()
	ns := doc(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: alice\n  labels:\n    app.kubernetes.io/part-of: kubeflow-profile\n").Object
	review := func(opts ...Option) []string {
		t.Helper()
		e := newEngineWith(t, opts, guardrailsTemplate)
		addConstraint(t, e, constraint("K8sGuardrails", "netpol", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n  parameters:\n    policy: default-deny\n"))
		if err := e.AddData(ctx, ns); err != nil {
			t.Fatal(err)
		}
		resp, err := e.Review(ctx, podObj("alice", "nb", nil), AtEnforcementPoint(EnforcementPointAudit))
		if err != nil {
			t.Fatal(err)
		}
		return messages(resp)
	}
	counts := &EvaluatorCounts{}
	vm := review(WithEvaluatorCounts(counts))
	if n, td := counts.VM.Load(), counts.Topdown.Load(); n != 1 || td != 0 {
		t.Errorf("evaluations: %d by the VM, %d by topdown; want 1 by the VM", n, td)
	}
	want := []string{"namespace alice has no NetworkPolicy default-deny"}
	if diff := cmp.Diff(want, vm); diff != "" {
		t.Errorf("VM (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, review(WithTopdownOnly())); diff != "" {
		t.Errorf("topdown (-want +got):\n%s", diff)
	}
}

// Reviews run concurrently with template, constraint and data changes
// (run with -race): the pooled machines and the program swap are safe.
func TestVM_ConcurrentReviewsAndChanges(t *testing.T) {
	for name, opts := range map[string][]Option{"vm": nil, "vm-cached": {WithReviewCache(16)}} {
		t.Run(name, func(t *testing.T) { concurrentReviewsAndChanges(t, opts) })
	}
}

func concurrentReviewsAndChanges(t *testing.T, opts []Option) {
	ctx := context.Background()
	e := newEngineWith(t, opts, echoTemplate, guardrailsTemplate)
	addConstraint(t, e, constraint("K8sEcho", "echo", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	addConstraint(t, e, constraint("K8sGuardrails", "netpol", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n  parameters:\n    policy: default-deny\n"))
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				resp, err := e.Review(ctx, request(t, admissionv1.Create, podObj("alice", "nb", nil), nil), AtEnforcementPoint(EnforcementPointWebhook))
				if err != nil {
					errs <- err
					return
				}
				if len(resp.Results) == 0 {
					errs <- errors.New("a review without results")
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		addConstraint(t, e, constraint("K8sEcho", fmt.Sprintf("echo-%d", i), "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
		d := doc(t, echoTemplate)
		tm, err := NewTemplate(d.Object, d)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.AddTemplate(ctx, tm); err != nil {
			t.Fatal(err)
		}
		ns := doc(t, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-%d\n", i)).Object
		if err := e.AddData(ctx, ns); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// Every change is seen once made.
	resp, err := e.Review(ctx, request(t, admissionv1.Create, podObj("alice", "nb", nil), nil), AtEnforcementPoint(EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	echoes := 0
	for _, r := range resp.Results {
		if r.Kind == "K8sEcho" {
			echoes++
		}
	}
	if echoes != 21 {
		t.Errorf("%d results of K8sEcho constraints, want 21", echoes)
	}
}

// managersTemplate reads metadata.managedFields, which the VM is given raw
// and parses only when read, and metadata as a whole.
const managersTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8smanagers
spec:
  crd:
    spec:
      names:
        kind: K8sManagers
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8smanagers
              managers := [m.manager | some m in input.review.object.metadata.managedFields]
              keys := [k | some k, _ in input.review.object.metadata]
              old := count(object.get(input.review, ["oldObject", "metadata", "managedFields"], []))
              same := input.review.object.metadata == object.get(input.review, ["oldObject", "metadata"], null)
              violation contains {"msg": msg} if {
                msg := sprintf("managers %v keys %v size %v old %v same %v", [managers, keys, count(input.review.object.metadata), old, same])
              }
`

// A policy that reads managedFields sees it, in its place among the
// metadata keys, whichever evaluator runs.
func TestVM_ManagedFieldsAreParsedWhenRead(t *testing.T) {
	ctx := context.Background()
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nb","namespace":"alice","labels":{"a":"b"},` +
		`"managedFields":[{"manager":"kubectl","operation":"Update"},{"manager":"kubelet","operation":"Update"}],"uid":"u1"},"spec":{}}`
	for _, tc := range []struct {
		name string
		req  admissionv1.AdmissionRequest
		want string
	}{
		{"create", admissionv1.AdmissionRequest{Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(pod)}},
			`managers ["kubectl", "kubelet"] keys ["labels", "managedFields", "name", "namespace", "uid"] size 5 old 0 same false`},
		{"update", admissionv1.AdmissionRequest{Operation: admissionv1.Update, Object: runtime.RawExtension{Raw: []byte(pod)}, OldObject: runtime.RawExtension{Raw: []byte(pod)}},
			`managers ["kubectl", "kubelet"] keys ["labels", "managedFields", "name", "namespace", "uid"] size 5 old 2 same true`},
		{"delete", admissionv1.AdmissionRequest{Operation: admissionv1.Delete, OldObject: runtime.RawExtension{Raw: []byte(pod)}},
			`managers ["kubectl", "kubelet"] keys ["labels", "managedFields", "name", "namespace", "uid"] size 5 old 2 same true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			review := func(opts ...Option) []string {
				t.Helper()
				e := newEngineWith(t, opts, managersTemplate)
				addConstraint(t, e, constraint("K8sManagers", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
				req := tc.req
				req.UID, req.Name, req.Namespace = "r1", "nb", "alice"
				req.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
				resp, err := e.Review(ctx, &target.Request{AdmissionRequest: &req}, AtEnforcementPoint(EnforcementPointWebhook))
				if err != nil {
					t.Fatal(err)
				}
				return messages(resp)
			}
			counts := &EvaluatorCounts{}
			want := []string{tc.want}
			if diff := cmp.Diff(want, review(WithEvaluatorCounts(counts))); diff != "" {
				t.Errorf("VM (-want +got):\n%s", diff)
			}
			if n := counts.VM.Load(); n != 1 {
				t.Errorf("%d evaluations by the VM, want 1", n)
			}
			if diff := cmp.Diff(want, review(WithTopdownOnly())); diff != "" {
				t.Errorf("topdown (-want +got):\n%s", diff)
			}
		})
	}
}

// A constraint's results come in the order, and with the duplicates
// removed, of the set of responses the framework's hook builds: objects
// {details, key, msg}, compared as Rego values.
func TestViolations_AsTheHooksResponseSet(t *testing.T) {
	parse := func(s string) *ast.Term {
		t.Helper()
		v, err := ast.ParseTerm(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	raw := []string{
		`{"msg": "b", "details": {"x": 1}}`,
		`{"msg": "a", "details": {"x": 1}}`,
		`{"msg": "a"}`,
		`{"msg": "a", "details": {}}`, // the same response as the one above
		`{"msg": "c", "details": {"x": 1.0}}`,
		`{"msg": "c", "details": {"x": 1}}`, // 1.0 and 1 are the same number
		`{"msg": "a", "details": {"x": 1}, "extra": true}`,
		`{"msg": "z", "details": []}`,
		`{"msg": "y", "details": "s"}`,
		`{"details": {"x": 2}}`, // no msg: no response
		`"not an object"`,
		`{"msg": "a", "details": {"a": [1, 2]}}`,
		`{"msg": "b", "details": {"a": [1]}}`,
	}
	key := ast.ObjectTerm(ast.Item(ast.StringTerm("kind"), ast.StringTerm("K")), ast.Item(ast.StringTerm("name"), ast.StringTerm("n")))
	want := ast.NewSet()
	var found violations
	for _, s := range raw {
		r := parse(s)
		found.add(r)
		obj, ok := r.Value.(ast.Object)
		if !ok || obj.Get(ast.StringTerm("msg")) == nil {
			continue
		}
		details := obj.Get(ast.StringTerm("details"))
		if details == nil {
			details = ast.ObjectTerm()
		}
		want.Add(ast.ObjectTerm(ast.Item(ast.StringTerm("details"), details), ast.Item(ast.StringTerm("key"), key), ast.Item(ast.StringTerm("msg"), obj.Get(ast.StringTerm("msg")))))
	}
	c := &unstructured.Unstructured{Object: map[string]interface{}{"kind": "K", "metadata": map[string]interface{}{"name": "n"}}}
	got, err := found.results(c, true)
	if err != nil {
		t.Fatal(err)
	}
	var gotS, wantS []string
	for _, r := range got {
		b, _ := json.Marshal(r.Metadata["details"])
		gotS = append(gotS, fmt.Sprintf("%s %s", r.Msg, b))
	}
	sorted := want.Sorted()
	for i := 0; i < sorted.Len(); i++ {
		o := sorted.Elem(i).Value.(ast.Object)
		d, _ := ast.JSON(o.Get(ast.StringTerm("details")).Value)
		b, _ := json.Marshal(d)
		wantS = append(wantS, fmt.Sprintf("%s %s", string(o.Get(ast.StringTerm("msg")).Value.(ast.String)), b))
	}
	if diff := cmp.Diff(wantS, gotS); diff != "" {
		t.Errorf("results (-the hook's set +got):\n%s", diff)
	}
}

// responsesTemplate's violations are those of the response-set test above:
// repeated messages with different details, details that differ only in 1
// and 1.0, no details, extra fields, no msg, not an object.
const responsesTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sresponses
spec:
  crd:
    spec:
      names:
        kind: K8sResponses
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sresponses
              violation contains {"msg": "b", "details": {"x": 1}}
              violation contains {"msg": "a", "details": {"x": 1}}
              violation contains {"msg": "a"}
              violation contains {"msg": "a", "details": {}}
              violation contains {"msg": "c", "details": {"x": 1.0}}
              violation contains {"msg": "c", "details": {"x": 1}}
              violation contains {"msg": "a", "details": {"x": 1}, "extra": true}
              violation contains {"msg": "z", "details": []}
              violation contains {"msg": "y", "details": "s"}
              violation contains {"details": {"x": 2}}
              violation contains "not an object"
              violation contains {"msg": "a", "details": {"a": [1, 2]}}
              violation contains {"msg": "b", "details": {"a": [1]}}
              violation contains {"msg": "u", "details": {"only": "one"}}
              violation contains {"msg": sprintf("n%d", [n]), "details": {"n": n}} if some n in numbers.range(1, 3)
`

// WithoutDetails gives the results the stock driver gives, in the same
// order and as many, without their details; with the VM and with topdown.
func TestWithoutDetails_TheStockDriversResultsLessTheirDetails(t *testing.T) {
	ctx := context.Background()
	review := func(opts ...Option) []Result {
		t.Helper()
		e := newEngineWith(t, opts, responsesTemplate)
		addConstraint(t, e, constraint("K8sResponses", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
		resp, err := e.Review(ctx, &target.Object{Object: podObj("alice", "p", nil)}, AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Results
	}
	summary := func(rs []Result, withDetails bool) []string {
		var out []string
		for _, r := range rs {
			s := r.Message
			if withDetails {
				b, _ := json.Marshal(r.Details)
				s += " " + string(b)
			}
			out = append(out, s)
		}
		return out
	}
	stock := review(WithFrameworkReview(), WithDriver(func() (drivers.Driver, error) { return stockrego.New() }))
	if len(stock) != 12 {
		t.Fatalf("the stock driver gave %d results, want 12: %v", len(stock), summary(stock, true))
	}
	if diff := cmp.Diff(summary(stock, true), summary(review(), true)); diff != "" {
		t.Errorf("with details (-stock +VM):\n%s", diff)
	}
	for name, opts := range map[string][]Option{
		"VM":      {WithoutDetails()},
		"topdown": {WithoutDetails(), WithTopdownOnly()},
	} {
		counts := &EvaluatorCounts{}
		got := review(append(opts, WithEvaluatorCounts(counts))...)
		if diff := cmp.Diff(summary(stock, false), summary(got, false)); diff != "" {
			t.Errorf("%s without details (-stock +got):\n%s", name, diff)
		}
		for _, r := range got {
			if r.Details != nil {
				t.Errorf("%s: result %q has details %v", name, r.Message, r.Details)
			}
		}
		if name == "VM" && counts.VM.Load() != 1 {
			t.Errorf("%d evaluations by the VM, want 1", counts.VM.Load())
		}
	}
}
