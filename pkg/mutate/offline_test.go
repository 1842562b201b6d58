package mutate

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// TestMutateJSON_AsTheWebhook checks that the offline path gives the pod
// the webhook's patch gives.
func TestMutateJSON_AsTheWebhook(t *testing.T) {
	for _, pod := range []*corev1.Pod{argoVaultPod(), notebookVaultPod(), gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil), gpuPod(nil, nil, nil)} {
		raw := encode(t, pod)
		res, err := MutateJSON(raw, pod.Namespace, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		resp := newHandler(t, nil).Handle(context.Background(), createRequest(raw, pod.Namespace))
		if d := cmp.Diff(decodePod(t, apply(t, raw, resp)), decodePod(t, res.Pod)); d != "" {
			t.Errorf("%s: offline result differs from the webhook's (-webhook +offline):\n%s", pod.Name, d)
		}
		if (len(res.Patch) > 0) != (len(resp.Patch) > 0) {
			t.Errorf("%s: offline patch %v, webhook patch %s", pod.Name, res.Patch, resp.Patch)
		}
	}
	if _, err := MutateJSON(encode(t, plainVaultPod("vault.hashicorp.com/agent-inject", "maybe")), "shiny", DefaultConfig()); err == nil {
		t.Error("an invalid annotation was not refused")
	} else if _, denied := IsDenial(err); !denied {
		t.Errorf("refusal is not a Denial: %v", err)
	}
	if _, err := MutateJSON([]byte(`{"spec":"x"}`), "a", DefaultConfig()); err == nil {
		t.Error("undecodable pod accepted")
	}
}
