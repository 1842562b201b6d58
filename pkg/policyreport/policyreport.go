// Package policyreport holds the wg-policy report types,
// wgpolicyk8s.io/v1alpha2 PolicyReport and ClusterPolicyReport, with the
// field names of the upstream CRD (kubernetes-sigs/wg-policy-prototypes, as
// vendored by Kyverno in api/policyreport/v1alpha2), so that reports the
// suite writes are read by Policy Reporter and similar tools, and reports
// others write are read by the suite. The package holds only the types and
// their decoding; it has no other dependency on the suite.
//
// +kubebuilder:object:generate=true
// +groupName=wgpolicyk8s.io
// +versionName=v1alpha2
package policyreport

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is wgpolicyk8s.io/v1alpha2.
	GroupVersion = schema.GroupVersion{Group: "wgpolicyk8s.io", Version: "v1alpha2"}

	// SchemeBuilder registers PolicyReport and ClusterPolicyReport.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Result is the outcome of one policy rule on its resources.
// +kubebuilder:validation:Enum=pass;fail;warn;error;skip
type Result string

// The results a report can carry. Warn means the requirement is not met but
// the policy is not scored; error that the policy could not be evaluated;
// skip that a precondition was not met or an exception applied.
const (
	ResultPass  Result = "pass"
	ResultFail  Result = "fail"
	ResultWarn  Result = "warn"
	ResultError Result = "error"
	ResultSkip  Result = "skip"
)

// Severity ranks a result.
// +kubebuilder:validation:Enum=critical;high;low;medium;info
type Severity string

// The severities a result can carry.
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
	SeverityInfo     Severity = "info"
)

// Summary counts the results of a report by outcome.
type Summary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// PolicyReportResult is one rule's outcome.
type PolicyReportResult struct {
	// Source is the engine that produced the result.
	// +optional
	Source string `json:"source,omitempty"`
	// Policy names the policy; required.
	Policy string `json:"policy"`
	// Rule names the rule within the policy.
	// +optional
	Rule string `json:"rule,omitempty"`
	// Category groups policies, for example a control family.
	// +optional
	Category string `json:"category,omitempty"`
	// +optional
	Severity Severity `json:"severity,omitempty"`
	// Timestamp is when the result was produced.
	// +optional
	Timestamp metav1.Timestamp `json:"timestamp,omitempty"`
	// +optional
	Result Result `json:"result,omitempty"`
	// Scored is false for results that inform rather than count.
	// +optional
	Scored bool `json:"scored,omitempty"`
	// Resources are the checked resources.
	// +optional
	Resources []corev1.ObjectReference `json:"resources,omitempty"`
	// ResourceSelector selects the checked resources instead of listing them.
	// +optional
	ResourceSelector *metav1.LabelSelector `json:"resourceSelector,omitempty"`
	// Message explains the result.
	// +optional
	Message string `json:"message,omitempty"`
	// Properties carry extra data, for example control IDs.
	// +optional
	Properties map[string]string `json:"properties,omitempty"`
}

// PolicyReport holds the results for one namespace or one resource in it.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=polr
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.summary.pass`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.summary.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.summary.warn`
// +kubebuilder:printcolumn:name="Error",type=integer,JSONPath=`.summary.error`
// +kubebuilder:printcolumn:name="Skip",type=integer,JSONPath=`.summary.skip`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Scope is the resource the report is about, when it is about one.
	// +optional
	Scope *corev1.ObjectReference `json:"scope,omitempty"`
	// ScopeSelector selects the resources the report is about.
	// +optional
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`
	// +optional
	Summary Summary `json:"summary,omitempty"`
	// +optional
	Results []PolicyReportResult `json:"results,omitempty"`
}

// PolicyReportList lists PolicyReports.
// +kubebuilder:object:root=true
type PolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyReport `json:"items"`
}

// ClusterPolicyReport holds the results for cluster-scoped resources; its
// body is a PolicyReport's.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cpolr
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.summary.pass`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.summary.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.summary.warn`
// +kubebuilder:printcolumn:name="Error",type=integer,JSONPath=`.summary.error`
// +kubebuilder:printcolumn:name="Skip",type=integer,JSONPath=`.summary.skip`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterPolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Scope *corev1.ObjectReference `json:"scope,omitempty"`
	// +optional
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`
	// +optional
	Summary Summary `json:"summary,omitempty"`
	// +optional
	Results []PolicyReportResult `json:"results,omitempty"`
}

// ClusterPolicyReportList lists ClusterPolicyReports.
// +kubebuilder:object:root=true
type ClusterPolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterPolicyReport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PolicyReport{}, &PolicyReportList{}, &ClusterPolicyReport{}, &ClusterPolicyReportList{})
}
