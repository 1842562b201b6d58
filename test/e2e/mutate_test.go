package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/mutate"
)

const argoexec = "k8scc01covidacr.azurecr.io/argoproj/argoexec:v3.4.17@sha256:58f9bd37599d7f758527dc660e14827ccacd1ce7ff3454423e9cbe12a380b6b0"

// pipelinePod is an Argo/KFP v2 step pod, as the workflow controller
// creates it.
func pipelinePod(ns, name string, gpu bool, annotations map[string]string) *corev1.Pod {
	main := corev1.Container{
		Name:  "main",
		Image: "k8scc01covidacr.azurecr.io/aaw/train@sha256:3699b4edef765e10d02ea939056e9f5cff4fb7376e210259ac4614a1ed5bf847",
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}},
	}
	if gpu {
		main.Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{
				"workflows.argoproj.io/workflow":      "train-x7k2p",
				"pipeline/runid":                      "6f1c3d7e-2b9a-4c55-9e0d-8a7b41f2c3d9",
				"pipelines.kubeflow.org/v2_component": "true",
			},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "pipeline-runner",
			AutomountServiceAccountToken: ptr(false),
			RestartPolicy:                corev1.RestartPolicyNever,
			InitContainers:               []corev1.Container{{Name: "init", Image: argoexec}},
			Containers:                   []corev1.Container{{Name: "wait", Image: argoexec}, main},
		},
	}
}

func vaultAnnotations() map[string]string {
	return map[string]string{
		"vault.hashicorp.com/agent-inject":                       "true",
		"vault.hashicorp.com/agent-inject-secret-minio-standard": "minio_standard/keys/profile-bob-jones",
	}
}

func notebookPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"notebook-name": "analysis"},
			Annotations: vaultAnnotations(),
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "default-editor",
			AutomountServiceAccountToken: ptr(false),
			Containers:                   []corev1.Container{{Name: "analysis", Image: "k8scc01covidacr.azurecr.io/jupyterlab-cpu:v2024.06.1"}},
		},
	}
}

