// Package webhook assembles the admission webhook process: a
// controller-runtime manager with the policy engine, the controllers that
// feed it, the validating and mutating admission handlers, TLS
// certificates and the operational endpoints. cmd/webhook only turns flags
// into a Config.
package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
	expansionv1alpha1 "github.com/statcan/daaas-guard/api/expansion/v1alpha1"
	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/controllers"
	"github.com/statcan/daaas-guard/pkg/imagegate"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/mutate"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
	"github.com/statcan/daaas-guard/pkg/serving"
)

// Paths the handlers are served on.
const (
	ValidatePath       = "/v1/admit"
	IgnoreLabelPath    = "/v1/admitlabel"
	MutationConfigPath = "/v1/admitmutationconfig"
	ImagePolicyPath    = "/v1/admitimagepolicy"
	MutatePath         = "/v1/mutate"
)

// Config is everything the webhook process is told.
type Config struct {
	// Namespace the webhook runs in; never reviewed. PodID names this
	// replica in status.byPod.
	Namespace string
	PodID     string
	// ServiceAccount is the webhook's own username, whose requests are
	// always allowed.
	ServiceAccount string

	// Host (default: all interfaces), Port and CertDir of the TLS server.
	Host    string
	Port    int
	CertDir string
	// HTTP2 lets clients speak HTTP/2 to the admission endpoints. Off by
	// default, the server offers HTTP/1.1 only, as kubebuilder's scaffold
	// does since HTTP/2's rapid-reset attack (CVE-2023-44487); the API
	// server then keeps a pool of connections instead of one. Measured on
	// pod creation, neither costs the API server or the webhook more CPU.
	HTTP2 bool
	// Certificates: unless DisableCertRotation, a CA and a serving
	// certificate for ServiceName.Namespace.svc are generated, kept in
	// CertSecret and rotated, and the CA bundle is written into the
	// ValidatingWebhookConfiguration named WebhookConfigName and the
	// MutatingWebhookConfiguration named MutatingWebhookConfigName (if
	// set).
	DisableCertRotation       bool
	ServiceName               string
	CertSecret                string
	WebhookConfigName         string
	MutatingWebhookConfigName string

	// MayIgnore lists the namespaces (globs) allowed to carry the
	// admission.gatekeeper.sh/ignore label.
	MayIgnore []string
	// MaxInFlight bounds concurrent evaluations; EvalTimeout bounds one.
	MaxInFlight int
	EvalTimeout time.Duration
	// Queued, when set, is called whenever a review waits for an
	// evaluation slot (serving.Scaler.Queued).
	Queued func()
	// ReviewCache is how many recent VM runs are kept to answer reviews
	// that would repeat one (pkg/policy/vmcache.go); 0 keeps none.
	ReviewCache int
	// MaxUnscannedImages is how many ImageScans without a verdict may
	// exist before the image gate stops requesting scans and denies
	// saying the scan queue is full (imagegate.Config.MaxUnscanned); 0
	// means imagegate.DefaultMaxUnscanned, negative is an error.
	MaxUnscannedImages int

	// HealthAddr serves /healthz and /readyz (plain HTTP, for the
	// kubelet); MetricsAddr serves /metrics ("0" disables it).
	HealthAddr  string
	MetricsAddr string
	// MetricsSecure serves MetricsAddr over HTTPS to authenticated and
	// authorised callers only (serving.MetricsOptions); MetricsCertDir
	// holds its certificate, self-signed when empty.
	MetricsSecure  bool
	MetricsCertDir string
	// PprofAddr serves Go's /debug/pprof endpoints for profiling (empty or
	// "0": off, the default; they reveal internals, so loopback only).
	PprofAddr string
	// ShutdownGrace is how long in-flight reviews get once the manager
	// stops.
	ShutdownGrace time.Duration
	// ShuttingDown, when set, reports that the termination signal has
	// arrived: readiness then fails, while the server keeps answering
	// until the manager's context ends (serving.Drain).
	ShuttingDown func() bool
	// Metrics receives the webhook's series; by default the registry the
	// manager serves on MetricsAddr.
	Metrics prometheus.Registerer
	// SecondInstance allows another webhook in the same process (tests):
	// controller names then need not be unique.
	SecondInstance bool

	Log logr.Logger
}

