package audit

import (
	"cmp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// Template annotations the reports read (policies/README.md).
const (
	annotationSeverity = "guard.statcan.gc.ca/severity"
	annotationControls = "guard.statcan.gc.ca/controls"
)

// Report names and labels.
const (
	// ReportName names the PolicyReport in each namespace and the one
	// ClusterPolicyReport.
	ReportName = "daaas-guard-audit"
	// Source is every result's source.
	Source = "daaas-guard"
	// LabelManagedBy marks the reports the audit owns; only those are
	// updated or deleted.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "daaas-guard-audit"
	// PropertyAction carries the constraint's enforcement action in a
	// result's properties (deny, warn or dryrun).
	PropertyAction = "enforcementAction"
)

// finding is one row of a report before it becomes a result.
type finding struct {
	kind, constraint string // the constraint: policy and rule of the result
	action           string
	message          string
	ref              corev1.ObjectReference
}

func compareFindings(a, b finding) int {
	return cmp.Or(
		cmp.Compare(a.kind, b.kind),
		cmp.Compare(a.constraint, b.constraint),
		cmp.Compare(a.ref.Kind, b.ref.Kind),
		cmp.Compare(a.ref.APIVersion, b.ref.APIVersion),
		cmp.Compare(a.ref.Name, b.ref.Name),
		cmp.Compare(a.message, b.message),
	)
}

// reportAcc gathers one report's findings (capped) and its true counts.
type reportAcc struct {
	findings *capped[finding]
	// fail and warn count findings; pass counts objects reviewed with none.
	fail, warn, pass int
}

func newReportAcc(max int) *reportAcc {
	return &reportAcc{findings: newCapped(max, compareFindings)}
}

func (r *reportAcc) add(f finding) {
	if resultOf(f.action) == policyreport.ResultWarn {
		r.warn++
	} else {
		r.fail++
	}
	r.findings.add(f)
}

// templateMeta is what a result takes from its template.
type templateMeta struct {
	severity policyreport.Severity
	category string
}

// metaOf reads a template's severity and controls. The category is the
// ITSG-33 controls the template bears on, so that Policy Reporter groups
// results by control.
func metaOf(t *policy.Template) templateMeta {
	if t == nil {
		return templateMeta{}
	}
	var m templateMeta
	switch s := policyreport.Severity(strings.ToLower(strings.TrimSpace(t.Annotations[annotationSeverity]))); s {
	case policyreport.SeverityCritical, policyreport.SeverityHigh, policyreport.SeverityMedium,
		policyreport.SeverityLow, policyreport.SeverityInfo:
		m.severity = s
	}
	if c := strings.TrimSpace(t.Annotations[annotationControls]); c != "" {
		m.category = "ITSG-33 " + c
	}
	return m
}

// resultOf maps an enforcement action to a report result: warn
// constraints give warn (not scored, as wg-policy defines warn); deny and
// dryrun give fail, dryrun marked in the result's properties: the object
// does violate the policy, which is only not enforced at admission.
func resultOf(action string) policyreport.Result {
	if action == policy.ActionWarn {
		return policyreport.ResultWarn
	}
	return policyreport.ResultFail
}

// build turns the gathered findings into a report body: results sorted by
// policy, rule, resource and message, at most the cap, and a summary that
// counts them all.
func (r *reportAcc) build(meta func(kind string) templateMeta, ts metav1.Timestamp, withPass bool) (policyreport.Summary, []policyreport.PolicyReportResult) {
	sum := policyreport.Summary{Fail: r.fail, Warn: r.warn}
	if withPass {
		sum.Pass = r.pass
	}
	fs := r.findings.sorted()
	out := make([]policyreport.PolicyReportResult, 0, len(fs))
	for _, f := range fs {
		m := meta(f.kind)
		res := resultOf(f.action)
		out = append(out, policyreport.PolicyReportResult{
			Source:     Source,
			Policy:     f.kind,
			Rule:       f.constraint,
			Category:   m.category,
			Severity:   m.severity,
			Timestamp:  ts,
			Result:     res,
			Scored:     res == policyreport.ResultFail,
			Resources:  []corev1.ObjectReference{f.ref},
			Message:    f.message,
			Properties: map[string]string{PropertyAction: f.action},
		})
	}
	return sum, out
}
