package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CommonFailure is a check failing on several nodes.
type CommonFailure struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	// Nodes is the number of nodes where the check fails.
	Nodes int32 `json:"nodes"`
}

// ClusterBenchmarkStatus aggregates the NodeBenchmarks and tracks the
// scheduled kube-bench runs.
type ClusterBenchmarkStatus struct {
	// Schedule is the state of the periodic kube-bench runs.
	// +optional
	Schedule InfraScanSchedule `json:"schedule,omitempty"`
	// Nodes is the number of NodeBenchmarks with a summary.
	Nodes int32 `json:"nodes"`
	// NodesFailing have at least one failing check.
	NodesFailing int32 `json:"nodesFailing"`
	// NodesInError are nodes whose last scan failed.
	NodesInError int32 `json:"nodesInError"`
	// Totals sums the checks over every node.
	Totals BenchmarkTotals `json:"totals"`
	// CommonFailures are the checks failing on the most nodes, at most a
	// configured number.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	CommonFailures []CommonFailure `json:"commonFailures,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterBenchmark is the cluster-wide CIS benchmark summary, a single
// object named "cluster".
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=clusterbench
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'cluster'",message="the ClusterBenchmark is named cluster"
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Failing",type=integer,JSONPath=`.status.nodesFailing`
// +kubebuilder:printcolumn:name="In error",type=integer,JSONPath=`.status.nodesInError`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.status.totals.fail`
// +kubebuilder:printcolumn:name="Last run",type=date,JSONPath=`.status.schedule.lastScheduleTime`
type ClusterBenchmark struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ClusterBenchmarkStatus `json:"status,omitempty"`
}

// ClusterBenchmarkList is a list of ClusterBenchmarks.
//
// +kubebuilder:object:root=true
type ClusterBenchmarkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterBenchmark `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClusterBenchmark{}, &ClusterBenchmarkList{})
}
