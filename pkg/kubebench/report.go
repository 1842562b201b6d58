// Package kubebench reads kube-bench's JSON output (kube-bench run --json)
// and Starboard's CISKubeBenchReport, strictly, and summarises a run into
// the compact form a NodeBenchmark holds.
//
// The format is kube-bench's check.OverallControls (keys "Controls" and
// "Totals") or, with --nototals, the bare array of controls
// (aquasecurity/kube-bench:cmd/common.go writeJSONOutput; types in
// check/controls.go and check/check.go). The structs here mirror those
// keys; importing kube-bench's package would pull in the AWS SDK, ginkgo
// and viper.
package kubebench

import (
	"errors"
	"fmt"
	"strings"

	"github.com/statcan/daaas-guard/pkg/strictjson"
)

// State is the result of one check.
type State string

// The states kube-bench reports (check/check.go).
const (
	Pass State = "PASS"
	Fail State = "FAIL"
	Warn State = "WARN"
	Info State = "INFO"
)

// NodeTypes kube-bench's benchmark files declare (check/check.go).
var NodeTypes = []string{"master", "node", "etcd", "controlplane", "policies", "managedservices", "federated"}

// Report is one kube-bench run.
type Report struct {
	Controls []Controls
	// Totals sums every control's totals. HasTotals is false for the
	// --nototals shape, whose Totals are computed here.
	Totals    Totals
	HasTotals bool
}

// Totals counts checks by state.
type Totals struct {
	Pass, Fail, Warn, Info int
}

func (t *Totals) add(o Totals) {
	t.Pass += o.Pass
	t.Fail += o.Fail
	t.Warn += o.Warn
	t.Info += o.Info
}

func (t *Totals) count(s State) {
	switch s {
	case Pass:
		t.Pass++
	case Fail:
		t.Fail++
	case Warn:
		t.Warn++
	case Info:
		t.Info++
	}
}

// Controls is one benchmark file's results (master, etcd, node, ...).
type Controls struct {
	ID string
	// Version is the benchmark ("cis-1.10"); DetectedVersion the
	// Kubernetes version kube-bench detected, if it says.
	Version         string
	DetectedVersion string
	Text            string
	NodeType        string
	Groups          []Group
	Totals          Totals
}

// Group is a section of checks ("1.2 API Server").
type Group struct {
	ID     string
	Type   string
	Text   string
	Totals Totals
	Checks []Check
}

// Check is one check's result, with everything kube-bench reports about it
// (Starboard drops audit, expected_result and actual_value; we keep them).
type Check struct {
	ID             string
	Text           string
	Audit          string
	AuditEnv       string
	AuditConfig    string
	Type           string
	Remediation    string
	TestInfo       []string
	State          State
	ActualValue    string
	Scored         bool
	IsMultiple     bool
	ExpectedResult string
	Reason         string
}

// The wire types mirror kube-bench's JSON keys. Pointers mark members that
// must be present: a document missing them is not kube-bench output.
type (
	wireOverall struct {
		Controls *[]wireControls `json:"Controls"`
		Totals   *wireSummary    `json:"Totals"`
	}
	wireSummary struct {
		Pass *int `json:"total_pass"`
		Fail *int `json:"total_fail"`
		Warn *int `json:"total_warn"`
		Info *int `json:"total_info"`
	}
	wireControls struct {
		ID              *string      `json:"id"`
		Version         *string      `json:"version"`
		DetectedVersion string       `json:"detected_version"`
		Text            *string      `json:"text"`
		NodeType        *string      `json:"node_type"`
		Groups          *[]wireGroup `json:"tests"`
		wireSummary
	}
	wireGroup struct {
		ID     *string      `json:"section"`
		Type   string       `json:"type"`
		Pass   *int         `json:"pass"`
		Fail   *int         `json:"fail"`
		Warn   *int         `json:"warn"`
		Info   *int         `json:"info"`
		Text   *string      `json:"desc"`
		Checks *[]wireCheck `json:"results"`
	}
	wireCheck struct {
		ID             *string  `json:"test_number"`
		Text           *string  `json:"test_desc"`
		Audit          string   `json:"audit"`
		AuditEnv       string   `json:"AuditEnv"`
		AuditConfig    string   `json:"AuditConfig"`
		Type           string   `json:"type"`
		Remediation    string   `json:"remediation"`
		TestInfo       []string `json:"test_info"`
		State          *string  `json:"status"`
		ActualValue    string   `json:"actual_value"`
		Scored         *bool    `json:"scored"`
		IsMultiple     bool     `json:"IsMultiple"`
		ExpectedResult string   `json:"expected_result"`
		Reason         string   `json:"reason"`
	}
)

