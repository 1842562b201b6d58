package kubehunter

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Limits bound the size of a summary, which is stored in etcd.
type Limits struct {
	// MaxFindings is how many findings a summary lists (default 50).
	MaxFindings int
	// MaxText is the longest name, category or location kept, in
	// characters (default 200).
	MaxText int
}

// Summarize reduces a run to what a PenetrationTest holds: what was
// discovered, counts by severity, and the findings, highest severity first,
// capped by l. Evidence is left out: it can be a credential.
func Summarize(r *Report, l Limits) v1alpha1.PenetrationTestSummary {
	if l.MaxFindings <= 0 {
		l.MaxFindings = 50
	}
	if l.MaxText <= 0 {
		l.MaxText = 200
	}
	s := v1alpha1.PenetrationTestSummary{Nodes: clamp(len(r.Nodes)), Services: clamp(len(r.Services))}
	findings := make([]v1alpha1.PenetrationFinding, 0, len(r.Vulnerabilities))
	for _, v := range r.Vulnerabilities {
		switch v.Severity {
		case High:
			s.Counts.High++
		case Medium:
			s.Counts.Medium++
		case Low:
			s.Counts.Low++
		default:
			s.Counts.Unknown++
		}
		findings = append(findings, v1alpha1.PenetrationFinding{
			ID:       shorten(v.ID, l.MaxText),
			Name:     shorten(v.Name, l.MaxText),
			Severity: string(v.Severity),
			Category: shorten(v.Category, l.MaxText),
			Location: shorten(v.Location, l.MaxText),
		})
	}
	slices.SortStableFunc(findings, func(a, b v1alpha1.PenetrationFinding) int {
		return Severity(a.Severity).rank() - Severity(b.Severity).rank()
	})
	if len(findings) > l.MaxFindings {
		s.FindingsOmitted = clamp(len(findings) - l.MaxFindings)
		findings = findings[:l.MaxFindings]
	}
	if len(findings) > 0 {
		s.Findings = findings
	}
	return s
}

func clamp(n int) int32 {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

func shorten(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
