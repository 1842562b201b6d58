package mutate

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Platform defaults, used when the MutationConfig does not say otherwise.
const (
	// DefaultVaultImage is the platform registry's mirror of the Vault
	// image, pinned by digest, which the platform profile admits
	// (ContainerAllowedImages, PipelineImageProvenance).
	DefaultVaultImage = "k8scc01covidacr.azurecr.io/hashicorp/vault:1.17.2@sha256:5d636c5604c0cdfe5eea236feab4b2a6475126d548bc364700d35d974d2e89fc"
	// DefaultVaultAddress is the platform's Vault service.
	DefaultVaultAddress = "https://vault.vault-system:8200"
	// DefaultGPUTaintKey and DefaultGPUTaintValue make the taint of the
	// platform's GPU node pools, dedicated=gpu:NoSchedule, which
	// StatCan/gpu-toleration-injector tolerated.
	DefaultGPUTaintKey   = "dedicated"
	DefaultGPUTaintValue = "gpu"
)

// DefaultGPUResources are the resources that make a pod a GPU pod.
var DefaultGPUResources = []corev1.ResourceName{"nvidia.com/gpu", "amd.com/gpu"}

// Config is what the mutators are told. NewConfig builds it from a
// MutationConfig's spec; DefaultConfig is the configuration without one.
// A Config is never changed once built: the handler swaps whole Configs.
type Config struct {
	// NamespaceSelector chooses the namespaces mutated; nil selects all.
	NamespaceSelector labels.Selector
	GPU               GPUConfig
	Vault             VaultConfig
}

// GPUConfig configures the GPU mutator.
type GPUConfig struct {
	Enabled             bool
	Resources           []corev1.ResourceName
	Tolerations         []corev1.Toleration
	ResourceTolerations bool
	NodeAffinity        []corev1.NodeSelectorRequirement
}

// VaultConfig configures the Vault mutator.
type VaultConfig struct {
	Enabled                bool
	Address                string
	Image                  string
	AuthPath               string
	RolePrefix             string
	Resources              corev1.ResourceRequirements
	RunAsUser, RunAsGroup  int64
	Modes                  map[podKind]v1alpha1.VaultMode
	TokenAudience          string
	TokenExpirationSeconds int64
	LogLevel, LogFormat    string
	DefaultTemplate        string
	TLSSecret, CACert      string
}

// podKind keys the Vault modes.
type podKind string

const (
	kindPipeline podKind = "pipeline"
	kindNotebook podKind = "notebook"
	kindOther    podKind = "other"
)

// DefaultConfig is the configuration when no MutationConfig exists.
func DefaultConfig() *Config {
	cfg, err := NewConfig(nil)
	if err != nil {
		panic(err) // the defaults are valid; a test proves it
	}
	return cfg
}

// NewConfig checks spec (nil means all defaults) and fills in the
// defaults. The error lists every invalid field by its path.
func NewConfig(spec *v1alpha1.MutationConfigSpec) (*Config, error) {
	if spec == nil {
		spec = &v1alpha1.MutationConfigSpec{}
	}
	var errs field.ErrorList
	root := field.NewPath("spec")
	cfg := &Config{}
	if spec.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(spec.NamespaceSelector)
		if err != nil {
			errs = append(errs, field.Invalid(root.Child("namespaceSelector"), spec.NamespaceSelector, err.Error()))
		}
		cfg.NamespaceSelector = sel
	}
	cfg.GPU, errs = gpuConfig(spec.GPU, root.Child("gpu"), errs)
	cfg.Vault, errs = vaultConfig(spec.Vault, root.Child("vault"), errs)
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return cfg, nil
}

