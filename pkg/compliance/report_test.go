package compliance

import (
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
)

var testTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func testEvidence() []Evidence {
	return []Evidence{
		{Source: SourceKubeBench, ID: "5.2.2", Result: ResultPass, Origin: "bench.json"},
		{Source: SourceKubeBench, ID: "5.2.3", Result: ResultFail, Severity: SeverityHigh, Origin: "bench.json"},
		{Source: SourcePolicy, ID: "PSPPrivilegedContainer", Result: ResultPass, Severity: SeverityCritical,
			Labels: map[string]string{"controls": "AC-6"}, Subjects: []Ref{{Kind: "PSPPrivilegedContainer", Name: "no-privileged"}}},
		{Source: SourceKubeBench, ID: "1.2.1", Result: ResultInfo, Origin: "bench.json"},
		{Source: SourceKubeHunter, ID: "KHV002", Result: ResultFail, Severity: SeverityLow},
		{Source: SourcePolicy, ID: "Other", Result: ResultPass, Labels: map[string]string{"controls": "SI-3"}},
	}
}

func TestBuild_AssessesEachControlFromItsEvidence(t *testing.T) {
	m := testModel(t)
	r := Build(m, testEvidence(), Meta{GeneratedAt: testTime, Cluster: "dev", Generator: "test"})

	got := map[string]Status{}
	counts := map[string]Counts{}
	for _, c := range r.Controls {
		got[c.ID] = c.Status
		counts[c.ID] = c.Counts
	}
	if diff := cmp.Diff(map[string]Status{"AC-6": StatusPartially, "RA-5": StatusNotAssessed}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Counts{Pass: 2, Fail: 1}, counts["AC-6"]); diff != "" {
		t.Errorf("AC-6 counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Counts{Info: 1}, counts["RA-5"]); diff != "" {
		t.Errorf("RA-5 counts (-want +got):\n%s", diff)
	}
	// The failure comes first in the drill-down.
	if first := r.Controls[0].Evidence[0]; first.ID != "5.2.3" {
		t.Errorf("first AC-6 evidence is %s, want the failing 5.2.3", first.ID)
	}
	// Evidence outside every rule, or naming only unknown controls, is kept.
	var unmapped []string
	for _, e := range r.Unmapped {
		unmapped = append(unmapped, e.ID)
	}
	if diff := cmp.Diff([]string{"KHV002", "Other"}, unmapped); diff != "" {
		t.Errorf("unmapped (-want +got):\n%s", diff)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `control "SI-3"`) {
		t.Errorf("warnings = %q, want one about SI-3", r.Warnings)
	}
	want := Summary{
		Controls: 2,
		ByStatus: StatusCounts{Partially: 1, NotAssessed: 1},
		Evidence: Counts{Pass: 3, Fail: 2, Info: 1},
		Failures: SeverityCounts{High: 1, Low: 1},
		BySource: []SourceCount{
			{Source: SourcePolicy, Counts: Counts{Pass: 2}},
			{Source: SourceKubeBench, Counts: Counts{Pass: 1, Fail: 1, Info: 1}},
			{Source: SourceKubeHunter, Counts: Counts{Fail: 1}},
		},
	}
	if diff := cmp.Diff(want, r.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func TestBuild_IsDeterministicWhateverTheInputOrder(t *testing.T) {
	m := testModel(t)
	want, err := Build(m, testEvidence(), Meta{GeneratedAt: testTime}).JSON()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		ev := testEvidence()
		rng.Shuffle(len(ev), func(a, b int) { ev[a], ev[b] = ev[b], ev[a] })
		ev = append(ev, ev[0]) // the same file read twice
		got, err := Build(m, ev, Meta{GeneratedAt: testTime}).JSON()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Fatalf("shuffle %d changed the report (-want +got):\n%s", i, diff)
		}
	}
}

func TestBuild_TrendAndPreviousStatus(t *testing.T) {
	m := testModel(t)
	older := Build(m, nil, Meta{GeneratedAt: testTime.Add(-48 * time.Hour), Cluster: "dev"})
	old := Build(m, testEvidence()[:2], Meta{GeneratedAt: testTime.Add(-24 * time.Hour), Cluster: "dev"})
	other := Build(m, nil, Meta{GeneratedAt: testTime.Add(-72 * time.Hour), Cluster: "prod"})
	r := Build(m, testEvidence(), Meta{GeneratedAt: testTime, Cluster: "dev"}, old, other, older)

	var times []string
	for _, p := range r.Trend {
		times = append(times, p.GeneratedAt.Format(time.RFC3339))
	}
	if diff := cmp.Diff([]string{"2026-11-23T12:00:00Z", "2026-11-24T12:00:00Z", "2026-11-25T12:00:00Z", "2026-11-26T12:00:00Z"}, times); diff != "" {
		t.Errorf("trend times (-want +got):\n%s", diff)
	}
	if got := r.Trend[2].ByStatus; got != (StatusCounts{Partially: 1, NotAssessed: 1}) {
		t.Errorf("trend point of the previous report = %+v", got)
	}
	if got := r.Controls[0].PreviousStatus; got != StatusPartially {
		t.Errorf("AC-6 previous status = %s, want the latest earlier report's", got)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), `for cluster "prod"`) {
		t.Errorf("no warning about the other cluster's report: %q", r.Warnings)
	}
}

func TestReadReport_ReadsWhatBuildWrites(t *testing.T) {
	m := testModel(t)
	r := Build(m, testEvidence(), Meta{GeneratedAt: testTime, Cluster: "dev"})
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport("r.json", b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ name, data, want string }{
		{"not JSON", "{", "r.json: not a compliance report"},
		{"another document", `{"apiVersion": "v1", "kind": "Pod"}`, `kind "Pod"`},
		{"unknown field", strings.Replace(string(b), `"cluster"`, `"clusterz": 1, "cluster"`, 1), "clusterz"},
		{"no time", `{"apiVersion": "guard.statcan.gc.ca/v1alpha1", "kind": "ComplianceAssessment"}`, "generatedAt: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadReport("r.json", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The ComplianceReport status must stay small for etcd whatever the
// amount of evidence: counts only.
func TestCRStatus_IsSmallAndCarriesCountsOnly(t *testing.T) {
	m := DefaultModel()
	var ev []Evidence
	for i := 0; i < 5000; i++ {
		ev = append(ev, Evidence{Source: SourceKubeBench, ID: "1.2.1", Result: ResultFail, Message: strings.Repeat("x", 200),
			Subjects: []Ref{{Kind: "Node", Name: strings.Repeat("n", 10) + string(rune('a'+i%26)) + time.Duration(i).String()}}})
	}
	r := Build(m, ev, Meta{GeneratedAt: testTime, Cluster: "dev",
		Sources: []SourceInfo{{Source: SourceKubeBench, Origin: "x", Tool: "kube-bench", Benchmark: "cis-1.10"}}})
	st := r.CRStatus()
	b, err := json.Marshal(guardv1alpha1.ComplianceReport{Status: st})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 8<<10 {
		t.Errorf("status is %d bytes; keep it under 8 KiB", len(b))
	}
	if len(st.Controls) != len(m.Catalog.Controls) {
		t.Errorf("%d controls in status, want %d", len(st.Controls), len(m.Catalog.Controls))
	}
	if st.Summary.EvidenceFail != 5000 || st.Controls[0].ID != "AC-2" || !st.Sources[0].Provided || st.Sources[0].Benchmark != "cis-1.10" {
		t.Errorf("status = %+v", st)
	}
	t.Logf("ComplianceReport with %d controls: %d bytes of JSON", len(st.Controls), len(b))
}
