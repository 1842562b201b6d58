package refresh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/evidence"
)

var t0 = time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)

// setup returns a reconciler of the ComplianceReport "cluster" reading
// sources (nil: the default ones) from a cluster that also holds objs.
func setup(t *testing.T, schedule string, sources []evidence.ClusterSource, objs ...client.Object) (*Reconciler, client.Client, *time.Time) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, guardv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	cr := &guardv1alpha1.ComplianceReport{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster", Generation: 1},
		Spec:       guardv1alpha1.ComplianceReportSpec{Schedule: schedule, ClusterName: "aaw-prod"},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(append(objs, cr)...).WithStatusSubresource(cr).Build()
	now := t0
	r := &Reconciler{Client: c, Reader: c, O: Options{Sources: sources, Log: logr.Discard(), Now: func() time.Time { return now }}}
	return r, c, &now
}

var req = ctrl.Request{NamespacedName: types.NamespacedName{Name: "cluster"}}

func get(t *testing.T, c client.Client) *guardv1alpha1.ComplianceReport {
	t.Helper()
	cr := &guardv1alpha1.ComplianceReport{}
	if err := c.Get(context.Background(), req.NamespacedName, cr); err != nil {
		t.Fatal(err)
	}
	return cr
}

// A report is assessed at once, then again at each scheduled time, not
// before.
func TestReconcile_RefreshesOnSchedule(t *testing.T) {
	r, c, now := setup(t, "0 */6 * * *", []evidence.ClusterSource{})
	ctx := context.Background()
	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	cr := get(t, c)
	if cr.Status.GeneratedAt == nil || !cr.Status.GeneratedAt.Time.Equal(t0) || cr.Status.Cluster != "aaw-prod" || cr.Status.Summary.Controls == 0 {
		t.Fatalf("status after the first refresh: %+v", cr.Status)
	}
	if cond := meta.FindStatusCondition(cr.Status.Conditions, "Ready"); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition %+v", cond)
	}
	if want := 90 * time.Minute; res.RequeueAfter != want { // 10:30 → 12:00
		t.Errorf("RequeueAfter %v, want %v", res.RequeueAfter, want)
	}

	*now = t0.Add(time.Hour) // 11:30: not due
	if res, err = r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c).Status.GeneratedAt.Time; !got.Equal(t0) {
		t.Errorf("refreshed before its time: %v", got)
	}
	if want := 30 * time.Minute; res.RequeueAfter != want {
		t.Errorf("RequeueAfter %v, want %v", res.RequeueAfter, want)
	}

	*now = t0.Add(90 * time.Minute) // 12:00: due
	if _, err = r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c).Status.GeneratedAt.Time; !got.Equal(*now) {
		t.Errorf("not refreshed at 12:00: %v", got)
	}
}

// A schedule that is not cron syntax is reported in the status, naming the
// field, and the last assessment is kept.
func TestReconcile_InvalidSchedule(t *testing.T) {
	r, c, _ := setup(t, "every six hours", []evidence.ClusterSource{})
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	cond := meta.FindStatusCondition(get(t, c).Status.Conditions, "Ready")
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "InvalidSchedule" ||
		!strings.Contains(cond.Message, `spec.schedule "every six hours"`) {
		t.Errorf("Ready condition %+v", cond)
	}
}

// Evidence that cannot be read fails the refresh visibly and is retried.
func TestReconcile_EvidenceUnreadable(t *testing.T) {
	broken := evidence.ClusterSource{Name: "pods", Read: func(context.Context, client.Reader, *evidence.Inputs) error {
		return errors.New("connection refused")
	}}
	r, c, _ := setup(t, "", []evidence.ClusterSource{broken})
	if _, err := r.Reconcile(context.Background(), req); err == nil {
		t.Fatal("no error: the refresh would not be retried")
	}
	cond := meta.FindStatusCondition(get(t, c).Status.Conditions, "Ready")
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "EvidenceUnreadable" || !strings.Contains(cond.Message, "connection refused") {
		t.Errorf("Ready condition %+v", cond)
	}
}