// Mutators are the mutators cfg enables, in the order they run.
func (c *Config) Mutators() []Mutator {
	var ms []Mutator
	if c.GPU.Enabled {
		ms = append(ms, &GPU{cfg: c.GPU})
	}
	if c.Vault.Enabled {
		ms = append(ms, &Vault{cfg: c.Vault})
	}
	return ms
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func gpuConfig(spec *v1alpha1.GPUMutation, fp *field.Path, errs field.ErrorList) (GPUConfig, field.ErrorList) {
	if spec == nil {
		spec = &v1alpha1.GPUMutation{}
	}
	cfg := GPUConfig{
		Enabled:             boolOr(spec.Enabled, true),
		ResourceTolerations: boolOr(spec.ResourceTolerations, true),
		Resources:           DefaultGPUResources,
		Tolerations: []corev1.Toleration{{Key: DefaultGPUTaintKey, Operator: corev1.TolerationOpEqual,
			Value: DefaultGPUTaintValue, Effect: corev1.TaintEffectNoSchedule}},
	}
	if spec.Resources != nil {
		cfg.Resources = nil
		seen := map[string]bool{}
		for i, r := range spec.Resources {
			p := fp.Child("resources").Index(i)
			if msg := extendedResourceName(r); msg != "" {
				errs = append(errs, field.Invalid(p, r, msg))
			}
			if seen[r] {
				errs = append(errs, field.Duplicate(p, r))
			}
			seen[r] = true
			cfg.Resources = append(cfg.Resources, corev1.ResourceName(r))
		}
	}
	if spec.Tolerations != nil {
		cfg.Tolerations = spec.Tolerations
		for i, t := range spec.Tolerations {
			errs = append(errs, validateToleration(t, fp.Child("tolerations").Index(i))...)
		}
	}
	cfg.NodeAffinity = spec.NodeAffinity
	for i, r := range spec.NodeAffinity {
		errs = append(errs, validateRequirement(r, fp.Child("nodeAffinity").Index(i))...)
	}
	return cfg, errs
}

// extendedResourceName explains why name is not an extended resource
// (a domain-prefixed name outside kubernetes.io, as Kubernetes'
// IsExtendedResourceName), or returns "".
func extendedResourceName(name string) string {
	if msgs := validation.IsQualifiedName(name); len(msgs) > 0 {
		return strings.Join(msgs, "; ")
	}
	switch {
	case !strings.Contains(name, "/"):
		return "must be an extended resource name with a domain, e.g. nvidia.com/gpu"
	case strings.HasPrefix(name, "kubernetes.io/") || strings.HasPrefix(name, "requests."):
		return "must be an extended resource, not a native one"
	}
	return ""
}

// validateToleration applies the API server's rules for pod tolerations,
// so that what we add is never the reason a pod is rejected.
func validateToleration(t corev1.Toleration, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Key != "" {
		for _, msg := range validation.IsQualifiedName(t.Key) {
			errs = append(errs, field.Invalid(fp.Child("key"), t.Key, msg))
		}
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		if t.Value != "" {
			errs = append(errs, field.Invalid(fp.Child("value"), t.Value, "must be empty when operator is Exists"))
		}
	case corev1.TolerationOpEqual, "":
		if t.Key == "" {
			errs = append(errs, field.Invalid(fp.Child("operator"), t.Operator, "must be Exists when key is empty"))
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			errs = append(errs, field.Invalid(fp.Child("value"), t.Value, msg))
		}
	default:
		errs = append(errs, field.NotSupported(fp.Child("operator"), t.Operator, []string{"Equal", "Exists"}))
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		errs = append(errs, field.NotSupported(fp.Child("effect"), t.Effect, []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}))
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		errs = append(errs, field.Invalid(fp.Child("tolerationSeconds"), *t.TolerationSeconds, "applies only to effect NoExecute"))
	}
	return errs
}

