package pipeline

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(labels, annotations map[string]string, init []string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations}}
	for _, n := range init {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n})
	}
	return p
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want Info
	}{
		{
			name: "Argo step: wait and init are the engine's, wait comes first",
			pod:  pod(map[string]string{LabelArgoWorkflow: "wf-1"}, nil, []string{"init"}, "wait", "main"),
			want: Info{Kind: KindPipeline, Engine: EngineArgo, Run: "wf-1", Containers: []string{"main"}},
		},
		{
			name: "Argo step with the user's own init container and sidecar",
			pod:  pod(map[string]string{LabelArgoWorkflow: "wf-1"}, nil, []string{"init", "fetch"}, "wait", "main", "redis"),
			want: Info{Kind: KindPipeline, Engine: EngineArgo, Run: "wf-1", Containers: []string{"main", "redis"}, InitContainers: []string{"fetch"}},
		},
		{
			name: "KFP v1 on Argo is recognised by the run ID, which names the run",
			pod:  pod(map[string]string{LabelArgoWorkflow: "wf-1", LabelKFPRunID: "6f1c"}, nil, []string{"init"}, "wait", "main"),
			want: Info{Kind: KindPipeline, Engine: EngineKFPv1, Run: "6f1c", Containers: []string{"main"}},
		},
		{
			name: "KFP v1 recognised by the SDK type label",
			pod:  pod(map[string]string{LabelArgoWorkflow: "wf-1", LabelKFPSDKType: "kfp"}, nil, nil, "wait", "main"),
			want: Info{Kind: KindPipeline, Engine: EngineKFPv1, Run: "wf-1", Containers: []string{"main"}},
		},
		{
			name: "KFP v2 by label: the launcher copier is the engine's",
			pod: pod(map[string]string{LabelArgoWorkflow: "wf-2", KeyKFPv2Component: "true", LabelKFPRunID: "0c5e"}, nil,
				[]string{"init", "kfp-launcher"}, "wait", "main"),
			want: Info{Kind: KindPipeline, Engine: EngineKFPv2, Run: "0c5e", Containers: []string{"main"}},
		},
		{
			name: "KFP v2 by annotation only",
			pod:  pod(map[string]string{LabelArgoWorkflow: "wf-2"}, map[string]string{KeyKFPv2Component: "true"}, nil, "wait", "main"),
			want: Info{Kind: KindPipeline, Engine: EngineKFPv2, Run: "wf-2", Containers: []string{"main"}},
		},
		{
			name: "v2_component other than true is not KFP v2",
			pod:  pod(map[string]string{LabelArgoWorkflow: "wf-2", KeyKFPv2Component: "false"}, nil, nil, "wait", "main"),
			want: Info{Kind: KindPipeline, Engine: EngineArgo, Run: "wf-2", Containers: []string{"main"}},
		},
		{
			name: "Tekton PipelineRun: only step-* containers, no init containers",
			pod: pod(map[string]string{LabelTektonPipelineRun: "pr-1", LabelTektonTaskRun: "pr-1-build"}, nil,
				[]string{"prepare", "place-scripts"}, "step-build", "step-push", "sidecar-docker"),
			want: Info{Kind: KindPipeline, Engine: EngineTekton, Run: "pr-1", Containers: []string{"step-build", "step-push"}},
		},
		{
			name: "Tekton TaskRun alone names the run",
			pod:  pod(map[string]string{LabelTektonTaskRun: "tr-1"}, nil, nil, "step-a"),
			want: Info{Kind: KindPipeline, Engine: EngineTekton, Run: "tr-1", Containers: []string{"step-a"}},
		},
		{
			name: "KFP v2 on Tekton keeps Tekton's container naming",
			pod:  pod(map[string]string{LabelTektonTaskRun: "tr-2", KeyKFPv2Component: "true"}, nil, []string{"prepare"}, "step-main", "step-launcher-copy"),
			want: Info{Kind: KindPipeline, Engine: EngineKFPv2, Run: "tr-2", Containers: []string{"step-main", "step-launcher-copy"}},
		},
		{
			name: "notebook: injected Istio containers are not the user's",
			pod:  pod(map[string]string{LabelNotebookName: "analysis"}, nil, []string{"istio-validation"}, "analysis", "istio-proxy"),
			want: Info{Kind: KindNotebook, Run: "analysis", Containers: []string{"analysis"}},
		},
		{
			name: "other pod: every container but injected sidecars and unnamed ones",
			pod:  pod(map[string]string{"app": "web"}, nil, []string{"migrate", "vault-agent-init"}, "web", "", "vault-agent"),
			want: Info{Kind: KindOther, Containers: []string{"web"}, InitContainers: []string{"migrate"}},
		},
		{
			name: "an empty notebook-name label is not a notebook",
			pod:  pod(map[string]string{LabelNotebookName: ""}, nil, nil, "x"),
			want: Info{Kind: KindOther, Containers: []string{"x"}},
		},
		{
			name: "a pod without containers",
			pod:  &corev1.Pod{},
			want: Info{Kind: KindOther},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.pod)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Classify (-want +got):\n%s", d)
			}
		})
	}
}

func TestInfo_IsUserContainer(t *testing.T) {
	info := Classify(pod(map[string]string{LabelArgoWorkflow: "wf"}, nil, []string{"init", "fetch"}, "wait", "main"))
	for name, want := range map[string]bool{"main": true, "fetch": true, "wait": false, "init": false, "other": false} {
		if got := info.IsUserContainer(name); got != want {
			t.Errorf("IsUserContainer(%q) = %v, want %v", name, got, want)
		}
	}
	if !info.IsPipeline() {
		t.Error("an Argo pod is not a pipeline pod")
	}
}
