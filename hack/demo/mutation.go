package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/localenv"
)

// gpuNamespace is the inventory's GPU-enabled Kubeflow profile.
const gpuNamespace = "bob-jones"

// pipelineRunner creates the service account KFP runs steps under, as the
// profile controller would.
func pipelineRunner(ctx context.Context, c client.Client) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pipeline-runner", Namespace: gpuNamespace}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// gpuStep is the profile's KFP step moved to the GPU-enabled profile, its
// main container asking for a GPU.
func gpuStep(workloads string) (*corev1.Pod, error) {
	u, err := readObject(filepath.Join(workloads, "admitted", "pipeline-kfp.yaml"), "Pod")
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, pod); err != nil {
		return nil, err
	}
	pod.Namespace = gpuNamespace
	for i := range pod.Spec.Containers {
		if c := &pod.Spec.Containers[i]; c.Name == "main" {
			if c.Resources.Limits == nil {
				c.Resources.Limits = corev1.ResourceList{}
			}
			c.Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
			return pod, nil
		}
	}
	return nil, fmt.Errorf("pipeline-kfp.yaml: no container main")
}

// waitMutating waits until the API server calls the mutating webhook: a
// dry-run GPU step comes back with tolerations added. The GPU webhook
// fails open, so without the wait an early pod would go through unchanged.
func waitMutating(ctx context.Context, c client.Client, workloads string) error {
	if err := pipelineRunner(ctx, c); err != nil {
		return err
	}
	return localenv.WaitFor(ctx, time.Minute, func() error {
		pod, err := gpuStep(workloads)
		if err != nil {
			return localenv.Permanent(err)
		}
		pod.Name = "probe-gpu"
		if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
			return err
		}
		if !hasToleration(pod, "dedicated", "gpu") {
			return fmt.Errorf("the GPU step came back without the GPU tolerations")
		}
		return nil
	})
}

func hasToleration(pod *corev1.Pod, key, value string) bool {
	for _, t := range pod.Spec.Tolerations {
		if t.Key == key && t.Value == value {
			return true
		}
	}
	return false
}

func tolerationLines(pod *corev1.Pod) string {
	var b strings.Builder
	for _, t := range pod.Spec.Tolerations {
		fmt.Fprintf(&b, "- key=%s operator=%s", t.Key, t.Operator)
		if t.Value != "" {
			fmt.Fprintf(&b, " value=%s", t.Value)
		}
		fmt.Fprintf(&b, " effect=%s", t.Effect)
		if t.TolerationSeconds != nil {
			fmt.Fprintf(&b, " for %ds", *t.TolerationSeconds)
		}
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func stepGPUPipeline(ctx context.Context, out *output, s *stack, workloads string) error {
	out.step("A GPU pipeline step is admitted, with the GPU node pools' tolerations added")
	pod, err := gpuStep(workloads)
	if err != nil {
		return err
	}
	out.say("Argo creates KFP step %s/%s; its main container asks for nvidia.com/gpu: 1 and it has no tolerations", pod.Namespace, pod.Name)
	if err := s.env.Client.Create(ctx, pod); err != nil {
		out.quote(err.Error())
		return out.fail("the GPU step was not admitted")
	}
	out.say("as stored by the API server, after our mutating webhook and the API server's own defaults:")
	out.quote(tolerationLines(pod))
	if !hasToleration(pod, "dedicated", "gpu") || !hasToleration(pod, "nvidia.com/gpu", "") {
		return out.fail("the GPU tolerations were not added")
	}
	out.ok("admitted with tolerations dedicated=gpu:NoSchedule and nvidia.com/gpu:NoSchedule")
	return nil
}

func stepVaultPipeline(ctx context.Context, out *output, s *stack, workloads string) error {
	out.step("A pipeline step that asks Vault for a secret gets the init-only Vault agent")
	u, err := readObject(filepath.Join(workloads, "mutation", "pipeline.yaml"), "Pod")
	if err != nil {
		return err
	}
	var annotations []string
	for k, v := range u.GetAnnotations() {
		if strings.HasPrefix(k, "vault.hashicorp.com/") && !strings.Contains(v, "\n") {
			annotations = append(annotations, k+": "+v)
		}
	}
	out.say("Argo creates step %s/%s with vault-k8s annotations only:", u.GetNamespace(), u.GetName())
	out.quote(strings.Join(slices.Sorted(slices.Values(annotations)), "\n"))
	if err := s.env.Client.Create(ctx, u); err != nil {
		out.quote(err.Error())
		return out.fail("the Vault step was not admitted")
	}
	pod := &corev1.Pod{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, pod); err != nil {
		return err
	}
	var inits, sidecars []string
	for _, c := range pod.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		sidecars = append(sidecars, c.Name)
	}
	out.quote(fmt.Sprintf("initContainers: %s\ncontainers: %s\nvault.hashicorp.com/agent-inject-status: %s",
		strings.Join(inits, ", "), strings.Join(sidecars, ", "), pod.Annotations["vault.hashicorp.com/agent-inject-status"]))
	if !slices.Contains(inits, "vault-agent-init") || slices.Contains(sidecars, "vault-agent") ||
		pod.Annotations["vault.hashicorp.com/agent-inject-status"] != "injected" {
		return out.fail("the step did not get exactly the init-only agent")
	}
	out.ok("mutated (an init container renders the secret to /vault/secrets, no sidecar to keep the step running) and admitted by the profile")

	out.step("An invalid Vault annotation is refused, naming it")
	bad, err := readObject(filepath.Join(workloads, "mutation", "pipeline.yaml"), "Pod")
	if err != nil {
		return err
	}
	bad.SetName(u.GetName() + "-typo")
	a := bad.GetAnnotations()
	a["vault.hashicorp.com/agent-limits-cpu"] = "lots"
	bad.SetAnnotations(a)
	err = s.env.Client.Create(ctx, bad)
	if err == nil {
		return out.fail("a pod with agent-limits-cpu: lots was admitted")
	}
	out.quote(err.Error())
	if !strings.Contains(err.Error(), "vault.hashicorp.com/agent-limits-cpu") {
		return out.fail("the denial does not name the annotation")
	}
	out.ok("denied: the annotation is named, nothing is silently skipped")
	return nil
}
