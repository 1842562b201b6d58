package scan

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TrimWorkload is a cache transform that keeps, of an Argo Workflow or a
// Tekton PipelineRun, only what ObserveWorkload reads: identity, the
// images (with the names of the templates, tasks and containers that hold
// them) and the image pull secret names. A running workflow's status
// (every node) and its templates' commands, scripts and arguments are the
// bulk of it and are never read. Other objects pass unchanged, so it can
// be the cache's default transform: it then applies only to the kinds
// whose informers get started, once their CRDs exist. Keep it in step
// with images.OfWorkflow and images.OfPipelineRun.
func TrimWorkload(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	switch u.GroupVersionKind().GroupKind() {
	case WorkflowGVK.GroupKind():
		return trimmed(u, map[string]any{
			"spec": map[string]any{
				"templates":        each(u.Object["spec"], trimTemplate, "templates"),
				"imagePullSecrets": each(u.Object["spec"], keep("name"), "imagePullSecrets"),
			},
			"status": map[string]any{"storedWorkflowTemplateSpec": map[string]any{
				"templates": each(u.Object["status"], trimTemplate, "storedWorkflowTemplateSpec", "templates"),
			}},
		}), nil
	case PipelineRunGVK.GroupKind():
		spec, _ := u.Object["spec"].(map[string]any)
		status, _ := u.Object["status"].(map[string]any)
		return trimmed(u, map[string]any{
			"spec": map[string]any{
				"pipelineSpec": trimPipelineSpec(spec["pipelineSpec"]),
				"taskRunTemplate": map[string]any{"podTemplate": map[string]any{
					"imagePullSecrets": each(spec, keep("name"), "taskRunTemplate", "podTemplate", "imagePullSecrets"),
				}},
				"podTemplate": map[string]any{"imagePullSecrets": each(spec, keep("name"), "podTemplate", "imagePullSecrets")},
			},
			"status": map[string]any{"pipelineSpec": trimPipelineSpec(status["pipelineSpec"])},
		}), nil
	}
	return obj, nil
}

// trimmed is u's identity with the given content, less its empty parts:
// a field that was absent must stay absent, not become null.
func trimmed(u *unstructured.Unstructured, content map[string]any) *unstructured.Unstructured {
	out := &unstructured.Unstructured{Object: prune(content)}
	out.SetAPIVersion(u.GetAPIVersion())
	out.SetKind(u.GetKind())
	out.SetNamespace(u.GetNamespace())
	out.SetName(u.GetName())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	// GenerationChangedPredicate compares it.
	out.SetGeneration(u.GetGeneration())
	out.SetDeletionTimestamp(u.GetDeletionTimestamp())
	return out
}

// trimTemplate keeps an Argo template's name and the images of its
// container, script, container set, init containers and sidecars.
func trimTemplate(t any) any {
	tm, _ := t.(map[string]any)
	out := keep("name")(tm).(map[string]any)
	for _, k := range []string{"container", "script"} {
		out[k] = keep("image")(tm[k])
	}
	out["containerSet"] = map[string]any{"containers": each(tm, keep("name", "image"), "containerSet", "containers")}
	for _, k := range []string{"initContainers", "sidecars"} {
		out[k] = each(tm, keep("name", "image"), k)
	}
	return out
}

// trimPipelineSpec keeps the names of a Tekton pipeline's tasks and the
// images of their steps, sidecars and step template.
func trimPipelineSpec(ps any) any {
	task := func(t any) any {
		tm, _ := t.(map[string]any)
		out := keep("name")(tm).(map[string]any)
		ts, _ := tm["taskSpec"].(map[string]any)
		out["taskSpec"] = map[string]any{
			"steps":        each(ts, keep("name", "image"), "steps"),
			"sidecars":     each(ts, keep("name", "image"), "sidecars"),
			"stepTemplate": keep("image")(ts["stepTemplate"]),
		}
		return out
	}
	return map[string]any{"tasks": each(ps, task, "tasks"), "finally": each(ps, task, "finally")}
}

// keep returns a function copying the named fields of a map; anything
// else gives an empty map.
func keep(fields ...string) func(any) any {
	return func(v any) any {
		m, _ := v.(map[string]any)
		out := map[string]any{}
		for _, f := range fields {
			if x, ok := m[f]; ok {
				out[f] = x
			}
		}
		return out
	}
}

// each applies f to every item of the list at path under v, or gives nil
// when there is no list there.
func each(v any, f func(any) any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	l, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]any, len(l))
	for i, x := range l {
		out[i] = f(x)
	}
	return out
}

// prune drops nil values and the maps left empty by dropping them.
func prune(m map[string]any) map[string]any {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			if len(prune(x)) == 0 {
				delete(m, k)
			}
		case []any:
			for _, item := range x {
				if im, ok := item.(map[string]any); ok {
					prune(im)
				}
			}
		}
	}
	return m
}
