package kubehunter

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const tokenEvidence = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZpeHR1cmUifQ.fixture-not-a-real-token"

func TestParse_PodReport(t *testing.T) {
	r, err := Parse(readFixture(t, "kube-hunter-pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 2 || len(r.Services) != 3 || len(r.Vulnerabilities) != 4 || r.HunterStatistics != nil {
		t.Fatalf("parsed %d nodes, %d services, %d findings, statistics %v", len(r.Nodes), len(r.Services), len(r.Vulnerabilities), r.HunterStatistics)
	}
	want := Vulnerability{
		Location: "Local to Pod (kube-hunter-7x2lq)", ID: "KHV050", Category: "Credential Access // Access container service account",
		Severity: Medium, Name: "Read access to pod's service account token",
		Description:  "Accessing the pod service account token gives an attacker the option to use the server API",
		Evidence:     tokenEvidence,
		AVDReference: "https://avd.aquasec.com/kube-hunter/khv050/", Hunter: "Access Secrets",
	}
	if d := cmp.Diff(want, r.Vulnerabilities[0]); d != "" {
		t.Errorf("first finding (-want +got):\n%s", d)
	}
	if d := cmp.Diff(Service{Service: "API Server", Location: "10.96.0.1:443"}, r.Services[2]); d != "" {
		t.Errorf("third service (-want +got):\n%s", d)
	}
}

func TestParse_StatisticsAndEmptyReports(t *testing.T) {
	r, err := Parse(readFixture(t, "kube-hunter-statistics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]HunterStatistic{
		{Name: "Api Version Hunter", Description: "Tries to obtain the Api Server's version directly from /version endpoint", Vulnerabilities: 1},
		{Name: "Access Secrets", Description: "Accessing the secrets accessible to the pod", Vulnerabilities: 0},
	}, r.HunterStatistics); d != "" {
		t.Errorf("statistics (-want +got):\n%s", d)
	}
	r, err = Parse(readFixture(t, "kube-hunter-nothing-found.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes)+len(r.Services)+len(r.Vulnerabilities) != 0 {
		t.Errorf("found something in an empty report: %+v", r)
	}
}

func TestParse_RejectsWhatIsNotAKubeHunterReport(t *testing.T) {
	pod := string(readFixture(t, "kube-hunter-pod.json"))
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{"empty", "", []string{"empty document"}},
		{"array", `[]`, []string{"not a kube-hunter report"}},
		{"plain report", "Vulnerabilities\n+----+", []string{"not a kube-hunter report"}},
		{"empty object", `{}`, []string{"nodes: required", "services: required", "vulnerabilities: required"}},
		{"kube-bench output", `{"Controls":[],"Totals":{}}`, []string{"Controls: unknown field"}},
		{"truncated", pod[:300], []string{"invalid JSON at byte"}},
		{"unknown member in a finding", strings.Replace(pod, `"hunter": "Access Secrets"`, `"hunter": "Access Secrets", "cvss": 9`, 1),
			[]string{"vulnerabilities[0].cvss: unknown field"}},
		{"unknown severity", strings.Replace(pod, `"severity": "high"`, `"severity": "critical"`, 1),
			[]string{`vulnerabilities[1].severity: must be one of high, medium, low, unknown, found "critical"`}},
		{"severity is case-sensitive", strings.Replace(pod, `"severity": "high"`, `"severity": "High"`, 1), []string{`found "High"`}},
		{"missing ID", strings.Replace(pod, `"vid": "KHV002", `, ``, 1), []string{"vulnerabilities[2].vid: required"}},
		{"empty name", strings.Replace(pod, `"vulnerability": "K8s Version Disclosure"`, `"vulnerability": ""`, 1), []string{"vulnerabilities[2].vulnerability: must not be empty"}},
		{"wrong type", strings.Replace(pod, `"location": "10.96.0.1:443"}]`, `"location": 443}]`, 1), []string{"services[2].location: must be a string, found a number"}},
		{"node without location", strings.Replace(pod, `{"type": "Node/Master", "location": "10.96.0.1"}`, `{"type": "Node/Master"}`, 1), []string{"nodes[1].location: required"}},
		{"negative statistic", strings.Replace(string(readFixture(t, "kube-hunter-statistics.json")), `"vulnerabilities": 0}`, `"vulnerabilities": -1}`, 1),
			[]string{"hunter_statistics[1].vulnerabilities: must not be negative"}},
		{"null findings", strings.Replace(pod, `"vulnerabilities": [{`, `"vulnerabilities": null, "x": [{`, 1), []string{"x: unknown field"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want *ParseError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSummarize_OrdersBySeverityCapsAndDropsEvidence(t *testing.T) {
	r, err := Parse(readFixture(t, "kube-hunter-pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := Summarize(r, Limits{MaxFindings: 3, MaxText: 30})
	want := v1alpha1.PenetrationTestSummary{
		Nodes: 2, Services: 3,
		Counts: v1alpha1.PenetrationSeverityCounts{High: 1, Medium: 2, Low: 1},
		Findings: []v1alpha1.PenetrationFinding{
			{ID: "KHV044", Name: "Privileged Container", Severity: "high", Category: "Initial Access // Exposed sen…", Location: "10.244.0.1:10255"},
			{ID: "KHV050", Name: "Read access to pod's service …", Severity: "medium", Category: "Credential Access // Access c…", Location: "Local to Pod (kube-hunter-7x2…"},
			{ID: "KHV005", Name: "Access to API using service a…", Severity: "medium", Category: "Discovery // Access the K8S A…", Location: "10.96.0.1:443"},
		},
		FindingsOmitted: 1,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
	data, err := json.Marshal(Summarize(r, Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "eyJhbGci") || strings.Contains(string(data), "APIVersions") {
		t.Errorf("the summary holds evidence: %s", data)
	}
}

func TestParseStarboard(t *testing.T) {
	var cr struct {
		Report json.RawMessage `json:"report"`
	}
	if err := json.Unmarshal(readFixture(t, "starboard-kubehunterreport.json"), &cr); err != nil {
		t.Fatal(err)
	}
	sr, err := ParseStarboard(cr.Report)
	if err != nil {
		t.Fatal(err)
	}
	if sr.Scanner != "kube-hunter 0.6.8" || sr.UpdateTimestamp.Format("2006-01-02T15:04:05Z07:00") != "2026-07-01T10:00:00Z" {
		t.Errorf("scanner %q, time %v", sr.Scanner, sr.UpdateTimestamp)
	}
	if got := Summarize(sr.Report, Limits{}).Counts; got != (v1alpha1.PenetrationSeverityCounts{High: 1, Medium: 2, Low: 1}) {
		t.Errorf("counts %+v", got)
	}

	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"summary disagrees", `"highCount": 1`, `"highCount": 2`, "report.summary: counts 2 high, 2 medium, 1 low, 0 unknown but the findings hold 1 high, 2 medium, 1 low, 0 unknown"},
		{"bad time", `"2026-07-01T10:00:00Z"`, `"yesterday"`, `report.updateTimestamp: must be an RFC 3339 time, found "yesterday"`},
		{"unknown member", `"vendor": "Aqua Security"`, `"vendor": "Aqua Security", "url": "x"`, "report.scanner.url: unknown field"},
		{"missing summary", `"summary"`, `"summery"`, "report.summery: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(string(cr.Report), tc.from, tc.to, 1)
			if doc == string(cr.Report) {
				t.Fatalf("%q is not in the fixture", tc.from)
			}
			_, err := ParseStarboard([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
