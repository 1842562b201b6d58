package scan

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/registry"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// Config is everything a Scheduler is told.
type Config struct {
	// Client reads ImageScans (from the manager's cache) and writes them.
	Client client.Client
	// Reader reads uncached: ImageScans before they are updated, and
	// Starboard VulnerabilityReports whole (the cache keeps only their
	// metadata); by default Client.
	Reader   client.Reader
	Engine   Engine
	Registry Registry
	Secrets  SecretReader

	// Concurrency bounds the scans running at once (default 2).
	Concurrency int
	// TTL is how long a verdict stands before a rescan (default 24h), less
	// up to Jitter (a fraction, default 0.1) so that rescans spread out.
	TTL    time.Duration
	Jitter float64
	// RetryAfter is when a failed scan is tried again (default 10m).
	RetryAfter time.Duration
	// ScanTimeout bounds one pull and scan (default 10m).
	ScanTimeout time.Duration
	// ResolveTTL is how long a tag's digest is trusted without asking the
	// registry again (default 5m).
	ResolveTTL time.Duration
	// Reports, when set, keeps each scan's full report.
	Reports *ReportStore
	// Retention is how long an ImageScan stays after its image was last
	// seen in use by a pod, Workflow or PipelineRun; then it is deleted
	// with its kept report, so images gone from the cluster are no longer
	// rescanned (0 keeps ImageScans for good).
	Retention time.Duration
	// StubRetention is the shorter time an unused ImageScan without a
	// verdict stays: a request the admission gate made for an image that
	// never scans, or one that always failed (0: only Retention applies).
	StubRetention time.Duration
	// SweepInterval is how often retention is applied and kept reports are
	// pruned (default 1h).
	SweepInterval time.Duration
	// PodPriority ranks pods (default DefaultPodPriority).
	PodPriority PodPriority
	Metrics     *Metrics
	Log         logr.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Scheduler decides what to scan and when, runs the scans and writes the
// ImageScans. It is a manager.Runnable: Start runs the scan workers, on the
// elected leader only.
type Scheduler struct {
	cfg Config
	q   *queue
	log logr.Logger

	mu       sync.Mutex
	resolved map[string]resolution // tag name -> digest
	owners   map[string]string     // tag name -> digest of the ImageScan listing it
	seen     map[string]bool       // digests seen in use since the last sweep
}

type resolution struct {
	digest string
	until  time.Time
}

// NewScheduler checks cfg and fills in defaults.
func NewScheduler(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil || cfg.Engine == nil || cfg.Registry == nil || cfg.Secrets == nil {
		return nil, errors.New("scan: Client, Engine, Registry and Secrets are required")
	}
	if cfg.Reader == nil {
		cfg.Reader = cfg.Client
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Jitter < 0 || cfg.Jitter >= 1 {
		return nil, fmt.Errorf("scan: jitter %v: want a fraction in [0, 1)", cfg.Jitter)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.ScanTimeout <= 0 {
		cfg.ScanTimeout = DefaultScanTimeout
	}
	if cfg.ResolveTTL <= 0 {
		cfg.ResolveTTL = DefaultResolveTTL
	}
	if cfg.Retention < 0 || cfg.StubRetention < 0 {
		return nil, fmt.Errorf("scan: retention %v and stub retention %v: want 0 (off) or more", cfg.Retention, cfg.StubRetention)
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.PodPriority == nil {
		cfg.PodPriority = DefaultPodPriority
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil, nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{cfg: cfg, q: newQueue(), log: cfg.Log, resolved: map[string]resolution{}, owners: map[string]string{},
		seen: map[string]bool{}}, nil
}

// Start runs the scan workers until ctx ends, then waits for running scans
// to stop (their context is cancelled too).
func (s *Scheduler) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for {
				j, ok := s.q.next(ctx)
				if !ok {
					return
				}
				s.run(ctx, j)
			}
		})
	}
	s.log.Info("scan workers started", "concurrency", s.cfg.Concurrency)
	<-ctx.Done()
	wg.Wait()
	return nil
}

// Want asks for a verdict on j.Digest: the digest is queued unless a scan
// is pending or running (j merges into it) or its verdict is current, in
// which case only new tags are recorded. It reports whether a scan was
// queued.
func (s *Scheduler) Want(ctx context.Context, j Job) (bool, error) {
	if _, err := v1alpha1.ImageScanName(j.Digest); err != nil {
		return false, err
	}
	now, db := s.cfg.Now(), s.db().UpdatedAt
	switch s.q.add(j, now, db) {
	case queued:
		s.gauges()
		return true, nil
	case merged:
		return false, nil
	}
	return false, s.recordTags(ctx, j.Digest, j.Tags)
}

// Observe tells the scheduler about an ImageScan in the cluster: its
// verdict and tags. It returns when the verdict falls due for a rescan
// (zero if it is due now, in which case a rescan has been asked for).
func (s *Scheduler) Observe(ctx context.Context, is *v1alpha1.ImageScan) (time.Duration, error) {
	s.mu.Lock()
	for _, t := range is.Status.Tags {
		s.owners[t] = is.Spec.Digest
	}
	s.mu.Unlock()
	db, due := s.verdictTimes(is)
	now := s.cfg.Now()
	current := now.Before(due) && (db.IsZero() || db.Equal(s.db().UpdatedAt))
	if current {
		s.q.known(is.Spec.Digest, is.Spec.Repository, db, due)
		return due.Sub(now), nil
	}
	// An ImageScan never scanned is a request (the admission gate creates
	// one for an image it denied), which must not wait behind rescans.
	prio := PriorityRescan
	if is.Status.ScannedAt == nil {
		prio = PriorityHigh
	}
	_, err := s.Want(ctx, Job{Digest: is.Spec.Digest, Repository: is.Spec.Repository, PullSecrets: is.Spec.PullSecrets,
		Priority: prio})
	return 0, err
}

// db is the engine's database with UpdatedAt cut to whole seconds, the
// precision an ImageScan keeps it in: compared with one read back from the
// API server, trivy-db's nanoseconds would make every verdict look stale.
func (s *Scheduler) db() report.DB {
	db := s.cfg.Engine.DB()
	db.UpdatedAt = db.UpdatedAt.Truncate(time.Second)
	return db
}

// Forget drops what the scheduler knows of a deleted ImageScan.
func (s *Scheduler) Forget(digest string) {
	s.q.forget(digest)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, d := range s.owners {
		if d == digest {
			delete(s.owners, t)
		}
	}
}

// verdictTimes returns the database an ImageScan's verdict was made with
// and when it falls due. The database is zero when a newer one must not
// bring the rescan forward: for ingested reports, and after a failed scan,
// which waits for RetryAfter whatever the database.
func (s *Scheduler) verdictTimes(is *v1alpha1.ImageScan) (db, due time.Time) {
	st := &is.Status
	if st.ScannedAt == nil {
		return time.Time{}, time.Time{}
	}
	scanned := st.ScannedAt.Time
	if !st.Scanned() {
		return time.Time{}, scanned.Add(s.cfg.RetryAfter)
	}
	ttl := s.ttl(is.Spec.Digest, scanned)
	if st.Error != "" {
		// A rescan failed: the verdict stands until the retry. Queueing it
		// again for a newer database would hit the registry in a loop.
		return time.Time{}, scanned.Add(min(s.cfg.RetryAfter, ttl))
	}
	due = scanned.Add(ttl)
	if st.Source == v1alpha1.SourceTrivy {
		if st.DB == nil {
			return time.Time{}, time.Time{}
		}
		db = st.DB.UpdatedAt.Time
	}
	return db, due
}

// ttl is the TTL less a jitter drawn from the digest and scan time, so it
// is the same across restarts and different across images.
func (s *Scheduler) ttl(digest string, scanned time.Time) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(digest))
	h.Write([]byte(scanned.UTC().Format(time.RFC3339)))
	frac := float64(h.Sum64()%10000) / 10000
	return time.Duration(float64(s.cfg.TTL) * (1 - s.cfg.Jitter*frac))
}

