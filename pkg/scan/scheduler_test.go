package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

var ctx = context.Background()

func TestScheduler_ScansEachDigestOnceAndRecordsTheVerdict(t *testing.T) {
	h := newHarness(t, nil)
	vuln, fixed := fakeDigest("vuln"), fakeDigest("fixed")
	h.reg.set("registry.example.ca/etl:1", vuln)
	h.reg.set("registry.example.ca/etl:2", fixed)
	h.engine.findings[vuln] = []report.Finding{
		{ID: "CVE-2099-0001", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: report.Critical},
		{ID: "CVE-2099-0002", Package: "musl", InstalledVersion: "1.2.5-r10", Severity: report.High},
	}
	h.start(t)
	for i := range 30 {
		img := "registry.example.ca/etl:1"
		if i%3 == 0 {
			img = "registry.example.ca/etl:2"
		}
		if err := h.s.ObservePod(ctx, pod("team-a", fmt.Sprint("p", i), nil, img, "registry.example.ca/etl:1")); err != nil {
			t.Fatal(err)
		}
	}
	h.idle(t)
	if n := h.engine.scans.Load(); n != 2 {
		t.Errorf("%d scans, want 2 (one per digest)", n)
	}
	if n := h.reg.resolves.Load(); n != 2 {
		t.Errorf("%d tag resolutions, want 2 (one per tag within the resolve TTL)", n)
	}
	is := h.imageScan(t, vuln)
	if diff := cmp.Diff(v1alpha1.ImageScanSpec{Digest: vuln, Repository: "registry.example.ca/etl"}, is.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	now := metav1.NewTime(*h.now.Load())
	gen := is.Generation // the API server's is 1; the fake client leaves 0
	want := v1alpha1.ImageScanStatus{
		ObservedGeneration: gen,
		Conditions: []metav1.Condition{{Type: "Scanned", Status: "True", Reason: "Succeeded", ObservedGeneration: gen,
			LastTransitionTime: now}},
		Source:          "Trivy",
		Scanner:         "Fake v1",
		ScannedAt:       &now,
		DB:              &v1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: metav1.NewTime(h.engine.db.UpdatedAt)},
		OS:              "alpine 3.23.2",
		Tags:            []string{"registry.example.ca/etl:1"},
		Vulnerabilities: v1alpha1.SeverityCounts{Critical: 1, High: 1},
		Fixable:         v1alpha1.SeverityCounts{Critical: 1},
		FixableCriticalHigh: []v1alpha1.FixableVulnerability{{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox",
			InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19"}},
	}
	if diff := cmp.Diff(want, is.Status, cmpopts.EquateApproxTime(time.Second)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if st := h.imageScan(t, fixed).Status; st.Vulnerabilities != (v1alpha1.SeverityCounts{}) || !st.Scanned() {
		t.Errorf("fixed image: %+v, want scanned and clean", st)
	}
}

func TestScheduler_BoundsRunningScansOnly(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Concurrency = 3 })
	h.engine.block = make(chan struct{})
	h.start(t)
	for i := range 10 {
		if _, err := h.s.Want(ctx, Job{Digest: fakeDigest(fmt.Sprint(i)), Repository: "r/x"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { _, r := h.s.Counts(); return r == 3 })
	if p, r := h.s.Counts(); p != 7 || r != 3 {
		t.Errorf("%d pending, %d running; want 7 and 3", p, r)
	}
	close(h.engine.block)
	h.idle(t)
	if peak := h.engine.peak.Load(); peak != 3 {
		t.Errorf("peak of %d scans at once, want 3", peak)
	}
	if n := h.engine.scans.Load(); n != 10 {
		t.Errorf("%d scans, want 10", n)
	}
}

func TestScheduler_PipelineAndNotebookPodsFirst(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Concurrency = 1 })
	h.engine.block = make(chan struct{})
	h.start(t)
	// Occupy the only worker, then queue in reverse priority order.
	must(t, h.s.ObservePod(ctx, pod("ns", "first", nil, "r/first@"+fakeDigest("first"))))
	waitFor(t, func() bool { _, r := h.s.Counts(); return r == 1 })
	_, err := h.s.Want(ctx, Job{Digest: fakeDigest("rescan"), Repository: "r/rescan", Priority: PriorityRescan})
	must(t, err)
	must(t, h.s.ObservePod(ctx, pod("ns", "web", nil, "r/web@"+fakeDigest("web"))))
	must(t, h.s.ObservePod(ctx, pod("ns", "step", map[string]string{"workflows.argoproj.io/workflow": "wf"}, "r/step@"+fakeDigest("step"))))
	must(t, h.s.ObservePod(ctx, pod("ns", "nb", map[string]string{"notebook-name": "nb"}, "r/nb@"+fakeDigest("nb"))))
	// A pending job asked for again at a higher priority moves up.
	_, err = h.s.Want(ctx, Job{Digest: fakeDigest("rescan"), Repository: "r/rescan", Priority: PriorityHigh})
	must(t, err)
	close(h.engine.block)
	h.idle(t)
	var got []string
	for _, d := range h.engine.order {
		for _, n := range []string{"first", "rescan", "web", "step", "nb"} {
			if d == fakeDigest(n) {
				got = append(got, n)
			}
		}
	}
	if diff := cmp.Diff([]string{"first", "step", "nb", "rescan", "web"}, got); diff != "" {
		t.Errorf("scan order (-want +got):\n%s", diff)
	}
}

func TestScheduler_RescansWhenTheDatabaseChangesOrTheTTLExpires(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TTL = 10 * time.Hour; c.Jitter = 0.2 })
	d := fakeDigest("img")
	h.start(t)
	_, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/img"})
	must(t, err)
	h.idle(t)

	// Current: not scanned again, and due within the jittered TTL.
	after, err := h.s.Observe(ctx, h.imageScan(t, d))
	must(t, err)
	if after < 8*time.Hour || after > 10*time.Hour {
		t.Errorf("rescan due in %v, want within [8h, 10h]", after)
	}
	if queued, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/img"}); err != nil || queued {
		t.Errorf("Want of a current verdict: queued %v, %v", queued, err)
	}

	// The database is rebuilt: the verdict is stale.
	h.engine.setDB(h.engine.db.UpdatedAt.Add(24 * time.Hour))
	must(t, h.s.RescanStale(ctx))
	h.idle(t)
	if n := h.engine.scans.Load(); n != 2 {
		t.Fatalf("%d scans after a database update, want 2", n)
	}
	is := h.imageScan(t, d)
	if !is.Status.DB.UpdatedAt.Time.Equal(h.engine.DB().UpdatedAt) {
		t.Errorf("verdict made with the database of %v, want %v", is.Status.DB.UpdatedAt, h.engine.DB().UpdatedAt)
	}

	// The TTL expires.
	h.advance(10*time.Hour + time.Minute)
	after, err = h.s.Observe(ctx, is)
	must(t, err)
	h.idle(t)
	if after != 0 || h.engine.scans.Load() != 3 {
		t.Errorf("after the TTL: due in %v, %d scans; want a rescan", after, h.engine.scans.Load())
	}
}

