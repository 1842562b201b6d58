package mutate

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func configRequest(t *testing.T, raw string, op admissionv1.Operation) admission.Request {
	t.Helper()
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Kind:      metav1.GroupVersionKind{Group: "guard.statcan.gc.ca", Version: "v1alpha1", Kind: "MutationConfig"},
		Name:      "default",
		Operation: op,
		Object:    runtime.RawExtension{Raw: []byte(raw)},
	}}
}

func TestConfigGuard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		op      admissionv1.Operation
		allowed bool
		want    string
	}{
		{name: "valid", raw: `{"metadata":{"name":"default"},"spec":{"gpu":{"resources":["nvidia.com/gpu"]}}}`, op: admissionv1.Create, allowed: true},
		{name: "every invalid field named", op: admissionv1.Update,
			raw:  `{"metadata":{"name":"default"},"spec":{"gpu":{"resources":["gpu"]},"vault":{"resources":{"requests":{"memory":"1Gi"},"limits":{"memory":"128Mi"}}}}}`,
			want: `MutationConfig "default": [spec.gpu.resources[0]: Invalid value: "gpu": must be an extended resource name with a domain, e.g. nvidia.com/gpu, spec.vault.resources.requests[memory]: Invalid value: "1Gi": must not exceed limits.memory (128Mi)]`},
		{name: "undecodable", op: admissionv1.Create, raw: `{"spec":{"gpu":[]}}`, want: `decoding MutationConfig "default"`},
		{name: "delete", op: admissionv1.Delete, raw: ``, allowed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ConfigGuard{}.Handle(context.Background(), configRequest(t, tc.raw, tc.op))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v: %+v", resp.Allowed, resp.Result)
			}
			if tc.want != "" && !strings.Contains(resp.Result.Message, tc.want) {
				t.Errorf("message %q\nwant %q", resp.Result.Message, tc.want)
			}
		})
	}
}

// TestSampleMutationConfig keeps the documented sample true: it spells out
// exactly the defaults.
func TestSampleMutationConfig(t *testing.T) {
	raw := readPod(t, "../../manifests/samples/mutationconfig.yaml")
	obj := &v1alpha1.MutationConfig{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, obj); err != nil {
		t.Fatal(err)
	}
	if strict, err := sigsjson.UnmarshalStrict(raw, &v1alpha1.MutationConfig{}); err != nil || len(strict) > 0 {
		t.Fatalf("unknown or duplicate fields: %v %v", strict, err)
	}
	got, err := NewConfig(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if resp := (ConfigGuard{}).Handle(context.Background(), configRequest(t, string(raw), admissionv1.Create)); !resp.Allowed {
		t.Errorf("the sample is rejected: %s", resp.Result.Message)
	}
	if got.NamespaceSelector == nil || !got.NamespaceSelector.Empty() {
		t.Errorf("selector %v", got.NamespaceSelector)
	}
	got.NamespaceSelector = nil
	if d := cmp.Diff(DefaultConfig(), got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b labels.Selector) bool { return a == nil && b == nil })); d != "" {
		t.Errorf("the sample differs from the defaults (-default +sample):\n%s", d)
	}
}