// Idle reports whether no scan is pending, running or having its verdict
// written.
func (s *Scheduler) Idle() bool { return s.q.idle() }

// Counts returns the number of scans pending and running.
func (s *Scheduler) Counts() (pending, running int) { return s.q.counts() }

func (s *Scheduler) gauges() {
	p, r := s.q.counts()
	s.cfg.Metrics.Pending.Set(float64(p))
	s.cfg.Metrics.Running.Set(float64(r))
}

// keychain builds credentials from pull secrets; a missing secret is
// skipped (the image may be public), a malformed one is an error.
func (s *Scheduler) keychain(ctx context.Context, refs []v1alpha1.SecretReference) (authn.Keychain, error) {
	var secrets []corev1.Secret
	for _, r := range refs {
		sec, err := s.cfg.Secrets.Secret(ctx, r.Namespace, r.Name)
		if apierrors.IsNotFound(err) {
			s.log.V(1).Info("image pull secret not found; pulling without it", "secret", r.Namespace+"/"+r.Name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading image pull secret %s/%s: %w", r.Namespace, r.Name, err)
		}
		secrets = append(secrets, *sec)
	}
	if len(secrets) == 0 {
		return emptyKeychain, nil
	}
	return registry.NewKeychain(secrets)
}

// Resolve returns the digest image names (a pod's spec image), asking the
// registry only when the tag was not resolved within ResolveTTL.
func (s *Scheduler) Resolve(ctx context.Context, ref images.Ref, secrets []v1alpha1.SecretReference) (string, error) {
	if ref.Digest != "" {
		return ref.Digest, nil
	}
	tag := ref.TagName()
	now := s.cfg.Now()
	s.mu.Lock()
	r, ok := s.resolved[tag]
	s.mu.Unlock()
	if ok && now.Before(r.until) {
		return r.digest, nil
	}
	kc, err := s.keychain(ctx, secrets)
	if err != nil {
		return "", err
	}
	d, err := s.cfg.Registry.Resolve(ctx, ref, kc)
	if err != nil {
		s.cfg.Metrics.Resolves.WithLabelValues("failed").Inc()
		return "", err
	}
	s.cfg.Metrics.Resolves.WithLabelValues("succeeded").Inc()
	s.noteResolved(tag, d)
	return d, nil
}

// noteResolved records what a tag points to (from a registry or a
// runtime's imageID).
func (s *Scheduler) noteResolved(tag, digest string) {
	if tag == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolved[tag] = resolution{digest: digest, until: s.cfg.Now().Add(s.cfg.ResolveTTL)}
	if len(s.resolved) > 100000 { // bound memory: drop expired entries
		now := s.cfg.Now()
		for k, v := range s.resolved {
			if !now.Before(v.until) {
				delete(s.resolved, k)
			}
		}
	}
}