// Scheme holds the types the webhook reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme,
		configv1alpha1.AddToScheme, expansionv1alpha1.AddToScheme, guardv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// NewManager creates the controller-runtime manager for cfg.
func NewManager(rc *rest.Config, cfg Config) (manager.Manager, error) {
	grace := cfg.ShutdownGrace
	if grace <= 0 {
		grace = 25 * time.Second
	}
	metrics, err := serving.MetricsOptions(cfg.MetricsAddr, cfg.MetricsSecure, cfg.MetricsCertDir, nil)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  cfg.Log,
		HealthProbeBindAddress:  cfg.HealthAddr,
		Metrics:                 metrics,
		PprofBindAddress:        cfg.PprofAddr,
		GracefulShutdownTimeout: &grace,
		Client:                  client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Controller:              config.Controller{SkipNameValidation: &cfg.SecondInstance},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    cfg.Host,
			Port:    cfg.Port,
			CertDir: cfg.CertDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) {
				c.MinVersion = tls.VersionTLS12
				if !cfg.HTTP2 {
					c.NextProtos = []string{"http/1.1"}
				}
			}},
		}),
	})
	if err != nil {
		return nil, err
	}
	if cfg.ShuttingDown != nil {
		if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
			if cfg.ShuttingDown() {
				return errors.New("shutting down")
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

// Webhook is the assembled process.
type Webhook struct {
	Engine     *policy.Engine
	Tracker    *controllers.Tracker
	Exemptions *admission.Exemptions
	// Mutator is the mutating handler; MutationConfig keeps its
	// configuration current.
	Mutator        *mutate.Handler
	MutationConfig *controllers.MutationConfigReconciler
	// Verdicts indexes the cluster's ImageScans; ImageGate judges
	// pipeline runs on them, with the ImagePolicy and ImageExceptions.
	Verdicts    *verdict.Index
	ImageGate   *imagegate.Gate
	imageLoaded func() error
	serving     atomic.Bool
}

// Ready reports whether the webhook serves and has loaded every policy,
// the mutation configuration, the image verdicts and the image policy and
// exceptions present at start-up.
func (w *Webhook) Ready() bool {
	return w.serving.Load() && w.Tracker.Ready() && w.MutationConfig.Loaded() && w.imagesLoaded() == nil
}

// imagesLoaded says what the image gate still waits for. A stored
// ImagePolicy that cannot be compiled keeps a starting replica waiting
// (imagegate.Gate.Attach): it must not judge with the permissive
// defaults while its peers hold the last valid policy.
func (w *Webhook) imagesLoaded() error {
	if !w.Verdicts.HasSynced() {
		return errors.New("waiting for image verdicts")
	}
	return w.imageLoaded()
}

// Setup adds the engine, controllers, handlers, certificates and probes to
// mgr. Handlers are registered once certificates exist, so the TLS server
// never starts without them.
func Setup(mgr manager.Manager, cfg Config) (*Webhook, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("webhook: the namespace it runs in is required")
	}
	if cfg.MaxUnscannedImages < 0 {
		return nil, fmt.Errorf("webhook: --max-unscanned-images is %d; want 0 (the default, %d) or more",
			cfg.MaxUnscannedImages, imagegate.DefaultMaxUnscanned)
	}
	log := cfg.Log
	counts := &policy.EvaluatorCounts{}
	// The admission answer carries messages only, so violations' details
	// are never converted.
	engine, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointWebhook), policy.WithEvaluatorCounts(counts),
		policy.WithReviewCache(cfg.ReviewCache), policy.WithoutDetails())
	if err != nil {
		return nil, err
	}
	w := &Webhook{Engine: engine, Tracker: controllers.NewTracker()}
	var mayIgnore []match.Glob
	for _, g := range cfg.MayIgnore {
		mayIgnore = append(mayIgnore, match.Glob(g))
	}
	w.Exemptions = &admission.Exemptions{Own: cfg.Namespace, MayIgnore: mayIgnore}

	reg := cfg.Metrics
	if reg == nil {
		reg = crmetrics.Registry
	}
	// Evaluations by topdown mean a template the VM cannot run, traced
	// reviews, or VM runs that failed: worth seeing on a dashboard.
	registerCounts(reg, "daaas_guard_engine_constraint_evaluations_total",
		"Constraint evaluations, by the evaluator that ran them (vm, or topdown where the VM could not).",
		"evaluator", map[string]*atomic.Int64{"vm": &counts.VM, "topdown": &counts.Topdown})
	registerCounts(reg, "daaas_guard_engine_review_cache_total",
		"VM runs answered from the review cache (hit) and evaluated because none of its runs would repeat (miss).",
		"result", map[string]*atomic.Int64{"hit": &counts.CacheHits, "miss": &counts.CacheMisses})
	cm := controllers.NewMetrics(reg)
	constraints := &controllers.ConstraintReconciler{Client: mgr.GetClient(), Engine: engine, Tracker: w.Tracker,
		Metrics: cm, PodID: cfg.PodID, Log: log.WithName("constraints")}
	if err := constraints.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	templates := &controllers.TemplateReconciler{Client: mgr.GetClient(), Engine: engine, Constraints: constraints,
		Tracker: w.Tracker, Metrics: cm, PodID: cfg.PodID, Log: log.WithName("templates")}
	if err := templates.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	config := &controllers.ConfigReconciler{Client: mgr.GetClient(), Engine: engine,
		Exemptions: w.Exemptions, Tracker: w.Tracker, Namespace: cfg.Namespace, Log: log.WithName("config")}
	if err := config.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := reg.Register(config); err != nil {
		return nil, err
	}
	expansions := &controllers.ExpansionReconciler{Client: mgr.GetClient(), Log: log.WithName("expansion")}
	if err := expansions.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		// List what exists now, straight from the API server, so that
		// readiness waits for all of it.
		for {
			err := w.Tracker.Populate(ctx, mgr.GetAPIReader(), cfg.Namespace)
			if err == nil {
				break
			}
			log.Error(err, "listing policies for readiness; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		// Until ready, stop waiting for what is deleted before the
		// controllers see it.
		w.Tracker.ReleaseDeleted(ctx, mgr.GetAPIReader(), cfg.Namespace, log.WithName("readiness"))
		return nil
	})); err != nil {
		return nil, err
	}

	// Image verdicts come from informers on the manager's cache: the
	// admission path reads memory only. Scan requests and exception use
	// are written by imageWriter, off that path.
	w.Verdicts = verdict.New()
	if err := w.Verdicts.Attach(context.Background(), mgr.GetCache()); err != nil {
		return nil, err
	}
	imageMetrics := imagegate.NewMetrics(reg)
	imageWriter := &imagegate.Writer{Client: mgr.GetClient(), Metrics: imageMetrics, Log: log.WithName("imagegate")}
	if err := mgr.Add(imageWriter); err != nil {
		return nil, err
	}
	w.ImageGate = newImageGate(cfg, w.Verdicts, imageWriter, imageMetrics)
	if w.imageLoaded, err = w.ImageGate.Attach(context.Background(), mgr.GetCache(), mgr.GetClient()); err != nil {
		return nil, err
	}

	validator, err := admission.NewValidator(admission.ValidatorConfig{
		Engine:         engine,
		Namespaces:     namespaceReader{mgr.GetClient()},
		Exemptions:     w.Exemptions,
		Metrics:        admission.NewMetrics(reg),
		Log:            log.WithName("admission"),
		ServiceAccount: cfg.ServiceAccount,
		MaxInFlight:    cfg.MaxInFlight,
		EvalTimeout:    cfg.EvalTimeout,
		Queued:         cfg.Queued,
		Ready:          func() bool { return w.Tracker.Ready() && w.imagesLoaded() == nil },
		Expansion:      expansions.Set,
		Images:         w.ImageGate,
	})
	if err != nil {
		return nil, err
	}
	w.Mutator, err = mutate.NewHandler(mutate.HandlerConfig{
		Own:        cfg.Namespace,
		Namespaces: namespaceReader{mgr.GetClient()},
		Metrics:    mutate.NewMetrics(reg),
		Log:        log.WithName("mutate"),
	})
	if err != nil {
		return nil, err
	}
	w.MutationConfig = &controllers.MutationConfigReconciler{Client: mgr.GetClient(), Handler: w.Mutator, Log: log.WithName("mutationconfig")}
	if err := w.MutationConfig.SetupWithManager(mgr); err != nil {
		return nil, err
	}

	certsReady := make(chan struct{})
	webhooks := []rotator.WebhookInfo{{Name: cfg.WebhookConfigName, Type: rotator.Validating}}
	if cfg.MutatingWebhookConfigName != "" {
		webhooks = append(webhooks, rotator.WebhookInfo{Name: cfg.MutatingWebhookConfigName, Type: rotator.Mutating})
	}
	if cfg.DisableCertRotation {
		close(certsReady)
	} else if err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.CertSecret},
		CertDir:        cfg.CertDir,
		CAName:         "daaas-guard-ca",
		CAOrganization: "daaas-guard",
		DNSName:        fmt.Sprintf("%s.%s.svc", cfg.ServiceName, cfg.Namespace),
		IsReady:        certsReady,
		Webhooks:       webhooks,
		FieldOwner:     controllers.FieldOwner,
	}); err != nil {
		return nil, fmt.Errorf("certificate rotation: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		select {
		case <-certsReady:
		case <-ctx.Done():
			return nil
		}
		srv := mgr.GetWebhookServer()
		srv.Register(ValidatePath, admission.Serve(validator))
		srv.Register(IgnoreLabelPath, admission.Serve(&admission.LabelGuard{Exemptions: w.Exemptions}))
		srv.Register(MutationConfigPath, admission.Serve(mutate.ConfigGuard{}))
		srv.Register(ImagePolicyPath, admission.Serve(imagegate.PolicyGuard{}))
		srv.Register(MutatePath, admission.Serve(w.Mutator))
		w.serving.Store(true)
		log.Info("admission handlers registered", "validate", ValidatePath, "ignoreLabel", IgnoreLabelPath,
			"mutationConfig", MutationConfigPath, "imagePolicy", ImagePolicyPath, "mutate", MutatePath)
		return nil
	})); err != nil {
		return nil, err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("policies", func(r *http.Request) error {
		if !w.serving.Load() {
			return errors.New("waiting for TLS certificates")
		}
		if !w.MutationConfig.Loaded() {
			return errors.New("waiting for the MutationConfig")
		}
		if err := w.imagesLoaded(); err != nil {
			return err
		}
		return w.Tracker.Check()(r)
	}); err != nil {
		return nil, err
	}
	return w, nil
}

// newImageGate is the image gate Setup builds from cfg, writing through
// writer.
func newImageGate(cfg Config, verdicts imagegate.Verdicts, writer *imagegate.Writer, metrics *imagegate.Metrics) *imagegate.Gate {
	return imagegate.New(imagegate.Config{Verdicts: verdicts, Scans: writer, Usage: writer, Metrics: metrics,
		MaxUnscanned: cfg.MaxUnscannedImages, Log: cfg.Log.WithName("imagegate")})
}

// namespaceReader reads Namespaces from the manager's cache.
type namespaceReader struct{ c client.Client }

func (n namespaceReader) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := n.c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return ns, nil
}

// registerCounts exposes counters kept by the engine as one counter
// series per label value.
func registerCounts(reg prometheus.Registerer, name, help, label string, counts map[string]*atomic.Int64) {
	for value, n := range counts {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: prometheus.Labels{label: value},
		}, func() float64 { return float64(n.Load()) }))
	}
}
