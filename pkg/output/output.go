// Package output renders guardctl results for people and for tools: plain
// text, JSON, JUnit XML (for CI test reports) and TAP version 13.
package output

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/suite"
)

// Formats guardctl accepts for --output.
var Formats = []string{"text", "json", "junit", "tap"}

// CheckFormat returns an error for an unknown format.
func CheckFormat(f string) error {
	for _, known := range Formats {
		if f == known {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q; use one of %s", f, strings.Join(Formats, ", "))
}

// Status of a reported check: the same verdicts as suite cases.
type Status = suite.Status

// Statuses. Error is for input that could not be used.
const (
	Pass  = suite.Pass
	Fail  = suite.Fail
	Error = suite.Error
	Skip  = suite.Skip
)

// Case is one check in a machine-readable report: a suite case, or an
// object reviewed by eval.
type Case struct {
	Group    string // suite file, or manifest file
	Name     string
	Status   Status
	Message  string // why it did not pass
	Output   string // extra text (warnings, print output)
	Duration time.Duration
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v interface{}) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// junitCounts are the attributes <testsuites> and <testsuite> share.
type junitCounts struct {
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr"`
}

func (c *junitCounts) add(o junitCounts) {
	c.Tests += o.Tests
	c.Failures += o.Failures
	c.Errors += o.Errors
	c.Skipped += o.Skipped
}

type junitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Name    string   `xml:"name,attr"`
	junitCounts
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name string `xml:"name,attr"`
	junitCounts
	Cases    []junitCase `xml:"testcase"`
	duration time.Duration
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *struct{}     `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes cases as JUnit XML, one <testsuite> per group, in the
// order groups first appear.
func WriteJUnit(w io.Writer, name string, cases []Case) error {
	root := junitSuites{Name: name}
	index := map[string]int{}
	var total time.Duration
	for _, c := range cases {
		i, ok := index[c.Group]
		if !ok {
			i = len(root.Suites)
			index[c.Group] = i
			root.Suites = append(root.Suites, junitSuite{Name: c.Group})
		}
		s := &root.Suites[i]
		jc := junitCase{Name: c.Name, Classname: c.Group, Time: seconds(c.Duration), SystemOut: c.Output}
		switch c.Status {
		case Fail:
			jc.Failure = &junitProblem{Message: firstLine(c.Message), Type: "failure", Text: c.Message}
			s.Failures++
		case Error:
			jc.Error = &junitProblem{Message: firstLine(c.Message), Type: "error", Text: c.Message}
			s.Errors++
		case Skip:
			jc.Skipped = &struct{}{}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, jc)
		s.duration += c.Duration
		total += c.Duration
	}
	for i := range root.Suites {
		root.Suites[i].Time = seconds(root.Suites[i].duration)
		root.add(root.Suites[i].junitCounts)
	}
	root.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(root); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteTAP writes cases in TAP version 13, with a YAML block explaining
// each case that did not pass.
func WriteTAP(w io.Writer, cases []Case) error {
	var b strings.Builder
	b.WriteString("TAP version 13\n")
	fmt.Fprintf(&b, "1..%d\n", len(cases))
	for i, c := range cases {
		desc := tapEscape(c.Name)
		if c.Group != "" {
			desc = tapEscape(c.Group) + " " + desc
		}
		switch c.Status {
		case Pass:
			fmt.Fprintf(&b, "ok %d - %s\n", i+1, desc)
		case Skip:
			fmt.Fprintf(&b, "ok %d - %s # SKIP\n", i+1, desc)
		default:
			fmt.Fprintf(&b, "not ok %d - %s\n", i+1, desc)
			b.WriteString("  ---\n")
			fmt.Fprintf(&b, "  severity: %s\n", c.Status)
			writeYAMLBlock(&b, "message", c.Message)
			b.WriteString("  ...\n")
		}
		if c.Output != "" && c.Status == Pass {
			for _, line := range strings.Split(strings.TrimRight(c.Output, "\n"), "\n") {
				fmt.Fprintf(&b, "# %s\n", line)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tapEscape keeps a description on one line and away from TAP directives.
func tapEscape(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "\\", "\\\\")
	return strings.ReplaceAll(s, "#", "\\#")
}

func writeYAMLBlock(b *strings.Builder, key, text string) {
	fmt.Fprintf(b, "  %s: |-\n", key)
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(b, "    %s\n", line)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Tally counts cases by status.
func Tally(cases []Case) map[Status]int {
	n := map[Status]int{}
	for _, c := range cases {
		n[c.Status]++
	}
	return n
}
