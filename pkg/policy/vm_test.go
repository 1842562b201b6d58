package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
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
	d := e.driver.(*regoDriver)
	d.mu.RLock()
	p := d.program()
	d.mu.RUnlock()
	for kind, err := range p.excluded {
		t.Errorf("%s is left to topdown: %v", kind, err)
	}
	for _, kind := range kinds {
		if !p.kinds[kind] {
			t.Errorf("%s is not in the VM program", kind)
		}
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
