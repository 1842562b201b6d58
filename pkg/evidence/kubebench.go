package evidence

import (
	"fmt"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// BenchRun is what the compliance model needs from one kube-bench run: the
// benchmark it used and each check's outcome. Files decode into it
// (tooljson.go), and so do the scanner's NodeBenchmark summaries
// (infrascans.go), which keep less.
type BenchRun struct {
	// Origin is the file or object the run was read from.
	Origin string
	// Node is the node the run checked, when known (kube-bench's JSON
	// does not say).
	Node string
	// Benchmarks are the benchmark versions used, e.g. cis-1.10.
	Benchmarks []string
	// KubernetesVersions are the versions kube-bench detected.
	KubernetesVersions []string
	// NodeTypes are the kinds of checks run: master, node, etcd, ...
	NodeTypes []string
	Checks    []BenchCheck
	// Summary is set when the run was read from the scanner's summary of
	// it rather than from kube-bench's JSON: Checks then holds only the
	// failing checks the summary lists, and Summary counts the rest.
	Summary *BenchSummary
}

// BenchSummary is what a NodeBenchmark keeps of a run besides the failing
// checks it lists: counts, per section and overall.
type BenchSummary struct {
	// Object names the summary: "NodeBenchmark worker-1".
	Object string
	// From is what the scanner read ("Job kube-bench-…",
	// "CISKubeBenchReport …"), Scanner the tool and Image the Job's
	// image, when known; ScanTime is when kube-bench ran.
	From, Scanner, Image string
	ScanTime             time.Time
	Totals               BenchCounts
	// Sections are kube-bench's top-level controls (1 master, 2 etcd,
	// 3 control plane, 4 node, 5 policies in cis-1.10).
	Sections []BenchSection
	// FailuresOmitted counts the failing checks the summary leaves out.
	FailuresOmitted int
	// LatestFailed says why the scanner's latest scan of the node failed,
	// the summary being an earlier scan's; empty when it succeeded.
	LatestFailed string
}

// BenchCounts counts checks by status.
type BenchCounts struct {
	Pass, Fail, Warn, Info int
}

// BenchSection is one section's counts.
type BenchSection struct {
	ID, Text, NodeType string
	Counts             BenchCounts
}

// BenchCheck is one CIS check's outcome.
type BenchCheck struct {
	// ID is the benchmark's check number, e.g. 1.2.1.
	ID   string
	Text string
	// Status is PASS, FAIL, WARN or INFO.
	Status         string
	Scored         bool
	Remediation    string
	ActualValue    string
	ExpectedResult string
	Reason         string
	NodeType       string
	Section        string
}

// BenchEvidence turns kube-bench runs into evidence: one piece per check,
// and one benchmark-run per run (scanning happens; the benchmark version
// is the declared baseline).
//
// A run read from a summary gives one piece per failing check it lists
// and, per section, one piece each for the checks it only counts: those
// passing, warning, informing, and failing beyond the listed ones. Their
// ID is the section's ("1"), which the mapping assigns to the controls
// every check of that section bears on; the controls it assigns single
// checks to see the listed failures only.
func BenchEvidence(runs []*BenchRun) []compliance.Evidence {
	var out []compliance.Evidence
	for _, run := range runs {
		var subjects []compliance.Ref
		if run.Node != "" {
			subjects = []compliance.Ref{{Kind: "Node", Name: run.Node}}
		}
		counts := map[string]int{}
		for _, c := range run.Checks {
			counts[c.Status]++
			e := compliance.Evidence{
				Source:   compliance.SourceKubeBench,
				ID:       c.ID,
				Title:    c.Text,
				Result:   benchResult(c.Status),
				Severity: compliance.SeverityUnknown, // CIS gives none
				Subjects: subjects,
				Origin:   run.Origin,
				Message:  benchMessage(c),
			}
			if run.Summary != nil {
				e.Message = joinParts(e.Message, "listed by the "+run.Summary.Object+
					" summary, which keeps no reason, found value or remediation (kube-bench's JSON has them)")
			}
			out = append(out, e)
		}
		msg := ""
		if s := run.Summary; s != nil {
			out = append(out, benchSectionEvidence(run, subjects)...)
			counts = map[string]int{"PASS": s.Totals.Pass, "FAIL": s.Totals.Fail, "WARN": s.Totals.Warn, "INFO": s.Totals.Info}
			msg = "; " + summaryOrigin(s.Object, s.From, s.Scanner, s.Image, s.ScanTime)
			if s.FailuresOmitted > 0 {
				msg += fmt.Sprintf(", listing %d of its %d failing checks", len(run.Checks), len(run.Checks)+s.FailuresOmitted)
			}
		}
		out = append(out, compliance.Evidence{
			Source:   compliance.SourceKubeBench,
			ID:       "benchmark-run",
			Title:    "CIS Kubernetes Benchmark run",
			Result:   compliance.ResultPass,
			Severity: compliance.SeverityInfo,
			Subjects: subjects,
			Origin:   run.Origin,
			Message: fmt.Sprintf("kube-bench %s on %s checks: %d pass, %d fail, %d warn, %d info",
				orNone(strings.Join(run.Benchmarks, ", ")), orNone(strings.Join(run.NodeTypes, ", ")),
				counts["PASS"], counts["FAIL"], counts["WARN"], counts["INFO"]) + msg,
		})
		if s := run.Summary; s != nil && s.LatestFailed != "" {
			out = append(out, compliance.Evidence{
				Source: compliance.SourceKubeBench, ID: "benchmark-run", Title: "CIS Kubernetes Benchmark run",
				Result: compliance.ResultWarn, Severity: compliance.SeverityMedium, Subjects: subjects, Origin: run.Origin,
				Message: fmt.Sprintf("the latest kube-bench scan failed (%s); the checks reported are an earlier scan's, %s",
					s.LatestFailed, timeOrUnknown(s.ScanTime)),
			})
		}
	}
	return out
}

// benchSectionEvidence gives, per section of a summarised run, the checks
// the summary counts without listing them.
func benchSectionEvidence(run *BenchRun, subjects []compliance.Ref) []compliance.Evidence {
	s := run.Summary
	listed := map[string]int{}
	for _, c := range run.Checks {
		listed[c.Section]++
	}
	omitted := s.FailuresOmitted
	rest := s.Totals
	var out []compliance.Evidence
	add := func(id, title, nodeType string, c BenchCounts, unlisted int) {
		what := strings.TrimSpace(nodeType + " check")
		unnamed := "; the " + s.Object + " summary counts them without listing them"
		for _, p := range []struct {
			n      int
			result compliance.Result
			msg    string
		}{
			{unlisted, compliance.ResultFail, fmt.Sprintf("%s that the %s summary does not list: it lists at most a configured number of failing checks, scored first",
				counted(unlisted, what, "fails", "fail"), s.Object)},
			{c.Warn, compliance.ResultWarn, counted(c.Warn, what, "warns", "warn") + " (to verify by hand)" + unnamed},
			{c.Pass, compliance.ResultPass, counted(c.Pass, what, "passes", "pass") + unnamed},
			{c.Info, compliance.ResultInfo, counted(c.Info, what, "informs", "inform") + unnamed},
		} {
			if p.n > 0 {
				out = append(out, compliance.Evidence{Source: compliance.SourceKubeBench, ID: id, Title: title, Result: p.result,
					Severity: compliance.SeverityUnknown, Subjects: subjects, Origin: run.Origin, Message: p.msg})
			}
		}
	}
	for _, sec := range s.Sections {
		unlisted := min(max(sec.Counts.Fail-listed[sec.ID], 0), omitted)
		omitted -= unlisted
		rest = BenchCounts{Pass: rest.Pass - sec.Counts.Pass, Fail: rest.Fail - sec.Counts.Fail, Warn: rest.Warn - sec.Counts.Warn, Info: rest.Info - sec.Counts.Info}
		id := sec.ID
		if id == "" {
			id = unsectioned
		}
		add(id, orNone(sec.Text), sec.NodeType, sec.Counts, unlisted)
	}
	// Checks the sections do not account for (a summary without
	// sections): no section, so no controls to assign them to.
	add(unsectioned, "Checks outside the summary's sections", "",
		BenchCounts{Pass: max(rest.Pass, 0), Warn: max(rest.Warn, 0), Info: max(rest.Info, 0)}, omitted)
	return out
}

// counted writes a count of things and what they do: "1 node check
// fails", "2 node checks fail".
func counted(n int, noun, one, many string) string {
	if n == 1 {
		return plural(n, noun) + " " + one
	}
	return plural(n, noun) + " " + many
}

// unsectioned is the ID of the checks a summary counts outside its
// sections.
const unsectioned = "unsectioned"

// summaryOrigin says which summary a run or finding was read from, and
// what the scanner read to write it.
func summaryOrigin(object, from, scanner, image string, at time.Time) string {
	s := "from the " + object + " summary"
	if from != "" {
		s += " of " + from
	}
	s += ", scanned " + timeOrUnknown(at)
	switch {
	case scanner != "" && image != "":
		s += " by " + scanner + " (" + image + ")"
	case scanner != "" || image != "":
		s += " by " + scanner + image
	}
	return s
}

func timeOrUnknown(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return "on " + t.UTC().Format(time.RFC3339)
}

// joinParts joins the non-empty parts of a message with semicolons.
func joinParts(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

func benchResult(status string) compliance.Result {
	switch status {
	case "PASS":
		return compliance.ResultPass
	case "FAIL":
		return compliance.ResultFail
	case "WARN":
		return compliance.ResultWarn
	default:
		return compliance.ResultInfo
	}
}

func benchMessage(c BenchCheck) string {
	var parts []string
	if c.NodeType != "" {
		parts = append(parts, c.NodeType+" check")
	}
	if !c.Scored {
		parts = append(parts, "not scored")
	}
	if c.Status == "PASS" {
		return strings.Join(parts, "; ")
	}
	if c.Reason != "" {
		parts = append(parts, "reason: "+clip(c.Reason, 200))
	}
	if c.ActualValue != "" {
		parts = append(parts, "found: "+clip(c.ActualValue, 200))
	}
	if c.Remediation != "" {
		parts = append(parts, "remediation: "+clip(c.Remediation, 300))
	}
	return strings.Join(parts, "; ")
}

// clip shortens s to at most n runes, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
