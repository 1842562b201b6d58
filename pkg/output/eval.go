package output

import (
	"fmt"
	"io"
	"strings"

	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/policy"
)

func objectName(o *eval.Object) string {
	u := o.Doc.Object
	name := u.GetName()
	if name == "" && u.GetGenerateName() != "" {
		name = u.GetGenerateName() + "*"
	}
	if ns := u.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return u.GetKind() + " " + name
}

func actionLabel(r *policy.Result) string {
	switch {
	case r.Has(policy.ActionDeny):
		return "DENY"
	case r.Has(policy.ActionWarn):
		return "WARN"
	case r.Has(policy.ActionDryRun):
		return "DRYRUN"
	default:
		return strings.ToUpper(r.Action)
	}
}

// EvalText writes one line per result, naming the object (with file and
// line), the constraint, the enforcement action and the message, then a
// summary. With verbose, objects without results are listed too.
func EvalText(w io.Writer, rep *eval.Report, verbose bool) error {
	var b strings.Builder
	counts := map[string]int{}
	for _, o := range rep.Objects {
		counts[o.Verdict()]++
		if len(o.Results) == 0 {
			if verbose {
				fmt.Fprintf(&b, "%-6s %s  %s\n", "PASS", o.Doc.Pos(), objectName(o))
			}
			continue
		}
		for i := range o.Results {
			r := &o.Results[i]
			fmt.Fprintf(&b, "%-6s %s  %s  %s/%s: %s\n", actionLabel(r), o.Doc.Pos(), objectName(o), r.Kind, r.Constraint, r.Message)
		}
	}
	fmt.Fprintf(&b, "%d objects reviewed against %d constraints from %d templates: %d denied, %d warned, %d passed\n",
		len(rep.Objects), rep.Policies.Constraints, rep.Policies.Templates,
		counts[policy.ActionDeny], counts[policy.ActionWarn], counts["pass"])
	_, err := io.WriteString(w, b.String())
	return err
}

type jsonEvalReport struct {
	Policies jsonPolicies `json:"policies"`
	Objects  []jsonObject `json:"objects"`
	Summary  jsonEvalSum  `json:"summary"`
	ExitCode int          `json:"exitCode"`
}

type jsonPolicies struct {
	Templates   int `json:"templates"`
	Constraints int `json:"constraints"`
}

type jsonEvalSum struct {
	Objects int `json:"objects"`
	Denied  int `json:"denied"`
	Warned  int `json:"warned"`
	Passed  int `json:"passed"`
}

type jsonObject struct {
	File       string          `json:"file"`
	Line       int             `json:"line,omitempty"`
	Document   int             `json:"document"`
	Item       int             `json:"item,omitempty"`
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Namespace  string          `json:"namespace,omitempty"`
	Name       string          `json:"name,omitempty"`
	Verdict    string          `json:"verdict"`
	Results    []jsonViolation `json:"results"`
}

// EvalJSON writes every object with its results.
func EvalJSON(w io.Writer, rep *eval.Report) error {
	out := jsonEvalReport{
		Policies: jsonPolicies{Templates: rep.Policies.Templates, Constraints: rep.Policies.Constraints},
		Objects:  []jsonObject{},
		ExitCode: rep.ExitCode(),
	}
	for _, o := range rep.Objects {
		u := o.Doc.Object
		jo := jsonObject{File: o.Doc.File, Line: o.Doc.Line, Document: o.Doc.Doc, Item: o.Doc.Item,
			APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
			Verdict: o.Verdict(), Results: []jsonViolation{}}
		for _, r := range o.Results {
			jo.Results = append(jo.Results, violation(r.Kind, r.Constraint, r.Template, r.Action, r.Actions, r.Message, r.Details))
		}
		switch jo.Verdict {
		case policy.ActionDeny:
			out.Summary.Denied++
		case policy.ActionWarn:
			out.Summary.Warned++
		default:
			out.Summary.Passed++
		}
		out.Objects = append(out.Objects, jo)
	}
	out.Summary.Objects = len(rep.Objects)
	return WriteJSON(w, out)
}

// EvalCases turns each reviewed object into a case: denied objects fail,
// warnings are kept as output.
func EvalCases(rep *eval.Report) []Case {
	var out []Case
	for _, o := range rep.Objects {
		c := Case{Group: o.Doc.File, Name: fmt.Sprintf("%s (line %d)", objectName(o), o.Doc.Line), Status: Pass}
		var denies, others []string
		for i := range o.Results {
			r := &o.Results[i]
			line := fmt.Sprintf("%s %s/%s: %s", actionLabel(r), r.Kind, r.Constraint, r.Message)
			if r.Has(policy.ActionDeny) {
				denies = append(denies, line)
			} else {
				others = append(others, line)
			}
		}
		if len(denies) > 0 {
			c.Status = Fail
			c.Message = strings.Join(denies, "\n")
		}
		c.Output = strings.Join(others, "\n")
		out = append(out, c)
	}
	return out
}
