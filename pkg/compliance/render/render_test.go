package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/evidence"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedTime is the clock of the golden reports.
var fixedTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// fixtureReport builds the report of the evidence fixtures, with two
// earlier reports for the trend.
func fixtureReport(t testing.TB) *compliance.Report {
	t.Helper()
	in, err := evidence.ReadFiles([]string{filepath.Join("..", "..", "evidence", "testdata", "evidence")}, evidence.KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	in.SortInputs()
	ev, sources, warnings := in.Evidence(evidence.DefaultOptions(fixedTime))
	var previous []*compliance.Report
	for _, name := range []string{"previous-2026-11-19.json", "previous-2026-11-12.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := compliance.ReadReport(name, b)
		if err != nil {
			t.Fatal(err)
		}
		previous = append(previous, p)
	}
	return compliance.Build(compliance.DefaultModel(), ev, compliance.Meta{
		GeneratedAt: fixedTime, Cluster: "daaas-dev", Generator: "guardctl (test)", Sources: sources, Warnings: warnings,
	}, previous...)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/compliance/render -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got; go test -update rewrites it):\n%s", name, diff)
	}
}

func TestWrite_MatchesGoldenFiles(t *testing.T) {
	r := fixtureReport(t)
	for format, file := range map[string]string{JSON: "report.json", Markdown: "report.md", HTML: "report.html", OSCAL: "report.oscal.json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, format, r); err != nil {
				t.Fatal(err)
			}
			golden(t, file, buf.Bytes())
		})
	}
}

// Every format states when, for which cluster, and on which benchmark and
// database versions the report rests, and carries the disclaimer.
func TestWrite_EveryFormatStatesWhenWhereAndWhichVersions(t *testing.T) {
	r := fixtureReport(t)
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, format, r); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, want := range []string{"2026-11-26T12:00:00Z", "daaas-dev", "cis-1.10", "trivy-db v2", "2026-11-25T06:00:00Z", "0.74.0", "has not been validated by the security assessors"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s output lacks %q", format, want)
				}
			}
		})
	}
}

func TestWrite_EscapesEvidenceText(t *testing.T) {
	m := compliance.DefaultModel()
	r := compliance.Build(m, []compliance.Evidence{{
		Source: compliance.SourcePolicy, ID: "X", Result: compliance.ResultFail, Severity: compliance.SeverityHigh,
		Message: "<script>alert(1)</script> | pipe\nnewline", Labels: map[string]string{evidence.AnnotationControls: "AC-6"},
		Subjects: []compliance.Ref{{Kind: "Pod", Namespace: "a", Name: `"><img src=x>`}},
	}}, compliance.Meta{GeneratedAt: fixedTime, Cluster: "<b>c</b>"})
	var html, md bytes.Buffer
	if err := WriteHTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>alert", "<img src=x>", "<b>c</b>"} {
		if strings.Contains(html.String(), bad) {
			t.Errorf("HTML contains unescaped %q", bad)
		}
		if strings.Contains(md.String(), bad) {
			t.Errorf("Markdown contains unescaped %q", bad)
		}
	}
	if !strings.Contains(md.String(), `\| pipe newline`) {
		t.Error("Markdown table cell does not escape | or join lines")
	}
}

// The HTML page must load nothing from elsewhere: no external scripts,
// styles, images or fonts, so that it renders offline and archived.
func TestWriteHTML_IsSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, re := range []string{`(?i)<script[^>]+src=`, `(?i)<link[^>]+rel="?stylesheet`, `(?i)<img[^>]+src="?https?:`, `(?i)url\(`, `(?i)@import`, `(?i)<iframe`} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("page loads an external asset: %s", m)
		}
	}
	if !strings.Contains(page, `content="default-src 'none'`) {
		t.Error("page has no Content-Security-Policy forbidding external loads")
	}
	if strings.Contains(page, "ZgotmplZ") {
		t.Error("the template rejected a value (ZgotmplZ in the output)")
	}
}

