package evidence

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const fixtures = "testdata/evidence"

// summary lists evidence as "source id result severity", sorted.
func summary(ev []compliance.Evidence) []string {
	var out []string
	for _, e := range ev {
		out = append(out, strings.Join([]string{string(e.Source), e.ID, string(e.Result), string(e.Severity)}, " "))
	}
	sort.Strings(out)
	return out
}

func TestReadFiles_RecognisesEachFixtureByContent(t *testing.T) {
	in, err := ReadFiles([]string{fixtures}, KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{
		"templates": len(in.Templates), "constraints": len(in.Constraints), "reports": len(in.Reports),
		"webhooks": len(in.Webhooks), "trivy": len(in.Trivy), "bench": len(in.Bench), "hunter": len(in.Hunter),
	}
	want := map[string]int{"templates": 5, "constraints": 4, "reports": 2, "webhooks": 2, "trivy": 2, "bench": 2, "hunter": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inputs (-want +got):\n%s", diff)
	}
	if in.TrivyDB == nil || in.TrivyDB.Version != 2 {
		t.Errorf("Trivy DB metadata = %+v", in.TrivyDB)
	}
	if in.RunningKnown {
		t.Error("files cannot say which images run")
	}
}

func TestEvidence_FromTheFixtures(t *testing.T) {
	in, err := ReadFiles([]string{fixtures}, KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	in.SortInputs()
	ev, sources, warnings := in.Evidence(DefaultOptions(now))
	want := []string{
		"audit ContainerAllowedImages fail high",
		"audit NamespaceGuardrails fail high",
		"audit PSPPrivilegedContainer fail critical",
		"audit audit-run pass info",
		"image-scan VULN-CRITICAL fail critical",
		"image-scan VULN-CRITICAL pass critical",
		"image-scan VULN-HIGH pass high",
		"image-scan VULN-HIGH pass high",
		"image-scan SECRET-CRITICAL fail critical",
		"image-scan db-age pass info",
		"image-scan package-inventory pass info",
		"image-scan scanned pass info",
		"image-scan scanned pass info",
		"kube-bench 1.1.1 pass unknown",
		"kube-bench 1.2.1 warn unknown",
		"kube-bench 1.2.16 fail unknown",
		"kube-bench 1.2.22 pass unknown",
		"kube-bench 1.2.24 pass unknown",
		"kube-bench 1.2.27 pass unknown",
		"kube-bench 4.1.1 pass unknown",
		"kube-bench 4.2.1 fail unknown",
		"kube-bench 5.1.1 warn unknown",
		"kube-bench benchmark-run pass info",
		"kube-bench benchmark-run pass info",
		"kube-hunter KHV002 fail low",
		"kube-hunter KHV036 fail high",
		"kube-hunter hunter-run pass info",
		"policy BlockAutomountToken warn medium",
		"policy ContainerAllowedImages pass high",
		"policy NamespaceGuardrails pass high",
		"policy PSPPrivilegedContainer pass critical",
		"policy PipelineImageProvenance info high",
		"policy policy-set pass info",
		"webhook-config exemptions pass medium",
		"webhook-config exemptions warn medium",
		"webhook-config failure-policy fail high",
		"webhook-config failure-policy pass high",
		"webhook-config timeout info info",
		"webhook-config timeout info info",
		"webhook-config tls-min-version pass high",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, summary(ev)); diff != "" {
		t.Errorf("evidence (-want +got):\n%s", diff)
	}
	var provided []string
	for _, s := range sources {
		if s.Origin != "" {
			provided = append(provided, string(s.Source))
		}
	}
	if diff := cmp.Diff([]string{"policy", "audit", "webhook-config", "kube-bench", "kube-hunter", "image-scan"}, provided); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	// Audit results carry the controls of the template they name.
	for _, e := range ev {
		if e.Source == compliance.SourceAudit && e.ID == "PSPPrivilegedContainer" && e.Labels[AnnotationControls] != "AC-6,CM-7,SC-39" {
			t.Errorf("audit result for PSPPrivilegedContainer has controls %q", e.Labels[AnnotationControls])
		}
	}
}

func TestPolicyEvidence_EnforcementActions(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       compliance.Result
		msg        string
	}{
		{"default is deny", `{}`, compliance.ResultPass, "enforced"},
		{"deny", `{"enforcementAction": "deny"}`, compliance.ResultPass, "enforced"},
		{"warn", `{"enforcementAction": "warn"}`, compliance.ResultWarn, "warns about violations but admits"},
		{"dryrun", `{"enforcementAction": "dryrun"}`, compliance.ResultWarn, "recorded, not enforced"},
		{"scoped deny at the webhook", `{"enforcementAction": "scoped", "scopedEnforcementActions": [{"action": "deny", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]}]}`, compliance.ResultPass, "enforced"},
		{"scoped deny everywhere", `{"enforcementAction": "scoped", "scopedEnforcementActions": [{"action": "deny", "enforcementPoints": [{"name": "*"}]}]}`, compliance.ResultPass, "enforced"},
		{"scoped to audit only", `{"enforcementAction": "scoped", "scopedEnforcementActions": [{"action": "deny", "enforcementPoints": [{"name": "audit.gatekeeper.sh"}]}]}`, compliance.ResultWarn, "not enforced at admission"},
		{"unknown action", `{"enforcementAction": "enforce"}`, compliance.ResultWarn, `unknown enforcementAction "enforce"`},
		{"excluded namespaces", `{"match": {"excludedNamespaces": ["b", "a"]}}`, compliance.ResultPass, "excludes namespaces a, b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := sigsyaml.Unmarshal([]byte(`{"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sX", "metadata": {"name": "c"}, "spec": `+tc.spec+`}`), &u.Object); err != nil {
				t.Fatal(err)
			}
			res, msg := enforcement(u)
			if ex := excludedNamespaces(u); len(ex) > 0 {
				msg += "; excludes namespaces " + strings.Join(ex, ", ")
			}
			if res != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %q, want %s with %q", res, msg, tc.want, tc.msg)
			}
		})
	}
}

