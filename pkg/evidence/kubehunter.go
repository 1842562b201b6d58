package evidence

import (
	"fmt"
	"strings"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// HunterRun is what the compliance model needs from one kube-hunter run:
// what it probed and what it found. Files decode into it today
// (tooljson.go); the scanner's kube-hunter summaries will too.
type HunterRun struct {
	Origin   string
	Nodes    []string
	Services []string
	Findings []HunterFinding
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
// and each run records that the cluster was probed.
func HunterEvidence(runs []*HunterRun) []compliance.Evidence {
	var out []compliance.Evidence
	for _, run := range runs {
		for _, f := range run.Findings {
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
		out = append(out, compliance.Evidence{
			Source:   compliance.SourceKubeHunter,
			ID:       "hunter-run",
			Title:    "kube-hunter penetration test run",
			Result:   compliance.ResultPass,
			Severity: compliance.SeverityInfo,
			Origin:   run.Origin,
			Message: fmt.Sprintf("kube-hunter probed %d nodes and %d services and reported %d findings",
				len(run.Nodes), len(run.Services), len(run.Findings)),
		})
	}
	return out
}

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
