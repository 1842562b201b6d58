package evidence

import (
	"fmt"
	"strings"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// BenchRun is what the compliance model needs from one kube-bench run: the
// benchmark it used and each check's outcome. Files decode into it today
// (tooljson.go); the scanner's kube-bench summaries will too.
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
			out = append(out, e)
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
				counts["PASS"], counts["FAIL"], counts["WARN"], counts["INFO"]),
		})
	}
	return out
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
