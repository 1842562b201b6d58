package imagegate

import (
	"context"
	"os"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

func policyRequest(raw string, op admissionv1.Operation) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Kind:      metav1.GroupVersionKind{Group: "guard.statcan.gc.ca", Version: "v1alpha1", Kind: "ImagePolicy"},
		Name:      "default",
		Operation: op,
		Object:    runtime.RawExtension{Raw: []byte(raw)},
	}}
}

func TestPolicyGuard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		op      admissionv1.Operation
		allowed bool
		want    []string
	}{
		{name: "valid", op: admissionv1.Create, allowed: true,
			raw: `{"metadata":{"name":"default"},"spec":{"unscanned":[{"namespaceSelector":{"matchExpressions":[{"key":"tier","operator":"In","values":["pb"]}]},"mode":"Deny"}]}}`},
		{name: "empty spec", op: admissionv1.Update, allowed: true, raw: `{"metadata":{"name":"default"}}`},
		{name: "In without values", op: admissionv1.Update,
			raw:  `{"metadata":{"name":"default"},"spec":{"unscanned":[{"namespaceSelector":{"matchExpressions":[{"key":"tier","operator":"In"}]},"mode":"Deny"}]}}`,
			want: []string{`ImagePolicy "default": spec.unscanned[0].namespaceSelector: values: `}},
		{name: "bad label key", op: admissionv1.Create,
			raw: `{"metadata":{"name":"default"},"spec":{"unscanned":[` +
				`{"namespaceSelector":{},"mode":"Warn"},` +
				`{"namespaceSelector":{"matchLabels":{"not a key!":"x"}},"mode":"Deny"}]}}`,
			want: []string{`ImagePolicy "default": spec.unscanned[1].namespaceSelector: `, `"not a key!"`}},
		{name: "every invalid field named on one line", op: admissionv1.Create,
			raw: `{"metadata":{"name":"default"},"spec":{"retryAfter":"-1s","unscanned":[` +
				`{"namespaceSelector":{"matchExpressions":[{"key":"tier","operator":"NotIn"}]},"mode":"Deny"}]}}`,
			want: []string{"spec.retryAfter: -1s must be positive; spec.unscanned[0].namespaceSelector: "}},
		{name: "scanRegistries entry without a registry host", op: admissionv1.Update,
			raw:  `{"metadata":{"name":"default"},"spec":{"scanRegistries":["registry.example.ca","team/etl"]}}`,
			want: []string{`ImagePolicy "default": spec.scanRegistries[1]: "team/etl" does not start with a registry host`}},
		{name: "undecodable", op: admissionv1.Create, raw: `{"spec":{"unscanned":{}}}`, want: []string{`decoding ImagePolicy "default"`}},
		{name: "delete", op: admissionv1.Delete, allowed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := PolicyGuard{}.Handle(context.Background(), policyRequest(tc.raw, tc.op))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v: %+v", resp.Allowed, resp.Result)
			}
			for _, want := range tc.want {
				if !strings.Contains(resp.Result.Message, want) {
					t.Errorf("message %q\nwant it to contain %q", resp.Result.Message, want)
				}
			}
			if strings.Contains(resp.Result.Message, "\n") {
				t.Errorf("message %q spans lines", resp.Result.Message)
			}
		})
	}
}

// TestPolicyGuard_AdmitsTheSample keeps the documented sample admissible.
func TestPolicyGuard_AdmitsTheSample(t *testing.T) {
	data, err := os.ReadFile("../../manifests/samples/imagepolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON([]byte(strings.SplitN(string(data), "\n---\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if resp := (PolicyGuard{}).Handle(context.Background(), policyRequest(string(raw), admissionv1.Create)); !resp.Allowed {
		t.Errorf("the sample is refused: %s", resp.Result.Message)
	}
}