func TestWriteMarkdown_CapsEvidencePerControl(t *testing.T) {
	var ev []compliance.Evidence
	for i := 0; i < maxEvidenceShown+5; i++ {
		ev = append(ev, compliance.Evidence{Source: compliance.SourceKubeBench, ID: "5.2." + strings.Repeat("1", i+1), Result: compliance.ResultPass})
	}
	r := compliance.Build(compliance.DefaultModel(), ev, compliance.Meta{GeneratedAt: fixedTime, Cluster: "c"})
	var md bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "5 more in the JSON report.") {
		t.Error("no note of the evidence left out")
	}
}

func TestCheckFormat(t *testing.T) {
	if err := CheckFormat("pdf"); err == nil || !strings.Contains(err.Error(), "json, markdown, html, oscal") {
		t.Errorf("CheckFormat(pdf) = %v", err)
	}
	if err := Write(&bytes.Buffer{}, "pdf", fixtureReport(t)); err == nil {
		t.Error("Write accepted an unknown format")
	}
}

// Read from a cluster, a stale NodeBenchmark and PenetrationTest, and a
// node without a NodeBenchmark, are shown in every format: the summaries
// named with their age and the limit, the nodes named. When the stale
// summaries are all the kube-bench and kube-hunter evidence, the controls
// they bear on are not assessed, and OSCAL still observes them.
func TestWrite_EveryFormatShowsStaleAndMissingBenchmarks(t *testing.T) {
	old := metav1.NewTime(fixedTime.Add(-40 * 24 * time.Hour))
	origin := &guardv1alpha1.InfraScanOrigin{Source: guardv1alpha1.InfraScanSourceJob, Name: "scan", ScanTime: old}
	stale := []string{
		"NodeBenchmark worker-1 was scanned on 2026-10-17T12:00:00Z, 40d before this report, more than the limit of 3d",
		"PenetrationTest cluster was scanned on 2026-10-17T12:00:00Z, 40d before this report, more than the limit of 21d",
	}
	for _, tc := range []struct {
		name       string
		nodesKnown bool
		want       []string
	}{
		{"stale summaries only", false, stale},
		{"a node without a NodeBenchmark", true, append(append([]string(nil), stale...),
			"2 of 2 nodes have no current CIS benchmark", "without a NodeBenchmark: worker-2", "with one older than 3d only: worker-1")},
	} {
		in := evidence.NewInputs()
		in.NodeBenchmarks = []evidence.NodeBenchmark{{Origin: evidence.ClusterOrigin, Bench: &guardv1alpha1.NodeBenchmark{
			ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: guardv1alpha1.NodeBenchmarkStatus{Origin: origin,
				Summary: &guardv1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", NodeTypes: []string{"node"}, Totals: guardv1alpha1.BenchmarkTotals{Pass: 18}}}}}}
		in.PenetrationTests = []evidence.PenetrationTest{{Origin: evidence.ClusterOrigin, Test: &guardv1alpha1.PenetrationTest{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: guardv1alpha1.PenetrationTestStatus{Origin: origin,
				Summary: &guardv1alpha1.PenetrationTestSummary{Nodes: 2}}}}}
		in.NodeBenchmarksKnown = true
		if tc.nodesKnown {
			in.Nodes, in.NodesKnown = []string{"worker-1", "worker-2"}, true
		}
		ev, sources, warnings := in.Evidence(evidence.DefaultOptions(fixedTime))
		r := compliance.Build(compliance.DefaultModel(), ev, compliance.Meta{GeneratedAt: fixedTime, Cluster: "c", Sources: sources, Warnings: warnings})
		for _, format := range Formats {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Write(&buf, format, r); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				for _, want := range tc.want {
					if !strings.Contains(out, want) {
						t.Errorf("%s output lacks %q", format, want)
					}
				}
			})
		}
	}
}