func TestScheduler_JitterSpreadsRescans(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TTL = 100 * time.Hour; c.Jitter = 0.5 })
	at := time.Date(2026, 8, 20, 0, 0, 0, 0, time.UTC)
	seen := map[time.Duration]bool{}
	for i := range 50 {
		ttl := h.s.ttl(fakeDigest(fmt.Sprint(i)), at)
		if ttl < 50*time.Hour || ttl > 100*time.Hour {
			t.Fatalf("ttl %v outside [50h, 100h]", ttl)
		}
		if ttl != h.s.ttl(fakeDigest(fmt.Sprint(i)), at) {
			t.Fatal("the jitter is not stable for one image")
		}
		seen[ttl.Truncate(5*time.Hour)] = true
	}
	if len(seen) < 5 {
		t.Errorf("50 images' rescans fall in %d five-hour windows, want them spread", len(seen))
	}
}

func TestScheduler_FailedScansAreRecordedAndRetried(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RetryAfter = time.Hour })
	d := fakeDigest("broken")
	h.engine.fail[d] = errors.New("pulling r/broken: UNAUTHORIZED: " + strings.Repeat("x", 1000))
	h.start(t)
	_, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/broken"})
	must(t, err)
	h.idle(t)
	is := h.imageScan(t, d)
	c := is.Status.Conditions
	if len(c) != 1 || c[0].Status != metav1.ConditionFalse || c[0].Reason != v1alpha1.ReasonScanFailed {
		t.Errorf("conditions %+v, want Scanned False Failed", c)
	}
	if !strings.HasPrefix(is.Status.Error, "pulling r/broken: UNAUTHORIZED") || len(is.Status.Error) > 512 {
		t.Errorf("error %q: want the cause, at most 512 bytes", is.Status.Error)
	}
	after, err := h.s.Observe(ctx, is)
	must(t, err)
	if after != time.Hour {
		t.Errorf("retry in %v, want 1h", after)
	}
	// A rescan that fails keeps the earlier verdict.
	delete(h.engine.fail, d)
	h.advance(time.Hour)
	_, err = h.s.Observe(ctx, is)
	must(t, err)
	h.idle(t)
	h.engine.fail[d] = errors.New("registry down")
	h.engine.setDB(h.engine.db.UpdatedAt.Add(time.Hour))
	must(t, h.s.RescanStale(ctx))
	h.idle(t)
	is = h.imageScan(t, d)
	if c := is.Status.Conditions[0]; c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonRescanFailed || is.Status.Error != "registry down" || is.Status.DB == nil {
		t.Errorf("after a failed rescan: %+v, want the previous verdict kept with the error", is.Status)
	}
	// The verdict still names the old database, yet the failed rescan is
	// retried after RetryAfter, not at every sighting of the ImageScan.
	scans := h.engine.scans.Load()
	after, err = h.s.Observe(ctx, is)
	must(t, err)
	if queued, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/broken"}); err != nil || queued {
		t.Errorf("Want after a failed rescan: queued %v, %v; want it left until the retry", queued, err)
	}
	h.idle(t)
	if after != time.Hour || h.engine.scans.Load() != scans {
		t.Errorf("after a failed rescan: due in %v, %d more scans; want due in 1h and none", after, h.engine.scans.Load()-scans)
	}
	h.advance(time.Hour)
	after, err = h.s.Observe(ctx, is)
	must(t, err)
	h.idle(t)
	if after != 0 || h.engine.scans.Load() != scans+1 {
		t.Errorf("after RetryAfter: due in %v, %d more scans; want a retry", after, h.engine.scans.Load()-scans)
	}
}

