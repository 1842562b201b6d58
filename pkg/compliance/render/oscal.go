package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// OSCALVersion is the OSCAL version the assessment results follow.
const OSCALVersion = "1.1.3"

// oscalNS is the namespace of the properties daaas-guard adds.
const oscalNS = "https://statcan.gc.ca/ns/oscal/daaas-guard"

// uuidSpace seeds the name-based (v5) UUIDs, so the same report always
// gets the same UUIDs and golden files stay stable.
var uuidSpace = uuid.MustParse("8b6c3f0e-6d55-4c1e-9a7b-2f0f5d1c7a44")

// The OSCAL assessment-results model (NIST OSCAL 1.1), the fields used.
type oscalDocument struct {
	AssessmentResults oscalAssessmentResults `json:"assessment-results"`
}

type oscalAssessmentResults struct {
	UUID       string           `json:"uuid"`
	Metadata   oscalMetadata    `json:"metadata"`
	ImportAP   oscalImportAP    `json:"import-ap"`
	Results    []oscalResult    `json:"results"`
	BackMatter *oscalBackMatter `json:"back-matter,omitempty"`
}

type oscalMetadata struct {
	Title        string      `json:"title"`
	LastModified string      `json:"last-modified"`
	Version      string      `json:"version"`
	OSCALVersion string      `json:"oscal-version"`
	Props        []oscalProp `json:"props,omitempty"`
	Remarks      string      `json:"remarks,omitempty"`
}

type oscalProp struct {
	Name    string `json:"name"`
	NS      string `json:"ns,omitempty"`
	Value   string `json:"value"`
	Remarks string `json:"remarks,omitempty"`
}

type oscalImportAP struct {
	Href    string `json:"href"`
	Remarks string `json:"remarks,omitempty"`
}

type oscalResult struct {
	UUID             string                `json:"uuid"`
	Title            string                `json:"title"`
	Description      string                `json:"description"`
	Start            string                `json:"start"`
	Props            []oscalProp           `json:"props,omitempty"`
	ReviewedControls oscalReviewedControls `json:"reviewed-controls"`
	Observations     []oscalObservation    `json:"observations,omitempty"`
	Findings         []oscalFinding        `json:"findings,omitempty"`
	Remarks          string                `json:"remarks,omitempty"`
}

type oscalReviewedControls struct {
	ControlSelections []oscalControlSelection `json:"control-selections"`
}

type oscalControlSelection struct {
	IncludeControls []oscalControlRef `json:"include-controls"`
}

type oscalControlRef struct {
	ControlID string `json:"control-id"`
}

type oscalObservation struct {
	UUID             string                  `json:"uuid"`
	Title            string                  `json:"title,omitempty"`
	Description      string                  `json:"description"`
	Props            []oscalProp             `json:"props,omitempty"`
	Methods          []string                `json:"methods"`
	RelevantEvidence []oscalRelevantEvidence `json:"relevant-evidence,omitempty"`
	Collected        string                  `json:"collected"`
}

type oscalRelevantEvidence struct {
	Description string `json:"description"`
}

type oscalFinding struct {
	UUID                string                    `json:"uuid"`
	Title               string                    `json:"title"`
	Description         string                    `json:"description"`
	Props               []oscalProp               `json:"props,omitempty"`
	Target              oscalTarget               `json:"target"`
	RelatedObservations []oscalRelatedObservation `json:"related-observations,omitempty"`
}

type oscalTarget struct {
	Type     string            `json:"type"`
	TargetID string            `json:"target-id"`
	Status   oscalTargetStatus `json:"status"`
}

type oscalTargetStatus struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

type oscalRelatedObservation struct {
	ObservationUUID string `json:"observation-uuid"`
}

type oscalBackMatter struct {
	Resources []oscalResource `json:"resources"`
}

