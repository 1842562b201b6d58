package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type result struct {
	code           int
	stdout, stderr string
}

func guardctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

const (
	policies  = "testdata/policies"
	manifests = "testdata/manifests"
	suiteLib  = "../../pkg/suite/testdata/lib"
)

func TestTest_ExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"passing suite", []string{"test", suiteLib + "/passing_suite.yaml"}, 0},
		{"failing suite", []string{"test", suiteLib + "/failing_suite.yaml"}, 1},
		{"unusable suite", []string{"test", suiteLib + "/unusable_suite.yaml"}, 2},
		{"all of them", []string{"test", suiteLib}, 2},
		{"filtered to passing cases", []string{"test", suiteLib + "/failing_suite.yaml", "--run", "wrong-expectations//right"}, 0},
		{"no path", []string{"test"}, 2},
		{"missing path", []string{"test", "testdata/nope"}, 2},
		{"no suites", []string{"test", manifests}, 2},
		{"bad format", []string{"test", "-o", "xml", suiteLib + "/passing_suite.yaml"}, 2},
		{"bad filter", []string{"test", "--run", "((", suiteLib}, 2},
		{"unknown flag", []string{"test", "--bogus", suiteLib}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := guardctl(t, "", tc.args...)
			if r.code != tc.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.want, r.stdout, r.stderr)
			}
		})
	}
}

// The acceptance cases: each kind of unusable input gives exit 2 and one
// clear line naming the file.
func TestTest_UnusableInputGivesOneClearLine(t *testing.T) {
	lib, err := os.ReadDir(suiteLib)
	if err != nil {
		t.Fatal(err)
	}
	copyLib := func(t *testing.T) string {
		dir := t.TempDir()
		for _, e := range lib {
			b, err := os.ReadFile(filepath.Join(suiteLib, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	edit := func(t *testing.T, path, old, new string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s does not contain %q", path, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		wantIn []string
	}{
		{"malformed YAML", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "passing_suite.yaml"), "  - name: required-labels\n", "  - name: required-labels\n   oops: [\n")
		}, []string{"passing_suite.yaml:", "invalid YAML"}},
		{"Rego syntax error", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "template.yaml"), "some label in input.parameters.labels", "some label in input.parameters.labels)")
		}, []string{"template.yaml:27:", "rego_parse_error"}},
		{"wrong parameter type", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "constraint.yaml"), `labels: ["owner", "app"]`, `labels: "owner"`)
		}, []string{"constraint.yaml:11:", `constraint K8sRequiredLabels "owner-and-app"`, "spec.parameters.labels: must be of type array, found string"}},
		{"missing object file", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "passing_suite.yaml"), "object: pod_good.yaml", "object: pod_gone.yaml")
		}, []string{`test "required-labels" case "good"`, "pod_gone.yaml: no such file or directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyLib(t)
			tc.break_(t, dir)
			r := guardctl(t, "", "test", filepath.Join(dir, "passing_suite.yaml"))
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			var problem []string
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(line, "    ") && !strings.Contains(line, "warning:") {
					problem = append(problem, strings.TrimSpace(line))
				}
			}
			if len(problem) != 1 {
				t.Fatalf("got %d problem lines, want 1:\n%s", len(problem), r.stdout)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(problem[0], s) {
					t.Errorf("problem line %q does not contain %q", problem[0], s)
				}
			}
		})
	}
}

func TestTest_OutputFormats(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		r := guardctl(t, "", "test", "-o", "json", suiteLib+"/failing_suite.yaml")
		var rep struct {
			Summary  map[string]int `json:"summary"`
			ExitCode int            `json:"exitCode"`
			Suites   []struct {
				Tests []struct {
					Cases []struct {
						Name       string `json:"name"`
						Status     string `json:"status"`
						Violations []struct {
							Constraint string `json:"constraint"`
							Message    string `json:"message"`
						} `json:"violations"`
					} `json:"cases"`
				} `json:"tests"`
			} `json:"suites"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, r.stdout)
		}
		if rep.ExitCode != 1 || r.code != 1 {
			t.Errorf("exitCode %d, process exit %d, want 1", rep.ExitCode, r.code)
		}
		if rep.Summary["passed"] != 1 || rep.Summary["failed"] != 4 {
			t.Errorf("summary = %v", rep.Summary)
		}
		c := rep.Suites[0].Tests[0].Cases[0]
		if c.Status != "fail" || len(c.Violations) != 2 || c.Violations[0].Constraint != "K8sRequiredLabels/owner-and-app" {
			t.Errorf("first case = %+v", c)
		}
	})
	t.Run("junit", func(t *testing.T) {
		r := guardctl(t, "", "test", "-o", "junit", suiteLib)
		var doc struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
			Skipped  int `xml:"skipped,attr"`
			Suites   []struct {
				Name string `xml:"name,attr"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, r.stdout)
		}
		if len(doc.Suites) != 3 || doc.Failures != 4 || doc.Errors != 7 || doc.Skipped != 1 {
			t.Errorf("got %+v", doc)
		}
	})
	t.Run("tap", func(t *testing.T) {
		r := guardctl(t, "", "test", "-o", "tap", suiteLib+"/passing_suite.yaml")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if lines[0] != "TAP version 13" || lines[1] != "1..10" {
			t.Fatalf("header = %q", lines[:2])
		}
		if !strings.Contains(r.stdout, "# SKIP") || strings.Contains(r.stdout, "not ok") {
			t.Errorf("unexpected TAP:\n%s", r.stdout)
		}
	})
	t.Run("text ends with a count line", func(t *testing.T) {
		r := guardctl(t, "", "test", suiteLib+"/passing_suite.yaml")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if got, want := lines[len(lines)-1], "test: 9 passed, 0 failed, 1 skipped"; got != want {
			t.Errorf("last line %q, want %q", got, want)
		}
	})
}

