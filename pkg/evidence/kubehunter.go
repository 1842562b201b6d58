package evidence

import (
	"fmt"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// HunterRun is what the compliance model needs from one kube-hunter run:
// what it probed and what it found. Files decode into it (tooljson.go),
// and so do the scanner's PenetrationTest summaries (infrascans.go), which
// keep less.
type HunterRun struct {
	Origin   string
	Nodes    []string
	Services []string
	Findings []HunterFinding
	// Summary is set when the run was read from the scanner's summary of
	// it rather than from kube-hunter's JSON: Findings then holds the
	// findings it lists, without description or evidence, and Nodes and
	// Services are empty.
	Summary *HunterSummary
}

// HunterSummary is what a PenetrationTest keeps of a run besides the
// findings it lists.
type HunterSummary struct {
	// Object names the summary: "PenetrationTest cluster".
	Object string
	// From, Scanner, Image and ScanTime are as in BenchSummary.
	From, Scanner, Image string
	ScanTime             time.Time
	// Nodes and Services count what kube-hunter discovered.
	Nodes, Services int
	// Counts counts the findings by severity (high, medium, low,
	// unknown), listed or not.
	Counts map[compliance.Severity]int
	// FindingsOmitted counts the findings the summary leaves out.
	FindingsOmitted int
	// LatestFailed is as in BenchSummary.
	LatestFailed string
}

// hunterSeverity is the severity a PenetrationTest counts a finding
// under: kube-hunter's high, medium or low, otherwise unknown.
func hunterSeverity(s string) compliance.Severity {
	switch sev := compliance.ParseSeverity(s); sev {
	case compliance.SeverityHigh, compliance.SeverityMedium, compliance.SeverityLow:
		return sev
	}
	return compliance.SeverityUnknown
}

// HunterFinding is one kube-hunter vulnerability.
type HunterFinding struct {
	// VID is kube-hunter's ID, e.g. KHV002 ("None" for a few findings).
	VID         string
	Name        string
	Category    string
	Severity    string
	Location    string
	Description string
	Evidence    string
	Hunter      string
	Reference   string
}

// HunterEvidence turns kube-hunter runs into evidence: each finding fails,
// and each run records that the cluster was probed. A run read from a
// summary adds, per severity, one failing piece (unlisted-findings) for
// the findings it counts without listing them.
func HunterEvidence(runs []*HunterRun) []compliance.Evidence {
	var out []compliance.Evidence
	for _, run := range runs {
		listed := map[compliance.Severity]int{}
		for _, f := range run.Findings {
			listed[hunterSeverity(f.Severity)]++
			id := f.VID
			if id == "" || strings.EqualFold(id, "none") {
				id = f.Name
			}
			var subjects []compliance.Ref
			if f.Location != "" {
				subjects = []compliance.Ref{{Kind: "Endpoint", Name: f.Location}}
			}
			msg := clip(f.Description, 300)
			if f.Evidence != "" && f.Evidence != "none" {
				msg = strings.TrimSpace(msg + " Evidence: " + clip(f.Evidence, 200))
			}
			if run.Summary != nil {
				msg = joinParts(msg, "listed by the "+run.Summary.Object+
					" summary, which keeps no description or evidence (the evidence can be a credential)")
			}
			out = append(out, compliance.Evidence{
				Source:   compliance.SourceKubeHunter,
				ID:       id,
				Title:    f.Name,
				Result:   compliance.ResultFail,
				Severity: compliance.ParseSeverity(f.Severity),
				Subjects: subjects,
				Origin:   run.Origin,
				Message:  msg,
				Labels:   labelMap("category", f.Category, "reference", f.Reference),
			})
		}
		nodes, services, findings, msg := len(run.Nodes), len(run.Services), len(run.Findings), ""
		if s := run.Summary; s != nil {
			nodes, services, findings = s.Nodes, s.Services, 0
			omitted := s.FindingsOmitted
			for _, sev := range hunterSeverities {
				findings += s.Counts[sev]
				n := min(max(s.Counts[sev]-listed[sev], 0), omitted)
				omitted -= n
				if n == 0 {
					continue
				}
				out = append(out, compliance.Evidence{
					Source: compliance.SourceKubeHunter, ID: unlistedFindings, Title: "Findings the summary does not list",
					Result: compliance.ResultFail, Severity: sev, Origin: run.Origin,
					Message: fmt.Sprintf("%s of %s severity that the %s summary does not list: it lists at most a configured number, highest severity first",
						plural(n, "more finding"), sev, s.Object),
				})
			}
			msg = "; " + summaryOrigin(s.Object, s.From, s.Scanner, s.Image, s.ScanTime)
			if s.FindingsOmitted > 0 {
				msg += fmt.Sprintf(", listing %d of the findings", len(run.Findings))
			}
		}
		out = append(out, compliance.Evidence{
			Source:   compliance.SourceKubeHunter,
			ID:       "hunter-run",
			Title:    "kube-hunter penetration test run",
			Result:   compliance.ResultPass,
			Severity: compliance.SeverityInfo,
			Origin:   run.Origin,
			Message: fmt.Sprintf("kube-hunter probed %d nodes and %d services and reported %d findings",
				nodes, services, findings) + msg,
		})
		if s := run.Summary; s != nil && s.LatestFailed != "" {
			out = append(out, compliance.Evidence{
				Source: compliance.SourceKubeHunter, ID: "hunter-run", Title: "kube-hunter penetration test run",
				Result: compliance.ResultWarn, Severity: compliance.SeverityMedium, Origin: run.Origin,
				Message: fmt.Sprintf("the latest kube-hunter run failed (%s); the findings reported are an earlier run's, %s",
					s.LatestFailed, timeOrUnknown(s.ScanTime)),
			})
		}
	}
	return out
}

// unlistedFindings is the ID of the findings a summary counts without
// listing them.
const unlistedFindings = "unlisted-findings"

// hunterSeverities are the severities a PenetrationTest counts.
var hunterSeverities = []compliance.Severity{compliance.SeverityHigh, compliance.SeverityMedium, compliance.SeverityLow, compliance.SeverityUnknown}

// labelMap builds a label map from key, value pairs, leaving out empty
// values; nil when all are empty.
func labelMap(kv ...string) map[string]string {
	var m map[string]string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}
