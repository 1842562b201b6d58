// Package policies holds no code: this test checks the library's own rules
// (see README.md) over every template, so that a template missing its
// compliance annotations or its allowed and disallowed cases cannot land.
package policies

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/suite"
)

var (
	controlsPattern = regexp.MustCompile(`^[A-Z]{2}-\d+(\(\d+\))?(,[A-Z]{2}-\d+(\(\d+\))?)*$`)
	severities      = map[string]bool{"critical": true, "high": true, "medium": true, "low": true}
	groups          = []string{"general", "pod-security-policy", "service-mesh", "pipelines"}
)

// templateDirs lists policies/<group>/<name> directories.
func templateDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, g := range groups {
		entries, err := os.ReadDir(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(g, e.Name()))
			}
		}
	}
	return dirs
}

func TestLibrary_Size(t *testing.T) {
	if n := len(templateDirs(t)); n < 40 {
		t.Errorf("the library has %d templates, want at least 40", n)
	}
}

func TestLibrary_TemplatesFollowTheRules(t *testing.T) {
	ctx := context.Background()
	kinds := map[string]string{}
	for _, dir := range templateDirs(t) {
		t.Run(dir, func(t *testing.T) {
			docs, err := manifest.ReadFile(filepath.Join(dir, "template.yaml"), manifest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != 1 {
				t.Fatalf("template.yaml holds %d objects", len(docs))
			}
			u := docs[0].Object
			if u.GetAPIVersion() != "templates.gatekeeper.sh/v1" {
				t.Errorf("apiVersion %s, want templates.gatekeeper.sh/v1", u.GetAPIVersion())
			}
			checkRegoV1(t, u)
			checkAnnotations(t, u.GetAnnotations())

			tmpl, err := policy.NewTemplate(u, docs[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(tmpl.Warnings) > 0 {
				t.Errorf("warnings: %v", tmpl.Warnings)
			}
			e, err := policy.New()
			if err != nil {
				t.Fatal(err)
			}
			if err := e.AddTemplate(ctx, tmpl); err != nil {
				t.Fatal(err)
			}
			if other, dup := kinds[tmpl.Kind]; dup {
				t.Errorf("kind %s is also defined in %s", tmpl.Kind, other)
			}
			kinds[tmpl.Kind] = dir
			checkSuite(t, filepath.Join(dir, "suite.yaml"))
		})
	}
}

func checkRegoV1(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	targets, _, _ := unstructured.NestedSlice(u.Object, "spec", "targets")
	if len(targets) != 1 {
		t.Fatalf("%d targets", len(targets))
	}
	tgt := targets[0].(map[string]interface{})
	if _, legacy := tgt["rego"]; legacy {
		t.Error("uses the legacy rego field; put Rego v1 in code[]")
	}
	code, _ := tgt["code"].([]interface{})
	found := false
	for _, c := range code {
		m, _ := c.(map[string]interface{})
		if m["engine"] == "Rego" {
			found = true
			if v, _, _ := unstructured.NestedString(m, "source", "version"); v != "v1" {
				t.Errorf("Rego source version %q, want v1", v)
			}
		}
	}
	if !found {
		t.Error("no Rego code")
	}
}

func checkAnnotations(t *testing.T, a map[string]string) {
	t.Helper()
	for _, key := range []string{"metadata.gatekeeper.sh/title", "metadata.gatekeeper.sh/version", "description",
		"guard.statcan.gc.ca/controls", "guard.statcan.gc.ca/severity", "guard.statcan.gc.ca/remediation"} {
		if strings.TrimSpace(a[key]) == "" {
			t.Errorf("annotation %s is missing", key)
		}
	}
	if c := a["guard.statcan.gc.ca/controls"]; c != "" && !controlsPattern.MatchString(c) {
		t.Errorf("controls %q are not comma-separated control IDs such as AC-6,CM-7", c)
	}
	if s := a["guard.statcan.gc.ca/severity"]; s != "" && !severities[s] {
		t.Errorf("severity %q is not critical, high, medium or low", s)
	}
}

// checkSuite requires at least two allowed and two disallowed cases and
// one message assertion.
func checkSuite(t *testing.T, path string) {
	t.Helper()
	s, err := suite.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		t.Fatalf("%s is not a suite", path)
	}
	if len(s.Warnings) > 0 {
		t.Errorf("suite warnings: %v", s.Warnings)
	}
	allowed, disallowed, messages := 0, 0, 0
	for _, tc := range s.Tests {
		for _, c := range tc.Cases {
			isAllowed, isDisallowed := false, false
			for _, a := range c.Assertions {
				if a.Message != nil {
					messages++
					continue
				}
				switch {
				case a.Violations.Raw == "no" || a.Violations.Exact == 0:
					isAllowed = true
				default:
					isDisallowed = true
				}
			}
			if isAllowed {
				allowed++
			}
			if isDisallowed {
				disallowed++
			}
		}
	}
	if allowed < 2 || disallowed < 2 {
		t.Errorf("%d allowed and %d disallowed cases, want at least 2 of each", allowed, disallowed)
	}
	if messages == 0 {
		t.Error("no message assertion")
	}
}
