package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MutationConfigName is the name of the one MutationConfig the webhook
// reads; without it, the built-in defaults apply.
const MutationConfigName = "default"

// MutationConfigSpec configures what the mutating webhook adds to pods at
// creation. Every field is optional; an absent field keeps its default,
// documented on the field.
type MutationConfigSpec struct {
	// NamespaceSelector selects the namespaces whose pods are mutated
	// (default: every namespace). Whatever it says, the webhook
	// registration leaves out kube-system, kube-public, kube-node-lease,
	// the webhook's own namespace and namespaces labelled
	// admission.gatekeeper.sh/ignore.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// GPU configures the tolerations (and optional node affinity) added to
	// pods that ask for a GPU.
	// +optional
	GPU *GPUMutation `json:"gpu,omitempty"`

	// Vault configures the Vault agent injected into pods annotated
	// vault.hashicorp.com/agent-inject: "true".
	// +optional
	Vault *VaultMutation `json:"vault,omitempty"`
}

// GPUMutation configures GPU tolerations.
type GPUMutation struct {
	// Enabled turns GPU tolerations on or off (default true).
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Resources are the extended resources that make a pod a GPU pod
	// when any container or init container requests or limits a non-zero
	// amount (default nvidia.com/gpu and amd.com/gpu).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	Resources []string `json:"resources,omitempty"`

	// Tolerations are added to GPU pods, each unless an existing
	// toleration already covers it (default: dedicated=gpu:NoSchedule,
	// the taint of the platform's GPU node pools). An empty list adds
	// none.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.operator) || t.operator != 'Exists' || !has(t.value) || t.value == '')",message="a toleration with operator Exists takes no value"
	// +kubebuilder:validation:XValidation:rule="self.all(t, (has(t.key) && t.key != '') || (has(t.operator) && t.operator == 'Exists'))",message="a toleration without a key needs operator Exists"
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// ResourceTolerations also adds, for each GPU resource a pod asks
	// for, the toleration Kubernetes' ExtendedResourceToleration
	// admission plugin would add: key <resource>, operator Exists, effect
	// NoSchedule (default true). AKS does not offer that plugin.
	// +optional
	ResourceTolerations *bool `json:"resourceTolerations,omitempty"`

	// NodeAffinity, when set, is required of a GPU pod's node: the
	// requirements are added to every node selector term the pod has, or
	// form the only term. Off by default: the GPU resource alone already
	// limits pods to GPU nodes.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	NodeAffinity []corev1.NodeSelectorRequirement `json:"nodeAffinity,omitempty"`
}

// VaultMode says which Vault agent containers a pod gets.
// +kubebuilder:validation:Enum=InitOnly;Sidecar;InitAndSidecar
type VaultMode string

// Vault agent modes.
const (
	// VaultInitOnly renders the secrets once, before the pod's containers
	// start, and exits (vault.hashicorp.com/agent-pre-populate-only).
	VaultInitOnly VaultMode = "InitOnly"
	// VaultSidecar keeps the secrets fresh from a sidecar, without an init
	// container (vault.hashicorp.com/agent-pre-populate: "false").
	VaultSidecar VaultMode = "Sidecar"
	// VaultInitAndSidecar does both (vault-k8s's default).
	VaultInitAndSidecar VaultMode = "InitAndSidecar"
)

// VaultModes are the modes used when a pod's annotations do not choose one.
type VaultModes struct {
	// Pipeline pods must terminate, and a sidecar would keep them running
	// (default InitOnly).
	// +optional
	Pipeline VaultMode `json:"pipeline,omitempty"`
	// Notebook pods run for days with Istio, whose init containers have no
	// network (default Sidecar).
	// +optional
	Notebook VaultMode `json:"notebook,omitempty"`
	// Other pods (default InitAndSidecar).
	// +optional
	Other VaultMode `json:"other,omitempty"`
}

// VaultMutation configures Vault agent injection. Pod annotations in the
// vault.hashicorp.com/ set override these defaults pod by pod.
type VaultMutation struct {
	// Enabled turns Vault injection on or off (default true).
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Address of the Vault server (default
	// https://vault.vault-system:8200).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="must be an http or https URL with a host"
	Address string `json:"address,omitempty"`

	// Image of the agent containers. It must be admitted by the platform's
	// policies (default: the platform registry's mirror of
	// hashicorp/vault, pinned by digest).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Image string `json:"image,omitempty"`

	// AuthPath is the mount path of Vault's Kubernetes auth method
	// (default auth/kubernetes).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.\-/]+$`
	AuthPath string `json:"authPath,omitempty"`

	// RolePrefix makes the default Vault role: <rolePrefix><namespace>,
	// with _ turned into - (default "profile-", the role the profile
	// controller creates for each Kubeflow profile).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.\-]*$`
	RolePrefix *string `json:"rolePrefix,omitempty"`

	// Resources of each agent container (default requests 250m CPU and
	// 64Mi, limits 500m CPU and 128Mi, as vault-k8s).
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// RunAsUser and RunAsGroup of the agent containers (default 1000 and
	// 1000: the platform's notebook constraint admits UIDs from 1000, and
	// the agent writes only to its in-memory volumes, so the image's own
	// vault user, 100, is not needed).
	// +optional
	// +kubebuilder:validation:Minimum=1
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`

	// Modes choose the agent containers by kind of pod.
	// +optional
	Modes *VaultModes `json:"modes,omitempty"`

	// TokenAudience is the audience of the service account token
	// projected for the agent when the pod has no token mounted (default:
	// the API server's, which Vault roles without an audience expect).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TokenAudience string `json:"tokenAudience,omitempty"`

	// TokenExpirationSeconds of that projected token (default 3600).
	// +optional
	// +kubebuilder:validation:Minimum=600
	// +kubebuilder:validation:Maximum=86400
	TokenExpirationSeconds *int64 `json:"tokenExpirationSeconds,omitempty"`

	// LogLevel and LogFormat of the agent (default info and standard).
	// +optional
	// +kubebuilder:validation:Enum=trace;debug;info;warn;error
	LogLevel string `json:"logLevel,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=standard;json
	LogFormat string `json:"logFormat,omitempty"`

	// DefaultTemplate renders a secret without a template annotation as
	// key: value lines (map) or as JSON (json) (default map).
	// +optional
	// +kubebuilder:validation:Enum=map;json
	DefaultTemplate string `json:"defaultTemplate,omitempty"`

	// TLSSecret names a Secret, in the pod's namespace, mounted at
	// /vault/tls in the agent (for CACert and client certificates).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TLSSecret string `json:"tlsSecret,omitempty"`

	// CACert is the path of the CA certificate the agent trusts for
	// Vault's TLS, e.g. /vault/tls/ca.crt (default: the image's trust
	// store).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	CACert string `json:"caCert,omitempty"`
}

// MutationConfigStatus is what the webhook made of the spec.
type MutationConfigStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready is True when the webhook applies this spec, False
	// (reason Invalid) when it rejected it and keeps the last valid one.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MutationConfig configures daaas-guard's mutating webhook: GPU
// tolerations and Vault agent injection. Only the one named "default" is
// read; changes apply without a restart.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the webhook reads only the MutationConfig named default"
type MutationConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MutationConfigSpec   `json:"spec,omitempty"`
	Status MutationConfigStatus `json:"status,omitempty"`
}

// MutationConfigList lists MutationConfigs.
// +kubebuilder:object:root=true
type MutationConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MutationConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MutationConfig{}, &MutationConfigList{})
}
