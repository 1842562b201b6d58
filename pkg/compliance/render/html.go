package render

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// WriteHTML renders the report as one self-contained page for auditors:
// summary, inputs, charts (inline SVG), trend, per-control table and
// evidence drill-down. Styles and script are inline and a Content Security
// Policy forbids loading anything else, so the page shows the same
// offline, attached to an e-mail or archived.
func WriteHTML(w io.Writer, r *compliance.Report) error {
	return pageTemplate.Execute(w, newPage(r))
}

var statusColor = map[compliance.Status]string{
	compliance.StatusSatisfied:    "#2e7d32",
	compliance.StatusPartially:    "#f9a825",
	compliance.StatusNotSatisfied: "#c62828",
	compliance.StatusNotAssessed:  "#9e9e9e",
}

var severityColor = map[compliance.Severity]string{
	compliance.SeverityCritical: "#8e0000",
	compliance.SeverityHigh:     "#e65100",
	compliance.SeverityMedium:   "#f9a825",
	compliance.SeverityLow:      "#1565c0",
	compliance.SeverityInfo:     "#607d8b",
	compliance.SeverityUnknown:  "#9e9e9e",
}

var resultColor = map[string]string{"pass": "#2e7d32", "fail": "#c62828", "warn": "#f9a825", "info": "#90a4ae"}

type page struct {
	R         *compliance.Report
	Benchmark string
	Database  string
	Catalog   string
	Mapping   string
	Statuses  []statusCount
	Sources   []sourceRow
	Controls  []controlRow
	Unmapped  []evidenceRow
	StatusBar []bar
	Severity  chart
	BySource  chart
	Trend     *lineChart
	HasTrend  bool
	Evidence  compliance.Counts
}

type statusCount struct {
	Status compliance.Status
	Label  string
	Count  int
	Color  string
}

type sourceRow struct {
	Source, Versions, Origin, Detail string
}

type controlRow struct {
	*compliance.ControlResult
	Label    string
	Color    string
	Family   string
	Change   string
	Evidence []evidenceRow
	More     int
}

type evidenceRow struct {
	compliance.Evidence
	Subjects string
	Color    string
	SevColor string
}

// bar is one rectangle of a chart, with its label.
type bar struct {
	X, Y, W, H float64
	Color      string
	Label      string
	Value      int
	LX, LY     float64 // label position
}

type chart struct {
	Width, Height float64
	Bars          []bar
	Labels        []bar // axis labels (text only)
	Empty         bool
}

type lineChart struct {
	Width, Height float64
	Series        []series
	Ticks         []bar
	Axis          []bar
}

type series struct {
	Label  string
	Color  string
	Points string
	Dots   []bar
}

func newPage(r *compliance.Report) *page {
	p := &page{
		R:         r,
		Benchmark: benchmarks(r),
		Database:  databases(r),
		Catalog:   modelLine(r.Catalog),
		Mapping:   modelLine(r.Mapping),
		HasTrend:  len(r.Trend) > 0,
		Evidence:  r.Summary.Evidence,
	}
	for _, st := range compliance.Statuses {
		p.Statuses = append(p.Statuses, statusCount{Status: st, Label: st.Label(), Count: r.Summary.ByStatus.Of(st), Color: statusColor[st]})
	}
	for _, s := range r.Sources {
		p.Sources = append(p.Sources, sourceRow{Source: string(s.Source), Versions: sourceVersion(s), Origin: orDash(s.Origin), Detail: s.Detail})
	}
	for _, c := range r.Controls {
		shown, more := shownEvidence(c)
		row := controlRow{ControlResult: c, Label: c.Status.Label(), Color: statusColor[c.Status], Change: change(c), More: more}
		for _, f := range r.Families {
			if f.ID == c.Family {
				row.Family = f.Title
			}
		}
		for _, e := range shown {
			row.Evidence = append(row.Evidence, newEvidenceRow(e))
		}
		p.Controls = append(p.Controls, row)
	}
	for _, e := range r.Unmapped {
		p.Unmapped = append(p.Unmapped, newEvidenceRow(e))
	}
	p.StatusBar = statusBar(p.Statuses, 640)
	p.Severity = severityChart(r.Summary.Failures)
	p.BySource = sourceChart(r.Summary.BySource)
	if len(r.Trend) > 0 {
		p.Trend = trendChart(r.Trend)
	}
	return p
}

