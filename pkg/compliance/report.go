package compliance

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	sigsjson "sigs.k8s.io/json"
)

// Report identity in JSON, so that earlier reports can be recognised when
// they are read back for the trend.
const (
	ReportAPIVersion = "guard.statcan.gc.ca/v1alpha1"
	ReportKind       = "ComplianceAssessment"
)

// Report is a compliance assessment: every catalogue control with its
// status and the evidence behind it. It is what every format renders, and
// its JSON form is what --previous reads back.
type Report struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// GeneratedAt, Cluster and Generator say when, for which cluster and
	// by what the report was produced.
	GeneratedAt time.Time `json:"generatedAt"`
	Cluster     string    `json:"cluster"`
	Generator   string    `json:"generator"`
	Catalog     ModelInfo `json:"catalog"`
	Mapping     ModelInfo `json:"mapping"`
	// Disclaimer says how far the report can be relied on.
	Disclaimer string   `json:"disclaimer"`
	Families   []Family `json:"families"`
	// Sources say what each evidence source contributed, with the
	// benchmark, database and tool versions it rests on.
	Sources  []SourceInfo     `json:"sources"`
	Summary  Summary          `json:"summary"`
	Controls []*ControlResult `json:"controls"`
	// Unmapped is evidence that no mapping rule assigns to a control.
	Unmapped []Evidence `json:"unmappedEvidence"`
	// Trend has one point per earlier report given, oldest first, and this
	// report last; empty without earlier reports.
	Trend    []TrendPoint `json:"trend,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

// ModelInfo identifies the catalogue or mapping used.
type ModelInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Title   string `json:"title,omitempty"`
	Origin  string `json:"origin"`
}

// ControlResult is one control's status and the evidence behind it.
type ControlResult struct {
	Control
	Status   Status         `json:"status"`
	Counts   Counts         `json:"counts"`
	Failures SeverityCounts `json:"failuresBySeverity"`
	// Evidence is ordered failures first, by severity, then warnings,
	// passes and information.
	Evidence []Evidence `json:"evidence"`
	// PreviousStatus is the control's status in the latest earlier
	// report, when one was given.
	PreviousStatus Status `json:"previousStatus,omitempty"`
}

// Summary totals the report.
type Summary struct {
	Controls int          `json:"controls"`
	ByStatus StatusCounts `json:"byStatus"`
	// Evidence counts every piece of evidence once, whatever the number
	// of controls it bears on.
	Evidence Counts `json:"evidence"`
	// Failures counts failing evidence by severity.
	Failures SeverityCounts `json:"failuresBySeverity"`
	BySource []SourceCount  `json:"bySource"`
}

// StatusCounts counts controls by status.
type StatusCounts struct {
	Satisfied    int `json:"satisfied"`
	Partially    int `json:"partiallySatisfied"`
	NotSatisfied int `json:"notSatisfied"`
	NotAssessed  int `json:"notAssessed"`
}

// Of returns the count for one status.
func (s StatusCounts) Of(st Status) int {
	switch st {
	case StatusSatisfied:
		return s.Satisfied
	case StatusPartially:
		return s.Partially
	case StatusNotSatisfied:
		return s.NotSatisfied
	default:
		return s.NotAssessed
	}
}

func (s *StatusCounts) add(st Status) {
	switch st {
	case StatusSatisfied:
		s.Satisfied++
	case StatusPartially:
		s.Partially++
	case StatusNotSatisfied:
		s.NotSatisfied++
	default:
		s.NotAssessed++
	}
}

// SeverityCounts counts evidence by severity.
type SeverityCounts struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Info     int `json:"info"`
	Unknown  int `json:"unknown"`
}

// Of returns the count for one severity.
func (s SeverityCounts) Of(sev Severity) int {
	switch sev {
	case SeverityCritical:
		return s.Critical
	case SeverityHigh:
		return s.High
	case SeverityMedium:
		return s.Medium
	case SeverityLow:
		return s.Low
	case SeverityInfo:
		return s.Info
	default:
		return s.Unknown
	}
}

// Total is the sum over severities.
func (s SeverityCounts) Total() int {
	return s.Critical + s.High + s.Medium + s.Low + s.Info + s.Unknown
}

func (s *SeverityCounts) add(sev Severity) {
	switch sev {
	case SeverityCritical:
		s.Critical++
	case SeverityHigh:
		s.High++
	case SeverityMedium:
		s.Medium++
	case SeverityLow:
		s.Low++
	case SeverityInfo:
		s.Info++
	default:
		s.Unknown++
	}
}

// SourceCount totals one source's evidence.
type SourceCount struct {
	Source Source `json:"source"`
	Counts
}

// TrendPoint is one report's totals.
type TrendPoint struct {
	GeneratedAt time.Time    `json:"generatedAt"`
	ByStatus    StatusCounts `json:"byStatus"`
	Failures    int          `json:"failures"`
}

// Meta is what a report says about its own making.
type Meta struct {
	GeneratedAt time.Time
	Cluster     string
	Generator   string
	Sources     []SourceInfo
	// Warnings are problems met while collecting evidence that did not
	// stop the report.
	Warnings []string
}

// Build assesses every catalogue control against the evidence. Earlier
// reports (any order) give the trend and each control's previous status.
// The result is deterministic: the same inputs give the same report.
func Build(m *Model, evidence []Evidence, meta Meta, previous ...*Report) *Report {
	r := &Report{
		APIVersion:  ReportAPIVersion,
		Kind:        ReportKind,
		GeneratedAt: meta.GeneratedAt.UTC().Truncate(time.Second),
		Cluster:     meta.Cluster,
		Generator:   meta.Generator,
		Catalog:     ModelInfo{Name: m.Catalog.Name, Version: m.Catalog.Version, Title: m.Catalog.Title, Origin: m.CatalogOrigin},
		Mapping:     ModelInfo{Name: m.Mapping.Name, Version: m.Mapping.Version, Origin: m.MappingOrigin},
		Disclaimer:  strings.TrimSpace(m.Catalog.Disclaimer),
		Families:    m.Catalog.Families,
		Sources:     append([]SourceInfo(nil), meta.Sources...),
		Warnings:    append([]string(nil), meta.Warnings...),
		Unmapped:    []Evidence{},
	}
	byID := map[string]*ControlResult{}
	for _, c := range m.Catalog.Controls {
		cr := &ControlResult{Control: c, Evidence: []Evidence{}}
		byID[c.ID] = cr
		r.Controls = append(r.Controls, cr)
	}

	evidence = normalise(evidence)
	unknown := map[string]int{}
	bySource := map[Source]*Counts{}
	for i := range evidence {
		e := &evidence[i]
		r.Summary.Evidence.Add(e)
		if bySource[e.Source] == nil {
			bySource[e.Source] = &Counts{}
		}
		bySource[e.Source].Add(e)
		if e.Result == ResultFail {
			r.Summary.Failures.add(e.Severity)
		}
		ids, bad := m.Controls(e)
		for _, b := range bad {
			unknown[b]++
		}
		if len(ids) == 0 {
			r.Unmapped = append(r.Unmapped, *e)
			continue
		}
		for _, id := range ids {
			cr := byID[id]
			cr.Evidence = append(cr.Evidence, *e)
			cr.Counts.Add(e)
			if e.Result == ResultFail {
				cr.Failures.add(e.Severity)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(unknown)) {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d pieces of evidence name control %q, which the catalogue %q does not list: they count only for the controls it lists", unknown[id], id, m.Catalog.Name))
	}
	for _, s := range Sources {
		if c := bySource[s]; c != nil {
			r.Summary.BySource = append(r.Summary.BySource, SourceCount{Source: s, Counts: *c})
		}
	}
	for _, cr := range r.Controls {
		// Each control's evidence is in the global order already.
		cr.Status = Decide(cr.Counts)
		r.Summary.ByStatus.add(cr.Status)
	}
	r.Summary.Controls = len(r.Controls)
	r.addTrend(previous)
	return r
}

// normalise fills defaults and drops exact duplicates (the same file given
// twice), then orders the evidence: failures first, by severity, then
// warnings, passes and information.
func normalise(in []Evidence) []Evidence {
	type keyed struct {
		e   Evidence
		key string
	}
	seen := map[string]bool{}
	list := make([]keyed, 0, len(in))
	for _, e := range in {
		if e.Severity == "" {
			e.Severity = SeverityUnknown
		}
		if e.Result == "" {
			e.Result = ResultInfo
		}
		if k := e.key(); !seen[k] {
			seen[k] = true
			list = append(list, keyed{e, k})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := &list[i], &list[j]
		if ra, rb := resultOrder[a.e.Result], resultOrder[b.e.Result]; ra != rb {
			return ra < rb
		}
		if a.e.Severity != b.e.Severity {
			return a.e.Severity.Rank() < b.e.Severity.Rank()
		}
		return a.key < b.key
	})
	out := make([]Evidence, len(list))
	for i := range list {
		out[i] = list[i].e
	}
	return out
}

var resultOrder = map[Result]int{ResultFail: 0, ResultError: 1, ResultWarn: 2, ResultPass: 3, ResultSkip: 4, ResultInfo: 5}

func (r *Report) addTrend(previous []*Report) {
	var prev []*Report
	for _, p := range previous {
		if p != nil {
			prev = append(prev, p)
		}
	}
	if len(prev) == 0 {
		return
	}
	sort.SliceStable(prev, func(i, j int) bool { return prev[i].GeneratedAt.Before(prev[j].GeneratedAt) })
	for _, p := range prev {
		if p.Cluster != r.Cluster {
			r.Warnings = append(r.Warnings, fmt.Sprintf("the earlier report of %s is for cluster %q, not %q", p.GeneratedAt.Format(time.RFC3339), p.Cluster, r.Cluster))
		}
		r.Trend = append(r.Trend, TrendPoint{GeneratedAt: p.GeneratedAt, ByStatus: p.Summary.ByStatus, Failures: p.Summary.Evidence.Fail})
	}
	r.Trend = append(r.Trend, TrendPoint{GeneratedAt: r.GeneratedAt, ByStatus: r.Summary.ByStatus, Failures: r.Summary.Evidence.Fail})
	latest := map[string]Status{}
	for _, c := range prev[len(prev)-1].Controls {
		latest[c.ID] = c.Status
	}
	for _, c := range r.Controls {
		c.PreviousStatus = latest[c.ID]
	}
}

// ReadReport decodes a report written in JSON by an earlier run. Unknown
// fields and other kinds of document are errors naming the file.
func ReadReport(name string, data []byte) (*Report, error) {
	var r Report
	strict, err := sigsjson.UnmarshalStrict(data, &r)
	if err != nil {
		return nil, fmt.Errorf("%s: not a compliance report in JSON: %v", name, err)
	}
	if r.APIVersion != ReportAPIVersion || r.Kind != ReportKind {
		return nil, fmt.Errorf("%s: not a compliance report in JSON: apiVersion %q, kind %q; want %s %s (guardctl report --format json)", name, r.APIVersion, r.Kind, ReportAPIVersion, ReportKind)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %v", name, strict[0])
	}
	if r.GeneratedAt.IsZero() {
		return nil, fmt.Errorf("%s: generatedAt: required", name)
	}
	return &r, nil
}

// JSON is the report in its JSON form, indented, without a final newline.
func (r *Report) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}
