package evidence

import (
	"fmt"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// Report is a PolicyReport or ClusterPolicyReport with where it was read.
type Report struct {
	Report *policyreport.PolicyReport
	Origin string
}

// AuditEvidence turns audit results (wg-policy reports) into evidence.
// A result's policy is matched to a template by constraint kind or
// template name (also "Kind/constraint"), so that it bears on the
// template's controls; control IDs in the result's properties
// (guard.statcan.gc.ca/controls) count too. Each origin also gives one
// audit-run piece (the audit's exports exist and are reviewed: AU-6).
func AuditEvidence(reports []Report, templates []*policy.Template) ([]compliance.Evidence, *time.Time) {
	index := map[string]*policy.Template{}
	for _, t := range templates {
		index[strings.ToLower(t.Kind)] = t
		index[strings.ToLower(t.Name)] = t
	}
	var out []compliance.Evidence
	var latest *time.Time
	type runCount struct{ reports, results, fail int }
	runs := map[string]*runCount{}
	var order []string
	for _, rep := range reports {
		rc := runs[rep.Origin]
		if rc == nil {
			rc = &runCount{}
			runs[rep.Origin] = rc
			order = append(order, rep.Origin)
		}
		rc.reports++
		for _, res := range rep.Report.Results {
			rc.results++
			key, _, _ := strings.Cut(res.Policy, "/")
			t := index[strings.ToLower(key)]
			e := compliance.Evidence{
				Source:   compliance.SourceAudit,
				ID:       res.Policy,
				Title:    res.Policy,
				Result:   auditResult(res.Result),
				Severity: compliance.ParseSeverity(string(res.Severity)),
				Origin:   rep.Origin,
				Message:  strings.TrimSpace(res.Message),
			}
			controls := res.Properties[AnnotationControls]
			if t != nil {
				info := templateInfo(t)
				e.ID, e.Title = t.Kind, info.title
				if e.Severity == compliance.SeverityUnknown {
					e.Severity = info.severity
				}
				controls = joinNonEmpty(controls, t.Annotations[AnnotationControls])
			}
			e.Labels = labelMap(AnnotationControls, controls, "rule", res.Rule, "category", res.Category, "source", res.Source)
			if e.Result == compliance.ResultFail {
				rc.fail++
			}
			for _, r := range res.Resources {
				e.Subjects = append(e.Subjects, compliance.Ref{Kind: r.Kind, APIVersion: r.APIVersion, Namespace: r.Namespace, Name: r.Name})
			}
			if len(e.Subjects) == 0 && rep.Report.Scope != nil {
				s := rep.Report.Scope
				e.Subjects = []compliance.Ref{{Kind: s.Kind, APIVersion: s.APIVersion, Namespace: s.Namespace, Name: s.Name}}
			}
			if res.Timestamp.Seconds > 0 {
				ts := time.Unix(res.Timestamp.Seconds, int64(res.Timestamp.Nanos)).UTC()
				if latest == nil || ts.After(*latest) {
					latest = &ts
				}
			}
			out = append(out, e)
		}
	}
	for _, origin := range order {
		rc := runs[origin]
		out = append(out, compliance.Evidence{
			Source: compliance.SourceAudit, ID: "audit-run", Title: "Audit results exported for review",
			Result: compliance.ResultPass, Severity: compliance.SeverityInfo, Origin: origin,
			Message: fmt.Sprintf("%d policy reports with %d results, %d failing", rc.reports, rc.results, rc.fail),
		})
	}
	return out, latest
}

func auditResult(r policyreport.Result) compliance.Result {
	switch r {
	case policyreport.ResultPass:
		return compliance.ResultPass
	case policyreport.ResultFail:
		return compliance.ResultFail
	case policyreport.ResultWarn:
		return compliance.ResultWarn
	case policyreport.ResultError:
		return compliance.ResultError
	default:
		return compliance.ResultSkip
	}
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}
