package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Infrastructure scans are kube-bench (CIS benchmark, per node) and
// kube-hunter (penetration test, per cluster). Their summaries share the
// condition and origin types below.

// Condition type and reasons of NodeBenchmark, ClusterBenchmark and
// PenetrationTest.
const (
	// InfraScanConditionScanned is True when the last scan produced a
	// summary, False when it failed (the previous summary, if any, is kept).
	InfraScanConditionScanned = "Scanned"

	InfraScanReasonSucceeded      = "Succeeded"
	InfraScanReasonJobFailed      = "JobFailed"
	InfraScanReasonInvalidOutput  = "InvalidOutput"
	InfraScanReasonLogsUnreadable = "LogsUnreadable"
	InfraScanReasonInvalidReport  = "InvalidReport"
	InfraScanReasonRunning        = "Running"
	InfraScanReasonIncomplete     = "Incomplete"
)

// InfraScanSource says where a summary came from.
// +kubebuilder:validation:Enum=Job;CISKubeBenchReport;KubeHunterReport
type InfraScanSource string

const (
	// InfraScanSourceJob is a Job the scanner ran; its pod log held the
	// tool's JSON.
	InfraScanSourceJob InfraScanSource = "Job"
	// InfraScanSourceCISKubeBenchReport is a Starboard CISKubeBenchReport.
	InfraScanSourceCISKubeBenchReport InfraScanSource = "CISKubeBenchReport"
	// InfraScanSourceKubeHunterReport is a Starboard KubeHunterReport.
	InfraScanSourceKubeHunterReport InfraScanSource = "KubeHunterReport"
)

// InfraScanOrigin identifies the scan a summary was read from.
type InfraScanOrigin struct {
	Source InfraScanSource `json:"source"`
	// Name of the Job or report.
	Name string `json:"name"`
	// Scanner is the tool and version, when known ("kube-bench v0.10.4").
	// +optional
	Scanner string `json:"scanner,omitempty"`
	// Image the Job ran.
	// +optional
	Image string `json:"image,omitempty"`
	// ScanTime is when the tool ran (Job completion, report timestamp).
	ScanTime metav1.Time `json:"scanTime"`
}

// InfraScanSchedule is the state of the scanner's periodic runs.
type InfraScanSchedule struct {
	// RunID names the most recent run; the Jobs of a run carry it.
	// +optional
	RunID string `json:"runID,omitempty"`
	// LastScheduleTime is when the most recent run started.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// LastCompletionTime is when the most recent run finished (every Job
	// done, successful or not).
	// +optional
	LastCompletionTime *metav1.Time `json:"lastCompletionTime,omitempty"`
	// ActiveJobs is the number of the run's Jobs not yet finished and read.
	// +optional
	ActiveJobs int32 `json:"activeJobs,omitempty"`
}