func TestScheduler_FractionalDatabaseTimesSurviveTheAPIServer(t *testing.T) {
	h := newHarness(t, nil)
	// trivy-db's metadata.json gives UpdatedAt in nanoseconds; ImageScans
	// keep whole seconds.
	h.engine.setDB(time.Date(2026, 8, 1, 6, 11, 32, 594875791, time.UTC))
	d := fakeDigest("img")
	h.start(t)
	_, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/img"})
	must(t, err)
	h.idle(t)
	if queued, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/img"}); err != nil || queued {
		t.Errorf("Want of a verdict just written: queued %v, %v", queued, err)
	}
	is := apiServerCopy(t, h.imageScan(t, d))
	if ns := is.Status.DB.UpdatedAt.Nanosecond(); ns != 0 {
		t.Fatalf("the stored database time keeps %dns; the test needs it in whole seconds", ns)
	}
	after, err := h.s.Observe(ctx, is)
	must(t, err)
	if after <= 0 {
		t.Errorf("Observe of a current verdict: due in %v, want later", after)
	}
	if queued, err := h.s.Want(ctx, Job{Digest: d, Repository: "r/img"}); err != nil || queued {
		t.Errorf("Want of a current verdict: queued %v, %v", queued, err)
	}
	h.idle(t)
	if n := h.engine.scans.Load(); n != 1 {
		t.Errorf("%d scans, want 1", n)
	}
}

func TestScheduler_RequestedScansGoBeforeRescans(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Concurrency = 1 })
	h.engine.block = make(chan struct{})
	h.start(t)
	_, err := h.s.Want(ctx, Job{Digest: fakeDigest("first"), Repository: "r/first"})
	must(t, err)
	waitFor(t, func() bool { _, r := h.s.Counts(); return r == 1 })
	// Verdicts made with an older database are queued for rescans...
	scanned := metav1.NewTime(*h.now.Load())
	for _, n := range []string{"old1", "old2"} {
		is := &v1alpha1.ImageScan{Spec: v1alpha1.ImageScanSpec{Digest: fakeDigest(n), Repository: "r/" + n},
			Status: v1alpha1.ImageScanStatus{Source: v1alpha1.SourceTrivy, ScannedAt: &scanned,
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue}},
				DB:         &v1alpha1.VulnerabilityDB{UpdatedAt: metav1.NewTime(h.engine.DB().UpdatedAt.Add(-24 * time.Hour))}}}
		after, err := h.s.Observe(ctx, is)
		must(t, err)
		if after != 0 {
			t.Fatalf("%s: due in %v, want a rescan now", n, after)
		}
	}
	// ...then the admission gate asks for an image never scanned.
	_, err = h.s.Observe(ctx, &v1alpha1.ImageScan{Spec: v1alpha1.ImageScanSpec{Digest: fakeDigest("asked"), Repository: "r/asked"}})
	must(t, err)
	close(h.engine.block)
	h.idle(t)
	var got []string
	for _, d := range h.engine.order {
		for _, n := range []string{"first", "old1", "old2", "asked"} {
			if d == fakeDigest(n) {
				got = append(got, n)
			}
		}
	}
	if diff := cmp.Diff([]string{"first", "asked", "old1", "old2"}, got); diff != "" {
		t.Errorf("scan order (-want +got):\n%s", diff)
	}
}

