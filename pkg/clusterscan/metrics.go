package clusterscan

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics count the scans' Jobs and the reports read.
type metrics struct {
	jobsCreated  *prometheus.CounterVec
	jobsFinished *prometheus.CounterVec
	reports      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_clusterscan_jobs_created_total",
			Help: "kube-bench and kube-hunter Jobs created, by tool.",
		}, []string{"tool"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_clusterscan_jobs_finished_total",
			Help: "kube-bench and kube-hunter Jobs read and deleted, by tool and result (succeeded, JobFailed, InvalidOutput, LogsUnreadable).",
		}, []string{"tool", "result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_clusterscan_starboard_reports_total",
			Help: "Starboard CISKubeBenchReports and KubeHunterReports read, by kind and result (applied, stale, InvalidReport).",
		}, []string{"kind", "result"}),
	}
	reg.MustRegister(m.jobsCreated, m.jobsFinished, m.reports)
	return m
}
