package scan

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// The scale the issue sets: 10,000 pods over 1,000 distinct images.
const (
	scalePods   = 10000
	scaleImages = 1000
)

type scaleResult struct {
	scans, started int64
	peakHeap       uint64
	imageScans     int
	elapsed        time.Duration
}

// runScale feeds scalePods pods, ten per image, through the pod reconciler
// (Get from the client, then discovery) with an instant fake engine and
// registry, and waits until every verdict is written.
func runScale(t testing.TB) scaleResult {
	h := newHarness(t, func(c *Config) { c.Concurrency = 4 })
	pods := make([]*corev1.Pod, 0, scalePods)
	for i := range scalePods {
		img := fmt.Sprintf("registry.example.ca/team-%d/etl:1.%d", i%scaleImages, i%scaleImages)
		h.reg.set(img, fakeDigest(img))
		p := pod(fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("run-%d", i), map[string]string{"workflows.argoproj.io/workflow": "wf"}, img)
		pods = append(pods, p)
		must(t, h.c.Create(ctx, p))
	}
	for i := range scaleImages {
		img := fmt.Sprintf("registry.example.ca/team-%d/etl:1.%d", i, i)
		h.engine.findings[fakeDigest(img)] = realisticFindings(i)
	}

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	start := time.Now()
	h.start(t)
	// Four reconciles at once, as the controller runs them.
	var rw sync.WaitGroup
	work := make(chan *corev1.Pod)
	for range 4 {
		rw.Go(func() {
			for p := range work {
				if _, err := h.s.ReconcilePod(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, p := range pods {
		work <- p
	}
	close(work)
	rw.Wait()
	h.idleWithin(t, 15*time.Minute)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	list := &v1alpha1.ImageScanList{}
	must(t, h.c.List(ctx, list))
	started := int64(testutil.ToFloat64(h.s.cfg.Metrics.Started))
	return scaleResult{scans: h.engine.scans.Load(), started: started, peakHeap: peak.Load(), imageScans: len(list.Items), elapsed: elapsed}
}

// BenchmarkScale runs the scale scenario (it takes minutes against the
// fake client, so it lives in make bench, not make test) and fails unless
// exactly one scan started per distinct image. It reports scans, peak heap
// in use, and the JSON size of the largest ImageScan the scanner writes
// (the most a verdict holds: a full list of fixable CVEs, all tags, all
// pull secrets), with and without the managed fields the API server adds.
func BenchmarkScale(b *testing.B) {
	var r scaleResult
	for b.Loop() {
		r = runScale(b)
	}
	if r.scans != scaleImages || r.started != scaleImages || r.imageScans != scaleImages {
		b.Fatalf("%d scans run, %d counted as started, %d ImageScans; want exactly %d of each", r.scans, r.started, r.imageScans, scaleImages)
	}
	b.ReportMetric(float64(r.scans), "scans")
	b.ReportMetric(float64(r.imageScans), "ImageScans")
	b.ReportMetric(float64(r.peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(r.elapsed.Seconds(), "run-s")
	b.ReportMetric(float64(len(worstCaseImageScan(b, true))), "bytes/ImageScan-with-managedFields")
	b.ReportMetric(float64(len(worstCaseImageScan(b, false))), "bytes/ImageScan")
	b.Logf("%d pods over %d images: %d scans started, %d ImageScans, peak heap in use %.1f MiB, %v",
		scalePods, scaleImages, r.started, r.imageScans, float64(r.peakHeap)/(1<<20), r.elapsed)
}

// TestImageScanSize keeps the largest ImageScan the scanner writes within
// 2 KiB (the target), so that thousands of verdicts stay cheap for
// etcd. The managed fields the API server adds on top are logged: they
// are not ours to shrink.
func TestImageScanSize(t *testing.T) {
	data := worstCaseImageScan(t, false)
	if len(data) > 2048 {
		t.Errorf("the largest ImageScan is %d bytes, want at most 2048:\n%s", len(data), data)
	}
	t.Logf("largest ImageScan: %d bytes; %d with the API server's managed fields", len(data), len(worstCaseImageScan(t, true)))
}

// realisticFindings are what a scan of a typical data-science image finds:
// a few dozen vulnerabilities, some fixable.
func realisticFindings(i int) []report.Finding {
	var f []report.Finding
	sev := []report.Severity{report.Critical, report.High, report.High, report.Medium, report.Medium, report.Low, report.Unknown}
	for j := range 40 {
		fx := ""
		if j%2 == 0 {
			fx = fmt.Sprintf("3.1.%d-r%d", j, i%9)
		}
		f = append(f, report.Finding{ID: fmt.Sprintf("CVE-2026-%05d", 10000+j*7+i%7), Package: fmt.Sprintf("libpkg%d", j%13),
			InstalledVersion: fmt.Sprintf("3.1.%d-r0", j), FixedVersion: fx, Severity: sev[j%len(sev)]})
	}
	return f
}

// worstCaseImageScan is the JSON of the largest ImageScan the scanner
// writes, with the metadata and managed fields the API server adds.
func worstCaseImageScan(t testing.TB, managedFields bool) []byte {
	t.Helper()
	digest := "sha256:" + strings.Repeat("7", 64)
	name, _ := v1alpha1.ImageScanName(digest)
	at := metav1.NewTime(time.Date(2026, 8, 20, 12, 34, 56, 0, time.UTC))
	var findings []report.Finding
	for j := range 40 {
		findings = append(findings, report.Finding{ID: fmt.Sprintf("CVE-2026-%05d", 40000+j), Package: "libcrypto3-long-package-name",
			InstalledVersion: "3.3.2-r10", FixedVersion: "3.3.2-r12", Severity: report.Critical})
	}
	st := v1alpha1.ImageScanStatus{}
	setVerdict(&st, &report.Report{OS: "alpine 3.23.2", Findings: findings}, v1alpha1.SourceTrivy, "Trivy v0.74.0", 1, at.Time)
	st.DB = &v1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: at}
	for i := range v1alpha1.MaxImageScanTags {
		st.Tags = append(st.Tags, fmt.Sprintf("k8scc01covidacr.azurecr.io/statcan-das/jupyter-scipy-notebook:2026.08.%02d", i))
	}
	var secrets []v1alpha1.SecretReference
	for i := range v1alpha1.MaxImageScanPullSecrets {
		secrets = append(secrets, v1alpha1.SecretReference{Namespace: "statcan-das-team", Name: fmt.Sprintf("acr-pull-%d", i)})
	}
	managed := func(manager, sub, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "guard.statcan.gc.ca/v1alpha1",
			Time: &at, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}, Subresource: sub}
	}
	is := &v1alpha1.ImageScan{
		TypeMeta: metav1.TypeMeta{APIVersion: "guard.statcan.gc.ca/v1alpha1", Kind: "ImageScan"},
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "0b7c2a53-0f3c-4a5e-9f55-3b1f1d2c4e5f", ResourceVersion: "123456789",
			Generation: 1, CreationTimestamp: at, Labels: map[string]string{"app.kubernetes.io/managed-by": "daaas-guard-scanner"},
			ManagedFields: []metav1.ManagedFieldsEntry{
				managed("scanner", "", `{"f:metadata":{"f:labels":{".":{},"f:app.kubernetes.io/managed-by":{}}},"f:spec":{".":{},"f:digest":{},"f:pullSecrets":{},"f:repository":{}}}`),
				managed("scanner", "status", `{"f:status":{".":{},"f:conditions":{".":{},"k:{\"type\":\"Scanned\"}":{".":{},"f:lastTransitionTime":{},"f:message":{},"f:observedGeneration":{},"f:reason":{},"f:status":{},"f:type":{}}},"f:db":{".":{},"f:schemaVersion":{},"f:updatedAt":{}},"f:fixable":{".":{},"f:critical":{}},"f:fixableCriticalHigh":{},"f:fixableNotListed":{},"f:observedGeneration":{},"f:os":{},"f:scannedAt":{},"f:scanner":{},"f:source":{},"f:tags":{},"f:vulnerabilities":{".":{},"f:critical":{}}}}`),
			}},
		Spec:   v1alpha1.ImageScanSpec{Digest: digest, Repository: "k8scc01covidacr.azurecr.io/statcan-das/jupyter-scipy-notebook", PullSecrets: secrets},
		Status: st,
	}
	if !managedFields {
		is.ManagedFields = nil
	}
	data, err := json.Marshal(is)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
