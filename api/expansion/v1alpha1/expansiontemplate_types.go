package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is expansion.gatekeeper.sh/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "expansion.gatekeeper.sh", Version: "v1alpha1"}

// SchemeBuilder registers the types.
var SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

// ApplyTo lists exact groups, versions and kinds of workloads.
type ApplyTo struct {
	Groups   []string `json:"groups,omitempty"`
	Versions []string `json:"versions,omitempty"`
	Kinds    []string `json:"kinds,omitempty"`
}

// GeneratedGVK is the kind of the derived object.
type GeneratedGVK struct {
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Kind    string `json:"kind,omitempty"`
}

// ExpansionTemplateSpec says which workloads to expand and how.
type ExpansionTemplateSpec struct {
	ApplyTo []ApplyTo `json:"applyTo,omitempty"`
	// TemplateSource is the dotted path of the derived object's content in
	// the workload, e.g. spec.template.
	TemplateSource string       `json:"templateSource,omitempty"`
	GeneratedGVK   GeneratedGVK `json:"generatedGVK,omitempty"`
	// EnforcementAction, when set, replaces the action of violations found
	// on derived objects.
	EnforcementAction string `json:"enforcementAction,omitempty"`
}

// ExpansionTemplateStatus is what the replicas observed.
type ExpansionTemplateStatus struct {
	// +kubebuilder:pruning:PreserveUnknownFields
	ByPod []runtime.RawExtension `json:"byPod,omitempty"`
}

// ExpansionTemplate is Gatekeeper's workload expansion resource.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster
type ExpansionTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ExpansionTemplateSpec   `json:"spec,omitempty"`
	Status ExpansionTemplateStatus `json:"status,omitempty"`
}

// ExpansionTemplateList lists ExpansionTemplates.
// +kubebuilder:object:root=true
type ExpansionTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExpansionTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ExpansionTemplate{}, &ExpansionTemplateList{})
}
