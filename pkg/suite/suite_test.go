package suite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// verdicts maps "test/case" (or "test" for a test that did not run) to
// its status.
func verdicts(r *SuiteResult) map[string]Status {
	out := map[string]Status{}
	for _, t := range r.Tests {
		if t.Err != nil || len(t.Cases) == 0 {
			st := StatusOf(t.Err)
			if t.Skipped {
				st = Skip
			}
			out[t.Name] = st
			continue
		}
		for _, c := range t.Cases {
			out[t.Name+"/"+c.Name] = c.Status()
		}
	}
	return out
}

func runFile(t *testing.T, path string, opts Options) *Report {
	t.Helper()
	r, err := NewRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRun_Verdicts(t *testing.T) {
	tests := []struct {
		file     string
		want     map[string]Status
		wantExit int
	}{
		{
			file: "passing_suite.yaml",
			want: map[string]Status{
				"required-labels/good":                                 Pass,
				"required-labels/bad":                                  Pass,
				"required-labels/update-through-admission-review":      Pass,
				"required-labels/skipped-case":                         Skip,
				"deployment-expanded-to-pod/pod-template-misses-owner": Pass,
				"schema-error-expected":                                Pass,
				"scoped-without-gator/not-at-this-enforcement-point":   Pass,
				"inventory/without":                                    Pass,
				"inventory/with":                                       Pass,
				"inventory/without-again":                              Pass,
			},
		},
		{
			file: "failing_suite.yaml",
			want: map[string]Status{
				"wrong-expectations/expects-none":     Fail,
				"wrong-expectations/expects-three":    Fail,
				"wrong-expectations/right":            Pass,
				"valid-constraint-marked-invalid":     Fail,
				"unknown-field-is-not-a-schema-error": Fail,
			},
			wantExit: 1,
		},
		{
			file: "unusable_suite.yaml",
			want: map[string]Status{
				"broken-cases/missing-object": Error,
				"broken-cases/two-objects":    Error,
				"broken-cases/bad-regex":      Error,
				"broken-cases/no-assertions":  Error,
				"broken-cases/absolute-path":  Error,
				"broken-cases/fine":           Pass,
				"constraint-breaks-schema":    Error,
				"missing-template":            Error,
			},
			wantExit: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			rep := runFile(t, filepath.Join("testdata", "lib", tc.file), Options{})
			if len(rep.Suites) != 1 {
				t.Fatalf("found %d suites, want 1", len(rep.Suites))
			}
			if diff := cmp.Diff(tc.want, verdicts(rep.Suites[0])); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			if got := rep.ExitCode(); got != tc.wantExit {
				t.Errorf("ExitCode() = %d, want %d", got, tc.wantExit)
			}
		})
	}
}

