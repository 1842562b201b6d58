package evidence

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/policy"
)

// Template annotations the compliance model reads (policies/README.md).
const (
	AnnotationControls    = "guard.statcan.gc.ca/controls"
	AnnotationSeverity    = "guard.statcan.gc.ca/severity"
	AnnotationRemediation = "guard.statcan.gc.ca/remediation"
	AnnotationTitle       = "metadata.gatekeeper.sh/title"
	AnnotationVersion     = "metadata.gatekeeper.sh/version"
)

// Constraint is a constraint with where it was read.
type Constraint struct {
	Object *unstructured.Unstructured
	Origin string
}

// PolicyEvidence turns templates and their constraints into evidence of
// what admission enforces. Each constraint is one piece of evidence for
// its template's controls: pass when it denies at admission, warn when it
// only warns or dry-runs (monitored, not enforced), with the namespaces it
// leaves out in the message. A template without constraints is
// information only. One policy-set piece says whether every template is
// versioned (the declared baseline). Constraints without a template are
// returned as warnings.
func PolicyEvidence(templates []*policy.Template, origins map[*policy.Template]string, constraints []Constraint) ([]compliance.Evidence, []string) {
	var out []compliance.Evidence
	var warnings []string
	byKind := map[string][]Constraint{}
	for _, c := range constraints {
		byKind[c.Object.GetKind()] = append(byKind[c.Object.GetKind()], c)
	}
	sorted := append([]*policy.Template(nil), templates...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Kind < sorted[j].Kind })
	known := map[string]bool{}
	var unversioned []string
	for _, t := range sorted {
		known[t.Kind] = true
		if t.Annotations[AnnotationVersion] == "" {
			unversioned = append(unversioned, t.Name)
		}
		info := templateInfo(t)
		cs := byKind[t.Kind]
		if len(cs) == 0 {
			out = append(out, compliance.Evidence{
				Source: compliance.SourcePolicy, ID: t.Kind, Title: info.title, Result: compliance.ResultInfo,
				Severity: info.severity, Origin: origins[t], Labels: info.labels,
				Subjects: []compliance.Ref{{Kind: "ConstraintTemplate", APIVersion: policy.TemplateGroup + "/v1", Name: t.Name}},
				Message:  "template installed; no constraint uses it, so nothing is enforced",
			})
			continue
		}
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].Object.GetName() < cs[j].Object.GetName() })
		for _, c := range cs {
			res, msg := enforcement(c.Object)
			if ex := excludedNamespaces(c.Object); len(ex) > 0 {
				msg += "; excludes namespaces " + strings.Join(ex, ", ")
			}
			out = append(out, compliance.Evidence{
				Source: compliance.SourcePolicy, ID: t.Kind, Title: info.title, Result: res,
				Severity: info.severity, Origin: c.Origin, Labels: info.labels, Message: msg,
				Subjects: []compliance.Ref{{Kind: c.Object.GetKind(), APIVersion: c.Object.GetAPIVersion(), Name: c.Object.GetName()}},
			})
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		if known[kind] {
			continue
		}
		for _, c := range byKind[kind] {
			warnings = append(warnings, fmt.Sprintf("%s: constraint %s %q has no ConstraintTemplate among the inputs: it is left out", c.Origin, kind, c.Object.GetName()))
		}
	}
	if len(sorted) > 0 {
		e := compliance.Evidence{
			Source: compliance.SourcePolicy, ID: "policy-set", Title: "Versioned policy set",
			Result: compliance.ResultPass, Severity: compliance.SeverityInfo,
			Message: fmt.Sprintf("%s, %s; every template carries %s", plural(len(sorted), "template"), plural(len(constraints), "constraint"), AnnotationVersion),
		}
		if len(unversioned) > 0 {
			e.Result = compliance.ResultWarn
			e.Severity = compliance.SeverityLow
			e.Message = fmt.Sprintf("%s, %s; without %s: %s", plural(len(sorted), "template"), plural(len(constraints), "constraint"), AnnotationVersion, listSome(unversioned))
		}
		out = append(out, e)
	}
	return out, warnings
}

type tmplInfo struct {
	title    string
	severity compliance.Severity
	labels   map[string]string
}

func templateInfo(t *policy.Template) tmplInfo {
	title := t.Annotations[AnnotationTitle]
	if title == "" {
		title = t.Kind
	}
	return tmplInfo{
		title:    title,
		severity: compliance.ParseSeverity(t.Annotations[AnnotationSeverity]),
		labels:   labelMap(AnnotationControls, t.Annotations[AnnotationControls], AnnotationRemediation, strings.TrimSpace(t.Annotations[AnnotationRemediation])),
	}
}

// enforcement says what a constraint does at admission (Gatekeeper's
// validation enforcement point): deny is enforced; warn and dryrun are
// monitored only. A scoped constraint does what its actions for that
// point (or "*") say.
func enforcement(u *unstructured.Unstructured) (compliance.Result, string) {
	action, _, _ := unstructured.NestedString(u.Object, "spec", "enforcementAction")
	if action == "" {
		action = policy.ActionDeny
	}
	actions := []string{action}
	if action == policy.ActionScoped {
		actions = nil
		list, _, _ := unstructured.NestedSlice(u.Object, "spec", "scopedEnforcementActions")
		for _, item := range list {
			m, _ := item.(map[string]interface{})
			a, _ := m["action"].(string)
			eps, _ := m["enforcementPoints"].([]interface{})
			for _, ep := range eps {
				em, _ := ep.(map[string]interface{})
				if name, _ := em["name"].(string); name == "*" || name == policy.EnforcementPointWebhook {
					actions = append(actions, a)
				}
			}
		}
	}
	has := func(a string) bool {
		for _, x := range actions {
			if x == a {
				return true
			}
		}
		return false
	}
	switch {
	case has(policy.ActionDeny):
		return compliance.ResultPass, "enforced: admission denies violations (" + action + ")"
	case has(policy.ActionWarn):
		return compliance.ResultWarn, "monitored only: admission warns about violations but admits them (" + action + ")"
	case has(policy.ActionDryRun):
		return compliance.ResultWarn, "monitored only: violations are recorded, not enforced (" + action + ")"
	case action == policy.ActionScoped:
		return compliance.ResultWarn, "not enforced at admission: no action is scoped to the webhook (scoped)"
	default:
		return compliance.ResultWarn, fmt.Sprintf("unknown enforcementAction %q: Gatekeeper treats it as not enforced", action)
	}
}

// excludedNamespaces lists spec.match.excludedNamespaces.
func excludedNamespaces(u *unstructured.Unstructured) []string {
	list, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "match", "excludedNamespaces")
	sort.Strings(list)
	return list
}
