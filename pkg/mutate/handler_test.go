package mutate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

type namespaces map[string]*corev1.Namespace

func (n namespaces) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return n[name], nil
}

func TestHandler_Ladder(t *testing.T) {
	gpuRaw := encode(t, gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil))
	mirror := gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil)
	mirror.Annotations = map[string]string{MirrorPodAnnotation: "abc"}
	for _, tc := range []struct {
		name    string
		req     func() admission.Request
		allowed bool
		patched bool
		code    int32
		result  string
	}{
		{name: "a GPU pod is patched", req: func() admission.Request { return createRequest(gpuRaw, "bob-jones") }, allowed: true, patched: true, result: ResultPatched},
		{name: "UPDATE is not mutated", req: func() admission.Request {
			r := createRequest(gpuRaw, "bob-jones")
			r.Operation = admissionv1.Update
			return r
		}, allowed: true, result: ResultSkipped},
		{name: "other kinds are not mutated", req: func() admission.Request {
			r := createRequest(gpuRaw, "bob-jones")
			r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
			return r
		}, allowed: true, result: ResultSkipped},
		{name: "subresources are not mutated", req: func() admission.Request {
			r := createRequest(gpuRaw, "bob-jones")
			r.SubResource = "ephemeralcontainers"
			return r
		}, allowed: true, result: ResultSkipped},
		{name: "the webhook's own namespace is not mutated", req: func() admission.Request { return createRequest(gpuRaw, "daaas-guard") }, allowed: true, result: ResultSkipped},
		{name: "mirror pods are not mutated", req: func() admission.Request { return createRequest(encode(t, mirror), "bob-jones") }, allowed: true, result: ResultSkipped},
		{name: "a pod without containers is not mutated", req: func() admission.Request { return createRequest([]byte(`{"metadata":{"name":"x"}}`), "bob-jones") }, allowed: true, result: ResultSkipped},
		{name: "undecodable pods are a bad request", req: func() admission.Request {
			return createRequest([]byte(`{"spec":{"containers":"main"}}`), "bob-jones")
		}, code: 400, result: ResultError},
		{name: "a pod that needs nothing is unchanged", req: func() admission.Request {
			return createRequest(encode(t, gpuPod(nil, nil, nil)), "bob-jones")
		}, allowed: true, result: ResultUnchanged},
		{name: "an invalid annotation is denied", req: func() admission.Request {
			return createRequest(encode(t, plainVaultPod("vault.hashicorp.com/agent-inject", "maybe")), "shiny")
		}, code: 403, result: ResultDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, nil)
			resp := h.Handle(context.Background(), tc.req())
			if resp.Allowed != tc.allowed || (len(resp.Patch) > 0) != tc.patched {
				t.Fatalf("allowed=%v patch=%s result=%+v", resp.Allowed, resp.Patch, resp.Result)
			}
			if tc.code != 0 && resp.Result.Code != tc.code {
				t.Errorf("code %d, want %d (%s)", resp.Result.Code, tc.code, resp.Result.Message)
			}
			if got := testutil.ToFloat64(h.cfg.Metrics.Requests.WithLabelValues(tc.result)); got != 1 {
				t.Errorf("requests{result=%s} = %v", tc.result, got)
			}
		})
	}
}

func TestHandler_PatchResponse(t *testing.T) {
	h := newHandler(t, nil)
	pod := argoVaultPod()
	pod.Spec.Containers[1].Resources.Limits = gpus("nvidia.com/gpu", "1")
	resp := h.Handle(context.Background(), createRequest(encode(t, pod), "bob-jones"))
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v", resp.PatchType)
	}
	if resp.AuditAnnotations["mutators"] != "gpu,vault" {
		t.Errorf("audit annotations %v", resp.AuditAnnotations)
	}
	var ops []map[string]any
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, op := range ops {
		if _, ok := op["value"]; !ok {
			t.Errorf("operation without a value: %v", op)
		}
		paths = append(paths, op["path"].(string))
	}
	if last := paths[len(paths)-1]; last != "/metadata/annotations/vault.hashicorp.com~1agent-inject-status" {
		t.Errorf("the status is not written last, escaped: %s", last)
	}
	if paths[0] != "/spec/tolerations" {
		t.Errorf("tolerations are not created as a list: %v", paths)
	}
	// The response survives controller-runtime's completion, which would
	// re-encode Patches if there were any.
	if err := resp.Complete(createRequest(nil, "")); err != nil || len(resp.Patch) == 0 {
		t.Errorf("Complete: %v, patch %s", err, resp.Patch)
	}
	for _, name := range []string{"gpu", "vault"} {
		if got := testutil.ToFloat64(h.cfg.Metrics.Mutations.WithLabelValues(name)); got != 1 {
			t.Errorf("mutations{mutator=%s} = %v", name, got)
		}
	}
}

