package admission_test

// These tests sit outside package admission because they drive the Config
// reconciler (pkg/controllers), which imports this package.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/controllers"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
)

const ownNamespace = "daaas-guard"

// denyAllTemplate denies whatever it evaluates, so an admitted request
// proves that it never reached the engine.
const denyAllTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdenyall
spec:
  crd:
    spec:
      names:
        kind: K8sDenyAll
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sdenyall
              violation contains {"msg": "evaluated"} if true
`

const denyAllConstraint = `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sDenyAll
metadata:
  name: deny-all
`

// slowTemplate walks some 10^11 combinations without keeping any of them:
// only the review's deadline can end it, and memory stays flat meanwhile.
const slowTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sslow
spec:
  crd:
    spec:
      names:
        kind: K8sSlow
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sslow
              violation contains {"msg": "finished"} if {
                some i in numbers.range(1, 5000)
                some j in numbers.range(1, 5000)
                some k in numbers.range(1, 5000)
                i + j + k < 0
              }
`

// slowConstraint only matches namespace "slow", so that reviews elsewhere
// are quick.
const slowConstraint = `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sSlow
metadata:
  name: slow
spec:
  match:
    namespaces: ["slow"]
`

// buildValidator loads templates and constraints (YAML, templates first)
// into a webhook engine and completes cfg around it.
func buildValidator(t *testing.T, cfg admission.ValidatorConfig, objects ...string) *admission.Validator {
	t.Helper()
	ctx := context.Background()
	e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range objects {
		docs, err := manifest.Parse("test.yaml", []byte(src), manifest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		u := docs[0].Object
		if u.GetKind() == "ConstraintTemplate" {
			tm, err := policy.NewTemplate(u, docs[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := e.AddTemplate(ctx, tm); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := e.AddConstraint(ctx, u, docs[0]); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Engine = e
	cfg.Log = logr.Discard()
	if cfg.Exemptions == nil {
		cfg.Exemptions = &admission.Exemptions{Own: ownNamespace}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = admission.NewMetrics(prometheus.NewRegistry())
	}
	v, err := admission.NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func podCreate(ns string) ctrladmission.Request {
	raw := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":%q},"spec":{"containers":[{"name":"main","image":"x"}]}}`, ns)
	return ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Name: "p", Namespace: ns,
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(raw)},
		UserInfo: authenticationv1.UserInfo{Username: "alice@statcan.gc.ca"},
	}}
}

func namespaceCreate(name string) ctrladmission.Request {
	raw := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, name)
	return ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Namespace"}, Name: name,
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "namespaces"},
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(raw)},
		UserInfo: authenticationv1.UserInfo{Username: "alice@statcan.gc.ca"},
	}}
}

// counter reads one series of a counter vector.
func counter(t *testing.T, m *admission.Metrics, op, kind, decision string) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Requests.WithLabelValues(op, kind, decision).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

func evaluations(t *testing.T, m *admission.Metrics) uint64 {
	t.Helper()
	var out dto.Metric
	if err := m.Evaluation.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}

