package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// oscalSchemaFile is NIST's OSCAL 1.1.3 JSON schema (all models in one
// file); testdata/oscal/README.md says where the copy comes from.
var oscalSchemaFile = filepath.Join("testdata", "oscal", "oscal_complete_schema-1.1.3.json")

var oscalSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	raw, err := os.ReadFile(oscalSchemaFile)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", oscalSchemaFile, err)
	}
	// The schema's root accepts any OSCAL model; validate against the
	// assessment-results branch only, so a catalog would not pass and the
	// errors name the assessment-results fields.
	type model struct {
		Required []string `json:"required"`
	}
	var root struct {
		OneOf []model `json:"oneOf"`
	}
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, err
	}
	branch := slices.IndexFunc(root.OneOf, func(m model) bool { return slices.Contains(m.Required, "assessment-results") })
	if branch < 0 {
		return nil, fmt.Errorf("%s: no assessment-results model under oneOf", oscalSchemaFile)
	}
	abs, err := filepath.Abs(oscalSchemaFile)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	// Formats (date-time, uri, uri-reference, email) are checked too, not
	// only annotated as draft-07 allows.
	c.AssertFormat()
	if err := c.AddResource(abs, doc); err != nil {
		return nil, err
	}
	return c.Compile(fmt.Sprintf("%s#/oneOf/%d", abs, branch))
})

// validateOSCAL returns the schema's verdict on an OSCAL document.
func validateOSCAL(t *testing.T, data []byte) error {
	t.Helper()
	schema, err := oscalSchema()
	if err != nil {
		t.Fatalf("OSCAL schema: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the OSCAL output is not JSON: %v", err)
	}
	return schema.Validate(doc)
}