// apiServerCopy returns is as a client reads it back: serialised, so times
// lose their fractional seconds.
func apiServerCopy(t testing.TB, is *v1alpha1.ImageScan) *v1alpha1.ImageScan {
	t.Helper()
	b, err := json.Marshal(is)
	must(t, err)
	out := &v1alpha1.ImageScan{}
	must(t, json.Unmarshal(b, out))
	return out
}

func TestScheduler_ATagNamesOneDigestAtATime(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ResolveTTL = time.Minute })
	d1, d2 := fakeDigest("v1"), fakeDigest("v2")
	h.reg.set("index.docker.io/team/app:prod", d1)
	h.start(t)
	must(t, h.s.ObservePod(ctx, pod("ns", "a", nil, "team/app:prod", "team/app@"+d2)))
	h.idle(t)
	if got := h.imageScan(t, d1).Status.Tags; !slices.Equal(got, []string{"index.docker.io/team/app:prod"}) {
		t.Fatalf("tags of v1 %v", got)
	}
	// The tag moves to v2 (already scanned: only the tags change).
	h.reg.set("index.docker.io/team/app:prod", d2)
	h.advance(2 * time.Minute)
	must(t, h.s.ObservePod(ctx, pod("ns", "b", nil, "team/app:prod")))
	h.idle(t)
	if got := h.imageScan(t, d2).Status.Tags; !slices.Equal(got, []string{"index.docker.io/team/app:prod"}) {
		t.Errorf("tags of v2 %v, want the moved tag", got)
	}
	if got := h.imageScan(t, d1).Status.Tags; len(got) != 0 {
		t.Errorf("tags of v1 %v, want none", got)
	}
	if n := h.engine.scans.Load(); n != 2 {
		t.Errorf("%d scans, want 2", n)
	}
	// A running pod's recorded digest does not pull the tag back.
	p := pod("ns", "old", nil, "team/app:prod")
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c0", ImageID: "docker.io/team/app@" + d1}}
	must(t, h.s.ObservePod(ctx, p))
	h.idle(t)
	if got := h.imageScan(t, d2).Status.Tags; len(got) != 1 {
		t.Errorf("tags of v2 %v after an old pod was seen", got)
	}
}

