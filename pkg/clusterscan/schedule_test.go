package clusterscan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func bench(name string, fail int32, failures []string, scanned metav1.ConditionStatus) v1alpha1.NodeBenchmark {
	nb := v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if failures != nil {
		s := &v1alpha1.BenchmarkSummary{Totals: v1alpha1.BenchmarkTotals{Pass: 10, Fail: fail, Warn: 2}}
		for _, f := range failures {
			s.Failures = append(s.Failures, v1alpha1.BenchmarkFailure{ID: f, Text: "check " + f})
		}
		nb.Status.Summary = s
	}
	nb.Status.Conditions = []metav1.Condition{{Type: v1alpha1.InfraScanConditionScanned, Status: scanned}}
	return nb
}

func TestAggregate(t *testing.T) {
	st := &v1alpha1.ClusterBenchmarkStatus{}
	aggregate(st, []v1alpha1.NodeBenchmark{
		bench("a", 2, []string{"1.2.1", "4.2.1"}, metav1.ConditionTrue),
		bench("b", 1, []string{"4.2.1"}, metav1.ConditionTrue),
		bench("c", 0, []string{}, metav1.ConditionFalse), // last scan failed, earlier summary kept
		bench("d", 0, nil, metav1.ConditionFalse),        // never scanned successfully
	}, 1)
	want := &v1alpha1.ClusterBenchmarkStatus{
		Nodes: 3, NodesFailing: 2, NodesInError: 2,
		Totals:         v1alpha1.BenchmarkTotals{Pass: 30, Fail: 3, Warn: 6},
		CommonFailures: []v1alpha1.CommonFailure{{ID: "4.2.1", Text: "check 4.2.1", Nodes: 2}},
	}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("aggregate (-want +got):\n%s", d)
	}
	setClusterCondition(st, 1)
	if c := scanned(st.Conditions); c.Reason != v1alpha1.InfraScanReasonIncomplete || c.Message != "the last scan of 2 node(s) failed; see their NodeBenchmarks" {
		t.Errorf("condition %+v", c)
	}
}

func TestApplies_StarboardReplacesOnlyOlderSummaries(t *testing.T) {
	at := func(h int) metav1.Time { return metav1.NewTime(time.Date(2026, 7, 1, h, 0, 0, 0, time.UTC)) }
	job := &v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceJob, Name: "kube-bench-x", ScanTime: at(10)}
	report := func(name string, h int, reason string) outcome {
		return outcome{reason: reason, origin: v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceCISKubeBenchReport, Name: name, ScanTime: at(h)}}
	}
	for _, tc := range []struct {
		name string
		cur  *v1alpha1.InfraScanOrigin
		o    outcome
		want bool
	}{
		{"first summary", nil, report("n", 9, ""), true},
		{"newer report", job, report("n", 11, ""), true},
		{"older report", job, report("n", 9, ""), false},
		{"same time", job, report("n", 10, ""), false},
		{"broken report over a Job's summary", job, report("n", 11, v1alpha1.InfraScanReasonInvalidReport), false},
		{"broken report over its own summary", &v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceCISKubeBenchReport, Name: "n", ScanTime: at(12)}, report("n", 1, v1alpha1.InfraScanReasonInvalidReport), true},
		{"same report again", &v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceCISKubeBenchReport, Name: "n", ScanTime: at(12)}, report("n", 12, ""), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := applies(tc.cur, tc.o); got != tc.want {
				t.Errorf("applies = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker()
	now := time.Now()
	tr.launch("j1", "a", now)
	tr.launch("j2", "b", now.Add(-2*launchGrace))
	tr.launch("h", hunterKey, now)
	got := tr.unseen(map[string]bool{"h": true}, now)
	if d := cmp.Diff(map[string]string{"j1": "a"}, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("unseen (-want +got):\n%s", d)
	}
	tr.done("j1", "a", "r1")
	if !tr.attemptedIn("a", "r1") || tr.attemptedIn("a", "r2") || tr.attemptedIn("b", "r1") {
		t.Error("attempted runs are not remembered per node")
	}
	if got := tr.unseen(nil, now); len(got) != 1 || got["h"] != hunterKey {
		t.Errorf("after done: %v", got)
	}
}
