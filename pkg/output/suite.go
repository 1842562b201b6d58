package output

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/suite"
)

// SuiteCases flattens a test report into cases: one per suite case, plus
// one for a test or suite that ran, or failed, as a whole.
func SuiteCases(rep *suite.Report) []Case {
	var out []Case
	for _, s := range rep.Suites {
		switch {
		case s.Err != nil:
			out = append(out, Case{Group: s.Path, Name: "(suite)", Status: (suite.StatusOf(s.Err)), Message: s.Err.Error(), Duration: s.Duration})
			continue
		case s.Skipped:
			out = append(out, Case{Group: s.Path, Name: "(suite)", Status: Skip})
			continue
		}
		for _, t := range s.Tests {
			switch {
			case t.Skipped:
				out = append(out, Case{Group: s.Path, Name: t.Name, Status: Skip})
				continue
			case t.Err != nil || len(t.Cases) == 0:
				c := Case{Group: s.Path, Name: t.Name, Status: (suite.StatusOf(t.Err)), Duration: t.Duration}
				if t.Err != nil {
					c.Message = suite.Where(s.Path, t, nil) + ": " + t.Err.Error()
				}
				out = append(out, c)
				continue
			}
			for _, c := range t.Cases {
				cs := Case{Group: s.Path, Name: t.Name + "/" + c.Name, Status: c.Status(), Duration: c.Duration, Output: c.Print}
				if c.Err != nil {
					cs.Message = suite.Where(s.Path, t, c) + ": " + c.Err.Error()
				}
				out = append(out, cs)
			}
		}
	}
	return out
}

func suiteStatus(s *suite.SuiteResult) Status {
	if s.Skipped {
		return Skip
	}
	if s.Err != nil {
		return (suite.StatusOf(s.Err))
	}
	worst := Pass
	for _, t := range s.Tests {
		st := (suite.StatusOf(t.Err))
		if t.Err == nil {
			for _, c := range t.Cases {
				if cs := c.Status(); cs == Error || (cs == Fail && st != Error) {
					st = cs
				}
			}
		}
		if st == Error || (st == Fail && worst != Error) {
			worst = st
		}
	}
	return worst
}

// SuiteText writes a report for people: one line per suite, the reason for
// every test or case that did not pass (a cause shared by several tests of
// a suite, such as a template that does not compile, is shown once), and a
// closing count.
func SuiteText(w io.Writer, rep *suite.Report, verbose bool) error {
	var b strings.Builder
	for _, s := range rep.Suites {
		st := suiteStatus(s)
		label := map[Status]string{Pass: "ok   ", Fail: "FAIL ", Error: "ERROR", Skip: "skip "}[st]
		fmt.Fprintf(&b, "%s %s\t%s\n", label, s.Path, round(s.Duration))
		for _, warn := range s.Warnings {
			fmt.Fprintf(&b, "    warning: %s\n", warn)
		}
		if s.Err != nil {
			fmt.Fprintf(&b, "    %s\n", s.Err)
			continue
		}
		writeTestErrors(&b, s)
		for _, t := range s.Tests {
			if t.Err != nil {
				continue
			}
			if len(t.Cases) == 0 && verbose && !t.Skipped {
				fmt.Fprintf(&b, "    %-5s %s\t%s\n", Pass, t.Name, round(t.Duration))
			}
			for _, c := range t.Cases {
				cs := c.Status()
				if cs == Fail || cs == Error {
					fmt.Fprintf(&b, "    %s: %s\n", suite.Where(s.Path, t, c), c.Err)
					if c.Print != "" {
						fmt.Fprintf(&b, "      print output:\n%s", indent(c.Print, "        "))
					}
				} else if verbose {
					fmt.Fprintf(&b, "    %-5s %s/%s\t%s\n", cs, t.Name, c.Name, round(c.Duration))
				}
			}
		}
	}
	if len(rep.Suites) == 0 {
		fmt.Fprintf(&b, "no test suites found (%d YAML files looked at)\n", rep.NotSuites)
	}
	tests, cases := 0, 0
	for _, s := range rep.Suites {
		tests += len(s.Tests)
		for _, t := range s.Tests {
			cases += len(t.Cases)
		}
	}
	n := rep.Counts()
	fmt.Fprintf(&b, "%d suites, %d tests, %d cases", len(rep.Suites), tests, cases)
	if n[suite.Error] > 0 {
		fmt.Fprintf(&b, "; %d could not run because of unusable input", n[suite.Error])
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "test: %d passed, %d failed, %d skipped\n", n[suite.Pass], n[suite.Fail]+n[suite.Error], n[suite.Skip])
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTestErrors prints the errors of tests that could not run, once per
// distinct cause.
func writeTestErrors(b *strings.Builder, s *suite.SuiteResult) {
	var causes []string
	tests := map[string][]*suite.TestResult{}
	for _, t := range s.Tests {
		if t.Err == nil {
			continue
		}
		cause := t.Err.Error()
		if _, seen := tests[cause]; !seen {
			causes = append(causes, cause)
		}
		tests[cause] = append(tests[cause], t)
	}
	for _, cause := range causes {
		ts := tests[cause]
		if len(ts) == 1 {
			fmt.Fprintf(b, "    %s: %s\n", suite.Where(s.Path, ts[0], nil), cause)
			continue
		}
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = fmt.Sprintf("%q (line %d)", t.Name, t.Line)
		}
		fmt.Fprintf(b, "    %s: tests %s: %s\n", s.Path, strings.Join(names, ", "), cause)
	}
}

