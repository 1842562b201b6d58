package kubebench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func starboardReport(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "starboard-ciskubebenchreport.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cr struct {
		Report json.RawMessage `json:"report"`
	}
	if err := json.Unmarshal(data, &cr); err != nil {
		t.Fatal(err)
	}
	return cr.Report
}

// Starboard's report of a run summarises as the run itself does.
func TestParseStarboard_SummarisesAsTheRun(t *testing.T) {
	sr, err := ParseStarboard(starboardReport(t))
	if err != nil {
		t.Fatal(err)
	}
	if sr.Scanner != "kube-bench v0.10.4" || sr.UpdateTimestamp.IsZero() {
		t.Errorf("scanner %q, time %v", sr.Scanner, sr.UpdateTimestamp)
	}
	want := Summarize(parseFixture(t, "kube-bench-master.json"), Limits{})
	want.KubernetesVersion = "" // Starboard drops detected_version
	if d := cmp.Diff(want, Summarize(sr.Report, Limits{})); d != "" {
		t.Errorf("summary (-run +starboard):\n%s", d)
	}
}

func TestParseStarboard_RejectsBrokenReports(t *testing.T) {
	doc := string(starboardReport(t))
	for _, tc := range []struct{ name, from, to, want string }{
		{"summary disagrees", `"failCount": 37`, `"failCount": 38`, "report.summary: counts 21 pass, 38 fail, 48 warn, 0 info but the sections hold 21 pass, 37 fail, 48 warn, 0 info"},
		{"unknown member", `"vendor": "Aqua Security"`, `"vendor": "Aqua Security", "extra": 1`, "report.scanner.extra: unknown field"},
		{"bad status", `"status": "PASS"`, `"status": "pass"`, `report.sections[0].tests[0].results[`},
		{"no timestamp", `"updateTimestamp": "2026-07-01T10:00:00Z",`, ``, "report.updateTimestamp: required"},
		{"not a time", `"2026-07-01T10:00:00Z"`, `"1 July"`, "must be an RFC 3339 time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := strings.Replace(doc, tc.from, tc.to, 1)
			if d == doc {
				t.Fatalf("%q is not in the fixture", tc.from)
			}
			_, err := ParseStarboard([]byte(d))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	for _, d := range []string{"null", "[]", ""} {
		if _, err := ParseStarboard([]byte(d)); err == nil || !strings.Contains(err.Error(), "report: must be an object") {
			t.Errorf("ParseStarboard(%q) = %v", d, err)
		}
	}
}