// A review the engine cannot finish within EvalTimeout gets a clear 504
// once the deadline passes, and gives its evaluation slot back.
func TestValidator_EvaluationDeadline(t *testing.T) {
	const timeout = 100 * time.Millisecond
	metrics := admission.NewMetrics(prometheus.NewRegistry())
	v := buildValidator(t, admission.ValidatorConfig{Metrics: metrics, MaxInFlight: 1, EvalTimeout: timeout},
		slowTemplate, slowConstraint)

	// handle answers req, failing the test rather than hanging when the
	// engine ignores the deadline.
	handle := func(req ctrladmission.Request) (ctrladmission.Response, time.Duration) {
		t.Helper()
		done := make(chan ctrladmission.Response, 1)
		start := time.Now()
		go func() { done <- v.Handle(context.Background(), req) }()
		select {
		case resp := <-done:
			return resp, time.Since(start)
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer for %s/%s after 10s with an evaluation timeout of %v", req.Namespace, req.Name, timeout)
			return ctrladmission.Response{}, 0
		}
	}

	resp, took := handle(podCreate("slow"))
	if resp.Allowed || resp.Result == nil {
		t.Fatalf("allowed = %v, result %+v; want a 504 error", resp.Allowed, resp.Result)
	}
	got := struct {
		Code    int32
		Message string
	}{resp.Result.Code, resp.Result.Message}
	want := struct {
		Code    int32
		Message string
	}{504, "daaas-guard could not finish evaluating Pod slow/p within 100ms"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer past the deadline (-want +got):\n%s", diff)
	}
	// The answer waits for the deadline: a 504 given earlier would refuse
	// reviews that could still have finished.
	if took < timeout {
		t.Errorf("answered after %v, before the %v deadline", took, timeout)
	}
	if n := counter(t, metrics, "CREATE", "Pod", admission.DecisionError); n != 1 {
		t.Errorf("requests recorded as %q: %v, want 1", admission.DecisionError, n)
	}

	// With a single slot, the next review is served only if the timed-out
	// one released it; otherwise it would wait out its own deadline and be
	// refused as overloaded.
	resp, _ = handle(podCreate("alice"))
	if !resp.Allowed {
		t.Fatalf("review after the timeout: allowed = false, result %+v", resp.Result)
	}
	if n := counter(t, metrics, "CREATE", "Pod", admission.DecisionAllow); n != 1 {
		t.Errorf("requests recorded as %q: %v, want 1", admission.DecisionAllow, n)
	}
	var inFlight dto.Metric
	if err := metrics.InFlight.Write(&inFlight); err != nil {
		t.Fatal(err)
	}
	if n := inFlight.GetGauge().GetValue(); n != 0 {
		t.Errorf("%v reviews still in flight after both answered", n)
	}
}