func TestPolicyEvidence_WarnsAboutConstraintsWithoutTemplate(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sGone", "metadata": map[string]interface{}{"name": "orphan"}}}
	ev, warnings := PolicyEvidence(nil, nil, []Constraint{{Object: u, Origin: "c.yaml:3"}})
	if len(ev) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], `c.yaml:3: constraint K8sGone "orphan" has no ConstraintTemplate`) {
		t.Errorf("evidence %v, warnings %q", ev, warnings)
	}
}

func TestWebhookEvidence_FailurePolicyExemptionsAndTLS(t *testing.T) {
	in, err := ReadFiles([]string{filepath.Join(fixtures, "webhooks.yaml")}, KindWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions(now)
	opts.WebhookTLSMinVersion = "1.1"
	ev := WebhookEvidence(in.Webhooks, opts)
	got := map[string]string{}
	for _, e := range ev {
		name := e.ID
		if len(e.Subjects) > 0 {
			name = e.Subjects[0].Name + " " + e.ID
		}
		got[name] = string(e.Result) + ": " + e.Message
	}
	want := map[string]string{
		"daaas-guard-validating#validation.guard.statcan.gc.ca failure-policy": "pass: failurePolicy Fail: requests are rejected while the webhook cannot answer",
		"daaas-guard-validating#validation.guard.statcan.gc.ca timeout":        "info: timeoutSeconds 3",
		"daaas-guard-validating#validation.guard.statcan.gc.ca exemptions":     "pass: excludes namespaces daaas-guard, kube-node-lease, kube-system; namespace selector admission.gatekeeper.sh/ignore DoesNotExist; match conditions not-daaas-guard",
		"daaas-guard-mutating#gpu.guard.statcan.gc.ca failure-policy":          "fail: failurePolicy Ignore: requests are admitted unreviewed while the webhook cannot answer",
		"daaas-guard-mutating#gpu.guard.statcan.gc.ca timeout":                 "info: timeoutSeconds 10",
		"daaas-guard-mutating#gpu.guard.statcan.gc.ca exemptions":              "warn: exempts non-system namespaces sandbox; excludes namespaces kube-system, sandbox",
		"tls-min-version": "fail: the webhook accepts TLS 1.1, older than 1.2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("evidence (-want +got):\n%s", diff)
	}
}

func TestScanEvidence_VerdictsAgesAndCoverage(t *testing.T) {
	in, err := ReadFiles([]string{filepath.Join(fixtures, "scans")}, KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions(time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)) // two weeks later
	running := []RunningImage{
		{Image: "k8scc01covidacr.azurecr.io/pipeline-base:3.9", Pods: []string{"ns/a"}},
		{Image: "k8scc01covidacr.azurecr.io/jupyterlab-cpu:v2", ImageID: "docker-pullable://k8scc01covidacr.azurecr.io/jupyterlab-cpu@sha256:3b1f4f1a9d8a2e5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3", Pods: []string{"ns/b"}},
		{Image: "python:3.12", Pods: []string{"ns/d", "ns/c"}},
	}
	ev := ScanEvidence(in.Trivy, nil, in.TrivyDB, running, opts)
	byID := map[string][]compliance.Evidence{}
	for _, e := range ev {
		byID[e.ID] = append(byID[e.ID], e)
	}
	if got := byID["unscanned"]; len(got) != 1 || got[0].Subjects[0].Name != "python:3.12" || got[0].Message != "no scan of this image; it runs in ns/c, ns/d" {
		t.Errorf("unscanned = %+v", got)
	}
	if got := byID["scan-age"]; len(got) != 2 || got[0].Result != compliance.ResultWarn {
		t.Errorf("scan-age = %+v", got)
	}
	if got := byID["db-age"]; len(got) != 1 || got[0].Result != compliance.ResultWarn || !strings.Contains(got[0].Message, "more than 72h0m0s") {
		t.Errorf("db-age = %+v", got)
	}
	for _, e := range byID["VULN-CRITICAL"] {
		if e.Result == compliance.ResultFail && e.Message != "1 fixable critical vulnerabilities: CVE-2019-14697 (musl 1.1.20-r4, fixed in 1.1.20-r5)" {
			t.Errorf("VULN-CRITICAL message = %q", e.Message)
		}
	}
	// An unfixed HIGH (bash, no FixedVersion) is not a flaw to remediate.
	for _, e := range byID["VULN-HIGH"] {
		if e.Result != compliance.ResultPass {
			t.Errorf("VULN-HIGH for %s = %s: %s", e.Subjects[0].Name, e.Result, e.Message)
		}
	}
}

func TestDecodeKubeBench(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       string // error text; empty for success
		checks     int
	}{
		{"with totals", `{"Controls": [{"id": "1", "version": "cis-1.10", "node_type": "master", "tests": [{"section": "1.1", "results": [{"test_number": "1.1.1", "status": "PASS"}]}]}], "Totals": {}}`, "", 1},
		{"without totals", `[{"id": "4", "version": "cis-1.10", "node_type": "node", "tests": [{"section": "4.1", "results": [{"test_number": "4.1.1", "status": "fail"}]}]}]`, "", 1},
		{"no controls", `{"Controls": []}`, "f.json: kube-bench JSON: Controls: no controls", 0},
		{"bad status", `{"Controls": [{"id": "1", "tests": [{"results": [{"test_number": "1.1.1", "status": "MAYBE"}]}]}]}`, `Controls[0].tests[0].results[0].status: "MAYBE" is not PASS, FAIL, WARN or INFO (check 1.1.1)`, 0},
		{"missing check number", `{"Controls": [{"id": "1", "tests": [{"results": [{"status": "PASS"}]}]}]}`, "results[0].test_number: required", 0},
		{"wrong type", `{"Controls": [{"id": 1}]}`, "f.json: kube-bench JSON:", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, err := DecodeKubeBench("f.json", []byte(tc.data))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Checks) != tc.checks || run.Benchmarks[0] != "cis-1.10" {
				t.Errorf("run = %+v", run)
			}
		})
	}
}