type jsonSuiteReport struct {
	Suites   []jsonSuite `json:"suites"`
	Summary  jsonSummary `json:"summary"`
	ExitCode int         `json:"exitCode"`
}

type jsonSummary struct {
	Suites  int `json:"suites"`
	Tests   int `json:"tests"`
	Cases   int `json:"cases"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Errors  int `json:"errors"`
	Skipped int `json:"skipped"`
}

type jsonSuite struct {
	Path     string     `json:"path"`
	Status   Status     `json:"status"`
	Error    string     `json:"error,omitempty"`
	Warnings []string   `json:"warnings,omitempty"`
	Duration string     `json:"duration"`
	Tests    []jsonTest `json:"tests,omitempty"`
}

type jsonTest struct {
	Name     string     `json:"name"`
	Line     int        `json:"line,omitempty"`
	Status   Status     `json:"status"`
	Error    string     `json:"error,omitempty"`
	Duration string     `json:"duration"`
	Cases    []jsonCase `json:"cases,omitempty"`
}

type jsonCase struct {
	Name       string          `json:"name"`
	Line       int             `json:"line,omitempty"`
	Status     Status          `json:"status"`
	Error      string          `json:"error,omitempty"`
	Duration   string          `json:"duration"`
	Violations []jsonViolation `json:"violations,omitempty"`
	Print      string          `json:"print,omitempty"`
	Trace      string          `json:"trace,omitempty"`
}

type jsonViolation struct {
	Constraint        string                 `json:"constraint"`
	Template          string                 `json:"template,omitempty"`
	EnforcementAction string                 `json:"enforcementAction"`
	Actions           []string               `json:"actions,omitempty"`
	Message           string                 `json:"message"`
	Details           map[string]interface{} `json:"details,omitempty"`
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// SuiteJSON writes the whole report as JSON, violations included.
func SuiteJSON(w io.Writer, rep *suite.Report) error {
	out := jsonSuiteReport{Suites: []jsonSuite{}, ExitCode: rep.ExitCode()}
	for _, s := range rep.Suites {
		js := jsonSuite{Path: s.Path, Status: suiteStatus(s), Error: errString(s.Err), Warnings: s.Warnings, Duration: round(s.Duration).String()}
		for _, t := range s.Tests {
			jt := jsonTest{Name: t.Name, Line: t.Line, Status: (suite.StatusOf(t.Err)), Duration: round(t.Duration).String()}
			if t.Err != nil {
				jt.Error = suite.Where(s.Path, t, nil) + ": " + t.Err.Error()
			}
			if t.Skipped {
				jt.Status = Skip
			}
			for _, c := range t.Cases {
				jc := jsonCase{Name: c.Name, Line: c.Line, Status: c.Status(),
					Duration: round(c.Duration).String(), Print: c.Print, Trace: c.Trace}
				if c.Err != nil {
					jc.Error = suite.Where(s.Path, t, c) + ": " + c.Err.Error()
				}
				for _, r := range c.Results {
					jc.Violations = append(jc.Violations, violation(r.Kind, r.Constraint, r.Template, r.Action, r.Actions, r.Message, r.Details))
				}
				jt.Cases = append(jt.Cases, jc)
			}
			js.Tests = append(js.Tests, jt)
		}
		out.Suites = append(out.Suites, js)
		out.Summary.Tests += len(s.Tests)
		for _, t := range s.Tests {
			out.Summary.Cases += len(t.Cases)
		}
	}
	n := rep.Counts()
	out.Summary.Suites = len(rep.Suites)
	out.Summary.Passed, out.Summary.Failed = n[suite.Pass], n[suite.Fail]
	out.Summary.Errors, out.Summary.Skipped = n[suite.Error], n[suite.Skip]
	return WriteJSON(w, out)
}

func violation(kind, name, template, action string, actions []string, msg string, details map[string]interface{}) jsonViolation {
	return jsonViolation{Constraint: kind + "/" + name, Template: template, EnforcementAction: action,
		Actions: actions, Message: msg, Details: details}
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
	return b.String()
}
