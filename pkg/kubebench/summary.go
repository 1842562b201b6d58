package kubebench

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Limits bound the size of a summary, which is stored in etcd.
type Limits struct {
	// MaxFailures is how many failing checks a summary lists (default 50).
	MaxFailures int
	// MaxText is the longest check description kept, in characters
	// (default 200).
	MaxText int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFailures <= 0 {
		l.MaxFailures = 50
	}
	if l.MaxText <= 0 {
		l.MaxText = 200
	}
	return l
}

// Summarize reduces a run to what a NodeBenchmark holds: the benchmark,
// counts per section and overall, and the failing checks (scored first),
// capped by l.
func Summarize(r *Report, l Limits) v1alpha1.BenchmarkSummary {
	l = l.withDefaults()
	s := v1alpha1.BenchmarkSummary{NodeTypes: []string{}, Totals: totals(r.Totals)}
	var versions []string
	var failures []v1alpha1.BenchmarkFailure
	for _, c := range r.Controls {
		if c.Version != "" && !slices.Contains(versions, c.Version) {
			versions = append(versions, c.Version)
		}
		if s.KubernetesVersion == "" {
			s.KubernetesVersion = c.DetectedVersion
		}
		if !slices.Contains(s.NodeTypes, c.NodeType) {
			s.NodeTypes = append(s.NodeTypes, c.NodeType)
		}
		s.Sections = append(s.Sections, v1alpha1.BenchmarkSection{
			ID: c.ID, Text: Shorten(c.Text, l.MaxText), NodeType: c.NodeType, Totals: totals(c.Totals)})
		for _, g := range c.Groups {
			for _, ch := range g.Checks {
				if ch.State == Fail {
					failures = append(failures, v1alpha1.BenchmarkFailure{ID: ch.ID, Text: Shorten(ch.Text, l.MaxText), Scored: ch.Scored})
				}
			}
		}
	}
	s.Benchmark = strings.Join(versions, ",")
	// Scored failures count against the benchmark score: list them first.
	slices.SortStableFunc(failures, func(a, b v1alpha1.BenchmarkFailure) int {
		switch {
		case a.Scored == b.Scored:
			return 0
		case a.Scored:
			return -1
		}
		return 1
	})
	if len(failures) > l.MaxFailures {
		s.FailuresOmitted = clamp(len(failures) - l.MaxFailures)
		failures = failures[:l.MaxFailures]
	}
	s.Failures = failures
	return s
}

func totals(t Totals) v1alpha1.BenchmarkTotals {
	return v1alpha1.BenchmarkTotals{Pass: clamp(t.Pass), Fail: clamp(t.Fail), Warn: clamp(t.Warn), Info: clamp(t.Info)}
}

func clamp(n int) int32 {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

// Shorten cuts s to at most max characters, ending with an ellipsis when
// cut, and folds whitespace runs (kube-bench texts hold newlines) into
// single spaces.
func Shorten(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if max < 1 {
		return ""
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)
	return string(runes[:max-1]) + "…"
}