func containerNames(cs []corev1.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

// count tells how many tolerations equal t.
func count(ts []corev1.Toleration, t corev1.Toleration) int {
	n := 0
	for _, x := range ts {
		if x.Key == t.Key && x.Operator == t.Operator && x.Value == t.Value && x.Effect == t.Effect {
			n++
		}
	}
	return n
}

var (
	dedicatedGPU = corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	nvidiaGPU    = corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
)

// checkPipelineMutated checks a GPU and Vault pipeline pod after admission:
// one copy of every toleration, volume, mount and agent.
func checkPipelineMutated(t *testing.T, got *corev1.Pod) {
	t.Helper()
	for _, tol := range []corev1.Toleration{dedicatedGPU, nvidiaGPU} {
		if n := count(got.Spec.Tolerations, tol); n != 1 {
			t.Errorf("%d copies of toleration %s=%s:%s; tolerations: %+v", n, tol.Key, tol.Value, tol.Effect, got.Spec.Tolerations)
		}
	}
	if names := containerNames(got.Spec.InitContainers); names != "init,vault-agent-init" {
		t.Errorf("init containers %s, want init,vault-agent-init", names)
	}
	if strings.Contains(containerNames(got.Spec.Containers), "vault-agent") {
		t.Errorf("a pipeline pod got the sidecar: %s", containerNames(got.Spec.Containers))
	}
	volumes := map[string]int{}
	for _, v := range got.Spec.Volumes {
		volumes[v.Name]++
	}
	for _, name := range []string{"vault-secrets", "home-init", "vault-token"} {
		if volumes[name] != 1 {
			t.Errorf("%d volumes named %s", volumes[name], name)
		}
	}
	for _, c := range got.Spec.Containers {
		n := 0
		for _, m := range c.VolumeMounts {
			if m.Name == "vault-secrets" {
				n++
			}
		}
		if want := map[string]int{"main": 1}[c.Name]; n != want {
			t.Errorf("container %s mounts the secrets %d times, want %d", c.Name, n, want)
		}
	}
	if got.Annotations[mutate.AnnotationAgentInjectStatus] != mutate.StatusInjected {
		t.Errorf("annotations %v", got.Annotations)
	}
}

// metricValue reads one series from the webhook's /metrics.
func (c *cluster) metricValue(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestMutation drives the mutating webhook through the real API server.
// It runs before TestWebhook, which stops the webhook at its end.
func TestMutation(t *testing.T) {
	c := startCluster(t)
	if c.stopped {
		t.Fatal("the webhook was stopped by an earlier test")
	}
	ctx := context.Background()
	user, warns := c.userClient(t)
	namespace(t, c.client, "bob-jones", map[string]string{"statcan.gc.ca/gpu-enabled": "true"})
	namespace(t, c.client, "alice", map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"})

	t.Run("a GPU pipeline pod gets its tolerations", func(t *testing.T) {
		p := pipelinePod("bob-jones", "gpu-step", true, nil)
		if err := user.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, tol := range []corev1.Toleration{dedicatedGPU, nvidiaGPU} {
			if n := count(p.Spec.Tolerations, tol); n != 1 {
				t.Errorf("%d copies of %s; tolerations %+v", n, tol.Key, p.Spec.Tolerations)
			}
		}
		// The API server's DefaultTolerationSeconds ran before us: its
		// tolerations are kept, ours come after.
		if len(p.Spec.Tolerations) != 4 || p.Spec.Tolerations[0].Key != "node.kubernetes.io/not-ready" {
			t.Errorf("tolerations %+v", p.Spec.Tolerations)
		}
	})

	t.Run("a pod without a GPU is left alone", func(t *testing.T) {
		p := pipelinePod("bob-jones", "cpu-step", false, nil)
		if err := user.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.Tolerations) != 2 || len(p.Spec.InitContainers) != 1 {
			t.Errorf("changed: tolerations %+v, init containers %s", p.Spec.Tolerations, containerNames(p.Spec.InitContainers))
		}
	})

	t.Run("an annotated pipeline pod gets init-only Vault", func(t *testing.T) {
		p := pipelinePod("bob-jones", "vault-step", true, vaultAnnotations())
		if err := user.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		checkPipelineMutated(t, p)
		agent := p.Spec.InitContainers[1]
		if agent.Image != mutate.DefaultVaultImage || agent.SecurityContext == nil || !*agent.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("agent %+v", agent)
		}
	})

	t.Run("a notebook gets the sidecar", func(t *testing.T) {
		p := notebookPod("alice", "analysis-0")
		if err := user.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if names := containerNames(p.Spec.Containers); names != "analysis,vault-agent" {
			t.Errorf("containers %s", names)
		}
		if len(p.Spec.InitContainers) != 0 {
			t.Errorf("init containers %s", containerNames(p.Spec.InitContainers))
		}
		if len(p.Spec.Containers[0].VolumeMounts) != 1 || p.Spec.Containers[0].VolumeMounts[0].MountPath != "/vault/secrets" {
			t.Errorf("notebook mounts %+v", p.Spec.Containers[0].VolumeMounts)
		}
	})

	t.Run("server-side dry-run create is mutated and stores nothing", func(t *testing.T) {
		p := pipelinePod("bob-jones", "dry-step", true, vaultAnnotations())
		if err := user.Create(ctx, p, client.DryRunAll); err != nil {
			t.Fatalf("dry-run create: %v", err)
		}
		checkPipelineMutated(t, p)
		err := c.client.Get(ctx, client.ObjectKey{Namespace: "bob-jones", Name: "dry-step"}, &corev1.Pod{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("dry-run pod stored: %v", err)
		}
	})

	t.Run("an invalid Vault annotation is denied, naming it", func(t *testing.T) {
		a := vaultAnnotations()
		a["vault.hashicorp.com/agent-limits-cpu"] = "half"
		err := user.Create(ctx, pipelinePod("bob-jones", "bad-vault", false, a))
		for _, want := range []string{`admission webhook "vault.mutate.guard.statcan.gc.ca" denied the request`,
			`pod bob-jones/bad-vault: Vault agent injection: annotation vault.hashicorp.com/agent-limits-cpu: "half" is not a resource quantity`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v lacks %q", err, want)
			}
		}
	})

	t.Run("a misspelt Vault annotation comes back as a warning", func(t *testing.T) {
		a := vaultAnnotations()
		a["vault.hashicorp.com/agent-limit-cpu"] = "100m"
		warns.take()
		if err := user.Create(ctx, pipelinePod("bob-jones", "typo", false, a)); err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(warns.take(), "\n"); !strings.Contains(w, "vault.hashicorp.com/agent-limit-cpu is not a Vault agent annotation") {
			t.Errorf("warnings %q", w)
		}
	})

	t.Run("with a second mutating webhook registered, reinvocation leaves one copy of everything", func(t *testing.T) {
		namespace(t, c.client, "reinvoke", nil)
		var calls atomic.Int32
		sidecar := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			injectSidecar(t, w, r)
		}))
		defer sidecar.Close()
		caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sidecar.Certificate().Raw})
		// Named to sort after daaas-guard-mutating: the API server calls
		// configurations in name order, so this one changes the pod after
		// us and we are called again.
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "zz-e2e-sidecar-injector"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:                    "sidecar.e2e.example.com",
				AdmissionReviewVersions: []string{"v1"},
				SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
				FailurePolicy:           ptr(admissionregistrationv1.Fail),
				ReinvocationPolicy:      ptr(admissionregistrationv1.IfNeededReinvocationPolicy),
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr(sidecar.URL + "/mutate"), CABundle: caBundle},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "reinvoke"}},
			}},
		}
		if err := c.client.Create(ctx, mwc); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.client.Delete(ctx, mwc) }()
		unchanged := `daaas_guard_mutation_requests_total{result="unchanged"}`
		before := c.metricValue(t, unchanged)
		var p *corev1.Pod
		eventually(t, 10*time.Second, func() error { // until the API server has picked the configuration up
			p = pipelinePod("reinvoke", fmt.Sprintf("step-%d", time.Now().UnixNano()), true, vaultAnnotations())
			if err := user.Create(ctx, p); err != nil {
				return err
			}
			if calls.Load() == 0 {
				return fmt.Errorf("the second webhook was not called yet")
			}
			return nil
		})
		if names := containerNames(p.Spec.Containers); names != "wait,main,istio-proxy" {
			t.Errorf("containers %s", names)
		}
		checkPipelineMutated(t, p)
		if after := c.metricValue(t, unchanged); after <= before {
			t.Errorf("%s went from %v to %v: the webhook was not called again after the second webhook's change", unchanged, before, after)
		}
	})

	t.Run("the webhook's own namespace is not mutated", func(t *testing.T) {
		p := pipelinePod(guardNamespace, "own", true, vaultAnnotations())
		if err := c.client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.Tolerations) != 2 || len(p.Spec.InitContainers) != 1 {
			t.Errorf("mutated: tolerations %+v, init containers %s", p.Spec.Tolerations, containerNames(p.Spec.InitContainers))
		}
	})

	t.Run("bad MutationConfig values are rejected at admission, with a clear message", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			mc   *guardv1alpha1.MutationConfig
			want []string
		}{
			{
				name: "quantities the schema cannot compare (validating webhook)",
				mc: &guardv1alpha1.MutationConfig{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: guardv1alpha1.MutationConfigSpec{
					Vault: &guardv1alpha1.VaultMutation{Resources: &corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}},
				want: []string{`admission webhook "mutationconfig.guard.statcan.gc.ca" denied the request`,
					`MutationConfig "default": spec.vault.resources.requests[cpu]: Invalid value: "2": must not exceed limits.cpu (500m)`},
			},
			{
				name: "a toleration rule (validating webhook)",
				mc: &guardv1alpha1.MutationConfig{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: guardv1alpha1.MutationConfigSpec{
					GPU: &guardv1alpha1.GPUMutation{Resources: []string{"gpu"}}}},
				want: []string{`spec.gpu.resources[0]: Invalid value: "gpu": must be an extended resource name with a domain`},
			},
			{
				name: "an address (CRD schema)",
				mc: &guardv1alpha1.MutationConfig{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: guardv1alpha1.MutationConfigSpec{
					Vault: &guardv1alpha1.VaultMutation{Address: "ftp://vault"}}},
				want: []string{`spec.vault.address: Invalid value: "ftp://vault": must be an http or https URL with a host`},
			},
			{
				name: "another name (CRD schema)",
				mc:   &guardv1alpha1.MutationConfig{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}},
				want: []string{`the webhook reads only the MutationConfig named default`},
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := user.Create(ctx, tc.mc)
				if err == nil {
					_ = c.client.Delete(ctx, tc.mc)
					t.Fatal("admitted")
				}
				for _, want := range tc.want {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
			})
		}
	})

	t.Run("a MutationConfig applies without a restart, and its deletion restores the defaults", func(t *testing.T) {
		sku := corev1.Toleration{Key: "sku", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
		mc := &guardv1alpha1.MutationConfig{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: guardv1alpha1.MutationConfigSpec{
			GPU: &guardv1alpha1.GPUMutation{Tolerations: []corev1.Toleration{sku}, ResourceTolerations: ptr(false)}}}
		if err := user.Create(ctx, mc); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.client.Delete(ctx, mc) }()
		eventually(t, 5*time.Second, func() error {
			p := pipelinePod("bob-jones", fmt.Sprintf("sku-%d", time.Now().UnixNano()), true, nil)
			if err := user.Create(ctx, p); err != nil {
				return err
			}
			if count(p.Spec.Tolerations, sku) != 1 || count(p.Spec.Tolerations, dedicatedGPU) != 0 || count(p.Spec.Tolerations, nvidiaGPU) != 0 {
				return fmt.Errorf("tolerations %+v", p.Spec.Tolerations)
			}
			return nil
		})
		eventually(t, 5*time.Second, func() error {
			got := &guardv1alpha1.MutationConfig{}
			if err := c.client.Get(ctx, client.ObjectKey{Name: "default"}, got); err != nil {
				return err
			}
			ready := meta.FindStatusCondition(got.Status.Conditions, "Ready")
			if ready == nil || ready.Status != metav1.ConditionTrue || got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("status %+v", got.Status)
			}
			return nil
		})
		if err := c.client.Delete(ctx, mc); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() error {
			p := pipelinePod("bob-jones", fmt.Sprintf("back-%d", time.Now().UnixNano()), true, nil)
			if err := user.Create(ctx, p); err != nil {
				return err
			}
			if count(p.Spec.Tolerations, dedicatedGPU) != 1 || count(p.Spec.Tolerations, sku) != 0 {
				return fmt.Errorf("tolerations %+v", p.Spec.Tolerations)
			}
			return nil
		})
	})

	t.Run("metrics are exposed", func(t *testing.T) {
		for _, series := range []string{
			`daaas_guard_mutation_requests_total{result="patched"}`,
			`daaas_guard_mutation_requests_total{result="denied"}`,
			`daaas_guard_mutations_total{mutator="gpu"}`,
			`daaas_guard_mutations_total{mutator="vault"}`,
		} {
			if c.metricValue(t, series) < 1 {
				t.Errorf("/metrics: %s is not above 0", series)
			}
		}
	})
}

// injectSidecar is a second mutating webhook, standing in for Istio's
// sidecar injector: it adds an istio-proxy container unless there is one.
func injectSidecar(t *testing.T, w http.ResponseWriter, r *http.Request) {
	review := &admissionv1.AdmissionReview{}
	if err := json.NewDecoder(r.Body).Decode(review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(review.Request.Object.Raw, pod); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	present := false
	for _, c := range pod.Spec.Containers {
		present = present || c.Name == "istio-proxy"
	}
	if !present {
		patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/containers/-",
			"value": corev1.Container{Name: "istio-proxy", Image: "k8scc01covidacr.azurecr.io/istio/proxyv2:1.22.3"}}})
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	review.Response, review.Request = resp, nil
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(review); err != nil {
		t.Errorf("answering the API server: %v", err)
	}
}
