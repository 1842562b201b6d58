package scan

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scanner's Prometheus series.
type Metrics struct {
	Started  prometheus.Counter
	Finished *prometheus.CounterVec // by result: succeeded, failed
	Duration prometheus.Histogram
	Pending  prometheus.Gauge
	Running  prometheus.Gauge
	Resolves *prometheus.CounterVec // by result: succeeded, failed
	Ingested *prometheus.CounterVec // by source and result
	DBAge    prometheus.GaugeFunc
}

// NewMetrics creates the series; reg, when not nil, registers them. dbTime
// gives the loaded vulnerability database's UpdatedAt, for its age.
func NewMetrics(reg prometheus.Registerer, dbTime func() time.Time) *Metrics {
	m := &Metrics{
		Started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "daaas_guard_scans_started_total",
			Help: "Image scans started.",
		}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_scans_finished_total",
			Help: "Image scans finished, by result (succeeded or failed).",
		}, []string{"result"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "daaas_guard_scan_duration_seconds",
			Help:    "Time to pull and scan one image.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "daaas_guard_scan_queue_depth",
			Help: "Image digests waiting for a scan.",
		}),
		Running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "daaas_guard_scans_running",
			Help: "Image scans running now.",
		}),
		Resolves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_image_resolves_total",
			Help: "Tag-to-digest resolutions asked of registries, by result.",
		}, []string{"result"}),
		Ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_reports_ingested_total",
			Help: "Vulnerability reports from other scanners read into ImageScans, by source and result.",
		}, []string{"source", "result"}),
		DBAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "daaas_guard_vulnerability_db_age_seconds",
			Help: "Age of the loaded vulnerability database (since its UpdatedAt).",
		}, func() float64 {
			if dbTime == nil {
				return 0
			}
			t := dbTime()
			if t.IsZero() {
				return 0
			}
			return time.Since(t).Seconds()
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Started, m.Finished, m.Duration, m.Pending, m.Running, m.Resolves, m.Ingested, m.DBAge)
	}
	return m
}
