package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ComplianceReportSpec says how the report is refreshed.
type ComplianceReportSpec struct {
	// Schedule is when the scanner refreshes the report, in cron syntax.
	// +kubebuilder:default="0 */6 * * *"
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// ClusterName names the cluster in the report.
	// +optional
	ClusterName string `json:"clusterName,omitempty"`
}

// ComplianceStatus is a control's status.
// +kubebuilder:validation:Enum=satisfied;partially-satisfied;not-satisfied;not-assessed
type ComplianceStatus string

// ComplianceControlStatus is one control's status and evidence counts; the
// evidence itself is in the full report, not here.
type ComplianceControlStatus struct {
	// ID is the ITSG-33 / NIST SP 800-53 control ID, e.g. AC-6 or IA-5(7).
	ID     string           `json:"id"`
	Status ComplianceStatus `json:"status"`
	// +optional
	Pass int32 `json:"pass,omitempty"`
	// +optional
	Fail int32 `json:"fail,omitempty"`
	// +optional
	Warn int32 `json:"warn,omitempty"`
}

// ComplianceSummary counts controls by status and evidence by result.
type ComplianceSummary struct {
	Controls     int32 `json:"controls"`
	Satisfied    int32 `json:"satisfied"`
	Partially    int32 `json:"partiallySatisfied"`
	NotSatisfied int32 `json:"notSatisfied"`
	NotAssessed  int32 `json:"notAssessed"`
	// EvidencePass, EvidenceFail and EvidenceWarn count every piece of
	// evidence once.
	EvidencePass int32 `json:"evidencePass"`
	EvidenceFail int32 `json:"evidenceFail"`
	EvidenceWarn int32 `json:"evidenceWarn"`
	// CriticalFailures and HighFailures count failing evidence of those
	// severities.
	CriticalFailures int32 `json:"criticalFailures"`
	HighFailures     int32 `json:"highFailures"`
}

// ComplianceSource states what one evidence source contributed and the
// benchmark, database or tool version it rests on.
type ComplianceSource struct {
	Source string `json:"source"`
	// +optional
	Tool string `json:"tool,omitempty"`
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	Benchmark string `json:"benchmark,omitempty"`
	// +optional
	DBVersion string `json:"dbVersion,omitempty"`
	// +optional
	DBUpdatedAt *metav1.Time `json:"dbUpdatedAt,omitempty"`
	// Provided is false when nothing was read from the source.
	Provided bool `json:"provided"`
}

// ComplianceReportStatus is the latest assessment, small enough for etcd:
// a summary, per-control status and counts, and the sources' versions.
type ComplianceReportStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// GeneratedAt is when the assessment was made.
	// +optional
	GeneratedAt *metav1.Time `json:"generatedAt,omitempty"`
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Catalog and Mapping name the catalogue and mapping used, with their
	// versions ("name@version").
	// +optional
	Catalog string `json:"catalog,omitempty"`
	// +optional
	Mapping string `json:"mapping,omitempty"`
	// +optional
	Summary ComplianceSummary `json:"summary,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=500
	Controls []ComplianceControlStatus `json:"controls,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=50
	Sources []ComplianceSource `json:"sources,omitempty"`
	// DetailsURL locates the full report with its evidence, when it is
	// served.
	// +optional
	DetailsURL string `json:"detailsURL,omitempty"`
	// Conditions: Ready is true when the latest refresh succeeded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ComplianceReport is the cluster's latest ITSG-33 compliance assessment.
// The scanner refreshes it on its schedule; guardctl report renders the
// full report with its evidence.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=compliance
// +kubebuilder:printcolumn:name="Satisfied",type=integer,JSONPath=`.status.summary.satisfied`
// +kubebuilder:printcolumn:name="Partially",type=integer,JSONPath=`.status.summary.partiallySatisfied`
// +kubebuilder:printcolumn:name="Not satisfied",type=integer,JSONPath=`.status.summary.notSatisfied`
// +kubebuilder:printcolumn:name="Not assessed",type=integer,JSONPath=`.status.summary.notAssessed`
// +kubebuilder:printcolumn:name="Generated",type=date,JSONPath=`.status.generatedAt`
type ComplianceReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ComplianceReportSpec `json:"spec,omitempty"`
	// +optional
	Status ComplianceReportStatus `json:"status,omitempty"`
}

// ComplianceReportList lists ComplianceReports.
// +kubebuilder:object:root=true
type ComplianceReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ComplianceReport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ComplianceReport{}, &ComplianceReportList{})
}
