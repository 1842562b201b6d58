package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/pkg/target"
)

// The engine's own matching (match.go) must review exactly as the
// constraint framework's Client.Review does: same results, actions,
// details and errors, at every enforcement point, for every operation.
func TestReview_OwnMatchingAgreesWithTheFramework(t *testing.T) {
	constraints := []string{
		constraint("K8sEcho", "a-deny", "  enforcementAction: deny\n"),
		constraint("K8sEcho", "b-warn", "  enforcementAction: warn\n  match:\n    namespaces: [team-a]\n"),
		constraint("K8sEcho", "c-dryrun", "  enforcementAction: dryrun\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [ConfigMap]}]\n"),
		constraint("K8sEcho", "d-default", "  match:\n    labelSelector: {matchLabels: {tier: web}}\n"),
		constraint("K8sEcho", "e-scoped", `  enforcementAction: scoped
  scopedEnforcementActions:
    - action: deny
      enforcementPoints: [{name: validation.gatekeeper.sh}]
    - action: warn
      enforcementPoints: [{name: "*"}]
`),
		constraint("K8sEcho", "f-webhook-only", `  enforcementAction: scoped
  scopedEnforcementActions:
    - action: warn
      enforcementPoints: [{name: validation.gatekeeper.sh}]
    - action: dryrun
      enforcementPoints: [{name: validation.gatekeeper.sh}]
`),
		// A namespaceSelector on a Namespace the engine does not know:
		// the match fails, and that is reported as a violation.
		constraint("K8sEcho", "g-selector", "  match:\n    namespaceSelector: {matchLabels: {env: prod}}\n"),
		constraint("K8sProtected", "protect", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
	}
	engines := map[string]*Engine{}
	for _, mode := range []string{"own", "framework"} {
		var opts []Option
		if mode == "framework" {
			opts = append(opts, WithFrameworkReview())
		}
		e := newEngineWith(t, opts, echoTemplate, deleteOnlyTemplate)
		for _, c := range constraints {
			addConstraint(t, e, c)
		}
		engines[mode] = e
	}

	web := podObj("team-a", "web", map[string]string{"tier": "web", "protected": "true"})
	other := podObj("team-b", "other", nil)
	known := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", UID: "ns-a", ResourceVersion: "1", Labels: map[string]string{"env": "prod"}}}
	inputs := map[string]func(t *testing.T) interface{}{
		"create":            func(t *testing.T) interface{} { return request(t, admissionv1.Create, web, nil) },
		"update":            func(t *testing.T) interface{} { return request(t, admissionv1.Update, other, other) },
		"delete":            func(t *testing.T) interface{} { return request(t, admissionv1.Delete, nil, web) },
		"object":            func(*testing.T) interface{} { return &target.Object{Object: other} },
		"object, namespace": func(*testing.T) interface{} { return &target.Object{Object: web, Namespace: known} },
	}
	for name, in := range inputs {
		for _, ep := range []string{EnforcementPointWebhook, EnforcementPointAudit, EnforcementPointGator, "*", "nowhere"} {
			t.Run(name+" at "+ep, func(t *testing.T) {
				var got [2]*Response
				var errs [2]string
				for i, mode := range []string{"framework", "own"} {
					resp, err := engines[mode].Review(context.Background(), in(t), AtEnforcementPoint(ep))
					got[i] = resp
					if err != nil {
						errs[i] = err.Error()
					}
				}
				if errs[0] != errs[1] {
					t.Errorf("errors differ:\nframework: %s\nown:       %s", errs[0], errs[1])
				}
				if diff := cmp.Diff(got[0], got[1], cmpopts.IgnoreFields(Result{}, "Object")); diff != "" {
					t.Errorf("responses differ (-framework +own):\n%s", diff)
				}
				if ep == EnforcementPointWebhook && name == "create" && (got[1] == nil || len(got[1].Results) < 4) {
					t.Errorf("too few results to compare: %+v", got[1])
				}
			})
		}
	}
}
