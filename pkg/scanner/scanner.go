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
	"sync"
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

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan"
	"github.com/statcan/daaas-guard/pkg/scan/registry"
	"github.com/statcan/daaas-guard/pkg/scan/trivy"
	"github.com/statcan/daaas-guard/pkg/serving"
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
	// on the metrics address under /reports/sha256-<hex>.json (with
	// MetricsSecure, to callers who may get /reports/*).
	ReportDir string
	// ReportDirMaxBytes bounds the reports kept in ReportDir, oldest
	// removed first (0: no bound).
	ReportDirMaxBytes int64
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
	// Retention and StubRetention: see scan.Config.
	Retention     time.Duration
	StubRetention time.Duration
	// Platform of multi-platform images to scan ("linux/amd64").
	Platform string
	// Registry overrides registry access (tests); by default
	// registry.Client for Platform.
	Registry scan.Registry

	// HealthAddr serves /healthz and /readyz (plain HTTP, for the
	// kubelet); MetricsAddr serves /metrics and the reports ("0" disables
	// it).
	HealthAddr  string
	MetricsAddr string
	// MetricsSecure serves MetricsAddr over HTTPS to authenticated and
	// authorised callers only (serving.MetricsOptions); MetricsCertDir
	// holds its certificate, self-signed when empty.
	MetricsSecure  bool
	MetricsCertDir string
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

// NewManager creates the controller-runtime manager for cfg. Pods, Argo
// Workflows and Tekton PipelineRuns are cached trimmed to what the scanner
// reads; Starboard VulnerabilityReports are cached as metadata only (see
// scan.Scheduler.ReconcileVulnerabilityReport); Secrets are never cached.
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
	metrics, err := serving.MetricsOptions(cfg.MetricsAddr, cfg.MetricsSecure, cfg.MetricsCertDir, extra)
	if err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	return ctrl.NewManager(rc, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  cfg.Log,
		HealthProbeBindAddress:  cfg.HealthAddr,
		Metrics:                 metrics,
		GracefulShutdownTimeout: &grace,
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        id,
		LeaderElectionNamespace: cfg.Namespace,
		// Stepping down on shutdown lets the next replica take over at once.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}: {Transform: scan.TrimPod},
			},
			// Argo Workflows and Tekton PipelineRuns are trimmed too. Not in
			// ByObject: the cache would look their kinds up when created and
			// fail where their CRDs are not (yet) installed. As the default,
			// the transform only applies once their watches start.
			DefaultTransform: scan.TrimWorkload,
		},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller: config.Controller{SkipNameValidation: &cfg.SecondInstance},
	})
}

// Scanner is the image-scan part of the process: the Trivy engine, the
// scan scheduler and the controllers feeding it. Without a vulnerability
// database at start-up it waits for one, and the rest of the process runs
// meanwhile.
type Scanner struct {
	cfg     Config
	mgr     manager.Manager
	reg     prometheus.Registerer
	regc    scan.Registry
	secrets scan.SecretReader
	reports *scan.ReportStore

	mu     sync.Mutex
	engine *trivy.Engine
	sched  *scan.Scheduler
	// waiting is why scanning has not started yet; nil once it has.
	waiting error
	closed  bool
}

