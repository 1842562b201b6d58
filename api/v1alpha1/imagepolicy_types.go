package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImagePolicyName is the name of the one ImagePolicy the webhook reads;
// without it, the defaults documented on ImagePolicySpec apply.
const ImagePolicyName = "default"

// Unscanned modes: what admission does with an image that has no verdict.
const (
	// UnscannedDeny denies and asks the scanner for a scan (digest-pinned
	// images) so that a retry after RetryAfter can pass.
	UnscannedDeny = "Deny"
	// UnscannedWarn admits with a warning; the scanner finds the image
	// when the pod runs.
	UnscannedWarn = "Warn"
	// UnscannedAllow admits silently.
	UnscannedAllow = "Allow"
)

// Severities, most severe first, as Trivy names them.
const (
	SeverityCritical = "CRITICAL"
	SeverityHigh     = "HIGH"
	SeverityMedium   = "MEDIUM"
	SeverityLow      = "LOW"
)

// ImagePolicySpec says which image verdicts deny pipeline runs at
// admission. Every field is optional; an absent one keeps its default.
type ImagePolicySpec struct {
	// Enforce turns the gate on (default true). Off, the webhook neither
	// denies nor warns on image verdicts.
	// +optional
	Enforce *bool `json:"enforce,omitempty"`

	// MinimumSeverity is the lowest severity that denies (default
	// CRITICAL).
	// +kubebuilder:validation:Enum=CRITICAL;HIGH;MEDIUM;LOW
	// +optional
	MinimumSeverity string `json:"minimumSeverity,omitempty"`

	// FixableOnly counts only vulnerabilities with a fixed version
	// (default true): a data scientist can act on those.
	// +optional
	FixableOnly *bool `json:"fixableOnly,omitempty"`

	// Unscanned says what happens to images without a verdict, per
	// namespace: the first entry whose namespaceSelector matches the
	// namespace applies, else DefaultUnscanned.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Unscanned []UnscannedRule `json:"unscanned,omitempty"`

	// DefaultUnscanned applies where no Unscanned entry matches (default
	// Warn: a new image is not blocked on the scanner's backlog, and is
	// scanned as soon as its pod exists).
	// +kubebuilder:validation:Enum=Deny;Warn;Allow
	// +optional
	DefaultUnscanned string `json:"defaultUnscanned,omitempty"`

	// RetryAfter is the delay a denial for an unscanned image suggests
	// before retrying (default 2m).
	// +optional
	RetryAfter *metav1.Duration `json:"retryAfter,omitempty"`

	// ScanRegistries are the registries the scanner may be asked to pull
	// from when an unscanned image is denied in a Deny namespace: each a
	// registry host (registry.example.ca, localhost:5000, docker.io) or a
	// repository prefix under one (docker.io/library), which matches the
	// image's repository on whole path components. An image outside them
	// gets no scan request, so users cannot make the scanner pull from any
	// registry they name. Empty (default): any registry.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +listType=set
	// +optional
	ScanRegistries []string `json:"scanRegistries,omitempty"`
}

// UnscannedRule sets the unscanned mode for the namespaces it selects.
type UnscannedRule struct {
	// NamespaceSelector selects namespaces by label; empty selects all.
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector"`
	// +kubebuilder:validation:Enum=Deny;Warn;Allow
	Mode string `json:"mode"`
}

// ImagePolicyStatus is what the webhook last made of the policy.
type ImagePolicyStatus struct {
	// ObservedGeneration is the generation the webhook applied.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Error says why the policy could not be applied (the previous one,
	// or the defaults, stay in force).
	// +optional
	Error string `json:"error,omitempty"`
}

// ImagePolicy configures how vulnerability verdicts gate pipeline pods,
// Argo Workflows and Tekton PipelineRuns at admission. Cluster-scoped;
// only the one named "default" is read.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="only the ImagePolicy named default is read"
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.minimumSeverity`
// +kubebuilder:printcolumn:name="Unscanned",type=string,JSONPath=`.spec.defaultUnscanned`
type ImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ImagePolicySpec `json:"spec,omitempty"`
	// +optional
	Status ImagePolicyStatus `json:"status,omitempty"`
}

// ImagePolicyList lists ImagePolicies.
// +kubebuilder:object:root=true
type ImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImagePolicy `json:"items"`
}

// ImageExceptionSpec accepts named vulnerabilities in matching images for
// a while.
type ImageExceptionSpec struct {
	// CVEIDs are the accepted vulnerability IDs (CVE-…, GHSA-…), exactly
	// as the ImageScan lists them.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +listType=set
	CVEIDs []string `json:"cveIDs"`
	// Images are patterns for the image repository, normalised as
	// registry/repository without tag or digest (e.g.
	// docker.io/library/python): exact, or with "*" at the start, the
	// end or both (prefix, suffix, substring).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	Images []string `json:"images"`
	// Namespaces the exception applies in (globs as above); empty means
	// every namespace.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// Expires is when the exception stops applying; required, so that
	// every accepted risk is revisited.
	Expires metav1.Time `json:"expires"`
	// Reason records why the risk is accepted (ticket, approver).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// ImageExceptionStatus reports the exception's use.
type ImageExceptionStatus struct {
	// MatchedAdmissions counts the admissions it let through (updated in
	// batches, per webhook replica's report).
	// +optional
	MatchedAdmissions int64 `json:"matchedAdmissions,omitempty"`
	// LastUsed is when it last let an admission through.
	// +optional
	LastUsed *metav1.Time `json:"lastUsed,omitempty"`
}

// ImageException accepts vulnerabilities in images at admission. It is
// cluster-scoped on purpose: accepting a risk is the security team's call,
// so only who may create ImageExceptions (cluster RBAC) can; a profile
// owner asks for one. Expired exceptions are ignored.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=imgexc
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.expires`
// +kubebuilder:printcolumn:name="Used",type=integer,JSONPath=`.status.matchedAdmissions`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`,priority=1
type ImageException struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ImageExceptionSpec `json:"spec"`
	// +optional
	Status ImageExceptionStatus `json:"status,omitempty"`
}

// ImageExceptionList lists ImageExceptions.
// +kubebuilder:object:root=true
type ImageExceptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageException `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImagePolicy{}, &ImagePolicyList{}, &ImageException{}, &ImageExceptionList{})
}
