package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkTotals counts kube-bench checks by state.
type BenchmarkTotals struct {
	Pass int32 `json:"pass"`
	Fail int32 `json:"fail"`
	Warn int32 `json:"warn"`
	Info int32 `json:"info"`
}

// BenchmarkSection is one kube-bench control section (a "Controls" entry:
// master, etcd, controlplane, node or policies checks).
type BenchmarkSection struct {
	ID       string          `json:"id"`
	Text     string          `json:"text"`
	NodeType string          `json:"nodeType"`
	Totals   BenchmarkTotals `json:"totals"`
}

// BenchmarkFailure is a check in state FAIL.
type BenchmarkFailure struct {
	// ID is the benchmark's check number ("1.2.5").
	ID string `json:"id"`
	// Text is the check's description, shortened when long.
	Text string `json:"text"`
	// Scored is true for checks the benchmark scores.
	// +optional
	Scored bool `json:"scored,omitempty"`
}

// BenchmarkSummary is the compact form of one kube-bench run on one node.
type BenchmarkSummary struct {
	// Benchmark is the benchmark version kube-bench applied ("cis-1.10").
	Benchmark string `json:"benchmark"`
	// KubernetesVersion kube-bench detected, when it reported one.
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// NodeTypes are the node types checked (master, etcd, node, ...).
	// +kubebuilder:validation:MaxItems=16
	NodeTypes []string        `json:"nodeTypes"`
	Totals    BenchmarkTotals `json:"totals"`
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Sections []BenchmarkSection `json:"sections,omitempty"`
	// Failures lists failing checks, scored ones first, at most a
	// configured number; FailuresOmitted counts the rest.
	// +optional
	// +kubebuilder:validation:MaxItems=500
	Failures []BenchmarkFailure `json:"failures,omitempty"`
	// +optional
	FailuresOmitted int32 `json:"failuresOmitted,omitempty"`
}

// NodeBenchmarkStatus is what the scanner last observed for a node.
type NodeBenchmarkStatus struct {
	// Origin of Summary.
	// +optional
	Origin *InfraScanOrigin `json:"origin,omitempty"`
	// Summary of the last successful scan. A failed scan leaves it as it
	// was and sets the Scanned condition to False.
	// +optional
	Summary *BenchmarkSummary `json:"summary,omitempty"`
	// RunID is the scheduled run the last attempt belonged to (empty when
	// the last update came from a Starboard report).
	// +optional
	RunID string `json:"runID,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeBenchmark is the CIS Kubernetes benchmark summary of one node, named
// after the node. It holds counts and failing check IDs, never the full
// kube-bench output, so it stays a few KiB.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=nodebench
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Benchmark",type=string,JSONPath=`.status.summary.benchmark`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.status.summary.totals.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.status.summary.totals.warn`
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.status.summary.totals.pass`
// +kubebuilder:printcolumn:name="Scanned",type=string,JSONPath=`.status.conditions[?(@.type=="Scanned")].status`
// +kubebuilder:printcolumn:name="Scan time",type=date,JSONPath=`.status.origin.scanTime`
type NodeBenchmark struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status NodeBenchmarkStatus `json:"status,omitempty"`
}

// NodeBenchmarkList is a list of NodeBenchmarks.
//
// +kubebuilder:object:root=true
type NodeBenchmarkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeBenchmark `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NodeBenchmark{}, &NodeBenchmarkList{})
}
