package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

const day = 24 * time.Hour

// seedImageScan creates digest's ImageScan, created age ago, with a verdict
// made now by the engine's database unless stub.
func seedImageScan(t *testing.T, h *harness, digest string, age time.Duration, stub bool, mod func(*v1alpha1.ImageScan)) {
	t.Helper()
	name, err := v1alpha1.ImageScanName(digest)
	must(t, err)
	now := *h.now.Load()
	is := &v1alpha1.ImageScan{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Spec:       v1alpha1.ImageScanSpec{Digest: digest, Repository: "registry.example.ca/app"},
	}
	if mod != nil {
		mod(is)
	}
	st := is.Status
	must(t, h.c.Create(ctx, is))
	is.Status = st
	if !stub {
		at := metav1.NewTime(now)
		is.Status.ScannedAt = &at
		is.Status.Source, is.Status.Scanner = v1alpha1.SourceTrivy, "Fake v1"
		is.Status.DB = &v1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: metav1.NewTime(h.engine.db.UpdatedAt)}
		is.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ReasonScanSucceeded, LastTransitionTime: at}}
	}
	must(t, h.c.Status().Update(ctx, is))
}

func lastSeenAgo(h *harness, d time.Duration) func(*v1alpha1.ImageScan) {
	return func(is *v1alpha1.ImageScan) {
		is.Annotations = map[string]string{LastSeenAnnotation: h.now.Load().Add(-d).UTC().Format(time.RFC3339)}
	}
}

func retentionHarness(t *testing.T) (*harness, *ReportStore) {
	t.Helper()
	reports := &ReportStore{Dir: t.TempDir()}
	h := newHarness(t, func(c *Config) {
		c.Retention, c.StubRetention, c.Reports = 7*day, day, reports
	})
	return h, reports
}

func hasReport(t *testing.T, r *ReportStore, digest string) bool {
	t.Helper()
	name, err := v1alpha1.ImageScanName(digest)
	must(t, err)
	_, err = os.Stat(filepath.Join(r.Dir, name+".json"))
	return err == nil
}

func TestSweep_DeletesImageScansNoLongerInUse(t *testing.T) {
	d := fakeDigest("app")
	running := func(img, imageID string) *corev1.Pod {
		p := pod("team-a", "p", nil, img)
		if imageID != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c0", ImageID: imageID}}
		}
		return p
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, h *harness)
		kept  bool
	}{{
		name: "run by a pod (digest from the runtime)",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 30*day, false, lastSeenAgo(h, 10*day))
			must(t, h.c.Create(ctx, running("registry.example.ca/app:1", "registry.example.ca/app@"+d)))
		},
		kept: true,
	}, {
		name: "named by tag in a pod not yet running",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 30*day, false, func(is *v1alpha1.ImageScan) {
				lastSeenAgo(h, 10*day)(is)
				is.Status.Tags = []string{"registry.example.ca/app:1"}
			})
			must(t, h.c.Create(ctx, running("registry.example.ca/app:1", "")))
		},
		kept: true,
	}, {
		name: "seen between sweeps by a pod since gone",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 30*day, false, lastSeenAgo(h, 10*day))
			_, err := h.s.Observe(ctx, h.imageScan(t, d)) // current verdict: no scan
			must(t, err)
			must(t, h.s.ObservePod(ctx, running("registry.example.ca/app@"+d, "")))
		},
		kept: true,
	}, {
		name: "last seen within the retention",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 30*day, false, lastSeenAgo(h, 6*day))
		},
		kept: true,
	}, {
		name: "last seen longer ago than the retention",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 30*day, false, lastSeenAgo(h, 9*day))
		},
	}, {
		name: "never seen, created longer ago than the retention",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 8*day, false, nil)
		},
	}, {
		name: "stub without a verdict, younger than the stub retention",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 12*time.Hour, true, nil)
		},
		kept: true,
	}, {
		name: "stub without a verdict, older than the stub retention",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 26*time.Hour, true, nil)
		},
	}, {
		name: "only failed scans, older than the stub retention",
		setup: func(t *testing.T, h *harness) {
			seedImageScan(t, h, d, 26*time.Hour, true, func(is *v1alpha1.ImageScan) {
				setFailed(&is.Status, errors.New("registry.example.ca: no such host"), 0, h.now.Load().Add(-time.Hour))
			})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, reports := retentionHarness(t)
			must(t, reports.Put(d, []byte(`{}`)))
			tt.setup(t, h)
			must(t, h.s.sweep(ctx, nil))
			err := h.c.Get(ctx, clientKey(d), &v1alpha1.ImageScan{})
			if kept := err == nil; kept != tt.kept {
				t.Errorf("ImageScan kept: %v (%v), want %v", kept, err, tt.kept)
			}
			if kept := hasReport(t, reports, d); kept != tt.kept {
				t.Errorf("report kept: %v, want %v", kept, tt.kept)
			}
		})
	}
}

