package compliance

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultModel_IsValidAndCoversEveryControl(t *testing.T) {
	m := DefaultModel()
	named := map[string]bool{}
	fromLabels := false
	for _, r := range m.Mapping.Rules {
		for _, c := range r.Controls {
			named[c] = true
		}
		fromLabels = fromLabels || r.ControlsFromLabel != ""
	}
	if !fromLabels {
		t.Error("no rule reads the templates' control annotations")
	}
	for _, c := range m.Catalog.Controls {
		// A control no rule names must say why (template-only or a gap).
		if !named[c.ID] && c.Note == "" {
			t.Errorf("control %s: no mapping rule names it and it has no note saying why", c.ID)
		}
	}
}

// The policy library's templates name controls in their annotations;
// each must be in the shipped catalogue, or its evidence would be lost to
// a warning.
func TestDefaultModel_ListsEveryControlThePolicyLibraryNames(t *testing.T) {
	m := DefaultModel()
	re := regexp.MustCompile(`guard\.statcan\.gc\.ca/controls:\s*"?([^"\n]+)"?`)
	files, err := filepath.Glob(filepath.Join("..", "..", "policies", "*", "*", "template.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates found: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, match := range re.FindAllStringSubmatch(string(b), -1) {
			for _, id := range strings.Split(match[1], ",") {
				if m.Control(id) == nil {
					t.Errorf("%s names control %q, which the shipped catalogue does not list", f, strings.TrimSpace(id))
				}
			}
		}
	}
}

