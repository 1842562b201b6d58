// Package scanner assembles the scanner process: a controller-runtime
// manager with leader election, the Trivy engine over an offline
// vulnerability database, the scan scheduler and the controllers feeding
// it, health, readiness and metrics. cmd/scanner only turns flags into a
// Config.
package scanner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	sbv1alpha1 "github.com/aquasecurity/starboard/pkg/apis/aquasecurity/v1alpha1"
	"github.com/go-logr/logr"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan"
	"github.com/statcan/daaas-guard/pkg/scan/registry"
	"github.com/statcan/daaas-guard/pkg/scan/trivy"
)

// ReportsPath is where full reports are served on the metrics address.
const ReportsPath = "/reports/"

// Config is everything the scanner process is told.
type Config struct {
	// Namespace the scanner runs in: its leader-election Lease lives there.
	Namespace string
	// LeaderElection makes one replica scan at a time.
	LeaderElection   bool
	LeaderElectionID string

	// DBDir holds Trivy's offline database (trivy.db, metadata.json);
	// DBCheckInterval is how often it is checked for a rebuild.
	DBDir           string
	DBCheckInterval time.Duration
	// CacheDir, when set, keeps layer analyses across scans and restarts.
	CacheDir string
	// ReportDir, when set, keeps each scan's full Trivy JSON and serves it
	// on the metrics address under /reports/sha256-<hex>.json.
	ReportDir string
	// TrivyReportDir, when set, is read for Trivy JSON reports to ingest;
	// TrivyReportInterval is how often.
	TrivyReportDir      string
	TrivyReportInterval time.Duration
	// Starboard ingests Starboard VulnerabilityReports when their CRD
	// exists; Workloads discovers Argo Workflows' and Tekton PipelineRuns'
	// images when theirs do.
	Starboard bool
	Workloads bool
	// PullSecrets: read pods' image pull secrets to resolve and pull
	// private images. Without it, only anonymous pulls.
	PullSecrets bool

	Concurrency  int
	TTL          time.Duration
	Jitter       float64
	RetryAfter   time.Duration
	ScanTimeout  time.Duration
	ResolveTTL   time.Duration
	MaxImageSize int64
	// Platform of multi-platform images to scan ("linux/amd64").
	Platform string
	// Registry overrides registry access (tests); by default
	// registry.Client for Platform.
	Registry scan.Registry

	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics
	// ("0" disables it).
	HealthAddr  string
	MetricsAddr string
	// ShutdownGrace is how long running work gets on shutdown.
	ShutdownGrace time.Duration
	// Metrics receives the scanner's series; by default the registry the
	// manager serves on MetricsAddr.
	Metrics prometheus.Registerer
	// SecondInstance allows another scanner in the same process (tests).
	SecondInstance bool

	Log logr.Logger
}

// Scheme holds the types the scanner reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, sbv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// NewManager creates the controller-runtime manager for cfg. Pods are
// cached trimmed to what the scanner reads; Secrets are never cached.
func NewManager(rc *rest.Config, cfg Config) (manager.Manager, error) {
	grace := cfg.ShutdownGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	id := cfg.LeaderElectionID
	if id == "" {
		id = "daaas-guard-scanner"
	}
	var extra map[string]http.Handler
	if cfg.ReportDir != "" {
		extra = map[string]http.Handler{ReportsPath: http.StripPrefix(ReportsPath, &scan.ReportStore{Dir: cfg.ReportDir})}
	}
	return ctrl.NewManager(rc, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  cfg.Log,
		HealthProbeBindAddress:  cfg.HealthAddr,
		Metrics:                 metricsserver.Options{BindAddress: cfg.MetricsAddr, ExtraHandlers: extra},
		GracefulShutdownTimeout: &grace,
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        id,
		LeaderElectionNamespace: cfg.Namespace,
		// Stepping down on shutdown lets the next replica take over at once.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Transform: scan.TrimPod},
		}},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller: config.Controller{SkipNameValidation: &cfg.SecondInstance},
	})
}

