package mutate

import (
	"encoding/json"
	"fmt"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
)

// Result is what the mutators did to one pod.
type Result struct {
	// Pod is the mutated pod's JSON (the input when nothing changed).
	Pod []byte
	// Patch is the JSON patch the webhook would answer with.
	Patch    []Operation
	Mutators []string
	Warnings []string
}

// MutateJSON runs cfg's mutators on a pod's JSON, created in namespace, as
// the webhook would, and applies the patch as the API server would. It is
// for offline use (guardctl mutate, fixtures, benchmarks); the webhook
// answers with the patch alone. A pod the webhook would refuse returns a
// *Denial.
func MutateJSON(raw []byte, namespace string, cfg *Config) (*Result, error) {
	pod := &corev1.Pod{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, fmt.Errorf("decoding the pod: %w", err)
	}
	res := &Result{Pod: raw}
	if _, mirror := pod.Annotations[MirrorPodAnnotation]; mirror || (len(pod.Spec.Containers) == 0 && len(pod.Spec.InitContainers) == 0) {
		return res, nil
	}
	p := NewPod(pod, namespace)
	changed, err := Run(p, cfg.Mutators())
	res.Warnings = p.Warnings()
	if err != nil {
		return res, err
	}
	res.Mutators, res.Patch = changed, p.Patch()
	if len(res.Patch) == 0 {
		return res, nil
	}
	ops, err := json.Marshal(res.Patch)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, err
	}
	if res.Pod, err = patch.Apply(raw); err != nil {
		return nil, fmt.Errorf("applying the patch: %w", err)
	}
	return res, nil
}
