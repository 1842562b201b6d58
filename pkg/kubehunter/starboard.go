package kubehunter

import (
	"fmt"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/strictjson"
)

// StarboardReport is the report of a Starboard KubeHunterReport
// (aquasecurity.github.io/v1alpha1, cluster-scoped). Starboard keeps only
// the findings: Nodes and Services of Report are empty.
type StarboardReport struct {
	Report          *Report
	UpdateTimestamp time.Time
	// Scanner is "<name> <version>" as Starboard recorded it.
	Scanner string
}

// Starboard's report body (starboard pkg/apis/aquasecurity/v1alpha1,
// kube_hunter_types.go); the findings have kube-hunter's keys.
type (
	wireStarboard struct {
		UpdateTimestamp *string           `json:"updateTimestamp"`
		Scanner         *wireScanner      `json:"scanner"`
		Summary         *wireStarboardSum `json:"summary"`
		Vulnerabilities *[]wireVuln       `json:"vulnerabilities"`
	}
	wireScanner struct {
		Name    string `json:"name"`
		Vendor  string `json:"vendor"`
		Version string `json:"version"`
	}
	wireStarboardSum struct {
		High    *int `json:"highCount"`
		Medium  *int `json:"mediumCount"`
		Low     *int `json:"lowCount"`
		Unknown *int `json:"unknownCount"`
	}
)

// ParseStarboard reads the JSON of a KubeHunterReport's "report" member as
// strictly as Parse reads kube-hunter's output; paths start at "report".
// The summary's counts must match the findings.
func ParseStarboard(report []byte) (*StarboardReport, error) {
	if strictjson.Kind(report) != '{' {
		return nil, &ParseError{Problems: []*strictjson.Error{{Path: "report", Msg: "must be an object"}}}
	}
	var w wireStarboard
	if err := strictjson.Unmarshal(report, &w); err != nil {
		return nil, parseError(err, "report")
	}
	v := newValidator()
	out := &StarboardReport{Report: &Report{}}
	if ts := v.str("report.updateTimestamp", w.UpdateTimestamp); ts != "" {
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
	if w.Vulnerabilities == nil {
		v.fail("report.vulnerabilities", "required")
	} else {
		out.Report.Vulnerabilities = v.vulnerabilities("report.vulnerabilities", *w.Vulnerabilities)
	}
	if w.Summary == nil {
		v.fail("report.summary", "required")
	} else {
		var declared, counted [4]int
		for i, f := range []struct {
			name string
			n    *int
		}{{"highCount", w.Summary.High}, {"mediumCount", w.Summary.Medium}, {"lowCount", w.Summary.Low}, {"unknownCount", w.Summary.Unknown}} {
			switch {
			case f.n == nil:
				v.fail("report.summary."+f.name, "required")
			case *f.n < 0:
				v.fail("report.summary."+f.name, "must not be negative, found %d", *f.n)
			default:
				declared[i] = *f.n
			}
		}
		for _, vu := range out.Report.Vulnerabilities {
			if vu.Severity != "" {
				counted[vu.Severity.rank()]++
			}
		}
		if w.Vulnerabilities != nil && declared != counted {
			v.fail("report.summary", "counts %s but the findings hold %s", format(declared), format(counted))
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func format(c [4]int) string {
	return fmt.Sprintf("%d high, %d medium, %d low, %d unknown", c[0], c[1], c[2], c[3])
}