// Scanner is the assembled process.
type Scanner struct {
	Engine    *trivy.Engine
	Scheduler *scan.Scheduler
}

// Setup opens the vulnerability database and adds the scheduler, its
// controllers and the probes to mgr. The caller closes the Engine after
// the manager stops.
func Setup(mgr manager.Manager, cfg Config) (*Scanner, error) {
	log := cfg.Log
	if cfg.DBDir == "" {
		return nil, errors.New("scanner: the vulnerability database directory is required")
	}
	if cfg.ReportDir != "" {
		if fi, err := os.Stat(cfg.ReportDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("scanner: report directory %s: not a directory", cfg.ReportDir)
		}
	}
	engine, err := trivy.New(trivy.Options{DBDir: cfg.DBDir, CacheDir: cfg.CacheDir, MaxImageSize: cfg.MaxImageSize,
		KeepFull: cfg.ReportDir != "", Log: log.WithName("engine")})
	if err != nil {
		return nil, err
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = crmetrics.Registry
	}
	regClient := cfg.Registry
	if regClient == nil {
		rc := &registry.Client{UserAgent: "daaas-guard-scanner"}
		if cfg.Platform != "" {
			p, err := v1.ParsePlatform(cfg.Platform)
			if err != nil {
				return nil, fmt.Errorf("scanner: platform %q: %w", cfg.Platform, err)
			}
			rc.Platform = p
		}
		regClient = rc
	}
	var secrets scan.SecretReader = noSecrets{}
	if cfg.PullSecrets {
		secrets = secretReader{mgr.GetAPIReader()}
	}
	var reports *scan.ReportStore
	if cfg.ReportDir != "" {
		reports = &scan.ReportStore{Dir: cfg.ReportDir}
	}
	sched, err := scan.NewScheduler(scan.Config{
		Client:      mgr.GetClient(),
		Reader:      mgr.GetAPIReader(),
		Engine:      engine,
		Registry:    regClient,
		Secrets:     secrets,
		Concurrency: cfg.Concurrency,
		TTL:         cfg.TTL,
		Jitter:      cfg.Jitter,
		RetryAfter:  cfg.RetryAfter,
		ScanTimeout: cfg.ScanTimeout,
		ResolveTTL:  cfg.ResolveTTL,
		Reports:     reports,
		Metrics:     scan.NewMetrics(reg, func() time.Time { return engine.DB().UpdatedAt }),
		Log:         log.WithName("scheduler"),
	})
	if err != nil {
		return nil, err
	}
	if err := sched.SetupWithManager(mgr, scan.SetupOptions{Workloads: cfg.Workloads, Starboard: cfg.Starboard,
		DBCheckInterval: cfg.DBCheckInterval, SkipNameValidation: cfg.SecondInstance}); err != nil {
		return nil, err
	}
	if cfg.TrivyReportDir != "" {
		if err := mgr.Add(&scan.TrivyReportDir{Dir: cfg.TrivyReportDir, Every: cfg.TrivyReportInterval, Scheduler: sched}); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// Ready once the informers have synced; the database opened in Setup.
	if err := mgr.AddReadyzCheck("caches", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return &Scanner{Engine: engine, Scheduler: sched}, nil
}

// secretReader reads pull secrets straight from the API server, one by
// name, so the scanner needs only "get" on Secrets and caches none.
type secretReader struct{ r client.Reader }

func (s secretReader) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sec); err != nil {
		return nil, err
	}
	return sec, nil
}

// noSecrets is used when reading pull secrets is turned off: every secret
// reads as absent, so pulls are anonymous.
type noSecrets struct{}

func (noSecrets) Secret(_ context.Context, namespace, name string) (*corev1.Secret, error) {
	return nil, apierrors.NewNotFound(corev1.Resource("secrets"), namespace+"/"+name)
}