// The scanner's verdicts are evidence: a running image with a fixable
// critical vulnerability leaves RA-5 and SI-2 not satisfied, and the
// database the scan used is named among the sources.
func TestReconcile_ImageScanVerdictsReachTheControls(t *testing.T) {
	digest := "sha256:64ec77741074de01d168b680d37c2bbe73062cfe6b0d238736c472b6049aadd2"
	name, err := guardv1alpha1.ImageScanName(digest)
	if err != nil {
		t.Fatal(err)
	}
	scanned := metav1.NewTime(t0.Add(-time.Hour))
	is := &guardv1alpha1.ImageScan{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       guardv1alpha1.ImageScanSpec{Digest: digest, Repository: "registry.example.ca/daaas/etl"},
		Status: guardv1alpha1.ImageScanStatus{
			Conditions: []metav1.Condition{{Type: guardv1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: guardv1alpha1.ReasonScanSucceeded, LastTransitionTime: scanned}},
			Source:     guardv1alpha1.SourceTrivy, Scanner: "Trivy v0.74.0", ScannedAt: &scanned,
			DB:              &guardv1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: metav1.NewTime(t0.Add(-2 * time.Hour))},
			Vulnerabilities: guardv1alpha1.SeverityCounts{Critical: 1},
			Fixable:         guardv1alpha1.SeverityCounts{Critical: 1},
			FixableCriticalHigh: []guardv1alpha1.FixableVulnerability{
				{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19"}},
		},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bob", Name: "etl"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.example.ca/daaas/etl@" + digest}}}}
	r, c, _ := setup(t, "", nil, is, pod)
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	st := get(t, c).Status
	got := map[string]string{}
	for _, ctl := range st.Controls {
		if ctl.ID == "RA-5" || ctl.ID == "SI-2" {
			got[ctl.ID] = fmt.Sprintf("%s %d pass %d fail", ctl.Status, ctl.Pass, ctl.Fail)
		}
	}
	// RA-5: scanned, VULN-HIGH and db-age pass, VULN-CRITICAL fails; SI-2
	// takes the VULN-* pair. The running image is covered.
	want := map[string]string{"RA-5": "not-satisfied 3 pass 1 fail", "SI-2": "not-satisfied 1 pass 1 fail"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("controls (-want +got):\n%s", diff)
	}
	var src *guardv1alpha1.ComplianceSource
	for i := range st.Sources {
		if st.Sources[i].Source == "image-scan" {
			src = &st.Sources[i]
		}
	}
	if src == nil || !src.Provided || src.Version != "0.74.0" || src.DBVersion != "trivy-db v2" || src.DBUpdatedAt == nil {
		t.Errorf("image-scan source %+v", src)
	}
}

