// Package compliance is the suite's ITSG-33 compliance model: a catalogue
// of controls, a mapping from evidence to controls, the rule that turns the
// evidence mapped to a control into its status, and the report built from
// them. Catalogue and mapping are data (YAML shipped in data/ and
// overridable by the user); evidence is independent of where it comes from
// (package evidence reads files and clusters into it); renderers live in
// package render.
package compliance

import (
	"fmt"
	"strings"
	"time"
)

// Source is the kind of tool or object a piece of evidence comes from.
type Source string

// The evidence sources the suite reads.
const (
	// SourcePolicy: ConstraintTemplates and constraints, what admission
	// enforces (the templates' control annotations; the constraints'
	// enforcement actions).
	SourcePolicy Source = "policy"
	// SourceAudit: audit results as wg-policy PolicyReports, what exists.
	SourceAudit Source = "audit"
	// SourceKubeBench: kube-bench CIS benchmark checks.
	SourceKubeBench Source = "kube-bench"
	// SourceKubeHunter: kube-hunter findings.
	SourceKubeHunter Source = "kube-hunter"
	// SourceImageScan: Trivy image scans: coverage and verdicts.
	SourceImageScan Source = "image-scan"
	// SourceWebhookConfig: the admission webhooks' own configuration.
	SourceWebhookConfig Source = "webhook-config"
)

// Sources lists every source, in report order.
var Sources = []Source{SourcePolicy, SourceAudit, SourceWebhookConfig, SourceKubeBench, SourceKubeHunter, SourceImageScan}

// Result is what a piece of evidence says.
type Result string

// Results. Pass and fail are decisive; warn means a requirement is only
// partly met (or could not be evaluated: error); info and skip are recorded
// for the auditor but decide nothing.
const (
	ResultPass  Result = "pass"
	ResultFail  Result = "fail"
	ResultWarn  Result = "warn"
	ResultError Result = "error"
	ResultSkip  Result = "skip"
	ResultInfo  Result = "info"
)

// Severity ranks evidence, failures above all.
type Severity string

// Severities, highest first; unknown when the source gives none.
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
	SeverityInfo     Severity = "info"
	SeverityUnknown  Severity = "unknown"
)

// Severities lists the severities, highest first.
var Severities = []Severity{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo, SeverityUnknown}

// ParseSeverity reads a severity in any case ("CRITICAL", "High");
// anything else is unknown.
func ParseSeverity(s string) Severity {
	switch sev := Severity(strings.ToLower(strings.TrimSpace(s))); sev {
	case SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo:
		return sev
	}
	return SeverityUnknown
}

// Rank orders severities: critical is 0, unknown last.
func (s Severity) Rank() int {
	for i, v := range Severities {
		if v == s {
			return i
		}
	}
	return len(Severities) - 1
}

// Ref names what a piece of evidence is about: a Kubernetes object, a node,
// an image, an endpoint.
type Ref struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

func (r Ref) String() string {
	name := r.Name
	if r.Namespace != "" {
		name = r.Namespace + "/" + name
	}
	if r.Kind == "" {
		return name
	}
	return r.Kind + " " + name
}

// Evidence is one fact that bears on controls: a constraint enforced at
// admission, an audit result, a CIS check, a penetration-test finding, an
// image's scan verdict, a setting of the webhooks.
type Evidence struct {
	Source Source `json:"source"`
	// ID identifies the check within its source: a constraint kind, a CIS
	// check ID ("1.2.1"), a kube-hunter ID ("KHV002"), an image-scan
	// verdict ("VULN-CRITICAL"), a webhook setting ("failure-policy").
	// Mapping rules select evidence by source and ID.
	ID string `json:"id"`
	// Title is the check's human name.
	Title    string   `json:"title,omitempty"`
	Result   Result   `json:"result"`
	Severity Severity `json:"severity"`
	// Subjects are the objects, nodes or images the evidence is about.
	Subjects []Ref  `json:"subjects,omitempty"`
	Message  string `json:"message,omitempty"`
	// Origin is where the evidence was read: a file, or "cluster".
	Origin string `json:"origin,omitempty"`
	// Labels carry metadata that mapping rules can read, such as the
	// control IDs a template declares (guard.statcan.gc.ca/controls).
	Labels map[string]string `json:"labels,omitempty"`
}

// key orders evidence deterministically.
func (e *Evidence) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%s", e.Source, e.ID, e.Origin, e.Result)
	for _, s := range e.Subjects {
		fmt.Fprintf(&b, "\x00%s", s)
	}
	b.WriteString("\x00" + e.Message)
	return b.String()
}

// SourceInfo says what was read from one source, so that every report
// states which benchmark, database and tool versions it rests on, and which
// sources were not given at all.
type SourceInfo struct {
	Source Source `json:"source"`
	// Origin is the file or cluster read; empty when nothing was given.
	Origin string `json:"origin,omitempty"`
	// Tool and Version name what produced the input, e.g. "kube-bench"
	// and benchmark "cis-1.10", or "trivy" "0.74.0".
	Tool    string `json:"tool,omitempty"`
	Version string `json:"version,omitempty"`
	// Benchmark is the benchmark a kube-bench run used (e.g. cis-1.10).
	Benchmark string `json:"benchmark,omitempty"`
	// DBVersion and DBUpdatedAt describe a vulnerability database.
	DBVersion   string     `json:"dbVersion,omitempty"`
	DBUpdatedAt *time.Time `json:"dbUpdatedAt,omitempty"`
	// ProducedAt is when the input itself was produced, when it says.
	ProducedAt *time.Time `json:"producedAt,omitempty"`
	// Detail is anything else worth stating, e.g. "3 nodes".
	Detail string `json:"detail,omitempty"`
}
