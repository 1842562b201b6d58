// Package render writes compliance reports: JSON (the full report, also
// read back for trends), Markdown, a self-contained HTML page for
// auditors, and OSCAL assessment results for GRC tools. Every format
// states when, for which cluster and from which inputs (benchmark,
// database and tool versions) the report was made, and carries the
// catalogue's disclaimer.
package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// Formats.
const (
	JSON     = "json"
	Markdown = "markdown"
	HTML     = "html"
	OSCAL    = "oscal"
)

// Formats lists the formats Write takes.
var Formats = []string{JSON, Markdown, HTML, OSCAL}

// CheckFormat reports an unknown format.
func CheckFormat(format string) error {
	for _, f := range Formats {
		if f == format {
			return nil
		}
	}
	return fmt.Errorf("unknown report format %q: use %s", format, strings.Join(Formats, ", "))
}

// Write renders the report in format.
func Write(w io.Writer, format string, r *compliance.Report) error {
	switch format {
	case JSON:
		b, err := r.JSON()
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case Markdown:
		return WriteMarkdown(w, r)
	case HTML:
		return WriteHTML(w, r)
	case OSCAL:
		return WriteOSCAL(w, r)
	}
	return CheckFormat(format)
}

// maxEvidenceShown bounds the evidence listed per control in Markdown and
// HTML; the JSON report always has all of it.
const maxEvidenceShown = 100

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// sourceVersion says what versions a source's input rests on.
func sourceVersion(s compliance.SourceInfo) string {
	var parts []string
	if s.Tool != "" && s.Version != "" {
		parts = append(parts, s.Tool+" "+s.Version)
	} else if s.Tool != "" {
		parts = append(parts, s.Tool)
	}
	if s.Benchmark != "" {
		parts = append(parts, "benchmark "+s.Benchmark)
	}
	if s.DBVersion != "" {
		db := "database " + s.DBVersion
		if s.DBUpdatedAt != nil {
			db += ", updated " + timestamp(*s.DBUpdatedAt)
		}
		parts = append(parts, db)
	}
	if s.ProducedAt != nil {
		parts = append(parts, "latest result "+timestamp(*s.ProducedAt))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, "; ")
}

// benchmarks and databases name, for the report's header line, the
// benchmark and database versions the inputs rest on.
func benchmarks(r *compliance.Report) string {
	var out []string
	for _, s := range r.Sources {
		if s.Benchmark != "" {
			out = append(out, "kube-bench "+s.Benchmark)
		}
	}
	if len(out) == 0 {
		return "none (no kube-bench results given)"
	}
	return strings.Join(out, ", ")
}

func databases(r *compliance.Report) string {
	var out []string
	for _, s := range r.Sources {
		if s.DBVersion != "" {
			db := s.DBVersion
			if s.DBUpdatedAt != nil {
				db += " updated " + timestamp(*s.DBUpdatedAt)
			}
			out = append(out, db)
		}
	}
	if len(out) == 0 {
		return "none (no image scans given)"
	}
	return strings.Join(out, ", ")
}

func subjects(e compliance.Evidence) string {
	var s []string
	for _, ref := range e.Subjects {
		s = append(s, ref.String())
	}
	return strings.Join(s, ", ")
}

func shownEvidence(c *compliance.ControlResult) ([]compliance.Evidence, int) {
	if len(c.Evidence) <= maxEvidenceShown {
		return c.Evidence, 0
	}
	return c.Evidence[:maxEvidenceShown], len(c.Evidence) - maxEvidenceShown
}

func change(c *compliance.ControlResult) string {
	if c.PreviousStatus == "" || c.PreviousStatus == c.Status {
		return ""
	}
	return "was " + c.PreviousStatus.Label()
}

func modelLine(m compliance.ModelInfo) string {
	return fmt.Sprintf("%s %s (%s)", m.Name, m.Version, m.Origin)
}
