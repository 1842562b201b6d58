package images

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Container is one image a workload runs.
type Container struct {
	// Name of the container (for Argo and Tekton: template or task, then
	// step, joined with "/").
	Name  string
	Image string
	// ImageID is the runtime's record of what it pulled, when the pod ran
	// (status.containerStatuses[].imageID); it carries the digest.
	ImageID string
}

// OfPod lists the images of a pod's init, regular and ephemeral
// containers, with the digests the runtime recorded for those that ran.
func OfPod(pod *corev1.Pod) []Container {
	ids := map[string]string{}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses,
		pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			ids[s.Name] = s.ImageID
		}
	}
	var out []Container
	for _, c := range pod.Spec.InitContainers {
		out = append(out, Container{Name: c.Name, Image: c.Image, ImageID: ids[c.Name]})
	}
	for _, c := range pod.Spec.Containers {
		out = append(out, Container{Name: c.Name, Image: c.Image, ImageID: ids[c.Name]})
	}
	for _, c := range pod.Spec.EphemeralContainers {
		out = append(out, Container{Name: c.Name, Image: c.Image, ImageID: ids[c.Name]})
	}
	return out
}

// DigestOf returns the digest in a runtime's imageID when it has one in
// the repository@sha256:... form. containerd and CRI-O write that form;
// some runtimes write only the image config ID ("sha256:..."), which is not
// what registries serve, so it is ignored.
func DigestOf(imageID string) (Ref, bool) {
	if !strings.Contains(imageID, "@sha256:") {
		return Ref{}, false
	}
	r, err := Parse(imageID)
	if err != nil || r.Digest == "" {
		return Ref{}, false
	}
	return r, true
}

// OfWorkload lists the images of an Argo Workflow or a Tekton PipelineRun
// by its kind, or none for another kind.
func OfWorkload(kind string, obj map[string]any) []Container {
	switch kind {
	case "Workflow":
		return OfWorkflow(obj)
	case "PipelineRun":
		return OfPipelineRun(obj)
	}
	return nil
}

// OfWorkflow lists the images of an Argo Workflow (argoproj.io/v1alpha1),
// given as unstructured content: every template's container, script,
// container set, init containers and sidecars, in spec.templates and in
// status.storedWorkflowTemplateSpec (where Argo keeps the templates of a
// referenced WorkflowTemplate).
func OfWorkflow(obj map[string]any) []Container {
	var out []Container
	for _, templates := range [][]any{slice(obj, "spec", "templates"),
		slice(obj, "status", "storedWorkflowTemplateSpec", "templates")} {
		for _, t := range templates {
			tm, _ := t.(map[string]any)
			tname, _ := tm["name"].(string)
			for _, key := range []string{"container", "script"} {
				if c, ok := tm[key].(map[string]any); ok {
					out = appendImage(out, tname+"/"+key, c)
				}
			}
			for _, c := range slice(tm, "containerSet", "containers") {
				out = appendNamed(out, tname, c)
			}
			for _, key := range []string{"initContainers", "sidecars"} {
				for _, c := range slice(tm, key) {
					out = appendNamed(out, tname, c)
				}
			}
		}
	}
	return dedup(out)
}

// OfPipelineRun lists the images of a Tekton PipelineRun (tekton.dev v1 or
// v1beta1) with an embedded pipeline: each task's and finally task's
// steps, sidecars and step template, in spec.pipelineSpec and in
// status.pipelineSpec (where Tekton records a resolved pipelineRef).
// Tasks given by taskRef are not resolved here; their pods are seen when
// they run.
func OfPipelineRun(obj map[string]any) []Container {
	var out []Container
	for _, ps := range [][]string{{"spec", "pipelineSpec"}, {"status", "pipelineSpec"}} {
		spec, _ := get(obj, ps...).(map[string]any)
		for _, key := range []string{"tasks", "finally"} {
			for _, t := range slice(spec, key) {
				tm, _ := t.(map[string]any)
				tname, _ := tm["name"].(string)
				ts, _ := tm["taskSpec"].(map[string]any)
				for _, k := range []string{"steps", "sidecars"} {
					for _, c := range slice(ts, k) {
						out = appendNamed(out, tname, c)
					}
				}
				if st, ok := ts["stepTemplate"].(map[string]any); ok {
					out = appendImage(out, tname+"/stepTemplate", st)
				}
			}
		}
	}
	return dedup(out)
}

func appendNamed(out []Container, prefix string, c any) []Container {
	cm, _ := c.(map[string]any)
	n, _ := cm["name"].(string)
	return appendImage(out, prefix+"/"+n, cm)
}

func appendImage(out []Container, name string, c map[string]any) []Container {
	if img, _ := c["image"].(string); img != "" {
		out = append(out, Container{Name: name, Image: img})
	}
	return out
}

func dedup(cs []Container) []Container {
	seen := map[string]bool{}
	out := cs[:0]
	for _, c := range cs {
		if !seen[c.Name+"\x00"+c.Image] {
			seen[c.Name+"\x00"+c.Image] = true
			out = append(out, c)
		}
	}
	return out
}

func get(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func slice(obj map[string]any, path ...string) []any {
	s, _ := get(obj, path...).([]any)
	return s
}