// maxProblems bounds how many problems one error lists.
const maxProblems = 10

// Parse reads kube-bench's JSON output, in either shape. It accepts only
// kube-bench's members, requires the ones kube-bench always writes, checks
// states and node types, and checks every count against the results it
// counts. Errors name the path of each problem (Controls[0].tests[2].pass);
// an error from Parse is a *ParseError.
func Parse(data []byte) (*Report, error) {
	switch strictjson.Kind(data) {
	case '{':
		var w wireOverall
		if err := strictjson.Unmarshal(data, &w); err != nil {
			return nil, parseError(err)
		}
		v := newValidator()
		r := &Report{HasTotals: true}
		if w.Controls == nil {
			v.fail("Controls", "required")
		} else {
			r.Controls = v.controls("Controls", *w.Controls)
		}
		if w.Totals == nil {
			v.fail("Totals", "required")
		} else {
			r.Totals = v.summary("Totals", *w.Totals)
		}
		if w.Controls != nil && w.Totals != nil {
			v.sums("Totals", r.Totals, r.Controls)
		}
		return r, v.err()
	case '[':
		var w []wireControls
		if err := strictjson.Unmarshal(data, &w); err != nil {
			return nil, parseError(err)
		}
		v := newValidator()
		r := &Report{Controls: v.controls("", w)}
		for _, c := range r.Controls {
			r.Totals.add(c.Totals)
		}
		return r, v.err()
	case 0:
		return nil, &ParseError{Problems: []*strictjson.Error{{Msg: "empty document"}}}
	default:
		return nil, &ParseError{Problems: []*strictjson.Error{{Msg: "not kube-bench JSON: expected an object with Controls and Totals, or an array of controls"}}}
	}
}

// ParseError lists the problems of a document that is not valid kube-bench
// output.
type ParseError struct {
	Problems []*strictjson.Error
	// Omitted counts problems beyond those listed.
	Omitted int
}

func (e *ParseError) Error() string {
	msgs := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		msgs = append(msgs, p.Error())
	}
	s := "kube-bench report: " + strings.Join(msgs, "; ")
	if e.Omitted > 0 {
		s += fmt.Sprintf(" (and %d more)", e.Omitted)
	}
	return s
}

func parseError(err error) error {
	var se *strictjson.Error
	if errors.As(err, &se) {
		return &ParseError{Problems: []*strictjson.Error{se}}
	}
	return &ParseError{Problems: []*strictjson.Error{{Msg: err.Error()}}}
}

// validator converts wire values, collecting problems.
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

func join(path, member string) string {
	if path == "" {
		return member
	}
	return path + "." + member
}

func (v *validator) str(path string, s *string, nonEmpty bool) string {
	switch {
	case s == nil:
		v.fail(path, "required")
		return ""
	case nonEmpty && strings.TrimSpace(*s) == "":
		v.fail(path, "must not be empty")
	}
	return *s
}

func (v *validator) count(path string, n *int) int {
	switch {
	case n == nil:
		v.fail(path, "required")
		return 0
	case *n < 0:
		v.fail(path, "must not be negative, found %d", *n)
	}
	return *n
}

func (v *validator) summary(path string, s wireSummary) Totals {
	return Totals{
		Pass: v.count(join(path, "total_pass"), s.Pass),
		Fail: v.count(join(path, "total_fail"), s.Fail),
		Warn: v.count(join(path, "total_warn"), s.Warn),
		Info: v.count(join(path, "total_info"), s.Info),
	}
}