func TestScheduler_PullsWithThePodsSecrets(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"private.example.ca":{"username":"robot","password":"pw"}}}`)}}
	h := newHarness(t, func(c *Config) { c.Secrets = mapSecrets{"team-a/regcred": secret} })
	d := fakeDigest("private")
	h.reg.set("private.example.ca/app:1", d)
	h.start(t)
	p := pod("team-a", "p", nil, "private.example.ca/app:1")
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "missing"}}
	must(t, h.s.ObservePod(ctx, p))
	h.idle(t)
	want := []authn.AuthConfig{{Username: "robot", Password: "pw"}, {Username: "robot", Password: "pw"}}
	if diff := cmp.Diff(want, h.reg.creds); diff != "" {
		t.Errorf("credentials used to resolve and pull (-want +got):\n%s", diff)
	}
	wantRefs := []v1alpha1.SecretReference{{Namespace: "team-a", Name: "regcred"}, {Namespace: "team-a", Name: "missing"}}
	if diff := cmp.Diff(wantRefs, h.imageScan(t, d).Spec.PullSecrets); diff != "" {
		t.Errorf("pull secrets kept for rescans (-want +got):\n%s", diff)
	}
	// A malformed pull secret is an error naming it.
	secret.Data[corev1.DockerConfigJsonKey] = []byte(`{`)
	h.reg.set("private.example.ca/app:2", fakeDigest("p2"))
	p2 := pod("team-a", "q", nil, "private.example.ca/app:2")
	p2.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	err := h.s.ObservePod(ctx, p2)
	if err == nil || !strings.Contains(err.Error(), "pod team-a/q container c0: Secret team-a/regcred: .dockerconfigjson") {
		t.Errorf("error %v, want one naming the pod and the secret", err)
	}
}

func TestScheduler_UnresolvableImagesAreErrorsUnparsableOnesSkipped(t *testing.T) {
	h := newHarness(t, nil)
	err := h.s.ObservePod(ctx, pod("ns", "p", nil, "r.example.ca/missing:1", "Not A Valid Ref"))
	if err == nil || !strings.Contains(err.Error(), "pod ns/p container c0: resolving r.example.ca/missing:1") {
		t.Errorf("error %v, want the unresolvable image named", err)
	}
}

func TestScheduler_IngestedReportsNeverOverrideOwnScans(t *testing.T) {
	h := newHarness(t, nil)
	own, other := fakeDigest("own"), fakeDigest("other")
	h.start(t)
	_, err := h.s.Want(ctx, Job{Digest: own, Repository: "r/own"})
	must(t, err)
	h.idle(t)
	findings := []report.Finding{{ID: "CVE-1", Package: "a", FixedVersion: "2", Severity: report.Critical}}
	at := h.now.Load().Add(time.Hour)
	wrote, err := h.s.Ingest(ctx, &report.Report{Digest: own, Repository: "r/own", Findings: findings, CreatedAt: at}, v1alpha1.SourceStarboard)
	if err != nil || wrote {
		t.Errorf("ingest over an own scan: wrote %v, %v", wrote, err)
	}
	rep := &report.Report{Digest: other, Repository: "r/other", Tags: []string{"r/other:1"}, Scanner: "Trivy 0.16.0", Findings: findings, CreatedAt: at}
	if wrote, err := h.s.Ingest(ctx, rep, v1alpha1.SourceStarboard); err != nil || !wrote {
		t.Fatalf("ingest: wrote %v, %v", wrote, err)
	}
	st := h.imageScan(t, other).Status
	if st.Source != v1alpha1.SourceStarboard || st.Scanner != "Trivy 0.16.0" || st.Fixable.Critical != 1 ||
		!slices.Equal(st.Tags, []string{"index.docker.io/r/other:1"}) || !st.ScannedAt.Time.Equal(at) {
		t.Errorf("ingested status %+v", st)
	}
	// The same report again, or an older one, changes nothing.
	if wrote, err := h.s.Ingest(ctx, rep, v1alpha1.SourceTrivyReport); err != nil || wrote {
		t.Errorf("ingest of the same report: wrote %v, %v", wrote, err)
	}
	if _, err := h.s.Ingest(ctx, &report.Report{Repository: "r/x"}, v1alpha1.SourceTrivyReport); !errors.Is(err, report.ErrNoDigest) {
		t.Errorf("ingest without a digest: %v", err)
	}
}

func TestScheduler_StopsCleanly(t *testing.T) {
	h := newHarness(t, nil)
	h.engine.block = make(chan struct{})
	h.start(t)
	_, err := h.s.Want(ctx, Job{Digest: fakeDigest("slow"), Repository: "r/slow"})
	must(t, err)
	waitFor(t, func() bool { _, r := h.s.Counts(); return r == 1 })
	h.stop() // cancels the running scan and returns
	if p, r := h.s.Counts(); p != 0 || r != 0 {
		t.Errorf("%d pending, %d running after stopping", p, r)
	}
	if err := h.c.Get(ctx, clientKey(fakeDigest("slow")), &v1alpha1.ImageScan{}); err == nil {
		t.Error("an interrupted scan wrote a verdict")
	}
}

func TestTrimPod_KeepsWhatTheScannerReads(t *testing.T) {
	p := pod("ns", "p", map[string]string{"a": "b"}, "img:1")
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "SECRET", Value: "x"}}
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "s"}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c0", ImageID: "img@" + fakeDigest("x"), RestartCount: 3}}
	p.Annotations = map[string]string{"big": strings.Repeat("x", 1000)}
	got, err := TrimPod(p)
	must(t, err)
	tp := got.(*corev1.Pod)
	if tp.Spec.Containers[0].Env != nil || tp.Annotations != nil || tp.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("kept more than needed: %+v", tp)
	}
	if !slices.Equal(imagesOf(tp), imagesOf(p)) || tp.Labels["a"] != "b" || tp.Spec.ImagePullSecrets[0].Name != "s" {
		t.Errorf("lost what the scanner reads: %+v", tp)
	}
}

func imagesOf(p *corev1.Pod) []string {
	var out []string
	for _, c := range p.Spec.Containers {
		out = append(out, c.Image)
	}
	for _, c := range p.Status.ContainerStatuses {
		out = append(out, c.ImageID)
	}
	return out
}

func clientKey(digest string) client.ObjectKey {
	name, _ := v1alpha1.ImageScanName(digest)
	return client.ObjectKey{Name: name}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
