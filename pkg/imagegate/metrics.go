package imagegate

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the gate's Prometheus series.
type Metrics struct {
	// Decisions counts reviews of pipeline runs by outcome.
	Decisions *prometheus.CounterVec
	// ExceptionsUsed counts admissions each exception let through.
	ExceptionsUsed *prometheus.CounterVec
	// ScanRequests counts scans requested from admission, by result
	// (requested, exists, failed, dropped when the writer's buffer was
	// full, refused when too many ImageScans had no verdict,
	// unlisted_registry when the image is outside the ImagePolicy's
	// scanRegistries).
	ScanRequests *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_image_gate_decisions_total",
			Help: "Pipeline runs reviewed on their image verdicts, by outcome (denied, warned, unscanned, excepted, allowed).",
		}, []string{"outcome"}),
		ExceptionsUsed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_image_exception_used_total",
			Help: "Admissions an ImageException let through, by exception.",
		}, []string{"exception"}),
		ScanRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_image_gate_scan_requests_total",
			Help: "Scans of unscanned digests requested at admission, by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.Decisions, m.ExceptionsUsed, m.ScanRequests)
	return m
}
