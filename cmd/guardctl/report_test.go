package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const evidenceDir = "../../pkg/evidence/testdata/evidence"

func TestReport_ExitCodesAndMessages(t *testing.T) {
	at := "--generated-at=2026-11-26T12:00:00Z"
	for _, tc := range []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"all evidence", []string{"report", "--from-files", evidenceDir, at}, 0, ""},
		{"each format", []string{"report", "--from-files", evidenceDir, "--format", "oscal", at}, 0, ""},
		{"no evidence", []string{"report"}, 2, "no evidence given"},
		{"unknown format", []string{"report", "--from-files", evidenceDir, "--format", "pdf"}, 2, `unknown report format "pdf"`},
		{"file of the wrong kind", []string{"report", "--trivy", evidenceDir + "/cis/kube-hunter.json"}, 2, "kube-hunter.json: expected a Trivy JSON report, found kube-hunter JSON"},
		{"missing file", []string{"report", "--kube-bench", "testdata/nope.json"}, 2, "nope.json"},
		{"bad previous report", []string{"report", "--from-files", evidenceDir, "--previous", evidenceDir + "/cis/kube-hunter.json"}, 2, "kube-hunter.json: not a compliance report"},
		{"bad catalogue", []string{"report", "--from-files", evidenceDir, "--catalog", evidenceDir + "/webhooks.yaml"}, 2, "webhooks.yaml"},
		{"bad time", []string{"report", "--from-files", evidenceDir, "--generated-at", "yesterday"}, 2, "--generated-at"},
		{"fail on not satisfied", []string{"report", "--from-files", evidenceDir, "--fail-on", "not-satisfied", at}, 1, "is Not satisfied (--fail-on not-satisfied)"},
		{"policies alone satisfy or partly satisfy", []string{"report", "--policies", evidenceDir + "/policies", at, "--fail-on", "not-satisfied"}, 0, ""},
		{"fail on partially", []string{"report", "--policies", evidenceDir + "/policies", at, "--fail-on", "partially-satisfied"}, 1, "control AC-2 is Partially satisfied"},
		{"bad fail-on", []string{"report", "--from-files", evidenceDir, "--fail-on", "sometimes"}, 2, `"sometimes" is not`},
		{"bad kubeconfig", []string{"report", "--kubeconfig", "testdata/nope"}, 2, "kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := guardctl(t, "", tc.args...)
			if r.code != tc.want || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, want %d, stderr wanted %q:\n%s", r.code, tc.want, tc.stderr, r.stderr)
			}
		})
	}
}

func TestReport_WritesTheFileAndSaysWhatItHolds(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "report.json")
	r := guardctl(t, "", "report", "--from-files", evidenceDir, "--cluster-name", "daaas-dev", "--output", out, "--generated-at", "2026-11-26T12:00:00Z")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stdout != "" || !strings.Contains(r.stderr, "wrote "+out+" (json): 25 controls, 6 satisfied, 7 partially satisfied, 9 not satisfied, 3 not assessed") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Cluster     string `json:"cluster"`
		GeneratedAt string `json:"generatedAt"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Cluster != "daaas-dev" || rep.GeneratedAt != "2026-11-26T12:00:00Z" {
		t.Errorf("report %+v, %v", rep, err)
	}
	// The written report feeds the next one's trend.
	r = guardctl(t, "", "report", "--from-files", evidenceDir, "--cluster-name", "daaas-dev", "--previous", out, "--format", "markdown")
	if r.code != 0 || !strings.Contains(r.stdout, "## Trend") {
		t.Errorf("exit %d, no trend:\n%s", r.code, r.stderr)
	}
}

func TestReport_CustomMappingReplacesTheShippedOne(t *testing.T) {
	dir := t.TempDir()
	mapping := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mapping, []byte(`apiVersion: guard.statcan.gc.ca/v1alpha1
kind: ControlMapping
name: only-hunter
version: "1"
rules:
  - source: kube-hunter
    ids: ["KHV*"]
    controls: [SI-4]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := guardctl(t, "", "report", "--kube-hunter", evidenceDir+"/cis/kube-hunter.json", "--mapping", mapping)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var rep struct {
		Mapping  struct{ Name, Origin string }
		Controls []struct{ ID, Status string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, c := range rep.Controls {
		status[c.ID] = c.Status
	}
	if rep.Mapping.Name != "only-hunter" || rep.Mapping.Origin != mapping || status["SI-4"] != "not-satisfied" || status["RA-5"] != "not-assessed" {
		t.Errorf("mapping %+v, SI-4 %s, RA-5 %s", rep.Mapping, status["SI-4"], status["RA-5"])
	}
}