// checkOSCALReferences checks what a JSON schema cannot express: that
// UUIDs are unique in the document and that references resolve.
func checkOSCALReferences(t *testing.T, data []byte) []string {
	t.Helper()
	var doc struct {
		AR struct {
			UUID     string `json:"uuid"`
			ImportAP struct {
				Href string `json:"href"`
			} `json:"import-ap"`
			Results []struct {
				UUID         string `json:"uuid"`
				Observations []struct {
					UUID string `json:"uuid"`
				} `json:"observations"`
				Findings []struct {
					UUID                string `json:"uuid"`
					RelatedObservations []struct {
						ObservationUUID string `json:"observation-uuid"`
					} `json:"related-observations"`
				} `json:"findings"`
			} `json:"results"`
			BackMatter struct {
				Resources []struct {
					UUID string `json:"uuid"`
				} `json:"resources"`
			} `json:"back-matter"`
		} `json:"assessment-results"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var errs []string
	seen := map[string]string{}
	use := func(path, id string) {
		if prev, dup := seen[id]; dup {
			errs = append(errs, fmt.Sprintf("%s: UUID %s is already used at %s", path, id, prev))
		}
		seen[id] = path
	}
	use("assessment-results.uuid", doc.AR.UUID)
	resources := map[string]bool{}
	for i, r := range doc.AR.BackMatter.Resources {
		use(fmt.Sprintf("back-matter.resources[%d].uuid", i), r.UUID)
		resources[r.UUID] = true
	}
	if href := doc.AR.ImportAP.Href; !resources[strings.TrimPrefix(href, "#")] {
		errs = append(errs, fmt.Sprintf("import-ap.href: %q names no back-matter resource", href))
	}
	for i, r := range doc.AR.Results {
		rp := fmt.Sprintf("results[%d]", i)
		use(rp+".uuid", r.UUID)
		observations := map[string]bool{}
		for j, o := range r.Observations {
			use(fmt.Sprintf("%s.observations[%d].uuid", rp, j), o.UUID)
			observations[o.UUID] = true
		}
		for j, f := range r.Findings {
			fp := fmt.Sprintf("%s.findings[%d]", rp, j)
			use(fp+".uuid", f.UUID)
			for k, ro := range f.RelatedObservations {
				if !observations[ro.ObservationUUID] {
					errs = append(errs, fmt.Sprintf("%s.related-observations[%d]: observation %s is not in the result", fp, k, ro.ObservationUUID))
				}
			}
		}
	}
	return errs
}

func TestWriteOSCAL_ValidatesAgainstTheOSCALSchema(t *testing.T) {
	empty := compliance.Build(compliance.DefaultModel(), nil, compliance.Meta{GeneratedAt: fixedTime, Cluster: "empty"})
	offset := compliance.Build(compliance.DefaultModel(), nil, compliance.Meta{
		GeneratedAt: time.Date(2026, 11, 26, 7, 30, 0, 123456789, time.FixedZone("NST", -(3*3600+1800))),
		Cluster:     "  spaces\tand\nnewlines  ", Generator: "guardctl ✓",
	})
	for _, tc := range []struct {
		name   string
		report *compliance.Report
	}{
		{"fixture evidence with trend", fixtureReport(t)},
		{"no evidence at all", empty},
		{"a zone offset and untidy strings", offset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteOSCAL(&buf, tc.report); err != nil {
				t.Fatal(err)
			}
			if err := validateOSCAL(t, buf.Bytes()); err != nil {
				t.Errorf("%s does not validate:\n%v", oscalSchemaFile, err)
			}
			for _, e := range checkOSCALReferences(t, buf.Bytes()) {
				t.Error(e)
			}
		})
	}
}

// The golden file is what reviewers read; it must validate on its own.
func TestOSCALGolden_Validates(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "golden", "report.oscal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validateOSCAL(t, data); err != nil {
		t.Errorf("golden report.oscal.json does not validate:\n%v", err)
	}
}

// The schema and the reference check must reject broken documents, or the
// tests above could not fail.
func TestOSCALChecks_RejectViolations(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOSCAL(&buf, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	first, second := valueOf(good, "uuid", 0), valueOf(good, "uuid", 1)
	related := valueOf(good, "observation-uuid", 0)
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", `"oscal-version"`, `"oscal_version": "x", "oscal-version"`, "'oscal_version' not allowed"},
		{"missing required field", `"import-ap": {`, `"import-ap-x": {`, "missing property 'import-ap'"},
		{"bad UUID", `"uuid": "`, `"uuid": "x`, "at '/assessment-results/uuid'"},
		{"date without zone", `"start": "2026-11-26T12:00:00Z"`, `"start": "2026-11-26T12:00:00"`, "is not valid date-time"},
		{"state outside the enum", `"state": "not-satisfied"`, `"state": "partial"`, "value must be one of 'satisfied', 'not-satisfied'"},
		{"empty property value", `"value": "6"`, `"value": " "`, "/props/0/value'"},
		{"token with a space", `"name": "`, `"name": "a b`, "/props/0/name'"},
		{"not an href", `"href": "#`, `"href": "\\\\bad#`, "is not valid uri-reference"},
		// Well-formed but wrong: only the reference check can see these.
		{"dangling observation", `"observation-uuid": "` + related + `"`, `"observation-uuid": "00000000-0000-4000-8000-000000000000"`, "is not in the result"},
		{"repeated UUID", `"uuid": "` + second + `"`, `"uuid": "` + first + `"`, "is already used at assessment-results.uuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.old, tc.new, 1)
			if bad == good {
				t.Fatalf("%q not found in the document", tc.old)
			}
			var errs []string
			if err := validateOSCAL(t, []byte(bad)); err != nil {
				errs = append(errs, err.Error())
			}
			errs = append(errs, checkOSCALReferences(t, []byte(bad))...)
			if all := strings.Join(errs, "\n"); !strings.Contains(all, tc.want) {
				t.Errorf("errors lack %q:\n%s", tc.want, all)
			}
		})
	}
}

// valueOf returns the n-th (0-based) value of a string field in an OSCAL
// document as WriteOSCAL indents it.
func valueOf(doc, field string, n int) string {
	parts := strings.Split(doc, `"`+field+`": "`)
	if len(parts) <= n+1 {
		return ""
	}
	v, _, _ := strings.Cut(parts[n+1], `"`)
	return v
}

// Whatever text the evidence carries (messages from clusters, scanners and
// templates), the OSCAL output must still validate.
func FuzzWriteOSCAL(f *testing.F) {
	f.Add("daaas-dev", "K8sPSPPrivilegedContainer", "Privileged containers", "Privileged container is not allowed: nb", "cluster", "kubeflow-alice", "nb", "AC-6,CM-7")
	f.Add(" ", "", " \t", "\n", "", "", "", "")
	f.Add("naïve\u00a0cluster", "1.2.1", "line\nbreak", "  padded  ", "/tmp/x.json", "ns", "\u2028", "ac-6, SI-2 , nope")
	model := compliance.DefaultModel()
	f.Fuzz(func(t *testing.T, cluster, id, title, message, origin, namespace, name, controls string) {
		var ev []compliance.Evidence
		for _, src := range []compliance.Source{compliance.SourcePolicy, compliance.SourceImageScan, compliance.SourceKubeBench} {
			ev = append(ev, compliance.Evidence{
				Source: src, ID: id, Title: title, Message: message, Origin: origin,
				Result: compliance.ResultFail, Severity: compliance.SeverityHigh,
				Subjects: []compliance.Ref{{Kind: "Pod", Namespace: namespace, Name: name}},
				Labels:   map[string]string{"guard.statcan.gc.ca/controls": controls},
			})
		}
		r := compliance.Build(model, ev, compliance.Meta{GeneratedAt: fixedTime, Cluster: cluster, Generator: title})
		var buf bytes.Buffer
		if err := WriteOSCAL(&buf, r); err != nil {
			t.Fatal(err)
		}
		if err := validateOSCAL(t, buf.Bytes()); err != nil {
			t.Fatalf("does not validate:\n%v\n%s", err, buf.Bytes())
		}
		for _, e := range checkOSCALReferences(t, buf.Bytes()) {
			t.Error(e)
		}
	})
}
