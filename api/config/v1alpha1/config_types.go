package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is config.gatekeeper.sh/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "config.gatekeeper.sh", Version: "v1alpha1"}

// SchemeBuilder registers the types.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

// ConfigName is the only Config name that is read.
const ConfigName = "config"

// Processes a match entry can exclude namespaces from.
const (
	ProcessAll     = "*"
	ProcessWebhook = "webhook"
	ProcessAudit   = "audit"
	ProcessSync    = "sync"
	ProcessMutate  = "mutation-webhook"
)

// GVK names a kind to sync.
type GVK struct {
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

// SyncSpec lists the kinds kept in data.inventory.
type SyncSpec struct {
	SyncOnly []GVK `json:"syncOnly,omitempty"`
}

// MatchEntry excludes namespaces from some processes.
type MatchEntry struct {
	// ExcludedNamespaces are namespace names; a leading or trailing *
	// makes a suffix or prefix glob.
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
	// Processes are webhook, audit, sync, mutation-webhook or * (all).
	Processes []string `json:"processes,omitempty"`
}

// Trace asks for evaluation traces of one user's requests for one kind.
type Trace struct {
	User string `json:"user,omitempty"`
	Kind GVK    `json:"kind,omitempty"`
	// Dump is "All" to dump the engine state with the trace.
	Dump string `json:"dump,omitempty"`
}

// ValidationSpec configures validation.
type ValidationSpec struct {
	Traces []Trace `json:"traces,omitempty"`
}

// ReadinessSpec configures readiness reporting.
type ReadinessSpec struct {
	StatsEnabled bool `json:"statsEnabled,omitempty"`
}

// ConfigSpec is the desired configuration.
type ConfigSpec struct {
	Sync       SyncSpec       `json:"sync,omitempty"`
	Validation ValidationSpec `json:"validation,omitempty"`
	Match      []MatchEntry   `json:"match,omitempty"`
	Readiness  ReadinessSpec  `json:"readiness,omitempty"`
}

// ConfigStatus is what the webhook replicas observed.
type ConfigStatus struct {
	// +kubebuilder:pruning:PreserveUnknownFields
	ByPod []runtime.RawExtension `json:"byPod,omitempty"`
}

// Config is Gatekeeper's configuration resource.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced
type Config struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ConfigSpec   `json:"spec,omitempty"`
	Status ConfigStatus `json:"status,omitempty"`
}

// ConfigList lists Configs.
// +kubebuilder:object:root=true
type ConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Config `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Config{}, &ConfigList{})
}