// Setup adds the image scans and the probes to mgr. When --db-dir holds no
// database yet (an operator fills it: the scanner never downloads one),
// Setup still succeeds: the database is looked for every DBCheckInterval,
// and the scheduler and its controllers are added once it is there. Any
// other problem with the database, or a bad setting, is an error. The
// caller closes the Scanner after the manager stops.
func Setup(mgr manager.Manager, cfg Config) (*Scanner, error) {
	if cfg.DBDir == "" {
		return nil, errors.New("scanner: the vulnerability database directory is required")
	}
	if cfg.ReportDir != "" {
		if fi, err := os.Stat(cfg.ReportDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("scanner: report directory %s: not a directory", cfg.ReportDir)
		}
	}
	s := &Scanner{cfg: cfg, mgr: mgr, reg: cfg.Metrics, regc: cfg.Registry, secrets: noSecrets{}}
	if s.reg == nil {
		s.reg = crmetrics.Registry
	}
	if s.regc == nil {
		rc := &registry.Client{UserAgent: "daaas-guard-scanner"}
		if cfg.Platform != "" {
			p, err := v1.ParsePlatform(cfg.Platform)
			if err != nil {
				return nil, fmt.Errorf("scanner: platform %q: %w", cfg.Platform, err)
			}
			rc.Platform = p
		}
		s.regc = rc
	}
	if cfg.PullSecrets {
		s.secrets = secretReader{mgr.GetAPIReader()}
	}
	if cfg.ReportDir != "" {
		s.reports = &scan.ReportStore{Dir: cfg.ReportDir, MaxBytes: cfg.ReportDirMaxBytes}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
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
	// Not ready while the database is missing: nothing waits on the
	// scanner's readiness (make deploy waits for the webhook only, and its
	// Service carries only metrics), so a pod shown 0/1 is the cheapest
	// way to tell an operator that image scanning is not running. Liveness
	// stays up, so the pod is not restarted meanwhile.
	if err := mgr.AddReadyzCheck("vulnerability-database", s.dbReady); err != nil {
		return nil, err
	}
	engine, err := s.openEngine()
	switch {
	case err == nil:
		if err := s.start(engine); err != nil {
			return nil, err
		}
	case errors.Is(err, trivy.ErrDBNotFound):
		s.waiting = err
		every := scan.DBCheckEvery(cfg.DBCheckInterval)
		cfg.Log.Info("no vulnerability database yet: everything but image scanning runs now; "+
			"put trivy.db and metadata.json into dir and image scanning starts", "dir", cfg.DBDir, "checkEvery", every, "reason", err.Error())
		if err := mgr.Add(&dbWaiter{s: s, every: every}); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	return s, nil
}

func (s *Scanner) openEngine() (*trivy.Engine, error) {
	return trivy.New(trivy.Options{DBDir: s.cfg.DBDir, CacheDir: s.cfg.CacheDir, MaxImageSize: s.cfg.MaxImageSize,
		KeepFull: s.cfg.ReportDir != "", Log: s.cfg.Log.WithName("engine")})
}

// start adds the scheduler over engine, and what feeds it, to the manager.
// It owns engine: on failure, or after Close, it closes it.
func (s *Scanner) start(engine *trivy.Engine) error {
	sched, err := s.addScheduler(engine)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || s.closed {
		_ = engine.Close()
		return err
	}
	s.engine, s.sched, s.waiting = engine, sched, nil
	return nil
}

func (s *Scanner) addScheduler(engine *trivy.Engine) (*scan.Scheduler, error) {
	cfg := s.cfg
	sched, err := scan.NewScheduler(scan.Config{
		Client:      s.mgr.GetClient(),
		Reader:      s.mgr.GetAPIReader(),
		Engine:      engine,
		Registry:    s.regc,
		Secrets:     s.secrets,
		Concurrency: cfg.Concurrency,
		TTL:         cfg.TTL,
		Jitter:      cfg.Jitter,
		RetryAfter:  cfg.RetryAfter,
		ScanTimeout: cfg.ScanTimeout,
		ResolveTTL:  cfg.ResolveTTL,
		Reports:     s.reports,
		Metrics:     scan.NewMetrics(s.reg, func() time.Time { return engine.DB().UpdatedAt }),
		Log:         cfg.Log.WithName("scheduler"),

		Retention:     cfg.Retention,
		StubRetention: cfg.StubRetention,
	})
	if err != nil {
		return nil, err
	}
	if err := sched.SetupWithManager(s.mgr, scan.SetupOptions{Workloads: cfg.Workloads, Starboard: cfg.Starboard,
		DBCheckInterval: cfg.DBCheckInterval, SkipNameValidation: cfg.SecondInstance}); err != nil {
		return nil, err
	}
	if cfg.TrivyReportDir != "" {
		if err := s.mgr.Add(&scan.TrivyReportDir{Dir: cfg.TrivyReportDir, Every: cfg.TrivyReportInterval, Scheduler: sched}); err != nil {
			return nil, err
		}
	}
	return sched, nil
}

// Scheduler is the scan scheduler, or nil while the database is awaited.
func (s *Scanner) Scheduler() *scan.Scheduler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sched
}

// Close closes the vulnerability database, if it was opened, and stops a
// late one from being opened.
func (s *Scanner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.engine == nil {
		return nil
	}
	err := s.engine.Close()
	s.engine = nil
	return err
}

// dbReady is the readiness check for the database.
func (s *Scanner) dbReady(*http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.waiting == nil:
		return nil
	case errors.Is(s.waiting, trivy.ErrDBNotFound):
		return fmt.Errorf("waiting for the vulnerability database in %s (trivy.db and metadata.json)", s.cfg.DBDir)
	default:
		return fmt.Errorf("waiting for a usable vulnerability database in %s: %w", s.cfg.DBDir, s.waiting)
	}
}

// dbWaiter looks for the database until it can be opened, then starts the
// image scans. It runs on every replica, leader or not, so that each one's
// readiness says whether it could scan.
type dbWaiter struct {
	s     *Scanner
	every time.Duration
}

func (w *dbWaiter) NeedLeaderElection() bool { return false }

func (w *dbWaiter) Start(ctx context.Context) error {
	log := w.s.cfg.Log
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		engine, err := w.s.openEngine()
		if err != nil {
			w.s.mu.Lock()
			prev := w.s.waiting
			w.s.waiting = err
			w.s.mu.Unlock()
			// A database half copied in can look corrupt: keep looking,
			// but say so, once per change of reason.
			if !errors.Is(err, trivy.ErrDBNotFound) && (prev == nil || prev.Error() != err.Error()) {
				log.Error(err, "the vulnerability database cannot be opened; image scanning keeps waiting for it", "dir", w.s.cfg.DBDir)
			}
			continue
		}
		log.Info("vulnerability database found: image scanning starts", "dir", w.s.cfg.DBDir)
		// A failure here is not about the database and will not go away:
		// it stops the manager.
		if err := w.s.start(engine); err != nil {
			return fmt.Errorf("scanner: starting the image scans: %w", err)
		}
		return nil
	}
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