func TestSweep_RecordsWhenAnImageWasLastSeen(t *testing.T) {
	h, _ := retentionHarness(t)
	d := fakeDigest("app")
	seedImageScan(t, h, d, 30*day, false, nil)
	must(t, h.c.Create(ctx, pod("ns", "p", nil, "registry.example.ca/app@"+d)))
	want := h.now.Load().UTC().Format(time.RFC3339)
	must(t, h.s.sweep(ctx, nil))
	if got := h.imageScan(t, d).Annotations[LastSeenAnnotation]; got != want {
		t.Fatalf("last seen %q, want %q", got, want)
	}
	// Within an eighth of the retention the recorded time stands.
	h.advance(time.Hour)
	must(t, h.s.sweep(ctx, nil))
	if got := h.imageScan(t, d).Annotations[LastSeenAnnotation]; got != want {
		t.Errorf("last seen %q an hour later, want %q unchanged", got, want)
	}
	// Once the pod is gone the ImageScan outlives the retention, then goes.
	must(t, h.c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace("ns")))
	h.advance(7 * day)
	must(t, h.s.sweep(ctx, nil))
	h.imageScan(t, d)
	h.advance(2 * day)
	must(t, h.s.sweep(ctx, nil))
	if err := h.c.Get(ctx, clientKey(d), &v1alpha1.ImageScan{}); !apierrors.IsNotFound(err) {
		t.Errorf("ImageScan unused for 9 days: %v, want not found", err)
	}
}

func TestSweep_NeverDeletesADigestBeingScanned(t *testing.T) {
	h, _ := retentionHarness(t)
	d := fakeDigest("app")
	seedImageScan(t, h, d, 30*day, false, lastSeenAgo(h, 10*day))
	h.engine.block = make(chan struct{})
	h.start(t)
	// A rescan (the database changed, say) is running.
	_, err := h.s.Want(ctx, Job{Digest: d, Repository: "registry.example.ca/app", Priority: PriorityRescan})
	must(t, err)
	waitFor(t, func() bool { _, r := h.s.Counts(); return r == 1 })
	must(t, h.s.sweep(ctx, nil))
	if err := h.c.Get(ctx, clientKey(d), &v1alpha1.ImageScan{}); err != nil {
		t.Fatalf("ImageScan of a digest being scanned: %v", err)
	}
	close(h.engine.block)
	h.idle(t)
	// Its next sweep, with no scan running, deletes it.
	must(t, h.s.sweep(ctx, nil))
	if err := h.c.Get(ctx, clientKey(d), &v1alpha1.ImageScan{}); !apierrors.IsNotFound(err) {
		t.Errorf("ImageScan once the scan is done: %v, want not found", err)
	}
}

func TestQueue_ScanAskedForDuringADeletionRunsAfterIt(t *testing.T) {
	q := newQueue()
	d := fakeDigest("app")
	now := time.Date(2026, 8, 20, 12, 0, 0, 0, time.UTC)
	q.known(d, "registry.example.ca/app", time.Time{}, now.Add(time.Hour))
	if !q.hold(d) {
		t.Fatal("hold of a digest with a verdict refused")
	}
	if q.hold(d) {
		t.Error("a second hold was granted")
	}
	if got := q.add(Job{Digest: d, Tags: []string{"registry.example.ca/app:1"}, Priority: PriorityHigh}, now, time.Time{}); got != merged {
		t.Errorf("add during the hold: %v, want merged", got)
	}
	if p, _ := q.counts(); p != 0 {
		t.Errorf("%d pending during the hold, want 0", p)
	}
	if !q.release(d, true) {
		t.Error("release did not queue the scan asked for")
	}
	nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	j, ok := q.next(nctx)
	want := Job{Digest: d, Repository: "registry.example.ca/app", Tags: []string{"registry.example.ca/app:1"}, Priority: PriorityHigh}
	if diff := cmp.Diff(want, j); !ok || diff != "" {
		t.Errorf("job after the deletion (-want +got):\n%s", diff)
	}
	// Busy digests are not held; an abandoned deletion restores the entry.
	if q.hold(d) {
		t.Error("hold of a running digest was granted")
	}
	e := fakeDigest("other")
	q.known(e, "r/other", time.Time{}, now.Add(time.Hour))
	if !q.hold(e) || q.release(e, false) {
		t.Fatal("hold and release of an idle digest")
	}
	if got := q.add(Job{Digest: e}, now, time.Time{}); got != fresh {
		t.Errorf("add after an abandoned deletion: %v, want fresh (verdict kept)", got)
	}
}

