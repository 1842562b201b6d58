// Package kubehunter reads kube-hunter's JSON report (kube-hunter --report
// json) and Starboard's KubeHunterReport, strictly, and summarises a run
// into the compact form a PenetrationTest holds.
//
// The format is the dictionary kube-hunter's reporter builds
// (aquasecurity/kube-hunter:kube_hunter/modules/report/base.py): "nodes",
// "services", "vulnerabilities" and, with --statistics,
// "hunter_statistics". kube-hunter is no longer developed, so the format is
// frozen at its last release (0.6.8).
package kubehunter

import (
	"errors"
	"fmt"
	"strings"

	"github.com/statcan/daaas-guard/pkg/strictjson"
)

// Severity of a finding. kube-hunter derives it from the finding's category
// and defaults to low; Starboard adds unknown.
type Severity string

// The severities kube-hunter and Starboard report.
const (
	High    Severity = "high"
	Medium  Severity = "medium"
	Low     Severity = "low"
	Unknown Severity = "unknown"
)

// rank orders severities, highest first.
func (s Severity) rank() int {
	switch s {
	case High:
		return 0
	case Medium:
		return 1
	case Low:
		return 2
	}
	return 3
}

// Report is one kube-hunter run.
type Report struct {
	Nodes           []Node
	Services        []Service
	Vulnerabilities []Vulnerability
	// HunterStatistics is present only when kube-hunter ran with
	// --statistics.
	HunterStatistics []HunterStatistic
}

// Node is a host kube-hunter found.
type Node struct {
	Type     string
	Location string
}

// Service is a Kubernetes service endpoint kube-hunter found
// (location "<host>:<port><path>").
type Service struct {
	Service  string
	Location string
}

// Vulnerability is one finding. Evidence can hold secrets (a service
// account token, for KHV050): never log or store it.
type Vulnerability struct {
	Location string
	// ID is kube-hunter's vulnerability ID ("KHV002"); a few findings have
	// the ID "None".
	ID string
	// Category is "<MITRE tactic> // <technique>", or "CVE // <category>".
	Category     string
	Severity     Severity
	Name         string
	Description  string
	Evidence     string
	AVDReference string
	Hunter       string
}

// HunterStatistic says how many findings a hunter can publish.
type HunterStatistic struct {
	Name            string
	Description     string
	Vulnerabilities int
}

type (
	wireReport struct {
		Nodes            *[]wireNode        `json:"nodes"`
		Services         *[]wireService     `json:"services"`
		Vulnerabilities  *[]wireVuln        `json:"vulnerabilities"`
		HunterStatistics *[]wireHunterStats `json:"hunter_statistics"`
		// kube-hunter's reporter appends a template URL of its knowledge
		// base ("kburl"); accepted and ignored.
		KBURL string `json:"kburl"`
	}
	wireNode struct {
		Type     *string `json:"type"`
		Location *string `json:"location"`
	}
	wireService struct {
		Service  *string `json:"service"`
		Location *string `json:"location"`
	}
	wireVuln struct {
		Location      *string `json:"location"`
		ID            *string `json:"vid"`
		Category      *string `json:"category"`
		Severity      *string `json:"severity"`
		Vulnerability *string `json:"vulnerability"`
		Description   string  `json:"description"`
		Evidence      string  `json:"evidence"`
		AVDReference  string  `json:"avd_reference"`
		Hunter        string  `json:"hunter"`
	}
	wireHunterStats struct {
		Name            *string `json:"name"`
		Description     string  `json:"description"`
		Vulnerabilities *int    `json:"vulnerabilities"`
	}
)

const maxProblems = 10

// ParseError lists the problems of a document that is not a valid
// kube-hunter report.
type ParseError struct {
	Problems []*strictjson.Error
	Omitted  int
}

func (e *ParseError) Error() string {
	msgs := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		msgs = append(msgs, p.Error())
	}
	s := "kube-hunter report: " + strings.Join(msgs, "; ")
	if e.Omitted > 0 {
		s += fmt.Sprintf(" (and %d more)", e.Omitted)
	}
	return s
}