func TestHandler_NamespaceSelector(t *testing.T) {
	cfg, err := NewConfig(&v1alpha1.MutationConfigSpec{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, cfg)
	h.cfg.Namespaces = namespaces{
		"bob-jones": {ObjectMeta: metav1.ObjectMeta{Name: "bob-jones", Labels: map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"}}},
		"sandbox":   {ObjectMeta: metav1.ObjectMeta{Name: "sandbox"}},
	}
	raw := encode(t, gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil))
	for ns, want := range map[string]bool{"bob-jones": true, "sandbox": false, "unknown": false} {
		resp := h.Handle(context.Background(), createRequest(raw, ns))
		if got := len(resp.Patch) > 0; got != want || !resp.Allowed {
			t.Errorf("%s: patched=%v allowed=%v, want patched=%v", ns, got, resp.Allowed, want)
		}
	}
}

func TestHandler_SetConfigSwaps(t *testing.T) {
	h := newHandler(t, nil)
	raw := encode(t, gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil))
	if resp := h.Handle(context.Background(), createRequest(raw, "bob-jones")); len(resp.Patch) == 0 {
		t.Fatal("default configuration did not patch")
	}
	off, err := NewConfig(&v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{Enabled: ptr(false)}})
	if err != nil {
		t.Fatal(err)
	}
	h.SetConfig(off)
	if h.Config() != off {
		t.Error("Config does not return the new configuration")
	}
	if resp := h.Handle(context.Background(), createRequest(raw, "bob-jones")); len(resp.Patch) != 0 {
		t.Errorf("disabled GPU mutation patched: %s", resp.Patch)
	}
}

// FuzzHandler feeds arbitrary pods to the handler, with one annotation
// set to an arbitrary value (the vault.hashicorp.com/ annotations are the
// handler's most varied input). Whatever the pod, the handler answers
// without panicking, a patch it returns applies to the request as the API
// server applies it, and a second run on the result changes nothing.
func FuzzHandler(f *testing.F) {
	seeds := []struct {
		pod        *corev1.Pod
		key, value string
	}{
		{gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil), "", ""},
		{gpuPod(nil, gpus("amd.com/gpu", "1"), gpus("nvidia.com/gpu", "1"), notReady), "vault.hashicorp.com/agent-inject", "true"},
		{argoVaultPod(), "vault.hashicorp.com/agent-pre-populate", "false"},
		{notebookVaultPod(), "vault.hashicorp.com/agent-run-as-same-user", "true"},
		{plainVaultPod("vault.hashicorp.com/agent-init-first", "true"), "vault.hashicorp.com/agent-limits-cpu", "100m"},
		{plainVaultPod("vault.hashicorp.com/agent-cache-enable", "true"), "vault.hashicorp.com/agent-share-process-namespace", "false"},
		{plainVaultPod(), "vault.hashicorp.com/agent-json-patch", `[{"op":"add","path":"/env/-","value":{"name":"X","value":""}}]`},
		{plainVaultPod(), "vault.hashicorp.com/agent-inject-template-a/b~c", "{{ .Data }}"},
	}
	for _, s := range seeds {
		f.Add(encode(f, s.pod), s.key, s.value)
	}
	f.Add([]byte(`{"metadata":null,"spec":{"tolerations":null,"containers":[{"name":"m","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}`), "", "")
	f.Add([]byte(`{"metadata":{"annotations":{"vault.hashicorp.com/agent-inject":"true"}},"spec":{"containers":[null,{"name":"a"}],"initContainers":[]}}`), "", "")
	f.Add([]byte(`{"Metadata":{"annotations":{"vault.hashicorp.com/agent-inject":"true"}},"spec":{"containers":[{"name":"a"}]}}`), "", "")
	f.Add([]byte(`{"metadata":{"annotations":{"vault.hashicorp.com/agent-inject":"1"}},"spec":{"volumes":[],"containers":[{"name":"a","volumeMounts":null}]}}`),
		"vault.hashicorp.com/agent-inject-secret-a~b/c", "kv/x")
	cfg, err := NewConfig(&v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{NodeAffinity: []corev1.NodeSelectorRequirement{
		{Key: "agentpool", Operator: corev1.NodeSelectorOpIn, Values: []string{"gpu"}}}}})
	if err != nil {
		f.Fatal(err)
	}
	h := newHandler(f, cfg)
	f.Fuzz(func(t *testing.T, data []byte, key, value string) {
		// The API server sends a JSON object without duplicate keys; any
		// such object is fair, whatever its fields.
		var obj map[string]any
		if err := json.Unmarshal(data, &obj); err != nil {
			return
		}
		if meta, ok := obj["metadata"].(map[string]any); ok && key != "" {
			ann, ok := meta["annotations"].(map[string]any)
			if !ok {
				ann = map[string]any{}
				meta["annotations"] = ann
			}
			ann[key] = value
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			return
		}
		resp := h.Handle(context.Background(), createRequest(raw, "fuzz"))
		if !resp.Allowed {
			if resp.Result == nil || resp.Result.Message == "" {
				t.Fatal("refused without a reason")
			}
			if len(resp.Patch) > 0 {
				t.Fatal("refused with a patch")
			}
			return
		}
		out := apply(t, raw, resp)
		again := h.Handle(context.Background(), createRequest(out, "fuzz"))
		if !again.Allowed || len(again.Patch) > 0 {
			t.Fatalf("second run: allowed=%v patch=%s result=%+v\nfirst patch: %s\npod: %s", again.Allowed, again.Patch, again.Result, resp.Patch, raw)
		}
		if strings.Contains(string(resp.Patch), `"op":"remove"`) {
			t.Fatal("a mutator removed something")
		}
	})
}