func validateRequirement(r corev1.NodeSelectorRequirement, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(r.Key) {
		errs = append(errs, field.Invalid(fp.Child("key"), r.Key, msg))
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		if len(r.Values) == 0 {
			errs = append(errs, field.Required(fp.Child("values"), "In and NotIn need at least one value"))
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		if len(r.Values) > 0 {
			errs = append(errs, field.Forbidden(fp.Child("values"), "Exists and DoesNotExist take no values"))
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(r.Values) != 1 {
			errs = append(errs, field.Invalid(fp.Child("values"), r.Values, "Gt and Lt take exactly one integer"))
		}
	default:
		errs = append(errs, field.NotSupported(fp.Child("operator"), r.Operator, []string{"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"}))
	}
	return errs
}

// DefaultVaultResources are vault-k8s's: requests 250m and 64Mi, limits
// 500m and 128Mi.
func DefaultVaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
}

func vaultConfig(spec *v1alpha1.VaultMutation, fp *field.Path, errs field.ErrorList) (VaultConfig, field.ErrorList) {
	if spec == nil {
		spec = &v1alpha1.VaultMutation{}
	}
	cfg := VaultConfig{
		Enabled:                boolOr(spec.Enabled, true),
		Address:                or(spec.Address, DefaultVaultAddress),
		Image:                  or(spec.Image, DefaultVaultImage),
		AuthPath:               or(spec.AuthPath, "auth/kubernetes"),
		RolePrefix:             "profile-",
		Resources:              DefaultVaultResources(),
		RunAsUser:              1000,
		RunAsGroup:             1000,
		TokenAudience:          spec.TokenAudience,
		TokenExpirationSeconds: 3600,
		LogLevel:               or(spec.LogLevel, "info"),
		LogFormat:              or(spec.LogFormat, "standard"),
		DefaultTemplate:        or(spec.DefaultTemplate, "map"),
		TLSSecret:              spec.TLSSecret,
		CACert:                 spec.CACert,
		Modes: map[podKind]v1alpha1.VaultMode{
			kindPipeline: v1alpha1.VaultInitOnly,
			kindNotebook: v1alpha1.VaultSidecar,
			kindOther:    v1alpha1.VaultInitAndSidecar,
		},
	}
	if msg := vaultURL(cfg.Address); msg != "" {
		errs = append(errs, field.Invalid(fp.Child("address"), cfg.Address, msg))
	}
	if strings.ContainsAny(cfg.Image, " \t\r\n") {
		errs = append(errs, field.Invalid(fp.Child("image"), cfg.Image, "must not contain whitespace"))
	}
	if spec.RolePrefix != nil {
		cfg.RolePrefix = *spec.RolePrefix
	}
	if spec.Resources != nil {
		cfg.Resources = *spec.Resources
		errs = append(errs, validateResources(cfg.Resources, fp.Child("resources"))...)
	}
	if spec.RunAsUser != nil {
		cfg.RunAsUser = *spec.RunAsUser
		if cfg.RunAsUser < 1 {
			errs = append(errs, field.Invalid(fp.Child("runAsUser"), cfg.RunAsUser, "must be a non-root UID (1 or more)"))
		}
	}
	if spec.RunAsGroup != nil {
		cfg.RunAsGroup = *spec.RunAsGroup
		if cfg.RunAsGroup < 1 {
			errs = append(errs, field.Invalid(fp.Child("runAsGroup"), cfg.RunAsGroup, "must be a GID of 1 or more"))
		}
	}
	if m := spec.Modes; m != nil {
		for _, km := range []struct {
			kind podKind
			mode v1alpha1.VaultMode
		}{{kindPipeline, m.Pipeline}, {kindNotebook, m.Notebook}, {kindOther, m.Other}} {
			kind, mode := km.kind, km.mode
			if mode == "" {
				continue
			}
			if !validMode(mode) {
				errs = append(errs, field.NotSupported(fp.Child("modes", string(kind)), mode, []string{"InitOnly", "Sidecar", "InitAndSidecar"}))
			}
			cfg.Modes[kind] = mode
		}
	}
	if spec.TokenExpirationSeconds != nil {
		cfg.TokenExpirationSeconds = *spec.TokenExpirationSeconds
		if cfg.TokenExpirationSeconds < 600 || cfg.TokenExpirationSeconds > 86400 {
			errs = append(errs, field.Invalid(fp.Child("tokenExpirationSeconds"), cfg.TokenExpirationSeconds, "must be between 600 and 86400"))
		}
	}
	if !oneOf(cfg.LogLevel, logLevels...) {
		errs = append(errs, field.NotSupported(fp.Child("logLevel"), cfg.LogLevel, logLevels))
	}
	if !oneOf(cfg.LogFormat, "standard", "json") {
		errs = append(errs, field.NotSupported(fp.Child("logFormat"), cfg.LogFormat, []string{"standard", "json"}))
	}
	if !oneOf(cfg.DefaultTemplate, "map", "json") {
		errs = append(errs, field.NotSupported(fp.Child("defaultTemplate"), cfg.DefaultTemplate, []string{"map", "json"}))
	}
	if cfg.TLSSecret != "" {
		for _, msg := range validation.IsDNS1123Subdomain(cfg.TLSSecret) {
			errs = append(errs, field.Invalid(fp.Child("tlsSecret"), cfg.TLSSecret, msg))
		}
	}
	if cfg.CACert != "" && !path.IsAbs(cfg.CACert) {
		errs = append(errs, field.Invalid(fp.Child("caCert"), cfg.CACert, "must be an absolute path"))
	}
	return cfg, errs
}

var logLevels = []string{"trace", "debug", "info", "warn", "error"}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

func validMode(m v1alpha1.VaultMode) bool {
	return m == v1alpha1.VaultInitOnly || m == v1alpha1.VaultSidecar || m == v1alpha1.VaultInitAndSidecar
}

// vaultURL explains why s is not a Vault address, or returns "".
func vaultURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL"
	case u.Host == "":
		return "must name a host"
	}
	return ""
}

func validateResources(r corev1.ResourceRequirements, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, list := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for name, q := range list.rl {
			p := fp.Child(list.name).Key(string(name))
			if !oneOf(string(name), "cpu", "memory", "ephemeral-storage") {
				errs = append(errs, field.NotSupported(fp.Child(list.name), string(name), []string{"cpu", "memory", "ephemeral-storage"}))
				continue
			}
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(p, q.String(), "must not be negative"))
			}
		}
	}
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(fp.Child("requests").Key(string(name)), req.String(),
				fmt.Sprintf("must not exceed limits.%s (%s)", name, lim.String())))
		}
	}
	return errs
}
