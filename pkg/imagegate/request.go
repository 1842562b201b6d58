package imagegate

import (
	"context"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/pkg/pipeline"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// ReviewRequest reviews an admission request if it creates or changes the
// images of a pipeline run: a pipeline pod (pkg/pipeline), an Argo
// Workflow or a Tekton PipelineRun. Every image counts, the engine's
// included (Argo's wait and init, Tekton's init containers, KFP's
// launcher): they run in the user's namespace with the user's data too.
// An UPDATE is reviewed only when it adds an image, and an UPDATE of
// pods/ephemeralcontainers only for the ephemeral containers it adds.
// Anything else (DELETE, other subresources) passes untouched. ns is the request's namespace (nil when not
// cached). known, when set, is the labels and annotations of the request's
// object as the caller already parsed them: a pod they do not make a
// pipeline pod passes without being decoded again (that decode was 5% of
// the webhook's CPU per notebook pod created).
//
// deniedElsewhere tells that the caller denies the request whatever its
// images (a constraint did): no scan is requested then, since the pod
// could not run even once its images were scanned.
//
// admitted, when not nil, records the use of the exceptions that let the
// request's images through; the caller calls it once, and only if its final
// answer admits the request. It is nil on a dry run, which must leave no
// trace, and a dry run requests no scan either.
func (g *Gate) ReviewRequest(_ context.Context, req admission.Request, ns *corev1.Namespace, known *metav1.ObjectMeta, deniedElsewhere bool) (denies, warnings []string, admitted func()) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update || len(req.Object.Raw) == 0 {
		return nil, nil, nil
	}
	isPod := req.Kind.Group == "" && req.Kind.Kind == "Pod"
	// The API server refuses ephemeral containers on CREATE and ignores
	// them on a plain UPDATE: this subresource, whose object is the whole
	// pod, is the only way they arrive. No other subresource adds images.
	ephemeral := isPod && req.Operation == admissionv1.Update && req.SubResource == "ephemeralcontainers"
	if req.SubResource != "" && !ephemeral {
		return nil, nil, nil
	}
	var cs, old []images.Container
	var err error
	switch {
	case isPod:
		if known != nil && !pipeline.Classify(&corev1.Pod{ObjectMeta: *known}).IsPipeline() {
			return nil, nil, nil
		}
		if ephemeral {
			cs, err = addedEphemeralImages(req.Object.Raw, req.OldObject.Raw)
			break
		}
		cs, err = podImages(req.Object.Raw, known == nil) // known has classified it already
		if err == nil && req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
			old, _ = podImages(req.OldObject.Raw, false)
		}
	case req.Kind.Group == "argoproj.io" && req.Kind.Kind == "Workflow",
		req.Kind.Group == "tekton.dev" && req.Kind.Kind == "PipelineRun":
		cs, err = workloadImages(req.Kind.Kind, req.Object.Raw)
		if err == nil && req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
			old, _ = workloadImages(req.Kind.Kind, req.OldObject.Raw)
		}
	default:
		return nil, nil, nil
	}
	if err != nil {
		return []string{fmt.Sprintf("%s %s %s/%s: %v", Source, req.Kind.Kind, req.Namespace, req.Name, err)}, nil, nil
	}
	if len(old) > 0 {
		cs = slices.DeleteFunc(cs, func(c images.Container) bool {
			return slices.ContainsFunc(old, func(o images.Container) bool { return o.Image == c.Image })
		})
	}
	if len(cs) == 0 {
		return nil, nil, nil
	}
	s := Subject{Object: fmt.Sprintf("%s %s/%s", req.Kind.Kind, req.Namespace, req.Name), Namespace: req.Namespace, Containers: cs,
		DryRun: req.DryRun != nil && *req.DryRun, DeniedElsewhere: deniedElsewhere}
	if ns != nil {
		s.NamespaceLabels = ns.Labels
	}
	r := g.Review(s)
	if len(r.Used) > 0 && !s.DryRun && g.cfg.Usage != nil {
		admitted = func() {
			for _, name := range r.Used {
				g.cfg.Usage.Used(name)
			}
		}
	}
	return r.Denies, r.Warnings, admitted
}

// podFields is the part of a pod the gate reads: decoding only it costs a
// fraction of decoding a whole corev1.Pod, on every pod admission.
type podFields struct {
	Metadata struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		InitContainers      []nameImage `json:"initContainers"`
		Containers          []nameImage `json:"containers"`
		EphemeralContainers []nameImage `json:"ephemeralContainers"`
	} `json:"spec"`
}

type nameImage struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// podImages lists the images of a pipeline pod (none for other pods).
// pipelineOnly=false lists them for any pod (the old object of an update).
func podImages(raw []byte, pipelineOnly bool) ([]images.Container, error) {
	pod, err := decodePod(raw)
	if err != nil {
		return nil, err
	}
	if pipelineOnly && !pipeline.Classify(pod).IsPipeline() {
		return nil, nil
	}
	return images.OfPod(pod), nil
}

// addedEphemeralImages lists the ephemeral containers of a pipeline pod
// (none for other pods) that oldRaw does not have. They are matched by
// name: the API server never lets one be changed or removed, so a name
// already there is the same container sent again.
func addedEphemeralImages(raw, oldRaw []byte) ([]images.Container, error) {
	pod, err := decodePod(raw)
	if err != nil {
		return nil, err
	}
	if !pipeline.Classify(pod).IsPipeline() {
		return nil, nil
	}
	var had []string
	if len(oldRaw) > 0 {
		// An old pod that cannot be read hides nothing: every ephemeral
		// container is then judged.
		if old, err := decodePod(oldRaw); err == nil {
			for _, c := range old.Spec.EphemeralContainers {
				had = append(had, c.Name)
			}
		}
	}
	var cs []images.Container
	for _, c := range pod.Spec.EphemeralContainers {
		if !slices.Contains(had, c.Name) {
			cs = append(cs, images.Container{Name: c.Name, Image: c.Image})
		}
	}
	return cs, nil
}

// decodePod reads the metadata and container images of a pod.
func decodePod(raw []byte) (*corev1.Pod, error) {
	var f podFields
	// json/v2 matches field names exactly, as the API server does, and
	// skips the rest of the pod in 0.7x the time of encoding/json.
	if err := jsonv2.Unmarshal(raw, &f, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)); err != nil {
		return nil, fmt.Errorf("decoding the pod: %w", err)
	}
	pod := &corev1.Pod{}
	pod.Labels, pod.Annotations = f.Metadata.Labels, f.Metadata.Annotations
	for _, c := range f.Spec.InitContainers {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range f.Spec.Containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range f.Spec.EphemeralContainers {
		pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers,
			corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image}})
	}
	return pod, nil
}

// workloadImages lists the images of every template, task and step.
func workloadImages(kind string, raw []byte) ([]images.Container, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", kind, err)
	}
	return images.OfWorkload(kind, u.Object), nil
}