// Parse reads kube-hunter's JSON report. It accepts only kube-hunter's
// members, requires nodes, services and vulnerabilities and, in each
// finding, its location, ID, category, severity and name; severities must
// be known. Errors name the path of each problem and are *ParseError.
func Parse(data []byte) (*Report, error) {
	if k := strictjson.Kind(data); k != '{' {
		msg := "not a kube-hunter report: expected an object with nodes, services and vulnerabilities"
		if k == 0 {
			msg = "empty document"
		}
		return nil, &ParseError{Problems: []*strictjson.Error{{Msg: msg}}}
	}
	var w wireReport
	if err := strictjson.Unmarshal(data, &w); err != nil {
		return nil, parseError(err, "")
	}
	v := newValidator()
	r := &Report{}
	if w.Nodes == nil {
		v.fail("nodes", "required")
	} else {
		for i, n := range *w.Nodes {
			p := fmt.Sprintf("nodes[%d]", i)
			r.Nodes = append(r.Nodes, Node{Type: v.str(p+".type", n.Type), Location: v.str(p+".location", n.Location)})
		}
	}
	if w.Services == nil {
		v.fail("services", "required")
	} else {
		for i, s := range *w.Services {
			p := fmt.Sprintf("services[%d]", i)
			r.Services = append(r.Services, Service{Service: v.str(p+".service", s.Service), Location: v.str(p+".location", s.Location)})
		}
	}
	if w.Vulnerabilities == nil {
		v.fail("vulnerabilities", "required")
	} else {
		r.Vulnerabilities = v.vulnerabilities("vulnerabilities", *w.Vulnerabilities)
	}
	if w.HunterStatistics != nil {
		for i, h := range *w.HunterStatistics {
			p := fmt.Sprintf("hunter_statistics[%d]", i)
			st := HunterStatistic{Name: v.str(p+".name", h.Name), Description: h.Description}
			if h.Vulnerabilities == nil {
				v.fail(p+".vulnerabilities", "required")
			} else if *h.Vulnerabilities < 0 {
				v.fail(p+".vulnerabilities", "must not be negative, found %d", *h.Vulnerabilities)
			} else {
				st.Vulnerabilities = *h.Vulnerabilities
			}
			r.HunterStatistics = append(r.HunterStatistics, st)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return r, nil
}

func parseError(err error, prefix string) error {
	var se *strictjson.Error
	if !errors.As(err, &se) {
		se = &strictjson.Error{Msg: err.Error()}
	}
	if prefix != "" {
		if se.Path == "" {
			se.Path = prefix
		} else {
			se.Path = prefix + "." + se.Path
		}
	}
	return &ParseError{Problems: []*strictjson.Error{se}}
}

type validator struct {
	strictjson.Problems
}

func newValidator() *validator { return &validator{strictjson.NewProblems(maxProblems)} }

func (v *validator) fail(path, format string, args ...any) { v.Add(path, format, args...) }

func (v *validator) err() error {
	if len(v.List) == 0 {
		return nil
	}
	return &ParseError{Problems: v.List, Omitted: v.Omitted}
}

// str requires a non-empty string.
func (v *validator) str(path string, s *string) string {
	switch {
	case s == nil:
		v.fail(path, "required")
		return ""
	case strings.TrimSpace(*s) == "":
		v.fail(path, "must not be empty")
	}
	return *s
}

func (v *validator) vulnerabilities(path string, ws []wireVuln) []Vulnerability {
	out := make([]Vulnerability, 0, len(ws))
	for i, w := range ws {
		p := fmt.Sprintf("%s[%d]", path, i)
		vu := Vulnerability{
			Location:     v.str(p+".location", w.Location),
			ID:           v.str(p+".vid", w.ID),
			Category:     v.str(p+".category", w.Category),
			Name:         v.str(p+".vulnerability", w.Vulnerability),
			Description:  w.Description,
			Evidence:     w.Evidence,
			AVDReference: w.AVDReference,
			Hunter:       w.Hunter,
		}
		if s := v.str(p+".severity", w.Severity); strings.TrimSpace(s) != "" {
			switch Severity(s) {
			case High, Medium, Low, Unknown:
				vu.Severity = Severity(s)
			default:
				v.fail(p+".severity", "must be one of high, medium, low, unknown, found %q", s)
			}
		}
		out = append(out, vu)
	}
	return out
}