type oscalResource struct {
	UUID        string `json:"uuid"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
}

// WriteOSCAL renders the report as OSCAL assessment results (JSON): one
// result whose reviewed controls are the catalogue's, one observation per
// piece of evidence, and one finding per assessed control (OSCAL's state
// is satisfied or not-satisfied; the four-way status is kept in a
// property). Controls not assessed have no finding and are named in the
// result's remarks. There is no separate assessment plan: import-ap
// points at a back-matter resource that describes the automated method.
func WriteOSCAL(w io.Writer, r *compliance.Report) error {
	b, err := json.MarshalIndent(oscal(r), "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func oscal(r *compliance.Report) *oscalDocument {
	at := timestamp(r.GeneratedAt)
	id := func(parts ...string) string {
		return uuid.NewSHA1(uuidSpace, []byte(r.Cluster+"\x00"+at+"\x00"+strings.Join(parts, "\x00"))).String()
	}
	planID := id("assessment-plan")
	doc := &oscalDocument{AssessmentResults: oscalAssessmentResults{
		UUID: id("assessment-results"),
		Metadata: oscalMetadata{
			Title:        "ITSG-33 compliance assessment of cluster " + r.Cluster,
			LastModified: at,
			Version:      at,
			OSCALVersion: OSCALVersion,
			Props: props(
				"cluster", r.Cluster,
				"generator", r.Generator,
				"catalog", r.Catalog.Name+" "+r.Catalog.Version,
				"mapping", r.Mapping.Name+" "+r.Mapping.Version,
				"benchmark", benchmarks(r),
				"vulnerability-database", databases(r),
			),
			Remarks: r.Disclaimer,
		},
		ImportAP: oscalImportAP{Href: "#" + planID},
		BackMatter: &oscalBackMatter{Resources: []oscalResource{{
			UUID:  planID,
			Title: "Automated assessment by daaas-guard",
			Description: fmt.Sprintf("No separate assessment plan: evidence was collected automatically from the cluster's admission policies, "+
				"audit results, webhook configuration, CIS benchmark, penetration-test and image-scan results, and mapped to controls with "+
				"the catalogue %s %s and the mapping %s %s.", r.Catalog.Name, r.Catalog.Version, r.Mapping.Name, r.Mapping.Version),
		}}},
	}}

	result := oscalResult{
		UUID:        id("result"),
		Title:       "ITSG-33 controls assessed from cluster evidence",
		Description: r.Catalog.Title,
		Start:       at,
		Props: props(
			"satisfied", fmt.Sprint(r.Summary.ByStatus.Satisfied),
			"partially-satisfied", fmt.Sprint(r.Summary.ByStatus.Partially),
			"not-satisfied", fmt.Sprint(r.Summary.ByStatus.NotSatisfied),
			"not-assessed", fmt.Sprint(r.Summary.ByStatus.NotAssessed),
		),
	}
	if result.Description == "" {
		result.Description = result.Title
	}
	for _, s := range r.Sources {
		v := "not provided"
		if s.Origin != "" {
			v = sourceVersion(s) + "; " + s.Detail
		}
		result.Props = append(result.Props, props("input-"+string(s.Source), v)...)
	}
	sel := oscalControlSelection{}
	observed := map[string]string{} // evidence key -> observation UUID
	observe := func(e compliance.Evidence) string {
		key := evidenceKey(e)
		oid, ok := observed[key]
		if !ok {
			oid = id("observation", key)
			observed[key] = oid
			result.Observations = append(result.Observations, observation(oid, e, at))
		}
		return oid
	}
	// A control not assessed has no finding; the evidence that bears on it
	// without deciding anything (a stale benchmark, a scan pending, a
	// template without constraint) is still observed, and named.
	var noEvidence, undecided []string
	for _, c := range r.Controls {
		sel.IncludeControls = append(sel.IncludeControls, oscalControlRef{ControlID: oscalControlID(c.ID)})
		if c.Status == compliance.StatusNotAssessed {
			if len(c.Evidence) == 0 {
				noEvidence = append(noEvidence, c.ID)
				continue
			}
			undecided = append(undecided, c.ID)
			for _, e := range c.Evidence {
				observe(e)
			}
			continue
		}
		f := oscalFinding{
			UUID:  id("finding", c.ID),
			Title: c.ID + " " + c.Title,
			Description: fmt.Sprintf("%s: %d passing, %d failing and %d warning pieces of evidence.",
				c.Status.Label(), c.Counts.Pass, c.Counts.Fail, c.Counts.Warn),
			Props:  props("compliance-status", string(c.Status)),
			Target: oscalTarget{Type: "objective-id", TargetID: oscalControlID(c.ID) + "_obj", Status: targetStatus(c.Status)},
		}
		for _, e := range c.Evidence {
			f.RelatedObservations = append(f.RelatedObservations, oscalRelatedObservation{ObservationUUID: observe(e)})
		}
		result.Findings = append(result.Findings, f)
	}
	result.ReviewedControls.ControlSelections = []oscalControlSelection{sel}
	var remarks []string
	if len(noEvidence) > 0 {
		remarks = append(remarks, "Not assessed (no evidence bears on them): "+strings.Join(noEvidence, ", ")+".")
	}
	if len(undecided) > 0 {
		remarks = append(remarks, "Not assessed (only evidence that decides nothing bears on them, such as a stale or pending scan; see the observations): "+strings.Join(undecided, ", ")+".")
	}
	result.Remarks = strings.Join(remarks, " ")
	doc.AssessmentResults.Results = []oscalResult{result}
	return doc
}

func observation(id string, e compliance.Evidence, at string) oscalObservation {
	title := string(e.Source) + " " + e.ID
	if e.Title != "" && e.Title != e.ID {
		title += ": " + e.Title
	}
	desc := e.Message
	if desc == "" {
		desc = title
	}
	method := "TEST"
	if e.Source == compliance.SourcePolicy || e.Source == compliance.SourceWebhookConfig {
		method = "EXAMINE"
	}
	o := oscalObservation{
		UUID:        id,
		Title:       title,
		Description: oneLine(desc),
		Props:       props("source", string(e.Source), "check-id", e.ID, "result", string(e.Result), "severity", string(e.Severity)),
		Methods:     []string{method},
		Collected:   at,
	}
	if s := subjects(e); s != "" {
		o.RelevantEvidence = append(o.RelevantEvidence, oscalRelevantEvidence{Description: "Subjects: " + oneLine(s)})
	}
	if e.Origin != "" {
		o.RelevantEvidence = append(o.RelevantEvidence, oscalRelevantEvidence{Description: "Read from " + oneLine(e.Origin)})
	}
	return o
}

func targetStatus(s compliance.Status) oscalTargetStatus {
	switch s {
	case compliance.StatusSatisfied:
		return oscalTargetStatus{State: "satisfied", Reason: "pass"}
	case compliance.StatusNotSatisfied:
		return oscalTargetStatus{State: "not-satisfied", Reason: "fail"}
	default:
		return oscalTargetStatus{State: "not-satisfied", Reason: "other"}
	}
}

// oscalControlID writes a control ID as OSCAL catalogues do: AC-6 is
// ac-6, IA-5(7) is ia-5.7.
func oscalControlID(id string) string {
	id = strings.ToLower(id)
	id = strings.ReplaceAll(id, "(", ".")
	return strings.ReplaceAll(id, ")", "")
}

// props builds properties from name, value pairs in daaas-guard's
// namespace, leaving out empty values (OSCAL strings may not be empty or
// start or end with white space).
func props(kv ...string) []oscalProp {
	var out []oscalProp
	for i := 0; i+1 < len(kv); i += 2 {
		if v := oneLine(kv[i+1]); v != "" {
			out = append(out, oscalProp{Name: kv[i], NS: oscalNS, Value: v})
		}
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func evidenceKey(e compliance.Evidence) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%s\x00%s", e.Source, e.ID, e.Origin, e.Result, e.Message)
	for _, s := range e.Subjects {
		b.WriteString("\x00" + s.String())
	}
	return b.String()
}