func TestReportStore_Prune(t *testing.T) {
	a, b, c := fakeDigest("a"), fakeDigest("b"), fakeDigest("c")
	now := time.Now()
	tests := []struct {
		name     string
		maxBytes int64
		keep     func(string) bool
		want     []string
	}{{
		name: "reports of digests without an ImageScan go",
		keep: func(d string) bool { return d != b },
		want: []string{".report-new", "notes.txt", reportFile(a), reportFile(c)},
	}, {
		name:     "oldest first beyond the size bound",
		maxBytes: 15,
		want:     []string{".report-new", "notes.txt", reportFile(c)},
	}, {
		name:     "both",
		maxBytes: 15,
		keep:     func(d string) bool { return d != c },
		want:     []string{".report-new", "notes.txt", reportFile(b)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &ReportStore{Dir: t.TempDir(), MaxBytes: tt.maxBytes}
			for i, d := range []string{a, b, c} { // 10 bytes each, a oldest, c newest
				writeAged(t, filepath.Join(r.Dir, reportFile(d)), "0123456789", now.Add(time.Duration(i-3)*time.Hour))
			}
			writeAged(t, filepath.Join(r.Dir, ".report-old"), "x", now.Add(-2*time.Hour))
			writeAged(t, filepath.Join(r.Dir, ".report-new"), "x", now)
			writeAged(t, filepath.Join(r.Dir, "notes.txt"), "not a report", now.Add(-48*time.Hour))
			must(t, r.Prune(tt.keep, now))
			slices.Sort(tt.want)
			if diff := cmp.Diff(tt.want, dirNames(t, r.Dir)); diff != "" {
				t.Errorf("files left (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReportStore_PutKeepsTheBound(t *testing.T) {
	r := &ReportStore{Dir: t.TempDir(), MaxBytes: 25}
	for i, s := range []string{"a", "b", "c"} {
		must(t, r.Put(fakeDigest(s), []byte("0123456789")))
		// Distinct modification times, whatever the file system's precision.
		p := filepath.Join(r.Dir, reportFile(fakeDigest(s)))
		at := time.Now().Add(time.Duration(i-3) * time.Hour)
		must(t, os.Chtimes(p, at, at))
	}
	want := []string{reportFile(fakeDigest("b")), reportFile(fakeDigest("c"))}
	slices.Sort(want)
	if diff := cmp.Diff(want, dirNames(t, r.Dir)); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}

func TestSweep_PrunesReportsOfDigestsWithoutAnImageScan(t *testing.T) {
	h, reports := retentionHarness(t)
	kept, orphan, scanning := fakeDigest("kept"), fakeDigest("orphan"), fakeDigest("scanning")
	seedImageScan(t, h, kept, time.Hour, false, nil)
	for _, d := range []string{kept, orphan, scanning} {
		must(t, reports.Put(d, []byte(`{}`)))
	}
	// A first scan has kept its report but not yet created its ImageScan.
	_, err := h.s.Want(ctx, Job{Digest: scanning, Repository: "r/scanning"})
	must(t, err)
	must(t, h.s.sweep(ctx, nil))
	for d, want := range map[string]bool{kept: true, orphan: false, scanning: true} {
		if got := hasReport(t, reports, d); got != want {
			t.Errorf("report of %s kept: %v, want %v", d, got, want)
		}
	}
}

func reportFile(digest string) string {
	n, _ := v1alpha1.ImageScanName(digest)
	return n + ".json"
}

func writeAged(t *testing.T, path, data string, at time.Time) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(data), 0o600))
	must(t, os.Chtimes(path, at, at))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}
