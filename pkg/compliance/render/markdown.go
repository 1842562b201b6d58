package render

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// WriteMarkdown renders the report as Markdown (GitHub-flavoured tables).
func WriteMarkdown(w io.Writer, r *compliance.Report) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...interface{}) { fmt.Fprintf(b, format, args...) }
	row := func(cells ...string) {
		for i := range cells {
			cells[i] = mdCell(cells[i])
		}
		p("| %s |\n", strings.Join(cells, " | "))
	}

	p("# ITSG-33 compliance report: %s\n\n", mdText(r.Cluster))
	p("Generated %s for cluster **%s** by %s.\n\n", timestamp(r.GeneratedAt), mdText(r.Cluster), mdText(r.Generator))
	p("- Catalogue: %s\n", mdText(modelLine(r.Catalog)))
	p("- Mapping: %s\n", mdText(modelLine(r.Mapping)))
	p("- Benchmark: %s\n", mdText(benchmarks(r)))
	p("- Vulnerability database: %s\n\n", mdText(databases(r)))
	p("> %s\n\n", mdText(r.Disclaimer))

	p("## Summary\n\n")
	row("Status", "Controls")
	row("---", "---:")
	for _, st := range compliance.Statuses {
		row(st.Label(), fmt.Sprint(r.Summary.ByStatus.Of(st)))
	}
	ev := r.Summary.Evidence
	p("\nEvidence: %d pass, %d fail, %d warn, %d information only.", ev.Pass, ev.Fail, ev.Warn, ev.Info)
	var sev []string
	for _, s := range compliance.Severities {
		if n := r.Summary.Failures.Of(s); n > 0 {
			sev = append(sev, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(sev) > 0 {
		p(" Failures by severity: %s.", strings.Join(sev, ", "))
	}
	p("\n\n")

	p("## Inputs\n\n")
	row("Source", "Versions", "Read from", "Detail")
	row("---", "---", "---", "---")
	for _, s := range r.Sources {
		row(string(s.Source), sourceVersion(s), orDash(s.Origin), s.Detail)
	}
	if len(r.Summary.BySource) > 0 {
		p("\n")
		row("Source", "Pass", "Fail", "Warn", "Info")
		row("---", "---:", "---:", "---:", "---:")
		for _, s := range r.Summary.BySource {
			row(string(s.Source), fmt.Sprint(s.Pass), fmt.Sprint(s.Fail), fmt.Sprint(s.Warn), fmt.Sprint(s.Info))
		}
	}
	p("\n")

	if len(r.Trend) > 0 {
		p("## Trend\n\n")
		row("Generated", "Satisfied", "Partially", "Not satisfied", "Not assessed", "Failing evidence")
		row("---", "---:", "---:", "---:", "---:", "---:")
		for _, t := range r.Trend {
			row(timestamp(t.GeneratedAt), fmt.Sprint(t.ByStatus.Satisfied), fmt.Sprint(t.ByStatus.Partially),
				fmt.Sprint(t.ByStatus.NotSatisfied), fmt.Sprint(t.ByStatus.NotAssessed), fmt.Sprint(t.Failures))
		}
		p("\n")
	}

	p("## Controls\n\n")
	head := []string{"Control", "Title", "Status", "Pass", "Fail", "Warn"}
	align := []string{"---", "---", "---", "---:", "---:", "---:"}
	if len(r.Trend) > 0 {
		head, align = append(head, "Change"), append(align, "---")
	}
	row(head...)
	row(align...)
	for _, c := range r.Controls {
		cells := []string{c.ID, c.Title, c.Status.Label(), fmt.Sprint(c.Counts.Pass), fmt.Sprint(c.Counts.Fail), fmt.Sprint(c.Counts.Warn)}
		if len(r.Trend) > 0 {
			cells = append(cells, change(c))
		}
		row(cells...)
	}
	p("\n## Evidence by control\n")
	for _, c := range r.Controls {
		p("\n### %s %s: %s\n\n", c.ID, mdText(c.Title), c.Status.Label())
		if c.Note != "" {
			p("%s\n\n", mdText(c.Note))
		}
		if len(c.Evidence) == 0 {
			p("No evidence bears on this control.\n")
			continue
		}
		writeEvidenceTable(p, row, c.Evidence, maxEvidenceShown)
	}
	if len(r.Unmapped) > 0 {
		p("\n## Evidence not mapped to a control\n\n")
		writeEvidenceTable(p, row, r.Unmapped, maxEvidenceShown)
	}
	if len(r.Warnings) > 0 {
		p("\n## Warnings\n\n")
		for _, w := range r.Warnings {
			p("- %s\n", mdText(w))
		}
	}
	return b.Flush()
}

func writeEvidenceTable(p func(string, ...interface{}), row func(...string), list []compliance.Evidence, max int) {
	row("Result", "Severity", "Source", "Check", "Subject", "Message", "Origin")
	row("---", "---", "---", "---", "---", "---", "---")
	for i, e := range list {
		if i == max {
			break
		}
		check := e.ID
		if e.Title != "" && e.Title != e.ID {
			check += ": " + e.Title
		}
		row(string(e.Result), string(e.Severity), string(e.Source), check, subjects(e), e.Message, e.Origin)
	}
	if len(list) > max {
		p("\n%d more in the JSON report.\n", len(list)-max)
	}
}

// mdText keeps text on one line and stops it from starting Markdown
// constructs by accident.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := strings.NewReplacer("<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`, "]", `\]`)
	return r.Replace(s)
}

func mdCell(s string) string {
	return strings.ReplaceAll(mdText(s), "|", `\|`)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
