package mutate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// Results recorded in metrics.
const (
	ResultPatched   = "patched"
	ResultUnchanged = "unchanged"
	ResultSkipped   = "skipped"
	ResultDenied    = "denied"
	ResultError     = "error"
)

// MirrorPodAnnotation marks the API server's copies of static pods, which
// must not be changed.
const MirrorPodAnnotation = "kubernetes.io/config.mirror"

// NamespaceGetter returns a Namespace by name, or nil when it does not
// exist; it reads a cache, never the API server.
type NamespaceGetter interface {
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// HandlerConfig is everything the mutating handler needs.
type HandlerConfig struct {
	// Own is the namespace the webhook runs in; its pods are never
	// mutated, so the webhook never depends on itself.
	Own string
	// Namespaces reads namespace labels for the MutationConfig's
	// namespaceSelector.
	Namespaces NamespaceGetter
	Metrics    *Metrics
	Log        logr.Logger
}

// Handler is the mutating admission handler: it runs the mutators the
// current Config enables on pods being created and answers with their
// JSON patch.
type Handler struct {
	cfg     HandlerConfig
	current atomic.Pointer[state]
}

// state is one Config with its mutators, swapped as a whole.
type state struct {
	cfg      *Config
	mutators []Mutator
}

var _ admission.Handler = &Handler{}

// NewHandler builds the handler with the default Config.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Metrics == nil {
		return nil, errors.New("mutate: the handler needs metrics")
	}
	h := &Handler{cfg: cfg}
	h.SetConfig(DefaultConfig())
	return h, nil
}

// SetConfig makes c the configuration of every request that starts from
// now on; requests in flight finish with the one they started with.
func (h *Handler) SetConfig(c *Config) {
	h.current.Store(&state{cfg: c, mutators: c.Mutators()})
}

// Config is the configuration in use.
func (h *Handler) Config() *Config { return h.current.Load().cfg }

// Handle answers one admission request.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	result := ResultSkipped
	h.cfg.Metrics.InFlight.Inc()
	defer func() {
		h.cfg.Metrics.InFlight.Dec()
		h.cfg.Metrics.Requests.WithLabelValues(result).Inc()
		h.cfg.Metrics.Duration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	}()

	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("not a pod")
	}
	if req.Operation != admissionv1.Create {
		// Tolerations cannot change after creation and containers cannot
		// be added: only creation is mutated.
		return admission.Allowed("only pod creation is mutated")
	}
	if req.Namespace == h.cfg.Own {
		return admission.Allowed(fmt.Sprintf("namespace %q is daaas-guard's own", req.Namespace))
	}
	if len(req.Object.Raw) == 0 {
		return admission.Allowed("no object")
	}
	pod := &corev1.Pod{}
	// Case-sensitive, as the API server reads JSON: a field the patch
	// would not find must not be decoded either.
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, pod); err != nil {
		result = ResultError
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding pod %s/%s: %w", req.Namespace, req.Name, err))
	}
	if _, mirror := pod.Annotations[MirrorPodAnnotation]; mirror {
		return admission.Allowed("mirror pods are not mutated")
	}
	if len(pod.Spec.Containers) == 0 && len(pod.Spec.InitContainers) == 0 {
		return admission.Allowed("no containers")
	}
	st := h.current.Load()
	if st.cfg.NamespaceSelector != nil && !st.cfg.NamespaceSelector.Empty() {
		selected, err := h.namespaceSelected(ctx, st.cfg.NamespaceSelector, req.Namespace)
		if err != nil {
			result = ResultError
			return admission.Errored(http.StatusInternalServerError, err)
		}
		if !selected {
			return admission.Allowed(fmt.Sprintf("namespace %q is not selected by the MutationConfig", req.Namespace))
		}
	}

	p := NewPod(pod, req.Namespace)
	changed, err := Run(p, st.mutators)
	if msg, denied := IsDenial(err); denied {
		result = ResultDenied
		h.cfg.Log.V(1).Info("denied", "namespace", req.Namespace, "name", req.Name, "reason", msg)
		resp := admission.Denied(msg)
		resp.Warnings = p.Warnings()
		return resp
	}
	if err != nil {
		result = ResultError
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if len(p.Patch()) == 0 {
		result = ResultUnchanged
		resp := admission.Allowed("")
		resp.Warnings = p.Warnings()
		return resp
	}
	raw, err := json.Marshal(p.Patch())
	if err != nil {
		result = ResultError
		return admission.Errored(http.StatusInternalServerError, err)
	}
	result = ResultPatched
	for _, m := range changed {
		h.cfg.Metrics.Mutations.WithLabelValues(m).Inc()
	}
	// The patch is set as bytes, not as controller-runtime's Patches,
	// whose value field is omitempty.
	pt := admissionv1.PatchTypeJSONPatch
	resp := admission.Allowed("")
	resp.Patch, resp.PatchType = raw, &pt
	resp.Warnings = p.Warnings()
	resp.AuditAnnotations = map[string]string{"mutators": strings.Join(changed, ",")}
	h.cfg.Log.V(1).Info("mutated", "namespace", req.Namespace, "name", req.Name, "mutators", changed, "operations", len(p.Patch()))
	return resp
}

func (h *Handler) namespaceSelected(ctx context.Context, sel labels.Selector, name string) (bool, error) {
	if h.cfg.Namespaces == nil {
		return true, nil
	}
	ns, err := h.cfg.Namespaces.Namespace(ctx, name)
	if err != nil {
		return false, fmt.Errorf("reading namespace %q: %w", name, err)
	}
	if ns == nil {
		return false, nil
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

// Metrics are the mutating webhook's Prometheus series.
type Metrics struct {
	Requests  *prometheus.CounterVec
	Duration  *prometheus.HistogramVec
	Mutations *prometheus.CounterVec
	InFlight  prometheus.Gauge
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_mutation_requests_total",
			Help: "Mutating admission requests answered, by result (patched, unchanged, skipped, denied, error).",
		}, []string{"result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "daaas_guard_mutation_request_duration_seconds",
			Help:    "Time to answer a mutating admission request, by result.",
			Buckets: []float64{0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1},
		}, []string{"result"}),
		Mutations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daaas_guard_mutations_total",
			Help: "Pods changed, by mutator (gpu, vault).",
		}, []string{"mutator"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "daaas_guard_mutation_in_flight_requests",
			Help: "Mutating admission requests being answered.",
		}),
	}
	reg.MustRegister(m.Requests, m.Duration, m.Mutations, m.InFlight)
	return m
}
