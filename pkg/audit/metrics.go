package audit

import "github.com/prometheus/client_golang/prometheus"

// metrics describe the audit passes.
type metrics struct {
	duration   prometheus.Histogram
	reviewed   *prometheus.CounterVec
	violations *prometheus.GaugeVec
	lastRun    prometheus.Gauge
	runs       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "daaas_guard_audit_duration_seconds",
			Help: "Duration of audit passes, from the first list to the last report written.",
			// 0.5 s to about 4.5 h: small clusters take seconds, Gatekeeper
			// users report passes of 40 minutes and more.
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 16),
		}),
		reviewed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_audit_objects_reviewed_total",
			Help: "Objects reviewed by audit passes, by API group and kind.",
		}, []string{"group", "kind"}),
		violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daaas_guard_audit_violations",
			Help: "Violations found by the last audit pass (true totals, not capped), by constraint kind, constraint and enforcement action.",
		}, []string{"kind", "constraint", "enforcement_action"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "daaas_guard_audit_last_run_timestamp_seconds",
			Help: "Unix time at which the last complete audit pass ended.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_audit_runs_total",
			Help: "Audit passes, by result (complete, or partial when some kinds could not be listed or some results not written).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.duration, m.reviewed, m.violations, m.lastRun, m.runs)
	return m
}
