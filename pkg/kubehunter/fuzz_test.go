package kubehunter

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic; whatever it accepts has known
// severities, and its summary counts every finding and holds no evidence.
// Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		for _, v := range r.Vulnerabilities {
			switch v.Severity {
			case High, Medium, Low, Unknown:
			default:
				t.Fatalf("accepted severity %q", v.Severity)
			}
		}
		s := Summarize(r, Limits{MaxFindings: 2})
		c := s.Counts
		if int(c.High+c.Medium+c.Low+c.Unknown) != len(r.Vulnerabilities) || len(s.Findings)+int(s.FindingsOmitted) != len(r.Vulnerabilities) {
			t.Fatalf("summary %+v does not account for %d findings", s, len(r.Vulnerabilities))
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		// Evidence must not reach the summary, unless the same text is also
		// in a field the summary keeps.
		var kept strings.Builder
		for _, v := range r.Vulnerabilities {
			kept.WriteString(v.ID + "\x00" + v.Name + "\x00" + v.Category + "\x00" + v.Location + "\x00" + string(v.Severity) + "\x00")
		}
		for _, v := range r.Vulnerabilities {
			ev, _ := json.Marshal(v.Evidence)
			ev = ev[1 : len(ev)-1] // as it would appear inside a JSON string
			if len(ev) >= 8 && !strings.Contains(kept.String(), v.Evidence) && strings.Contains(string(out), string(ev)) {
				t.Fatalf("summary holds evidence %q", v.Evidence)
			}
		}
	})
}

// FuzzParseStarboard: no KubeHunterReport body makes ParseStarboard panic.
func FuzzParseStarboard(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := ParseStarboard(data)
		if err != nil {
			return
		}
		if sr.Report == nil || sr.UpdateTimestamp.IsZero() {
			t.Fatalf("accepted an incomplete report: %+v", sr)
		}
		_ = Summarize(sr.Report, Limits{})
	})
}
