package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PenetrationSeverityCounts counts kube-hunter findings by severity.
type PenetrationSeverityCounts struct {
	High    int32 `json:"high"`
	Medium  int32 `json:"medium"`
	Low     int32 `json:"low"`
	Unknown int32 `json:"unknown"`
}

// PenetrationFinding is one kube-hunter finding, without its evidence
// (which may hold a token or other secret).
type PenetrationFinding struct {
	// ID is kube-hunter's vulnerability ID ("KHV005"), "None" for the few
	// findings without one.
	ID       string `json:"id"`
	Name     string `json:"name"`
	Severity string `json:"severity"`
	Category string `json:"category"`
	Location string `json:"location"`
}

// PenetrationTestSummary is the compact form of one kube-hunter run.
type PenetrationTestSummary struct {
	// Nodes and Services are the numbers kube-hunter discovered.
	Nodes    int32                     `json:"nodes"`
	Services int32                     `json:"services"`
	Counts   PenetrationSeverityCounts `json:"counts"`
	// Findings, highest severity first, at most a configured number;
	// FindingsOmitted counts the rest.
	// +optional
	// +kubebuilder:validation:MaxItems=500
	Findings []PenetrationFinding `json:"findings,omitempty"`
	// +optional
	FindingsOmitted int32 `json:"findingsOmitted,omitempty"`
}

// PenetrationTestStatus is the last kube-hunter result and the schedule of
// kube-hunter runs.
type PenetrationTestStatus struct {
	// +optional
	Schedule InfraScanSchedule `json:"schedule,omitempty"`
	// Origin of Summary.
	// +optional
	Origin *InfraScanOrigin `json:"origin,omitempty"`
	// Summary of the last successful run; a failed run leaves it as it was
	// and sets the Scanned condition to False.
	// +optional
	Summary *PenetrationTestSummary `json:"summary,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PenetrationTest is the cluster's kube-hunter summary, a single object
// named "cluster".
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=pentest
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'cluster'",message="the PenetrationTest is named cluster"
// +kubebuilder:printcolumn:name="High",type=integer,JSONPath=`.status.summary.counts.high`
// +kubebuilder:printcolumn:name="Medium",type=integer,JSONPath=`.status.summary.counts.medium`
// +kubebuilder:printcolumn:name="Low",type=integer,JSONPath=`.status.summary.counts.low`
// +kubebuilder:printcolumn:name="Scanned",type=string,JSONPath=`.status.conditions[?(@.type=="Scanned")].status`
// +kubebuilder:printcolumn:name="Scan time",type=date,JSONPath=`.status.origin.scanTime`
type PenetrationTest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status PenetrationTestStatus `json:"status,omitempty"`
}

// PenetrationTestList is a list of PenetrationTests.
//
// +kubebuilder:object:root=true
type PenetrationTestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PenetrationTest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PenetrationTest{}, &PenetrationTestList{})
}
