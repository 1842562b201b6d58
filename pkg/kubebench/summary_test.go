package kubebench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func parseFixture(t *testing.T, name string) *Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSummarize_RealRun(t *testing.T) {
	s := Summarize(parseFixture(t, "kube-bench-master.json"), Limits{MaxFailures: 3, MaxText: 60})
	want := v1alpha1.BenchmarkSummary{
		Benchmark:         "cis-1.10",
		KubernetesVersion: "none", // kube-bench's value when --benchmark skips version detection
		NodeTypes:         []string{"master", "etcd", "controlplane", "policies"},
		Totals:            v1alpha1.BenchmarkTotals{Pass: 21, Fail: 37, Warn: 48},
		Sections: []v1alpha1.BenchmarkSection{
			{ID: "1", Text: "Control Plane Security Configuration", NodeType: "master", Totals: v1alpha1.BenchmarkTotals{Pass: 19, Fail: 27, Warn: 13}},
			{ID: "2", Text: "Etcd Node Configuration", NodeType: "etcd", Totals: v1alpha1.BenchmarkTotals{Pass: 2, Fail: 4, Warn: 1}},
			{ID: "3", Text: "Control Plane Configuration", NodeType: "controlplane", Totals: v1alpha1.BenchmarkTotals{Warn: 5}},
			{ID: "5", Text: "Kubernetes Policies", NodeType: "policies", Totals: v1alpha1.BenchmarkTotals{Fail: 6, Warn: 29}},
		},
		Failures: []v1alpha1.BenchmarkFailure{
			{ID: "1.1.1", Text: "Ensure that the API server pod specification file permissio…", Scored: true},
			{ID: "1.1.2", Text: "Ensure that the API server pod specification file ownership…", Scored: true},
			{ID: "1.1.3", Text: "Ensure that the controller manager pod specification file p…", Scored: true},
		},
		FailuresOmitted: 34,
	}
	if d := cmp.Diff(want, s); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
}

// A NodeBenchmark must stay small for etcd whatever kube-bench reports:
// with the default limits, a real run's summary is a few KiB.
func TestSummarize_StaysSmall(t *testing.T) {
	s := Summarize(parseFixture(t, "kube-bench-master.json"), Limits{})
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Failures) != 37 || len(data) > 8<<10 {
		t.Errorf("summary lists %d failures in %d bytes; want all 37 in at most 8 KiB", len(s.Failures), len(data))
	}
	t.Logf("summary of a real run: %d bytes (the kube-bench JSON: 138 KB)", len(data))
}

func TestSummarize_ScoredFailuresFirst(t *testing.T) {
	r := &Report{Controls: []Controls{{ID: "4", Version: "cis-1.10", NodeType: "node", Groups: []Group{{ID: "4.1", Checks: []Check{
		{ID: "4.1.1", Text: "manual", State: Fail},
		{ID: "4.1.2", Text: "scored", State: Fail, Scored: true},
		{ID: "4.1.3", Text: "passes", State: Pass, Scored: true},
		{ID: "4.1.4", Text: "also manual", State: Fail},
	}}}}}}
	s := Summarize(r, Limits{MaxFailures: 2})
	if d := cmp.Diff([]v1alpha1.BenchmarkFailure{{ID: "4.1.2", Text: "scored", Scored: true}, {ID: "4.1.1", Text: "manual"}}, s.Failures); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
	if s.FailuresOmitted != 1 {
		t.Errorf("omitted %d, want 1", s.FailuresOmitted)
	}
}

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"folds\n  white   space", 40, "folds white space"},
		{"exactly ten", 11, "exactly ten"},
		{"one too long", 11, "one too lo…"},
		{"ééééé", 3, "éé…"},
		{"anything", 0, ""},
	} {
		if got := Shorten(tc.in, tc.max); got != tc.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
