package kubebench

import (
	"fmt"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/strictjson"
)

// StarboardReport is the report of a Starboard CISKubeBenchReport
// (aquasecurity.github.io/v1alpha1, cluster-scoped, one per node).
type StarboardReport struct {
	Report          *Report
	UpdateTimestamp time.Time
	// Scanner is "<name> <version>" as Starboard recorded it.
	Scanner string
}

// Starboard's report body (starboard pkg/apis/aquasecurity/v1alpha1,
// cis_kube_bench_types.go). Its sections are kube-bench's controls with
// audit, expected_result and actual_value dropped, so they decode as such.
type (
	wireStarboard struct {
		UpdateTimestamp *string           `json:"updateTimestamp"`
		Scanner         *wireScanner      `json:"scanner"`
		Summary         *wireStarboardSum `json:"summary"`
		Sections        *[]wireControls   `json:"sections"`
	}
	wireScanner struct {
		Name    string `json:"name"`
		Vendor  string `json:"vendor"`
		Version string `json:"version"`
	}
	wireStarboardSum struct {
		Pass *int `json:"passCount"`
		Info *int `json:"infoCount"`
		Warn *int `json:"warnCount"`
		Fail *int `json:"failCount"`
	}
)

// ParseStarboard reads the JSON of a CISKubeBenchReport's "report" member
// as strictly as Parse reads kube-bench output; paths start at "report".
func ParseStarboard(report []byte) (*StarboardReport, error) {
	var w wireStarboard
	if strictjson.Kind(report) != '{' {
		return nil, &ParseError{Problems: []*strictjson.Error{{Path: "report", Msg: "must be an object"}}}
	}
	if err := strictjson.Unmarshal(report, &w); err != nil {
		pe := parseError(err).(*ParseError)
		for _, p := range pe.Problems {
			p.Path = join("report", p.Path)
		}
		return nil, pe
	}
	v := newValidator()
	out := &StarboardReport{Report: &Report{HasTotals: true}}
	if ts := v.str("report.updateTimestamp", w.UpdateTimestamp, true); ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			v.fail("report.updateTimestamp", "must be an RFC 3339 time, found %q", ts)
		}
		out.UpdateTimestamp = t
	}
	if w.Scanner == nil {
		v.fail("report.scanner", "required")
	} else {
		out.Scanner = strings.TrimSpace(w.Scanner.Name + " " + w.Scanner.Version)
	}
	if w.Sections == nil {
		v.fail("report.sections", "required")
	} else {
		out.Report.Controls = v.controls("report.sections", *w.Sections)
		for _, c := range out.Report.Controls {
			out.Report.Totals.add(c.Totals)
		}
	}
	if w.Summary == nil {
		v.fail("report.summary", "required")
	} else {
		declared := Totals{
			Pass: v.count("report.summary.passCount", w.Summary.Pass),
			Fail: v.count("report.summary.failCount", w.Summary.Fail),
			Warn: v.count("report.summary.warnCount", w.Summary.Warn),
			Info: v.count("report.summary.infoCount", w.Summary.Info),
		}
		if w.Sections != nil && declared != out.Report.Totals {
			v.fail("report.summary", "counts %s but the sections hold %s", format(declared), format(out.Report.Totals))
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func format(t Totals) string {
	return fmt.Sprintf("%d pass, %d fail, %d warn, %d info", t.Pass, t.Fail, t.Warn, t.Info)
}
