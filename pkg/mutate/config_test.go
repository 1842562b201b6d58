package mutate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.NamespaceSelector != nil {
		t.Error("the default selects namespaces")
	}
	if d := cmp.Diff([]corev1.ResourceName{"nvidia.com/gpu", "amd.com/gpu"}, cfg.GPU.Resources); d != "" {
		t.Errorf("GPU resources:\n%s", d)
	}
	if !cfg.GPU.Enabled || !cfg.GPU.ResourceTolerations || len(cfg.GPU.NodeAffinity) != 0 {
		t.Errorf("GPU %+v", cfg.GPU)
	}
	if d := cmp.Diff([]corev1.Toleration{dedicatedGPU}, cfg.GPU.Tolerations); d != "" {
		t.Errorf("tolerations:\n%s", d)
	}
	v := cfg.Vault
	if !v.Enabled || v.Image != DefaultVaultImage || v.Address != DefaultVaultAddress || v.RolePrefix != "profile-" ||
		v.Modes[kindPipeline] != v1alpha1.VaultInitOnly || v.Modes[kindNotebook] != v1alpha1.VaultSidecar || v.Modes[kindOther] != v1alpha1.VaultInitAndSidecar {
		t.Errorf("vault %+v", v)
	}
	if got := names2(cfg.Mutators()); got != "gpu,vault" {
		t.Errorf("mutators %s", got)
	}
}

func names2(ms []Mutator) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name())
	}
	return strings.Join(out, ",")
}

func TestNewConfig_Applies(t *testing.T) {
	spec := &v1alpha1.MutationConfigSpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"}},
		GPU:               &v1alpha1.GPUMutation{Enabled: ptr(false)},
		Vault: &v1alpha1.VaultMutation{
			Address: "http://vault.vault-system:8200", Image: "k8scc01covidacr.azurecr.io/hashicorp/vault:1.18.0", RolePrefix: ptr(""),
			Modes:     &v1alpha1.VaultModes{Notebook: v1alpha1.VaultInitAndSidecar},
			Resources: &corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("200m")}},
			RunAsUser: ptr(int64(2000)),
		},
	}
	cfg, err := NewConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NamespaceSelector.String() != "app.kubernetes.io/part-of=kubeflow-profile" {
		t.Errorf("selector %s", cfg.NamespaceSelector)
	}
	if got := names2(cfg.Mutators()); got != "vault" {
		t.Errorf("mutators %s", got)
	}
	v := cfg.Vault
	if v.Address != "http://vault.vault-system:8200" || v.RolePrefix != "" || v.RunAsUser != 2000 || v.RunAsGroup != 1000 ||
		v.Modes[kindNotebook] != v1alpha1.VaultInitAndSidecar || v.Modes[kindPipeline] != v1alpha1.VaultInitOnly || len(v.Resources.Requests) != 0 {
		t.Errorf("vault %+v", v)
	}
	none, err := NewConfig(&v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{Tolerations: []corev1.Toleration{}}})
	if err != nil || len(none.GPU.Tolerations) != 0 {
		t.Errorf("an empty toleration list: %v %v", none.GPU.Tolerations, err)
	}
}

func TestNewConfig_RejectsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec v1alpha1.MutationConfigSpec
		want []string
	}{
		{
			name: "GPU resources",
			spec: v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{Resources: []string{"gpu", "kubernetes.io/gpu", "nvidia.com/gpu", "nvidia.com/gpu", "a b/c"}}},
			want: []string{
				`spec.gpu.resources[0]: Invalid value: "gpu": must be an extended resource name with a domain`,
				`spec.gpu.resources[1]: Invalid value: "kubernetes.io/gpu": must be an extended resource, not a native one`,
				`spec.gpu.resources[3]: Duplicate value: "nvidia.com/gpu"`,
				`spec.gpu.resources[4]: Invalid value: "a b/c"`,
			},
		},
		{
			name: "tolerations",
			spec: v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{Tolerations: []corev1.Toleration{
				{Key: "dedicated", Operator: corev1.TolerationOpExists, Value: "gpu"},
				{Operator: corev1.TolerationOpEqual, Value: "x"},
				{Key: "k", Operator: "Near", Effect: "Sometimes"},
				{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr(int64(5))},
			}}},
			want: []string{
				`spec.gpu.tolerations[0].value: Invalid value: "gpu": must be empty when operator is Exists`,
				`spec.gpu.tolerations[1].operator: Invalid value: "Equal": must be Exists when key is empty`,
				`spec.gpu.tolerations[2].operator: Unsupported value: "Near"`,
				`spec.gpu.tolerations[2].effect: Unsupported value: "Sometimes"`,
				`spec.gpu.tolerations[3].tolerationSeconds: Invalid value: 5: applies only to effect NoExecute`,
			},
		},
		{
			name: "node affinity",
			spec: v1alpha1.MutationConfigSpec{GPU: &v1alpha1.GPUMutation{NodeAffinity: []corev1.NodeSelectorRequirement{
				{Key: "pool", Operator: corev1.NodeSelectorOpIn},
				{Key: "pool", Operator: corev1.NodeSelectorOpExists, Values: []string{"x"}},
			}}},
			want: []string{
				`spec.gpu.nodeAffinity[0].values: Required value: In and NotIn need at least one value`,
				`spec.gpu.nodeAffinity[1].values: Forbidden: Exists and DoesNotExist take no values`,
			},
		},
		{
			name: "vault",
			spec: v1alpha1.MutationConfigSpec{Vault: &v1alpha1.VaultMutation{
				Address: "vault.vault-system:8200", Image: "hashicorp/vault latest",
				Resources: &corev1.ResourceRequirements{
					Requests: corev1.ResourceList{"cpu": resource.MustParse("2"), "nvidia.com/gpu": resource.MustParse("1")},
					Limits:   corev1.ResourceList{"cpu": resource.MustParse("500m")},
				},
				RunAsUser: ptr(int64(0)), Modes: &v1alpha1.VaultModes{Pipeline: "Forever"}, TokenExpirationSeconds: ptr(int64(60)),
				LogLevel: "loud", TLSSecret: "Vault_CA", CACert: "ca.crt",
			}},
			want: []string{
				`spec.vault.address: Invalid value: "vault.vault-system:8200": must be an http or https URL`,
				`spec.vault.image: Invalid value: "hashicorp/vault latest": must not contain whitespace`,
				`spec.vault.resources.requests: Unsupported value: "nvidia.com/gpu"`,
				`spec.vault.resources.requests[cpu]: Invalid value: "2": must not exceed limits.cpu (500m)`,
				`spec.vault.runAsUser: Invalid value: 0: must be a non-root UID`,
				`spec.vault.modes.pipeline: Unsupported value: "Forever"`,
				`spec.vault.tokenExpirationSeconds: Invalid value: 60: must be between 600 and 86400`,
				`spec.vault.logLevel: Unsupported value: "loud"`,
				`spec.vault.tlsSecret: Invalid value: "Vault_CA"`,
				`spec.vault.caCert: Invalid value: "ca.crt": must be an absolute path`,
			},
		},
		{
			name: "namespace selector",
			spec: v1alpha1.MutationConfigSpec{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Maybe"}}}},
			want: []string{`spec.namespaceSelector: Invalid value:`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewConfig(&tc.spec)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}