func newEvidenceRow(e compliance.Evidence) evidenceRow {
	c := resultColor[string(e.Result)]
	switch e.Result {
	case compliance.ResultError:
		c = resultColor["warn"]
	case compliance.ResultSkip:
		c = resultColor["info"]
	}
	return evidenceRow{Evidence: e, Subjects: subjects(e), Color: c, SevColor: severityColor[e.Severity]}
}

func statusBar(counts []statusCount, width float64) []bar {
	total := 0
	for _, c := range counts {
		total += c.Count
	}
	if total == 0 {
		return nil
	}
	var out []bar
	x := 0.0
	for _, c := range counts {
		if c.Count == 0 {
			continue
		}
		w := width * float64(c.Count) / float64(total)
		out = append(out, bar{X: round(x), Y: 0, W: round(w), H: 28, Color: c.Color, Label: c.Label, Value: c.Count, LX: round(x + w/2), LY: 19})
		x += w
	}
	return out
}

func severityChart(s compliance.SeverityCounts) chart {
	const w, h, top, bottom = 360.0, 200.0, 20.0, 30.0
	c := chart{Width: w, Height: h}
	max := 0
	for _, sev := range compliance.Severities {
		if n := s.Of(sev); n > max {
			max = n
		}
	}
	c.Empty = max == 0
	slot := w / float64(len(compliance.Severities))
	for i, sev := range compliance.Severities {
		n := s.Of(sev)
		bh := 0.0
		if max > 0 {
			bh = (h - top - bottom) * float64(n) / float64(max)
		}
		x := float64(i)*slot + slot*0.2
		c.Bars = append(c.Bars, bar{X: round(x), Y: round(h - bottom - bh), W: round(slot * 0.6), H: round(bh),
			Color: severityColor[sev], Label: string(sev), Value: n, LX: round(x + slot*0.3), LY: round(h - bottom - bh - 5)})
		c.Labels = append(c.Labels, bar{LX: round(x + slot*0.3), LY: h - 10, Label: string(sev)})
	}
	return c
}

func sourceChart(rows []compliance.SourceCount) chart {
	const labelW, barW, rowH = 110.0, 420.0, 26.0
	c := chart{Width: labelW + barW + 60, Height: rowH*float64(len(rows)) + 30}
	c.Empty = len(rows) == 0
	max := 0
	for _, r := range rows {
		if t := r.Pass + r.Fail + r.Warn + r.Info; t > max {
			max = t
		}
	}
	for i, r := range rows {
		y := float64(i) * rowH
		c.Labels = append(c.Labels, bar{LX: labelW - 6, LY: y + 17, Label: string(r.Source)})
		x := labelW
		for _, part := range []struct {
			name string
			n    int
		}{{"pass", r.Pass}, {"fail", r.Fail}, {"warn", r.Warn}, {"info", r.Info}} {
			if part.n == 0 || max == 0 {
				continue
			}
			bw := barW * float64(part.n) / float64(max)
			c.Bars = append(c.Bars, bar{X: round(x), Y: y + 4, W: round(bw), H: rowH - 8, Color: resultColor[part.name],
				Label: fmt.Sprintf("%s: %d %s", r.Source, part.n, part.name), Value: part.n})
			x += bw
		}
		c.Labels = append(c.Labels, bar{LX: round(x + 6), LY: y + 17, Label: fmt.Sprint(r.Pass + r.Fail + r.Warn + r.Info), Value: -1})
	}
	return c
}

