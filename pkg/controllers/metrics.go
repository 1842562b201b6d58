package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what the engine holds: templates and constraints by
// whether they loaded, and load errors.
type Metrics struct {
	Templates   *prometheus.GaugeVec
	Constraints *prometheus.GaugeVec
	LoadErrors  *prometheus.CounterVec

	mu          sync.Mutex
	templates   map[string]bool // name -> loaded
	constraints map[string]bool // kind/name -> enforced
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Templates: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daaas_guard_constraint_templates",
			Help: "ConstraintTemplates known to this replica, by status (loaded or error).",
		}, []string{"status"}),
		Constraints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daaas_guard_constraints",
			Help: "Constraints known to this replica, by status (enforced or error).",
		}, []string{"status"}),
		LoadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_load_errors_total",
			Help: "Templates and constraints that could not be loaded, by resource.",
		}, []string{"resource"}),
		templates:   map[string]bool{},
		constraints: map[string]bool{},
	}
	reg.MustRegister(m.Templates, m.Constraints, m.LoadErrors)
	return m
}

func tally(g *prometheus.GaugeVec, m map[string]bool, okLabel string) {
	ok, bad := 0, 0
	for _, v := range m {
		if v {
			ok++
		} else {
			bad++
		}
	}
	g.WithLabelValues(okLabel).Set(float64(ok))
	g.WithLabelValues("error").Set(float64(bad))
}

func (m *Metrics) templateResult(name string, loaded bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.templates[name] = loaded
	if !loaded {
		m.LoadErrors.WithLabelValues("template").Inc()
	}
	tally(m.Templates, m.templates, "loaded")
}

func (m *Metrics) templateGone(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.templates, name)
	tally(m.Templates, m.templates, "loaded")
}

func (m *Metrics) constraintResult(key string, enforced bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.constraints[key] = enforced
	if !enforced {
		m.LoadErrors.WithLabelValues("constraint").Inc()
	}
	tally(m.Constraints, m.constraints, "enforced")
}

func (m *Metrics) constraintGone(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.constraints, key)
	tally(m.Constraints, m.constraints, "enforced")
}