func (v *validator) controls(path string, ws []wireControls) []Controls {
	if len(ws) == 0 {
		v.fail(path, "no controls: kube-bench ran no checks")
		return nil
	}
	out := make([]Controls, 0, len(ws))
	for i, w := range ws {
		p := fmt.Sprintf("%s[%d]", path, i)
		c := Controls{
			ID:              v.str(join(p, "id"), w.ID, true),
			Version:         v.str(join(p, "version"), w.Version, true),
			DetectedVersion: w.DetectedVersion,
			Text:            v.str(join(p, "text"), w.Text, false),
			NodeType:        v.str(join(p, "node_type"), w.NodeType, true),
			Totals:          v.summary(p, w.wireSummary),
		}
		if w.NodeType != nil && *w.NodeType != "" && !known(*w.NodeType) {
			v.fail(join(p, "node_type"), "must be one of %s, found %q", strings.Join(NodeTypes, ", "), *w.NodeType)
		}
		// kube-bench writes null when a filter left no groups.
		if w.Groups == nil {
			v.fail(join(p, "tests"), "required")
		} else {
			var sum Totals
			for j, wg := range *w.Groups {
				g := v.group(fmt.Sprintf("%s.tests[%d]", p, j), wg)
				sum.add(g.Totals)
				c.Groups = append(c.Groups, g)
			}
			v.sameTotals(p, "total_", c.Totals, sum, "its tests")
		}
		out = append(out, c)
	}
	return out
}

func (v *validator) group(p string, w wireGroup) Group {
	g := Group{
		ID:   v.str(join(p, "section"), w.ID, true),
		Type: w.Type,
		Text: v.str(join(p, "desc"), w.Text, false),
		Totals: Totals{
			Pass: v.count(join(p, "pass"), w.Pass),
			Fail: v.count(join(p, "fail"), w.Fail),
			Warn: v.count(join(p, "warn"), w.Warn),
			Info: v.count(join(p, "info"), w.Info),
		},
	}
	if w.Checks == nil {
		v.fail(join(p, "results"), "required")
		return g
	}
	var counted Totals
	for k, wc := range *w.Checks {
		c := v.check(fmt.Sprintf("%s.results[%d]", p, k), wc)
		counted.count(c.State)
		g.Checks = append(g.Checks, c)
	}
	v.sameTotals(p, "", g.Totals, counted, "its results")
	return g
}

func (v *validator) check(p string, w wireCheck) Check {
	c := Check{
		ID:             v.str(join(p, "test_number"), w.ID, true),
		Text:           v.str(join(p, "test_desc"), w.Text, false),
		Audit:          w.Audit,
		AuditEnv:       w.AuditEnv,
		AuditConfig:    w.AuditConfig,
		Type:           w.Type,
		Remediation:    w.Remediation,
		TestInfo:       w.TestInfo,
		ActualValue:    w.ActualValue,
		IsMultiple:     w.IsMultiple,
		ExpectedResult: w.ExpectedResult,
		Reason:         w.Reason,
	}
	if s := v.str(join(p, "status"), w.State, false); w.State != nil {
		switch State(s) {
		case Pass, Fail, Warn, Info:
			c.State = State(s)
		default:
			v.fail(join(p, "status"), "must be one of PASS, FAIL, WARN, INFO, found %q", s)
		}
	}
	if w.Scored == nil {
		v.fail(join(p, "scored"), "required")
	} else {
		c.Scored = *w.Scored
	}
	return c
}

// sameTotals reports each count of declared that differs from counted.
func (v *validator) sameTotals(p, prefix string, declared, counted Totals, what string) {
	for _, f := range []struct {
		name      string
		dec, cnt  int
		stateName State
	}{
		{"pass", declared.Pass, counted.Pass, Pass},
		{"fail", declared.Fail, counted.Fail, Fail},
		{"warn", declared.Warn, counted.Warn, Warn},
		{"info", declared.Info, counted.Info, Info},
	} {
		if f.dec != f.cnt {
			v.fail(join(p, prefix+f.name), "is %d but %s hold %d %s", f.dec, what, f.cnt, f.stateName)
		}
	}
}

// sums checks the top-level Totals against the controls.
func (v *validator) sums(p string, declared Totals, controls []Controls) {
	var sum Totals
	for _, c := range controls {
		sum.add(c.Totals)
	}
	v.sameTotals(p, "total_", declared, sum, "the controls")
}

func known(nodeType string) bool {
	for _, t := range NodeTypes {
		if t == nodeType {
			return true
		}
	}
	return false
}