func TestEval(t *testing.T) {
	tests := []struct {
		name   string
		stdin  string
		args   []string
		want   int
		wantIn []string
	}{
		{
			name:   "denied, warned and expanded",
			args:   []string{"eval", "-p", policies, manifests},
			want:   1,
			wantIn: []string{"WARN   testdata/manifests/app.yaml:17  Pod alice/latest  K8sDisallowLatest/no-latest: container web uses the mutable tag latest", "DENY   testdata/manifests/app.yaml:28  Deployment alice/web  K8sRequiredLabels/owner-and-app: [Implied by expand-deployments] Pod web-pod is missing label owner", "5 objects reviewed against 2 constraints from 2 templates: 1 denied, 1 warned, 3 passed"},
		},
		{
			name: "compliant JSON List",
			args: []string{"eval", "-p", policies, manifests + "/compliant.json"},
			want: 0,
		},
		{
			name:   "stdin",
			stdin:  "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec: {containers: []}\n",
			args:   []string{"eval", "-p", policies, "-"},
			want:   1,
			wantIn: []string{"<stdin>:1  Pod x/p  K8sRequiredLabels/owner-and-app: Pod p is missing label app"},
		},
		{
			name:   "kustomization rendered",
			args:   []string{"eval", "-p", policies, "testdata/kustomized"},
			want:   1,
			wantIn: []string{"kustomize build testdata/kustomized", "Deployment alice/web"},
		},
		{name: "no policy flag", args: []string{"eval", manifests}, want: 2},
		{name: "missing manifest", args: []string{"eval", "-p", policies, "testdata/nope.yaml"}, want: 2},
		{name: "policy dir without templates", args: []string{"eval", "-p", manifests, manifests}, want: 2, wantIn: []string{"no ConstraintTemplates found"}},
		{name: "malformed stdin", stdin: "a: [", args: []string{"eval", "-p", policies, "-"}, want: 2, wantIn: []string{"<stdin>:1: document 1: invalid YAML"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := guardctl(t, tc.stdin, tc.args...)
			if r.code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.want, r.stdout, r.stderr)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("output does not contain %q:\n%s%s", s, r.stdout, r.stderr)
				}
			}
		})
	}
}

func TestEval_JSON(t *testing.T) {
	r := guardctl(t, "", "eval", "-p", policies, "-o", "json", manifests+"/app.yaml")
	var rep struct {
		Objects []struct {
			Kind    string `json:"kind"`
			Name    string `json:"name"`
			Line    int    `json:"line"`
			Verdict string `json:"verdict"`
			Results []struct {
				EnforcementAction string `json:"enforcementAction"`
			} `json:"results"`
		} `json:"objects"`
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, r.stdout)
	}
	var verdicts []string
	for _, o := range rep.Objects {
		verdicts = append(verdicts, o.Kind+"/"+o.Name+"="+o.Verdict)
	}
	want := "Namespace/alice=pass Pod/good=pass Pod/latest=warn Deployment/web=deny"
	if got := strings.Join(verdicts, " "); got != want {
		t.Errorf("verdicts %q, want %q", got, want)
	}
	if rep.Summary["denied"] != 1 || rep.Summary["warned"] != 1 {
		t.Errorf("summary = %v", rep.Summary)
	}
}

func TestEval_UnusablePolicies(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(policies, "required-labels-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(strings.Replace(string(b), "not input.review", "not input.review)", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := guardctl(t, "", "eval", "-p", dir, manifests)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "t.yaml:28:") {
		t.Errorf("stderr = %q, want one line pointing at t.yaml:28", r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := guardctl(t, "", "version")
	if r.code != 0 || !strings.Contains(r.stdout, "guardctl ") {
		t.Errorf("version: exit %d, output %q", r.code, r.stdout)
	}
}