func TestNormalizeControlID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"AC-6", "AC-6", true},
		{" ac-6 ", "AC-6", true},
		{"IA-5(7)", "IA-5(7)", true},
		{"ia-5.7", "IA-5(7)", true},
		{"SC-08", "SC-8", true},
		{"AC6", "", false},
		{"ACC-6", "", false},
		{"AC-6(", "", false},
		{"", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := NormalizeControlID(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("NormalizeControlID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

const testCatalog = `apiVersion: guard.statcan.gc.ca/v1alpha1
kind: ControlCatalog
name: test
version: "1"
families:
  - id: AC
    title: Access Control
  - id: RA
    title: Risk Assessment
controls:
  - id: AC-6
    title: Least Privilege
  - id: RA-5
    title: Vulnerability Scanning
`

const testMapping = `apiVersion: guard.statcan.gc.ca/v1alpha1
kind: ControlMapping
name: test
version: "1"
rules:
  - name: annotations
    source: policy
    controlsFromLabel: controls
  - name: cis-5
    source: kube-bench
    ids: ["5.*"]
    controls: [AC-6]
  - name: one-check
    source: kube-bench
    ids: ["1.2.1"]
    controls: [RA-5]
`

func testModel(t *testing.T) *Model {
	t.Helper()
	m, err := ParseModel("catalog.yaml", []byte(testCatalog), "mapping.yaml", []byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModel_Controls_SelectsBySourceGlobAndLabel(t *testing.T) {
	m := testModel(t)
	for _, tc := range []struct {
		name        string
		e           Evidence
		want, wantU []string
	}{
		{"glob", Evidence{Source: SourceKubeBench, ID: "5.2.1"}, []string{"AC-6"}, nil},
		{"exact", Evidence{Source: SourceKubeBench, ID: "1.2.1"}, []string{"RA-5"}, nil},
		{"exact does not match a longer ID", Evidence{Source: SourceKubeBench, ID: "1.2.10"}, nil, nil},
		{"dots are literal", Evidence{Source: SourceKubeBench, ID: "1x2x1"}, nil, nil},
		{"other source", Evidence{Source: SourceKubeHunter, ID: "5.2.1"}, nil, nil},
		{"label, in catalogue order", Evidence{Source: SourcePolicy, ID: "X", Labels: map[string]string{"controls": "ra-5, AC-6"}}, []string{"AC-6", "RA-5"}, nil},
		{"label naming unknown controls", Evidence{Source: SourcePolicy, ID: "X", Labels: map[string]string{"controls": "AC-6,SC-39,junk"}}, []string{"AC-6"}, []string{"SC-39", "junk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unknown := m.Controls(&tc.e)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("controls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantU, unknown); diff != "" {
				t.Errorf("unknown (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseModel_RejectsBadFilesNamingFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name             string
		catalog, mapping string
		want             []string
	}{
		{"unknown catalogue field", strings.Replace(testCatalog, "    title: Least Privilege", "    title: Least Privilege\n    tittle: x", 1), testMapping,
			[]string{"catalog.yaml", "line 13", "tittle"}},
		{"malformed control ID", strings.Replace(testCatalog, "id: AC-6", "id: AC6", 1), testMapping,
			[]string{"catalog.yaml:11", "controls[0].id", `"AC6"`}},
		{"duplicate control", strings.Replace(testCatalog, "id: RA-5", "id: AC-6", 1), strings.ReplaceAll(testMapping, "RA-5", "AC-6"),
			[]string{"catalog.yaml:13", "AC-6 is listed twice"}},
		{"family not in the catalogue", strings.Replace(testCatalog, "  - id: RA\n    title: Risk Assessment\n", "", 1), testMapping,
			[]string{"catalog.yaml", `family: "RA"`}},
		{"rule names a control outside the catalogue", testCatalog, strings.Replace(testMapping, "controls: [RA-5]", "controls: [SI-2]", 1),
			[]string{"mapping.yaml:13", "rule one-check", "SI-2 is not in the catalogue"}},
		{"unknown source", testCatalog, strings.Replace(testMapping, "source: kube-bench\n    ids: [\"5.*\"]", "source: kubebench\n    ids: [\"5.*\"]", 1),
			[]string{"mapping.yaml:9", "rule cis-5", `"kubebench"`}},
		{"rule naming nothing", testCatalog, strings.Replace(testMapping, "    controlsFromLabel: controls\n", "", 1),
			[]string{"mapping.yaml:6", "rule annotations: names no controls"}},
		{"wrong kind", testCatalog, strings.Replace(testMapping, "kind: ControlMapping", "kind: ControlCatalog", 1),
			[]string{"mapping.yaml:2", "must be ControlMapping"}},
		{"not YAML", testCatalog, "rules: [", []string{"mapping.yaml"}},
		{"empty catalogue", "", testMapping, []string{"catalog.yaml", "empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseModel("catalog.yaml", []byte(tc.catalog), "mapping.yaml", []byte(tc.mapping))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadModel_ReadsUserFilesInsteadOfTheShippedOnes(t *testing.T) {
	dir := t.TempDir()
	cf, mf := filepath.Join(dir, "c.yaml"), filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cf, []byte(testCatalog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mf, []byte(testMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(cf, mf)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Catalog.Controls) != 2 || m.CatalogOrigin != cf || m.MappingOrigin != mf {
		t.Errorf("loaded %d controls from %s and %s", len(m.Catalog.Controls), m.CatalogOrigin, m.MappingOrigin)
	}
	if _, err := LoadModel(filepath.Join(dir, "missing.yaml"), ""); err == nil {
		t.Error("a missing catalogue file is not an error")
	}
	def, err := LoadModel("", "")
	if err != nil || def.CatalogOrigin != BuiltIn {
		t.Errorf("LoadModel(\"\", \"\") = %v, %v", def, err)
	}
}

func FuzzParseModel(f *testing.F) {
	f.Add([]byte(testCatalog), []byte(testMapping))
	f.Add(defaultCatalog, defaultMapping)
	f.Fuzz(func(t *testing.T, catalog, mapping []byte) {
		m, err := ParseModel("catalog.yaml", catalog, "mapping.yaml", mapping)
		if err != nil {
			return
		}
		// A model that parses must be usable.
		for _, c := range m.Catalog.Controls {
			if m.Control(c.ID) == nil {
				t.Fatalf("control %q is listed but not found", c.ID)
			}
		}
		m.Controls(&Evidence{Source: SourceKubeBench, ID: "1.2.1", Labels: map[string]string{"x": "AC-6"}})
	})
}
