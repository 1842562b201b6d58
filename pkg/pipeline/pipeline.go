// Package pipeline recognises the pods of the platform's workloads: steps
// of pipeline runs (Argo Workflows, Kubeflow Pipelines v1 and v2, Tekton)
// and Kubeflow notebook servers. It tells which containers are the user's
// and which belong to the pipeline engine or to injected sidecars, so that
// the mutating webhook, the validating side and the scanner target the same
// containers. It reads labels, annotations and container names only.
package pipeline

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Kind is what a pod is to the platform.
type Kind string

// Kinds of pods.
const (
	KindOther    Kind = "other"
	KindPipeline Kind = "pipeline"
	KindNotebook Kind = "notebook"
)

// Engine is the system that created a pipeline pod.
type Engine string

// Engines, the most specific first: a KFP pod also carries Argo's or
// Tekton's labels and is reported as KFP.
const (
	EngineArgo   Engine = "argo"
	EngineKFPv1  Engine = "kfp-v1"
	EngineKFPv2  Engine = "kfp-v2"
	EngineTekton Engine = "tekton"
)

// Labels and annotations that identify pods. Sources: Argo's
// workflow/common/common.go, KFP's backend/src/common/util/consts.go and
// SDK compiler, Tekton's pkg/apis/pipeline/register.go, and the Kubeflow
// notebook controller's generateStatefulSet.
const (
	LabelArgoWorkflow      = "workflows.argoproj.io/workflow"
	LabelKFPRunID          = "pipeline/runid"
	LabelKFPSDKType        = "pipelines.kubeflow.org/pipeline-sdk-type"
	KeyKFPv2Component      = "pipelines.kubeflow.org/v2_component" // a label and an annotation
	LabelKFPCacheReused    = "pipelines.kubeflow.org/reused_from_cache"
	LabelTektonPipelineRun = "tekton.dev/pipelineRun"
	LabelTektonTaskRun     = "tekton.dev/taskRun"
	LabelNotebookName      = "notebook-name"
)

// Container names the engines use for their own containers.
const (
	ArgoMainContainer = "main"
	ArgoWaitContainer = "wait"
	ArgoInitContainer = "init"
	// KFPLauncherContainer copies the KFP v2 launcher into the pod.
	KFPLauncherContainer = "kfp-launcher"
	// TektonStepPrefix starts the name of every Tekton step container.
	TektonStepPrefix = "step-"
)

// injected lists sidecars that admission webhooks add to every kind of pod;
// they are never the user's.
var injected = map[string]bool{
	"istio-proxy":      true,
	"istio-init":       true,
	"istio-validation": true,
	"vault-agent":      true,
	"vault-agent-init": true,
}

// Info is what Classify found out about a pod.
type Info struct {
	Kind Kind
	// Engine is set for pipeline pods.
	Engine Engine
	// Run names the pipeline run (the KFP run ID when there is one, else
	// the Argo Workflow, Tekton PipelineRun or TaskRun) or, for a notebook
	// pod, the notebook.
	Run string
	// Containers and InitContainers name the user's containers, in pod
	// order: without the engine's own (Argo's wait and init, KFP's
	// launcher copier, every Tekton container but step-*) and without
	// injected sidecars (Istio, Vault agent). For other pods, every
	// container but injected sidecars.
	Containers     []string
	InitContainers []string
}

// IsPipeline reports whether the pod is a pipeline step.
func (i Info) IsPipeline() bool { return i.Kind == KindPipeline }

// IsUserContainer reports whether name is one of the user's containers or
// init containers.
func (i Info) IsUserContainer(name string) bool {
	for _, n := range i.Containers {
		if n == name {
			return true
		}
	}
	for _, n := range i.InitContainers {
		if n == name {
			return true
		}
	}
	return false
}

// Classify tells what pod is. It never fails: a pod it does not recognise
// is KindOther.
func Classify(pod *corev1.Pod) Info {
	labels, annotations := pod.Labels, pod.Annotations
	_, tekton := labels[LabelTektonPipelineRun]
	if _, ok := labels[LabelTektonTaskRun]; ok {
		tekton = true
	}
	_, argo := labels[LabelArgoWorkflow]
	_, kfpRun := labels[LabelKFPRunID]
	_, kfpSDK := labels[LabelKFPSDKType]
	kfpV2 := labels[KeyKFPv2Component] == "true" || annotations[KeyKFPv2Component] == "true"

	info := Info{Kind: KindPipeline}
	switch {
	case kfpV2:
		info.Engine = EngineKFPv2
	case kfpRun || kfpSDK:
		info.Engine = EngineKFPv1
	case tekton:
		info.Engine = EngineTekton
	case argo:
		info.Engine = EngineArgo
	default:
		info.Kind = KindOther
	}
	switch {
	case info.Kind == KindPipeline:
		info.Run = firstLabel(labels, LabelKFPRunID, LabelArgoWorkflow, LabelTektonPipelineRun, LabelTektonTaskRun)
		if tekton {
			info.Containers = names(pod.Spec.Containers, func(n string) bool { return strings.HasPrefix(n, TektonStepPrefix) })
			// Tekton's init containers (prepare, place-scripts,
			// working-dir-initializer) are all the engine's.
			return info
		}
		// Argo runs every KFP pod here; its template's own containers are
		// the user's, whatever their names.
		info.Containers = names(pod.Spec.Containers, func(n string) bool { return n != ArgoWaitContainer })
		info.InitContainers = names(pod.Spec.InitContainers, func(n string) bool {
			return n != ArgoInitContainer && n != KFPLauncherContainer
		})
		return info
	case labels[LabelNotebookName] != "":
		info.Kind, info.Run = KindNotebook, labels[LabelNotebookName]
	}
	info.Containers = names(pod.Spec.Containers, nil)
	info.InitContainers = names(pod.Spec.InitContainers, nil)
	return info
}

func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}

// names lists the containers that keep accepts, leaving out unnamed and
// injected ones.
func names(cs []corev1.Container, keep func(string) bool) []string {
	var out []string
	for _, c := range cs {
		if c.Name == "" || injected[c.Name] || (keep != nil && !keep(c.Name)) {
			continue
		}
		out = append(out, c.Name)
	}
	return out
}