func TestDecodeKubeHunter(t *testing.T) {
	run, err := DecodeKubeHunter("h.json", []byte(`{"nodes": [], "services": [], "vulnerabilities": [{"vid": "None", "vulnerability": "Exposed Pods", "severity": "medium"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ev := HunterEvidence([]*HunterRun{run})
	if ev[0].ID != "Exposed Pods" || ev[0].Severity != compliance.SeverityMedium || ev[1].ID != "hunter-run" {
		t.Errorf("evidence = %+v", ev)
	}
	for _, tc := range []struct{ data, want string }{
		{`{"nodes": []}`, "vulnerabilities: required"},
		{`{"vulnerabilities": [{"severity": "low"}]}`, "vulnerabilities[0]: neither vid nor vulnerability"},
		{`{"vulnerabilities": 3}`, "h.json: kube-hunter JSON"},
	} {
		if _, err := DecodeKubeHunter("h.json", []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeKubeHunter(%s) error = %v, want %q", tc.data, err, tc.want)
		}
	}
}

func TestAddFile_NamesTheFileAndWhatIsWrong(t *testing.T) {
	bench, err := os.ReadFile(filepath.Join(fixtures, "cis", "kube-bench-master.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data string
		kind       Kind
		want       string
	}{
		{"kube-bench given as Trivy", string(bench), KindTrivy, "x.json: expected a Trivy JSON report, found kube-bench JSON"},
		{"Trivy schema 1", `{"SchemaVersion": 1, "ArtifactName": "a"}`, KindAuto, "x.json: Trivy JSON: SchemaVersion: 1 is not supported"},
		{"Trivy without artifact", `{"SchemaVersion": 2}`, KindAuto, "ArtifactName: required"},
		{"DB metadata without time", `{"Version": 2, "UpdatedAt": "0001-01-01T00:00:00Z", "NextUpdate": "0001-01-01T00:00:00Z"}`, KindAuto, "Version and UpdatedAt are required"},
		{"a PolicyReport given as webhooks", "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: r}\n", KindWebhooks, `x.json:1: PolicyReport "r" is not one of the webhook-configs`},
		{"bad PolicyReport", "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: r, namespace: n}\nresults: [{policy: p, result: maybe}]\n", KindAuto, `x.json:1: PolicyReport "n/r": results[0].result: "maybe"`},
		{"bad template", "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: t}\nspec: {crd: {spec: {names: {kind: T}}}, targets: [{target: admission.k8s.gatekeeper.sh, code: [{engine: Rego, source: {rego: 'package t\nviolation['}}]}]}\n", KindAuto, `ConstraintTemplate "t"`},
		{"webhook configuration of another version", "apiVersion: admissionregistration.k8s.io/v1beta1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: w}\n", KindAuto, `ValidatingWebhookConfiguration "w": apiVersion: version "v1beta1"`},
		{"earlier report", `{"apiVersion": "guard.statcan.gc.ca/v1alpha1", "kind": "ComplianceAssessment"}`, KindAuto, "give earlier reports with --previous"},
		{"broken YAML", "kind: [", KindAuto, "x.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewInputs().AddFile("x.json", []byte(tc.data), tc.kind)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAddFile_SkipsObjectsThatAreNotEvidenceWithAWarning(t *testing.T) {
	in := NewInputs()
	if err := in.AddFile("pods.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n"), KindAuto); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"pods.yaml: skipped objects that are not evidence: Pod (2)"}, in.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// FuzzAddFile feeds arbitrary content to every reader: it must return
// inputs or an error, never panic, whatever the file.
func FuzzAddFile(f *testing.F) {
	files, err := ReadFilesList(fixtures)
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	kinds := []Kind{KindAuto, KindPolicies, KindPolicyReports, KindWebhooks, KindTrivy, KindTrivyDB, KindKubeBench, KindKubeHunter}
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		in := NewInputs()
		if err := in.AddFile("fuzz.json", data, kinds[int(k)%len(kinds)]); err != nil {
			return
		}
		in.SortInputs()
		in.Evidence(DefaultOptions(now))
	})
}

// ReadFilesList lists the fixture files, for seeding.
func ReadFilesList(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	return out, err
}
