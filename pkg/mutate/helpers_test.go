package mutate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

func newHandler(t testing.TB, cfg *Config) *Handler {
	t.Helper()
	h, err := NewHandler(HandlerConfig{Own: "daaas-guard", Metrics: NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		h.SetConfig(cfg)
	}
	return h
}

// createRequest is the review the API server sends for raw, a pod created
// in ns.
func createRequest(raw []byte, ns string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "u1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: "alice@statcan.gc.ca"},
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

// encode is the pod as the API server encodes it.
func encode(t testing.TB, pod *corev1.Pod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// readPod reads a YAML pod fixture as JSON.
func readPod(t testing.TB, path string) []byte {
	t.Helper()
	y, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func decodePod(t testing.TB, raw []byte) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return pod
}

// apply applies the response's patch to raw as the API server does.
func apply(t testing.TB, raw []byte, resp admission.Response) []byte {
	t.Helper()
	if len(resp.Patch) == 0 {
		return raw
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch without patch type JSONPatch: %v", resp.PatchType)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decoding patch %s: %v", resp.Patch, err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying patch %s to %s: %v", resp.Patch, raw, err)
	}
	return out
}

// mutate runs h on raw, applies the patch, checks that a second run on
// the result changes nothing, and returns the first response and the
// mutated pod.
func mutate(t testing.TB, h *Handler, raw []byte, ns string) (admission.Response, []byte) {
	t.Helper()
	resp := h.Handle(context.Background(), createRequest(raw, ns))
	if !resp.Allowed {
		return resp, raw
	}
	out := apply(t, raw, resp)
	again := h.Handle(context.Background(), createRequest(out, ns))
	if !again.Allowed || len(again.Patch) > 0 {
		t.Fatalf("second run on the mutated pod: allowed=%v patch=%s result=%+v", again.Allowed, again.Patch, again.Result)
	}
	return resp, out
}