func TestRun_ErrorsNameFileTestAndCase(t *testing.T) {
	rep := runFile(t, filepath.Join("testdata", "lib", "unusable_suite.yaml"), Options{})
	for _, tr := range rep.Suites[0].Tests {
		for _, c := range tr.Cases {
			if c.Err == nil {
				continue
			}
			msg := Where(rep.Suites[0].Path, tr, c) + ": " + c.Err.Error()
			for _, want := range []string{"unusable_suite.yaml:", `test "` + tr.Name + `"`, `case "` + c.Name + `"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s/%s: error %q does not name %q", tr.Name, c.Name, msg, want)
				}
			}
		}
	}
}

func TestRun_Directory(t *testing.T) {
	rep := runFile(t, filepath.Join("testdata", "lib")+"/...", Options{})
	if got := len(rep.Suites); got != 3 {
		t.Errorf("found %d suites, want 3", got)
	}
	if rep.NotSuites == 0 {
		t.Error("fixtures were not counted as non-suite files")
	}
	// Suites come back in path order, whatever finished first.
	var paths []string
	for _, s := range rep.Suites {
		paths = append(paths, filepath.Base(s.Path))
	}
	if diff := cmp.Diff([]string{"failing_suite.yaml", "passing_suite.yaml", "unusable_suite.yaml"}, paths); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if got := rep.ExitCode(); got != 2 {
		t.Errorf("ExitCode() = %d, want 2", got)
	}
}

func TestRun_Filter(t *testing.T) {
	tests := []struct {
		run  string
		want []string // cases that ran (not skipped)
	}{
		{"inventory", []string{"inventory/with", "inventory/without", "inventory/without-again"}},
		{"^with$", []string{"inventory/with"}},
		{"required-labels//^ba", []string{"required-labels/bad"}},
		{"//good", []string{"required-labels/good"}},
	}
	for _, tc := range tests {
		t.Run(tc.run, func(t *testing.T) {
			rep := runFile(t, filepath.Join("testdata", "lib", "passing_suite.yaml"), Options{Run: tc.run})
			var ran []string
			for name, st := range verdicts(rep.Suites[0]) {
				if st != Skip && strings.Contains(name, "/") {
					ran = append(ran, name)
				}
			}
			if diff := cmp.Diff(tc.want, ran, sortStrings); diff != "" {
				t.Errorf("ran (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := NewRunner(Options{Run: "a//b//c"}); !errors.Is(err, ErrInput) {
		t.Errorf("three-part filter: err = %v, want ErrInput", err)
	}
	if _, err := NewRunner(Options{Run: "(("}); !errors.Is(err, ErrInput) {
		t.Errorf("bad regex: err = %v, want ErrInput", err)
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantNil   bool
		wantErr   string
		wantWarns []string
		check     func(t *testing.T, s *Suite)
	}{
		{name: "not a suite", in: "apiVersion: v1\nkind: Pod\n", wantNil: true},
		{name: "suite kind in another group", in: "apiVersion: example.com/v1\nkind: Suite\n", wantNil: true},
		{name: "empty file", in: "", wantNil: true},
		{name: "scalar document", in: "hello\n", wantNil: true},
		{
			name: "counts",
			in: `apiVersion: test.gatekeeper.sh/v1alpha1
kind: Suite
tests:
- name: t
  template: t.yaml
  constraint: c.yaml
  cases:
  - name: c
    object: o.yaml
    assertions:
    - violations: 2
    - violations: "yes"
    - message: x
`,
			check: func(t *testing.T, s *Suite) {
				a := s.Tests[0].Cases[0].Assertions
				got := []Count{a[0].Violations, a[1].Violations, a[2].Violations}
				want := []Count{{Raw: "2", Exact: 2}, {Raw: "yes", Exact: -1}, {Raw: "yes", Exact: -1}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if a[2].Message == nil || *a[2].Message != "x" {
					t.Errorf("message = %v", a[2].Message)
				}
			},
		},
		{
			name:      "unknown fields warn",
			in:        "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- name: t\n  templates: t.yaml\n  cases:\n  - name: c\n    assertion: []\n",
			wantWarns: []string{`s.yaml:5: unknown field "tests[0].templates" (ignored)`, `s.yaml:8: unknown field "tests[0].cases[0].assertion" (ignored)`},
		},
		{name: "quoted number is not a count", in: "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases:\n  - assertions:\n    - violations: \"2\"\n", wantErr: `s.yaml:6: tests[0].cases[0].assertions[0].violations: "2" must be yes, no or a number`},
		{name: "negative count", in: "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases:\n  - assertions:\n    - violations: -1\n", wantErr: "must be yes, no or a number"},
		{name: "boolean count", in: "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases:\n  - assertions:\n    - violations: true\n", wantErr: "must be yes, no or a number"},
		{name: "skip must be boolean", in: "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\nskip: yes\n", wantErr: `skip: must be true or false, found "yes"`},
		{name: "tests must be a list", in: "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests: {}\n", wantErr: "tests: must be a list"},
		{name: "malformed YAML", in: "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- name: a\n  - b\n", wantErr: "s.yaml:3: invalid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("s.yaml", []byte(tc.in))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInput containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNil {
				if s != nil {
					t.Fatalf("got a suite, want none")
				}
				return
			}
			if s == nil {
				t.Fatal("got no suite")
			}
			if tc.wantWarns != nil {
				if diff := cmp.Diff(tc.wantWarns, s.Warnings); diff != "" {
					t.Errorf("warnings (-want +got):\n%s", diff)
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestRun_StrictTurnsWarningsIntoErrors(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "lib", "passing_suite.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	typo := strings.Replace(string(src), "    template: template.yaml\n    constraint: constraint.yaml\n    cases:", "    template: template.yaml\n    constraint: constraint.yaml\n    descripton: typo\n    cases:", 1)
	path := filepath.Join(dir, "suite.yaml")
	if err := os.WriteFile(path, []byte(typo), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 1 {
		t.Fatalf("warnings = %v, want one", s.Warnings)
	}
	r, _ := NewRunner(Options{Strict: true})
	res := r.RunSuite(context.Background(), s)
	if !errors.Is(res.Err, ErrInput) {
		t.Errorf("strict run: err = %v, want ErrInput", res.Err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"passing_suite.yaml", "failing_suite.yaml", "unusable_suite.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "lib", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases: [{assertions: [{violations: 1}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("error without ErrInput: %v", err)
			}
			return
		}
		if s == nil {
			return
		}
		for _, tc := range s.Tests {
			if tc == nil {
				t.Fatal("nil test")
			}
			for _, c := range tc.Cases {
				for _, a := range c.Assertions {
					if a.Violations.Exact < -1 {
						t.Fatalf("bad count %+v", a.Violations)
					}
				}
			}
		}
	})
}