func trendChart(points []compliance.TrendPoint) *lineChart {
	const w, h, left, right, top, bottom = 640.0, 220.0, 40.0, 20.0, 16.0, 40.0
	lc := &lineChart{Width: w, Height: h}
	max := 1
	for _, p := range points {
		for _, st := range compliance.Statuses {
			if n := p.ByStatus.Of(st); n > max {
				max = n
			}
		}
	}
	xAt := func(i int) float64 {
		if len(points) == 1 {
			return left + (w-left-right)/2
		}
		return left + (w-left-right)*float64(i)/float64(len(points)-1)
	}
	yAt := func(n int) float64 { return top + (h-top-bottom)*(1-float64(n)/float64(max)) }
	for _, st := range compliance.Statuses {
		s := series{Label: st.Label(), Color: statusColor[st]}
		var pts []string
		for i, p := range points {
			x, y := round(xAt(i)), round(yAt(p.ByStatus.Of(st)))
			pts = append(pts, fmt.Sprintf("%g,%g", x, y))
			s.Dots = append(s.Dots, bar{X: x, Y: y, Label: fmt.Sprintf("%s: %d (%s)", st.Label(), p.ByStatus.Of(st), timestamp(p.GeneratedAt)), Value: p.ByStatus.Of(st)})
		}
		s.Points = strings.Join(pts, " ")
		lc.Series = append(lc.Series, s)
	}
	for i, p := range points {
		lc.Ticks = append(lc.Ticks, bar{LX: round(xAt(i)), LY: h - bottom + 16, Label: p.GeneratedAt.UTC().Format("2006-01-02 15:04")})
	}
	for _, n := range []int{0, max} {
		lc.Axis = append(lc.Axis, bar{LX: left - 6, LY: round(yAt(n) + 4), Label: fmt.Sprint(n), Y: round(yAt(n))})
	}
	return lc
}