// The Gatekeeper Config's spec.match entries exempt namespaces from the
// webhook when their processes name "webhook" or "*"; entries for other
// processes leave the webhook reviewing. The exemptions go through the
// Config reconciler as the webhook wires it (default process).
func TestValidator_ConfigExcludedNamespaces(t *testing.T) {
	tests := []struct {
		name      string
		match     []configv1alpha1.MatchEntry
		namespace string
		// namespaceObject sends the creation of the Namespace itself,
		// which the API server sends without a namespace.
		namespaceObject bool
		wantExempt      bool
	}{
		{
			name:       "excluded for the webhook",
			match:      []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team-x"}, Processes: []string{"webhook"}}},
			namespace:  "team-x",
			wantExempt: true,
		},
		{
			name:       "excluded for every process",
			match:      []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team-x"}, Processes: []string{"*"}}},
			namespace:  "team-x",
			wantExempt: true,
		},
		{
			name:       "webhook listed among other processes",
			match:      []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team-x"}, Processes: []string{"audit", "webhook"}}},
			namespace:  "team-x",
			wantExempt: true,
		},
		{
			name:      "excluded for audit only",
			match:     []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team-x"}, Processes: []string{"audit"}}},
			namespace: "team-x",
		},
		{
			name:      "excluded for the mutation webhook only",
			match:     []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team-x"}, Processes: []string{"mutation-webhook"}}},
			namespace: "team-x",
		},
		{
			name:      "an entry without processes excludes nothing",
			match:     []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team-x"}}},
			namespace: "team-x",
		},
		{
			name: "entries for different processes are kept apart",
			match: []configv1alpha1.MatchEntry{
				{ExcludedNamespaces: []string{"team-x"}, Processes: []string{"audit"}},
				{ExcludedNamespaces: []string{"team-y"}, Processes: []string{"webhook"}},
			},
			namespace: "team-x",
		},
		{
			name:       "prefix glob",
			match:      []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"kube-*"}, Processes: []string{"webhook"}}},
			namespace:  "kube-system",
			wantExempt: true,
		},
		{
			name:      "prefix glob anchored at the start",
			match:     []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"kube-*"}, Processes: []string{"webhook"}}},
			namespace: "my-kube-system",
		},
		{
			name:       "suffix glob",
			match:      []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"*-system"}, Processes: []string{"webhook"}}},
			namespace:  "istio-system",
			wantExempt: true,
		},
		{
			name:      "suffix glob anchored at the end",
			match:     []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"*-system"}, Processes: []string{"webhook"}}},
			namespace: "istio-system-2",
		},
		{
			name:      "exact name does not match a longer one",
			match:     []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"team"}, Processes: []string{"webhook"}}},
			namespace: "team-x",
		},
		{
			name:      "no Config match entries",
			namespace: "team-x",
		},
		{
			name:            "an excluded namespace's own object",
			match:           []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"kube-*"}, Processes: []string{"webhook"}}},
			namespace:       "kube-extra",
			namespaceObject: true,
			wantExempt:      true,
		},
		{
			name:            "a Namespace that is not excluded",
			match:           []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{"kube-*"}, Processes: []string{"webhook"}}},
			namespace:       "team-x",
			namespaceObject: true,
		},
		{
			name:       "own namespace excluded for audit only",
			match:      []configv1alpha1.MatchEntry{{ExcludedNamespaces: []string{ownNamespace}, Processes: []string{"audit"}}},
			namespace:  ownNamespace,
			wantExempt: true,
		},
	}
	scheme := runtime.NewScheme()
	if err := configv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			exemptions := &admission.Exemptions{Own: ownNamespace}
			cfg := &configv1alpha1.Config{
				ObjectMeta: metav1.ObjectMeta{Name: configv1alpha1.ConfigName, Namespace: ownNamespace},
				Spec:       configv1alpha1.ConfigSpec{Match: tc.match},
			}
			r := &controllers.ConfigReconciler{
				Client:     fake.NewClientBuilder().WithScheme(scheme).WithObjects(cfg).Build(),
				Exemptions: exemptions,
				Tracker:    controllers.NewTracker(),
				Namespace:  ownNamespace,
				Log:        logr.Discard(),
			}
			key := types.NamespacedName{Namespace: ownNamespace, Name: configv1alpha1.ConfigName}
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
				t.Fatalf("reconciling the Config: %v", err)
			}

			metrics := admission.NewMetrics(prometheus.NewRegistry())
			v := buildValidator(t, admission.ValidatorConfig{Exemptions: exemptions, Metrics: metrics},
				denyAllTemplate, denyAllConstraint)
			req, kind := podCreate(tc.namespace), "Pod"
			if tc.namespaceObject {
				req, kind = namespaceCreate(tc.namespace), "Namespace"
			}
			resp := v.Handle(ctx, req)

			wantDecision, wantEvaluations, wantMsg := admission.DecisionDeny, uint64(1), "[deny-all] evaluated"
			if tc.wantExempt {
				wantDecision, wantEvaluations, wantMsg = admission.DecisionExempt, 0, fmt.Sprintf("namespace %q is exempt", tc.namespace)
			}
			if resp.Allowed != tc.wantExempt {
				t.Errorf("allowed = %v, want %v (%+v)", resp.Allowed, tc.wantExempt, resp.Result)
			}
			if resp.Result == nil || resp.Result.Message != wantMsg {
				t.Errorf("result = %+v, want message %q", resp.Result, wantMsg)
			}
			if n := evaluations(t, metrics); n != wantEvaluations {
				t.Errorf("engine evaluations = %d, want %d", n, wantEvaluations)
			}
			if n := counter(t, metrics, "CREATE", kind, wantDecision); n != 1 {
				t.Errorf("requests recorded as %q: %v, want 1", wantDecision, n)
			}
		})
	}
}
