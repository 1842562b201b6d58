package mutate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

var (
	dedicatedGPU = corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	nvidiaExists = corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	amdExists    = corev1.Toleration{Key: "amd.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	notReady     = corev1.Toleration{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))}
)

func ptr[T any](v T) *T { return &v }

func gpuPod(requests, limits, initRequests corev1.ResourceList, tolerations ...corev1.Toleration) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: "bob-jones", Labels: map[string]string{"workflows.argoproj.io/workflow": "wf"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Name: "wait", Image: "argoexec"},
				{Name: "main", Image: "train", Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}},
			},
			Tolerations: tolerations,
		},
	}
	if initRequests != nil {
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "argoexec", Resources: corev1.ResourceRequirements{Requests: initRequests}}}
	}
	return p
}

func gpus(name string, n string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceName(name): resource.MustParse(n), corev1.ResourceCPU: resource.MustParse("1")}
}

func TestGPU(t *testing.T) {
	tests := []struct {
		name string
		cfg  *v1alpha1.GPUMutation
		pod  *corev1.Pod
		want []corev1.Toleration // the pod's tolerations after mutation
	}{
		{
			name: "GPU request without tolerations: both default tolerations, patch creates the list",
			pod:  gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil),
			want: []corev1.Toleration{dedicatedGPU, nvidiaExists},
		},
		{
			name: "GPU request after the API server's default tolerations: appended",
			pod:  gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil, notReady),
			want: []corev1.Toleration{notReady, dedicatedGPU, nvidiaExists},
		},
		{
			name: "limits only count (requests are defaulted from limits after admission)",
			pod:  gpuPod(nil, gpus("nvidia.com/gpu", "2"), nil),
			want: []corev1.Toleration{dedicatedGPU, nvidiaExists},
		},
		{
			name: "an init container's GPU counts",
			pod:  gpuPod(nil, nil, gpus("amd.com/gpu", "1")),
			want: []corev1.Toleration{dedicatedGPU, amdExists},
		},
		{
			name: "both vendors: one toleration per resource, in configuration order",
			pod:  gpuPod(gpus("amd.com/gpu", "1"), gpus("nvidia.com/gpu", "1"), nil),
			want: []corev1.Toleration{dedicatedGPU, nvidiaExists, amdExists},
		},
		{
			name: "zero GPUs is no GPU",
			pod:  gpuPod(gpus("nvidia.com/gpu", "0"), nil, nil, notReady),
			want: []corev1.Toleration{notReady},
		},
		{
			name: "no GPU resource",
			pod:  gpuPod(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}, nil, nil),
			want: nil,
		},
		{
			name: "the user's own dedicated=gpu and an Exists toleration cover ours",
			pod: gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil,
				corev1.Toleration{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}, // no operator means Equal
				corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}),          // every effect
			want: []corev1.Toleration{
				{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
				{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists},
			},
		},
		{
			name: "an empty key with Exists tolerates everything",
			pod:  gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil, corev1.Toleration{Operator: corev1.TolerationOpExists}),
			want: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		},
		{
			name: "another value or effect does not cover",
			pod: gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil,
				corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "cpu", Effect: corev1.TaintEffectNoSchedule},
				corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "present", Effect: corev1.TaintEffectNoSchedule},
				corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule}),
			want: []corev1.Toleration{
				{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "cpu", Effect: corev1.TaintEffectNoSchedule},
				{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "present", Effect: corev1.TaintEffectNoSchedule},
				{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule},
				dedicatedGPU, nvidiaExists,
			},
		},
		{
			name: "configured resources, AKS sku taint, no ExtendedResourceToleration form",
			cfg: &v1alpha1.GPUMutation{
				Resources:           []string{"gpu.intel.com/i915"},
				Tolerations:         []corev1.Toleration{{Key: "sku", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}},
				ResourceTolerations: ptr(false),
			},
			pod:  gpuPod(gpus("gpu.intel.com/i915", "1"), nil, nil),
			want: []corev1.Toleration{{Key: "sku", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}},
		},
		{
			name: "nvidia is not a GPU resource when the configuration lists others",
			cfg:  &v1alpha1.GPUMutation{Resources: []string{"amd.com/gpu"}},
			pod:  gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil),
			want: nil,
		},
		{
			name: "disabled",
			cfg:  &v1alpha1.GPUMutation{Enabled: ptr(false)},
			pod:  gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil),
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := NewConfig(&v1alpha1.MutationConfigSpec{GPU: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			resp, out := mutate(t, newHandler(t, cfg), encode(t, tc.pod), "bob-jones")
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			got := decodePod(t, out)
			if d := cmp.Diff(tc.want, got.Spec.Tolerations); d != "" {
				t.Errorf("tolerations (-want +got):\n%s\npatch: %s", d, resp.Patch)
			}
			if d := cmp.Diff(tc.pod.Spec.Containers, got.Spec.Containers); d != "" {
				t.Errorf("containers changed:\n%s", d)
			}
		})
	}
}

func TestGPU_NodeAffinity(t *testing.T) {
	pool := corev1.NodeSelectorRequirement{Key: "agentpool", Operator: corev1.NodeSelectorOpIn, Values: []string{"gpu-nc6", "gpu-nc24"}}
	cfg, err := NewConfig(&v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{NodeAffinity: []corev1.NodeSelectorRequirement{pool}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, cfg)
	zone := corev1.NodeSelectorRequirement{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"canadacentral-1"}}
	for _, tc := range []struct {
		name     string
		affinity *corev1.Affinity
		want     []corev1.NodeSelectorTerm
	}{
		{name: "no affinity", want: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{pool}}}},
		{
			name: "the user's zone requirement is kept and ANDed with the pool",
			affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{zone}}}}}},
			want: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{zone, pool}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil)
			pod.Spec.Affinity = tc.affinity
			_, out := mutate(t, h, encode(t, pod), "bob-jones")
			got := decodePod(t, out).Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("terms (-want +got):\n%s", d)
			}
		})
	}
	// Off by default.
	_, out := mutate(t, newHandler(t, nil), encode(t, gpuPod(gpus("nvidia.com/gpu", "1"), nil, nil)), "bob-jones")
	if a := decodePod(t, out).Spec.Affinity; a != nil {
		t.Errorf("default configuration set affinity %+v", a)
	}
}

func TestCovers(t *testing.T) {
	noExec := corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	for _, tc := range []struct {
		name string
		h, w corev1.Toleration
		want bool
	}{
		{"same", dedicatedGPU, dedicatedGPU, true},
		{"Exists covers Equal", corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, dedicatedGPU, true},
		{"Equal does not cover Exists", corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoSchedule}, nvidiaExists, false},
		{"empty effect covers every effect", corev1.Toleration{Key: "dedicated", Value: "gpu"}, dedicatedGPU, true},
		{"a specific effect does not cover all effects", dedicatedGPU, corev1.Toleration{Key: "dedicated", Value: "gpu"}, false},
		{"bounded NoExecute does not cover unbounded", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(60))}, noExec, false},
		{"unbounded covers bounded", noExec, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(60))}, true},
		{"empty key without Exists covers nothing", corev1.Toleration{}, dedicatedGPU, false},
		{"unknown operator covers nothing", corev1.Toleration{Key: "dedicated", Operator: "Gt", Value: "gpu"}, dedicatedGPU, false},
	} {
		if got := covers(tc.h, tc.w); got != tc.want {
			t.Errorf("%s: covers = %v, want %v", tc.name, got, tc.want)
		}
	}
}
