package mutate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
)

const workloads = "../../policies/profiles/daaas/workloads/"

// benchMutation measures the mutating handler on one pod against decoding
// that pod alone, the step no handler can skip: benchratio reports the
// handler as a multiple of the decoding.
func benchMutation(b *testing.B, raw []byte, ns string, wantPatch bool) {
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &corev1.Pod{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("webhook", func(b *testing.B) {
		h := newHandler(b, nil)
		req := createRequest(raw, ns)
		ctx := context.Background()
		if resp := h.Handle(ctx, req); !resp.Allowed || (len(resp.Patch) > 0) != wantPatch {
			b.Fatalf("allowed=%v patch=%s", resp.Allowed, resp.Patch)
		}
		b.ReportAllocs()
		for b.Loop() {
			h.Handle(ctx, req)
		}
	})
}

// withoutVault is the pod without its vault.hashicorp.com/ annotations.
func withoutVault(b *testing.B, raw []byte) []byte {
	var pod map[string]any
	if err := json.Unmarshal(raw, &pod); err != nil {
		b.Fatal(err)
	}
	ann := pod["metadata"].(map[string]any)["annotations"].(map[string]any)
	for k := range ann {
		if strings.HasPrefix(k, VaultPrefix) {
			delete(ann, k)
		}
	}
	out, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkMutatePipelineGPUVault: a KFP GPU step asking for a Vault
// secret (tolerations and the init agent).
func BenchmarkMutatePipelineGPUVault(b *testing.B) {
	benchMutation(b, readPod(b, workloads+"mutation/pipeline.yaml"), "bob-jones", true)
}

// BenchmarkMutatePipelineGPU: the same step without Vault (tolerations
// only).
func BenchmarkMutatePipelineGPU(b *testing.B) {
	benchMutation(b, withoutVault(b, readPod(b, workloads+"mutation/pipeline.yaml")), "bob-jones", true)
}

// BenchmarkMutateNotebookVault: a notebook with Istio asking for a Vault
// secret (the sidecar).
func BenchmarkMutateNotebookVault(b *testing.B) {
	benchMutation(b, readPod(b, workloads+"mutation/notebook.yaml"), "alice", true)
}

// BenchmarkMutateUnchanged: a pipeline step with nothing to add, as most
// pods the webhook sees are.
func BenchmarkMutateUnchanged(b *testing.B) {
	benchMutation(b, readPod(b, workloads+"admitted/pipeline-kfp.yaml"), "alice", false)
}
