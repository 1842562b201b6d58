package kubebench

import (
	"testing"
)

// FuzzParse: no input makes Parse panic, and whatever it accepts is
// consistent: known states, totals equal to what the results hold, and a
// summary that accounts for every failure. Seeds: testdata/fuzz/FuzzParse
// (the real fixtures and hand-made variants).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		var sum Totals
		for _, c := range r.Controls {
			var cs Totals
			for _, g := range c.Groups {
				var gs Totals
				for _, ch := range g.Checks {
					switch ch.State {
					case Pass, Fail, Warn, Info:
					default:
						t.Fatalf("accepted state %q", ch.State)
					}
					gs.count(ch.State)
				}
				if gs != g.Totals {
					t.Fatalf("group %s: totals %+v, results hold %+v", g.ID, g.Totals, gs)
				}
				cs.add(gs)
			}
			if cs != c.Totals {
				t.Fatalf("control %s: totals %+v, groups hold %+v", c.ID, c.Totals, cs)
			}
			sum.add(cs)
		}
		if sum != r.Totals {
			t.Fatalf("totals %+v, controls hold %+v", r.Totals, sum)
		}
		s := Summarize(r, Limits{MaxFailures: 3})
		if int(s.Totals.Fail) != r.Totals.Fail || len(s.Failures)+int(s.FailuresOmitted) != r.Totals.Fail {
			t.Fatalf("summary lists %d and omits %d failures of %d", len(s.Failures), s.FailuresOmitted, r.Totals.Fail)
		}
	})
}

// FuzzParseStarboard: no CISKubeBenchReport body makes ParseStarboard
// panic; an accepted one has a summary matching its sections.
func FuzzParseStarboard(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := ParseStarboard(data)
		if err != nil {
			return
		}
		if sr.Report == nil || len(sr.Report.Controls) == 0 || sr.UpdateTimestamp.IsZero() {
			t.Fatalf("accepted an incomplete report: %+v", sr)
		}
		_ = Summarize(sr.Report, Limits{})
	})
}
