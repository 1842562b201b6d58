package scan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// ObservePod asks for verdicts on every image pod runs. A container that
// ran gives its digest through the runtime's imageID; otherwise the tag is
// resolved with the pod's pull secrets.
func (s *Scheduler) ObservePod(ctx context.Context, pod *corev1.Pod) error {
	secrets := secretRefs(pod.Namespace, pod.Spec.ImagePullSecrets)
	prio := s.cfg.PodPriority(pod)
	var errs []error
	seen := map[string]bool{}
	for _, c := range images.OfPod(pod) {
		key := c.Image + "\x00" + c.ImageID
		if seen[key] {
			continue
		}
		seen[key] = true
		if err := s.observeImage(ctx, c.Image, c.ImageID, secrets, prio); err != nil {
			errs = append(errs, fmt.Errorf("pod %s/%s container %s: %w", pod.Namespace, pod.Name, c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ObserveWorkload asks for verdicts on the images of an Argo Workflow or a
// Tekton PipelineRun, at high priority: pipeline pods follow.
func (s *Scheduler) ObserveWorkload(ctx context.Context, u *unstructured.Unstructured) error {
	var cs []images.Container
	var pullSecrets []any
	switch u.GetKind() {
	case "Workflow":
		cs = images.OfWorkflow(u.Object)
		pullSecrets, _, _ = unstructured.NestedSlice(u.Object, "spec", "imagePullSecrets")
	case "PipelineRun":
		cs = images.OfPipelineRun(u.Object)
		// tekton.dev/v1 spec.taskRunTemplate.podTemplate; v1beta1 spec.podTemplate.
		pullSecrets, _, _ = unstructured.NestedSlice(u.Object, "spec", "taskRunTemplate", "podTemplate", "imagePullSecrets")
		if pullSecrets == nil {
			pullSecrets, _, _ = unstructured.NestedSlice(u.Object, "spec", "podTemplate", "imagePullSecrets")
		}
	default:
		return fmt.Errorf("%s %s/%s: not a Workflow or PipelineRun", u.GetKind(), u.GetNamespace(), u.GetName())
	}
	var refs []corev1.LocalObjectReference
	for _, p := range pullSecrets {
		if m, ok := p.(map[string]any); ok {
			if n, _ := m["name"].(string); n != "" {
				refs = append(refs, corev1.LocalObjectReference{Name: n})
			}
		}
	}
	secrets := secretRefs(u.GetNamespace(), refs)
	var errs []error
	for _, c := range cs {
		if err := s.observeImage(ctx, c.Image, "", secrets, PriorityHigh); err != nil {
			errs = append(errs, fmt.Errorf("%s %s/%s %s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), c.Name, err))
		}
	}
	return errors.Join(errs...)
}

func secretRefs(namespace string, refs []corev1.LocalObjectReference) []v1alpha1.SecretReference {
	var out []v1alpha1.SecretReference
	for _, r := range refs {
		if r.Name != "" && len(out) < v1alpha1.MaxImageScanPullSecrets {
			out = append(out, v1alpha1.SecretReference{Namespace: namespace, Name: r.Name})
		}
	}
	return out
}

// observeImage asks for a verdict on one image. A digest the runtime
// recorded says what a pod ran, not what its tag names now, so only a
// registry's answer moves a tag to a digest (old pods would otherwise pull
// a moved tag back).
func (s *Scheduler) observeImage(ctx context.Context, image, imageID string, secrets []v1alpha1.SecretReference, prio Priority) error {
	ref, err := images.Parse(image)
	if err != nil {
		s.log.V(1).Info("skipping an image that cannot be parsed", "image", image, "reason", err.Error())
		return nil // the spec will not change; retrying would not help
	}
	j := Job{Repository: ref.Repository, PullSecrets: secrets, Priority: prio}
	switch d, ok := images.DigestOf(imageID); {
	case ref.Digest != "":
		j.Digest = ref.Digest
	case ok:
		j.Digest = d.Digest
	default:
		if j.Digest, err = s.Resolve(ctx, ref, secrets); err != nil {
			return err
		}
		j.Tags = []string{ref.TagName()}
	}
	s.sawInUse(j.Digest)
	_, err = s.Want(ctx, j)
	return err
}

// normalizeTag writes a tag reference in the canonical form tags are
// stored and looked up in; unparsable ones are kept as they are.
func normalizeTag(t string) string {
	r, err := images.Parse(t)
	if err != nil || r.Tag == "" {
		return strings.TrimSpace(t)
	}
	return r.TagName()
}

// normalizeRepository writes a repository ("alpine", "docker.io/library/x")
// in canonical form; unparsable ones are kept as they are.
func normalizeRepository(repo, digest string) string {
	r, err := images.Parse(repo + "@" + digest)
	if err != nil {
		return repo
	}
	return r.Repository
}
