package imagegate

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Writer does the gate's writes off the admission path: it creates
// ImageScan stubs for digests to scan (spec only, no status: the scanner
// watches ImageScans and queues any without a current verdict) and adds
// exception usage to ImageException status in batches. Both inputs are
// non-blocking; when the buffer is full a request is dropped and counted.
// It is a manager.Runnable.
type Writer struct {
	Client  client.Client
	Metrics *Metrics
	Log     logr.Logger
	// Interval between usage flushes (default 10s).
	Interval time.Duration

	once  sync.Once
	scans chan [2]string
	mu    sync.Mutex
	usage map[string]int64
	last  time.Time
	asked map[string]time.Time // digest -> when a stub was last created
}

var (
	_ ScanRequester = &Writer{}
	_ UsageRecorder = &Writer{}
)

func (w *Writer) init() {
	w.once.Do(func() {
		w.scans = make(chan [2]string, 256)
		w.usage = map[string]int64{}
		w.asked = map[string]time.Time{}
	})
}

// RequestScan queues the creation of an ImageScan stub for digest.
func (w *Writer) RequestScan(digest, repository string) {
	w.init()
	select {
	case w.scans <- [2]string{digest, repository}:
	default:
		w.count("dropped")
	}
}

// Used counts one admission let through by exception.
func (w *Writer) Used(exception string) {
	w.init()
	if w.Metrics != nil {
		w.Metrics.ExceptionsUsed.WithLabelValues(exception).Inc()
	}
	w.mu.Lock()
	w.usage[exception]++
	w.last = time.Now()
	w.mu.Unlock()
}

func (w *Writer) count(result string) {
	if w.Metrics != nil {
		w.Metrics.ScanRequests.WithLabelValues(result).Inc()
	}
}

// Start runs until ctx ends, flushing usage once more on the way out.
func (w *Writer) Start(ctx context.Context) error {
	w.init()
	iv := w.Interval
	if iv <= 0 {
		iv = 10 * time.Second
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			kept := w.flush(flush)
			cancel()
			if len(kept) > 0 {
				// No flush follows this one.
				w.Log.Info("stopping with ImageException use not recorded in status (the metric counted it)", "admissions", kept)
			}
			return nil
		case s := <-w.scans:
			w.createStub(ctx, s[0], s[1])
		case <-tick.C:
			w.flush(ctx)
		}
	}
}

// createStub creates the ImageScan for digest unless one exists; the same
// digest is asked for at most once a minute (retried pods repeat it).
func (w *Writer) createStub(ctx context.Context, digest, repository string) {
	if t, ok := w.asked[digest]; ok && time.Since(t) < time.Minute {
		return
	}
	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		w.count("failed")
		return
	}
	w.asked[digest] = time.Now()
	if len(w.asked) > 4096 {
		clear(w.asked)
	}
	is := &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"app.kubernetes.io/created-by": "daaas-guard-webhook"}},
		Spec: v1alpha1.ImageScanSpec{Digest: digest, Repository: repository}}
	switch err := w.Client.Create(ctx, is); {
	case apierrors.IsAlreadyExists(err):
		w.count("exists")
	case err != nil:
		w.count("failed")
		w.Log.Error(err, "requesting a scan", "imagescan", name, "repository", repository)
	default:
		w.count("requested")
		w.Log.V(1).Info("scan requested", "imagescan", name, "repository", repository)
	}
}

// flush adds the counted usage to each exception's status. The counts of a
// write that fails are added back, to be written by the next flush: they
// are keyed by exception name, so what is kept is bounded by the
// ImageExceptions that exist. Those of a deleted exception are dropped.
// A write that timed out after the API server applied it is counted again:
// status may over-count, but loses no use. It returns the counts it kept.
func (w *Writer) flush(ctx context.Context) map[string]int64 {
	w.mu.Lock()
	usage, last := w.usage, w.last
	w.usage = map[string]int64{}
	w.mu.Unlock()
	var kept map[string]int64
	for name, n := range usage {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			ex := &v1alpha1.ImageException{}
			if err := w.Client.Get(ctx, client.ObjectKey{Name: name}, ex); err != nil {
				return err
			}
			ex.Status.MatchedAdmissions += n
			if ex.Status.LastUsed == nil || ex.Status.LastUsed.Time.Before(last) {
				ex.Status.LastUsed = &metav1.Time{Time: last.UTC().Truncate(time.Second)}
			}
			return w.Client.Status().Update(ctx, ex)
		})
		switch {
		case apierrors.IsNotFound(err):
			w.Log.V(1).Info("ImageException deleted; its use is not recorded", "imageexception", name, "admissions", n)
		case err != nil:
			w.Log.Error(err, "recording ImageException use; retrying at the next flush", "imageexception", name, "admissions", n)
			if kept == nil {
				kept = map[string]int64{}
			}
			kept[name] = n
		}
	}
	if len(kept) > 0 {
		w.mu.Lock()
		for name, n := range kept {
			w.usage[name] += n
		}
		w.mu.Unlock()
	}
	return kept
}

// NeedLeaderElection is false: every webhook replica writes the scan
// requests and exception use of the admissions it answered.
func (w *Writer) NeedLeaderElection() bool { return false }