// The scanner's kube-bench and kube-hunter summaries are evidence: CM-6
// takes a node's CIS configuration checks, RA-5 and SI-4 the kube-hunter
// run and its finding, and the sources name the benchmark.
func TestReconcile_InfraScanSummariesReachTheControls(t *testing.T) {
	at := metav1.NewTime(t0.Add(-time.Hour))
	ok := []metav1.Condition{{Type: guardv1alpha1.InfraScanConditionScanned, Status: metav1.ConditionTrue,
		Reason: guardv1alpha1.InfraScanReasonSucceeded, LastTransitionTime: at}}
	origin := &guardv1alpha1.InfraScanOrigin{Source: guardv1alpha1.InfraScanSourceJob, Name: "scan", ScanTime: at}
	nb := &guardv1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: guardv1alpha1.NodeBenchmarkStatus{
		Origin: origin, Conditions: ok,
		Summary: &guardv1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", NodeTypes: []string{"node"},
			Totals:   guardv1alpha1.BenchmarkTotals{Pass: 18, Fail: 1},
			Sections: []guardv1alpha1.BenchmarkSection{{ID: "4", Text: "Worker Node Security Configuration", NodeType: "node", Totals: guardv1alpha1.BenchmarkTotals{Pass: 18, Fail: 1}}},
			Failures: []guardv1alpha1.BenchmarkFailure{{ID: "4.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Scored: true}}}}}
	pt := &guardv1alpha1.PenetrationTest{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: guardv1alpha1.PenetrationTestStatus{
		Origin: origin, Conditions: ok,
		Summary: &guardv1alpha1.PenetrationTestSummary{Nodes: 1, Services: 1, Counts: guardv1alpha1.PenetrationSeverityCounts{Low: 1},
			Findings: []guardv1alpha1.PenetrationFinding{{ID: "KHV002", Name: "K8s Version Disclosure", Severity: "low", Location: "10.0.0.10:6443"}}}}}
	r, c, _ := setup(t, "", nil, nb, pt)
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	st := get(t, c).Status
	got := map[string]string{}
	for _, ctl := range st.Controls {
		switch ctl.ID {
		case "CM-6", "RA-5", "SI-4", "CM-2":
			got[ctl.ID] = fmt.Sprintf("%s %d pass %d fail", ctl.Status, ctl.Pass, ctl.Fail)
		}
	}
	// CM-6: 4.2.1 fails, section 4's other checks pass; RA-5: the
	// benchmark and kube-hunter runs pass, KHV002 fails.
	want := map[string]string{"CM-6": "partially-satisfied 1 pass 1 fail", "RA-5": "partially-satisfied 2 pass 1 fail",
		"SI-4": "satisfied 1 pass 0 fail", "CM-2": "satisfied 1 pass 0 fail"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("controls (-want +got):\n%s", diff)
	}
	provided := map[string]string{}
	for _, s := range st.Sources {
		if s.Provided {
			provided[s.Source] = s.Tool + " " + s.Benchmark
		}
	}
	if diff := cmp.Diff(map[string]string{"kube-bench": "kube-bench cis-1.10", "kube-hunter": "kube-hunter "}, provided); diff != "" {
		t.Errorf("sources provided (-want +got):\n%s", diff)
	}
}

// The refresh lists the nodes: one without a NodeBenchmark fails CM-6.
// The evidence options it is given bound the summaries' age: a
// NodeBenchmark older than MaxBenchmarkAge assesses nothing, and its node
// counts as one without.
func TestReconcile_NodesWithoutACurrentBenchmark(t *testing.T) {
	at := metav1.NewTime(t0.Add(-time.Hour))
	nb := &guardv1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: guardv1alpha1.NodeBenchmarkStatus{
		Origin: &guardv1alpha1.InfraScanOrigin{Source: guardv1alpha1.InfraScanSourceJob, Name: "scan", ScanTime: at},
		Conditions: []metav1.Condition{{Type: guardv1alpha1.InfraScanConditionScanned, Status: metav1.ConditionTrue,
			Reason: guardv1alpha1.InfraScanReasonSucceeded, LastTransitionTime: at}},
		Summary: &guardv1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", NodeTypes: []string{"node"},
			Totals:   guardv1alpha1.BenchmarkTotals{Pass: 18, Fail: 1},
			Sections: []guardv1alpha1.BenchmarkSection{{ID: "4", Text: "Worker Node Security Configuration", NodeType: "node", Totals: guardv1alpha1.BenchmarkTotals{Pass: 18, Fail: 1}}},
			Failures: []guardv1alpha1.BenchmarkFailure{{ID: "4.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Scored: true}}}}}
	strict := evidence.DefaultOptions(time.Time{})
	strict.MaxBenchmarkAge = 30 * time.Minute
	for _, tc := range []struct {
		name string
		opts *evidence.Options
		want string
	}{
		// 4.2.1 and worker-2 fail, section 4's other checks pass.
		{"default age", nil, "partially-satisfied 1 pass 2 fail"},
		// worker-1's benchmark is stale: both nodes fail, nothing passes.
		{"benchmarks older than the limit", &strict, "not-satisfied 0 pass 1 fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, _ := setup(t, "", nil, nb.DeepCopy(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}},
				&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-2"}})
			r.O.Evidence = tc.opts
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			for _, ctl := range get(t, c).Status.Controls {
				if ctl.ID != "CM-6" {
					continue
				}
				if got := fmt.Sprintf("%s %d pass %d fail", ctl.Status, ctl.Pass, ctl.Fail); got != tc.want {
					t.Errorf("CM-6: %s, want %s", got, tc.want)
				}
			}
		})
	}
}
