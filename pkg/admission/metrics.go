package admission

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Decisions recorded in metrics.
const (
	DecisionAllow  = "allow"
	DecisionDeny   = "deny"
	DecisionWarn   = "warn"
	DecisionError  = "error"
	DecisionExempt = "exempt"
)

// latencyBuckets run from 1 ms to 10 s: Gatekeeper's users found a 3 s
// ceiling too low to see timeouts (gatekeeper#1504), and sub-millisecond
// detail is noise at the API server.
var latencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 10}

// Metrics are the webhook's Prometheus series.
type Metrics struct {
	Requests   *prometheus.CounterVec
	Duration   *prometheus.HistogramVec
	Violations *prometheus.CounterVec
	InFlight   prometheus.Gauge
	Evaluation prometheus.Histogram
	// SlotWait is how long each review waited for an evaluation slot:
	// reviews that wait at all mean the replica is saturated.
	SlotWait prometheus.Histogram
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_admission_requests_total",
			Help: "Admission requests answered, by operation, kind and decision.",
		}, []string{"operation", "kind", "decision"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "daaas_guard_admission_request_duration_seconds",
			Help:    "Time to answer an admission request, by operation, kind and decision.",
			Buckets: latencyBuckets,
		}, []string{"operation", "kind", "decision"}),
		Violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_violations_total",
			Help: "Violations found at admission, by constraint kind, constraint and enforcement action.",
		}, []string{"constraint_kind", "constraint", "action"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "daaas_guard_admission_in_flight_requests",
			Help: "Admission requests being answered.",
		}),
		Evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "daaas_guard_engine_evaluation_seconds",
			Help:    "Time the policy engine spends on one review.",
			Buckets: latencyBuckets,
		}),
		SlotWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "daaas_guard_admission_slot_wait_seconds",
			Help:    "Time a review waited for an evaluation slot (0 when one was free); waiting at all means the replica is saturated.",
			Buckets: append([]float64{0}, latencyBuckets...),
		}),
	}
	reg.MustRegister(m.Requests, m.Duration, m.Violations, m.InFlight, m.Evaluation, m.SlotWait)
	return m
}