func round(f float64) float64 { return math.Round(f*10) / 10 }

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ts":    timestamp,
	"lower": strings.ToLower,
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>ITSG-33 compliance report: {{.R.Cluster}} ({{ts .R.GeneratedAt}})</title>
<link rel="icon" href="data:,">
<style>
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
header { background: #26374a; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 6px; font-size: 22px; }
header p { margin: 2px 0; color: #dfe6ee; }
main { padding: 8px 32px 40px; max-width: 1400px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 28px; }
.disclaimer { background: #fff8e1; border-left: 4px solid #f9a825; padding: 10px 14px; margin: 16px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { flex: 1 1 160px; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; border-top: 5px solid var(--c); background: var(--panel); }
.card .n { font-size: 28px; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-weight: 600; margin-bottom: 4px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); }
td.num, th.num { text-align: right; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; background: var(--c); font-size: 12px; white-space: nowrap; }
.badge.dark { color: #1b1f24; }
.toolbar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 8px 0; }
.toolbar button { border: 1px solid var(--line); background: #fff; border-radius: 4px; padding: 3px 10px; cursor: pointer; }
.toolbar button[aria-pressed="true"] { background: #26374a; color: #fff; }
.toolbar input { padding: 3px 8px; border: 1px solid var(--line); border-radius: 4px; min-width: 220px; }
details.control { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; }
details.control > summary { padding: 8px 12px; cursor: pointer; background: var(--panel); }
details.control[open] > summary { border-bottom: 1px solid var(--line); }
details.control .body { padding: 4px 12px 12px; overflow-x: auto; }
.muted { color: var(--muted); }
.hidden { display: none; }
code { font-size: 12px; }
details.control td:nth-child(5), details.control td:nth-child(7), #inputs td:nth-child(3) { max-width: 260px; overflow-wrap: anywhere; }
details.control td:nth-child(6) { min-width: 280px; }
@media print { details.control { break-inside: avoid; } .toolbar { display: none; } }
</style>
</head>
<body>
<header>
<h1>ITSG-33 compliance report: {{.R.Cluster}}</h1>
<p>Generated <time datetime="{{ts .R.GeneratedAt}}">{{ts .R.GeneratedAt}}</time> for cluster <strong>{{.R.Cluster}}</strong> by {{.R.Generator}}</p>
<p>Benchmark: {{.Benchmark}} · Vulnerability database: {{.Database}}</p>
<p>Catalogue: {{.Catalog}} · Mapping: {{.Mapping}}</p>
</header>
<main>
<p class="disclaimer" id="disclaimer">{{.R.Disclaimer}}</p>

<section id="summary">
<h2>Summary</h2>
<div class="cards">
{{range .Statuses}}<div class="card" style="--c: {{.Color}}" data-status="{{.Status}}"><div class="n">{{.Count}}</div><div>{{.Label}}</div></div>
{{end}}</div>
<p>{{.R.Summary.Controls}} controls in the catalogue; evidence: {{.Evidence.Pass}} passing, {{.Evidence.Fail}} failing, {{.Evidence.Warn}} warning and {{.Evidence.Info}} for information only.</p>
<div class="charts">
<figure>
<figcaption>Controls by status</figcaption>
<svg width="640" height="28" viewBox="0 0 640 28" role="img" aria-label="Controls by status">
{{range .StatusBar}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Label}}: {{.Value}}</title></rect>
<text x="{{.LX}}" y="{{.LY}}" text-anchor="middle" font-size="13" fill="#fff">{{.Value}}</text>
{{end}}</svg>
</figure>
<figure>
<figcaption>Failing evidence by severity</figcaption>
<svg width="{{.Severity.Width}}" height="{{.Severity.Height}}" viewBox="0 0 {{.Severity.Width}} {{.Severity.Height}}" role="img" aria-label="Failing evidence by severity">
<line x1="0" y1="170" x2="{{.Severity.Width}}" y2="170" stroke="#d0d7de"/>
{{range .Severity.Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Label}}: {{.Value}}</title></rect>
<text x="{{.LX}}" y="{{.LY}}" text-anchor="middle" font-size="12">{{.Value}}</text>
{{end}}{{range .Severity.Labels}}<text x="{{.LX}}" y="{{.LY}}" text-anchor="middle" font-size="12" fill="#57606a">{{.Label}}</text>
{{end}}{{if .Severity.Empty}}<text x="180" y="90" text-anchor="middle" fill="#57606a">No failing evidence</text>{{end}}
</svg>
</figure>
<figure>
<figcaption>Evidence by source</figcaption>
<svg width="{{.BySource.Width}}" height="{{.BySource.Height}}" viewBox="0 0 {{.BySource.Width}} {{.BySource.Height}}" role="img" aria-label="Evidence by source and result">
{{range .BySource.Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Label}}</title></rect>
{{end}}{{range .BySource.Labels}}<text x="{{.LX}}" y="{{.LY}}" text-anchor="{{if eq .Value -1}}start{{else}}end{{end}}" font-size="12">{{.Label}}</text>
{{end}}{{if .BySource.Empty}}<text x="10" y="20" fill="#57606a">No evidence</text>{{end}}
</svg>
<div class="muted"><span class="badge" style="--c: #2e7d32">pass</span> <span class="badge" style="--c: #c62828">fail</span> <span class="badge dark" style="--c: #f9a825">warn</span> <span class="badge dark" style="--c: #90a4ae">info</span></div>
</figure>
</div>
</section>

{{if .HasTrend}}<section id="trend">
<h2>Trend</h2>
<figure>
<figcaption>Controls by status, per report</figcaption>
<svg width="{{.Trend.Width}}" height="{{.Trend.Height}}" viewBox="0 0 {{.Trend.Width}} {{.Trend.Height}}" role="img" aria-label="Controls by status over time">
{{range .Trend.Axis}}<line x1="40" y1="{{.Y}}" x2="620" y2="{{.Y}}" stroke="#d0d7de"/><text x="{{.LX}}" y="{{.LY}}" text-anchor="end" font-size="11">{{.Label}}</text>
{{end}}{{range .Trend.Series}}<polyline points="{{.Points}}" fill="none" stroke="{{.Color}}" stroke-width="2"/>
{{$c := .Color}}{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="3.5" fill="{{$c}}"><title>{{.Label}}</title></circle>
{{end}}{{end}}{{range .Trend.Ticks}}<text x="{{.LX}}" y="{{.LY}}" text-anchor="middle" font-size="11" fill="#57606a">{{.Label}}</text>
{{end}}</svg>
<div class="muted">{{range .Trend.Series}}<span class="badge{{if eq .Color "#f9a825"}} dark{{end}}" style="--c: {{.Color}}">{{.Label}}</span> {{end}}</div>
</figure>
<table>
<thead><tr><th>Generated</th><th class="num">Satisfied</th><th class="num">Partially</th><th class="num">Not satisfied</th><th class="num">Not assessed</th><th class="num">Failing evidence</th></tr></thead>
<tbody>
{{range .R.Trend}}<tr><td>{{ts .GeneratedAt}}</td><td class="num">{{.ByStatus.Satisfied}}</td><td class="num">{{.ByStatus.Partially}}</td><td class="num">{{.ByStatus.NotSatisfied}}</td><td class="num">{{.ByStatus.NotAssessed}}</td><td class="num">{{.Failures}}</td></tr>
{{end}}</tbody>
</table>
</section>{{end}}

<section id="inputs">
<h2>Inputs</h2>
<table>
<thead><tr><th>Source</th><th>Versions</th><th>Read from</th><th>Detail</th></tr></thead>
<tbody>
{{range .Sources}}<tr><td>{{.Source}}</td><td>{{.Versions}}</td><td><code>{{.Origin}}</code></td><td>{{.Detail}}</td></tr>
{{end}}</tbody>
</table>
</section>

<section id="controls">
<h2>Controls</h2>
<div class="toolbar" role="toolbar" aria-label="Filter controls">
<button type="button" data-filter="all" aria-pressed="true">All</button>
{{range .Statuses}}<button type="button" data-filter="{{.Status}}" aria-pressed="false">{{.Label}} ({{.Count}})</button>
{{end}}<input type="search" id="search" placeholder="Filter by ID, title or evidence" aria-label="Filter controls">
</div>
<table id="control-table">
<thead><tr><th>Control</th><th>Title</th><th>Family</th><th>Status</th><th class="num">Pass</th><th class="num">Fail</th><th class="num">Warn</th>{{if .HasTrend}}<th>Change</th>{{end}}</tr></thead>
<tbody>
{{range .Controls}}<tr data-status="{{.Status}}" data-control="{{.ID}}"><td><a href="#control-{{.ID}}" data-open="control-{{.ID}}">{{.ID}}</a></td><td>{{.Title}}</td><td>{{.Family}}</td><td><span class="badge{{if eq .Color "#f9a825"}} dark{{end}}" style="--c: {{.Color}}">{{.Label}}</span></td><td class="num">{{.Counts.Pass}}</td><td class="num">{{.Counts.Fail}}</td><td class="num">{{.Counts.Warn}}</td>{{if $.HasTrend}}<td>{{.Change}}</td>{{end}}</tr>
{{end}}</tbody>
</table>

<h2 id="drilldown">Evidence by control</h2>
<div class="toolbar"><button type="button" id="expand">Expand all</button><button type="button" id="collapse">Collapse all</button></div>
{{range .Controls}}<details class="control" id="control-{{.ID}}" data-status="{{.Status}}" data-control="{{.ID}}">
<summary><strong>{{.ID}}</strong> {{.Title}} <span class="badge{{if eq .Color "#f9a825"}} dark{{end}}" style="--c: {{.Color}}">{{.Label}}</span> <span class="muted">{{.Counts.Pass}} pass · {{.Counts.Fail}} fail · {{.Counts.Warn}} warn · {{.Counts.Info}} info</span></summary>
<div class="body">
{{if .Note}}<p class="muted">{{.Note}}</p>{{end}}
{{if .Evidence}}<table>
<thead><tr><th>Result</th><th>Severity</th><th>Source</th><th>Check</th><th>Subject</th><th>Message</th><th>Origin</th></tr></thead>
<tbody>
{{range .Evidence}}<tr><td><span class="badge{{if or (eq .Color "#f9a825") (eq .Color "#90a4ae")}} dark{{end}}" style="--c: {{.Color}}">{{.Result}}</span></td><td><span class="badge{{if eq .SevColor "#f9a825"}} dark{{end}}" style="--c: {{.SevColor}}">{{.Severity}}</span></td><td>{{.Source}}</td><td><code>{{.ID}}</code>{{if ne .Title .ID}} {{.Title}}{{end}}</td><td>{{.Subjects}}</td><td>{{.Message}}</td><td><code>{{.Origin}}</code></td></tr>
{{end}}</tbody>
</table>{{if .More}}<p class="muted">{{.More}} more in the JSON report.</p>{{end}}{{else}}<p class="muted">No evidence bears on this control.</p>{{end}}
</div>
</details>
{{end}}
</section>

{{if .Unmapped}}<section id="unmapped">
<h2>Evidence not mapped to a control</h2>
<table>
<thead><tr><th>Result</th><th>Severity</th><th>Source</th><th>Check</th><th>Subject</th><th>Message</th><th>Origin</th></tr></thead>
<tbody>
{{range .Unmapped}}<tr><td>{{.Result}}</td><td>{{.Severity}}</td><td>{{.Source}}</td><td><code>{{.ID}}</code>{{if ne .Title .ID}} {{.Title}}{{end}}</td><td>{{.Subjects}}</td><td>{{.Message}}</td><td><code>{{.Origin}}</code></td></tr>
{{end}}</tbody>
</table>
</section>{{end}}

{{if .R.Warnings}}<section id="warnings">
<h2>Warnings</h2>
<ul>{{range .R.Warnings}}<li>{{.}}</li>{{end}}</ul>
</section>{{end}}
</main>
<script>
(function () {
  'use strict';
  var filter = 'all';
  var search = document.getElementById('search');
  function matches(el) {
    var q = search.value.trim().toLowerCase();
    var byStatus = filter === 'all' || el.getAttribute('data-status') === filter;
    if (!q) { return byStatus; }
    var id = el.getAttribute('data-control');
    var details = document.getElementById('control-' + id);
    var text = (el.textContent + ' ' + (details ? details.textContent : '')).toLowerCase();
    return byStatus && text.indexOf(q) !== -1;
  }
  function apply() {
    var rows = document.querySelectorAll('#control-table tbody tr, details.control');
    for (var i = 0; i < rows.length; i++) {
      rows[i].classList.toggle('hidden', !matches(rows[i]));
    }
  }
  var buttons = document.querySelectorAll('button[data-filter]');
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener('click', function (ev) {
      filter = ev.currentTarget.getAttribute('data-filter');
      for (var j = 0; j < buttons.length; j++) {
        buttons[j].setAttribute('aria-pressed', String(buttons[j] === ev.currentTarget));
      }
      apply();
    });
  }
  search.addEventListener('input', apply);
  function setAll(open) {
    var all = document.querySelectorAll('details.control');
    for (var i = 0; i < all.length; i++) { all[i].open = open; }
  }
  document.getElementById('expand').addEventListener('click', function () { setAll(true); });
  document.getElementById('collapse').addEventListener('click', function () { setAll(false); });
  var links = document.querySelectorAll('a[data-open]');
  for (var k = 0; k < links.length; k++) {
    links[k].addEventListener('click', function (ev) {
      var target = document.getElementById(ev.currentTarget.getAttribute('data-open'));
      if (target) { target.open = true; }
    });
  }
  function openFromHash() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var target = id ? document.getElementById(id) : null;
    if (target && target.tagName === 'DETAILS') { target.open = true; }
  }
  window.addEventListener('hashchange', openFromHash);
  openFromHash();
  document.documentElement.setAttribute('data-ready', 'true');
}());
</script>
</body>
</html>
`
