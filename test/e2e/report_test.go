package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
)

const reportTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: e2ereportcheck
  annotations:
    metadata.gatekeeper.sh/title: "Report check"
    metadata.gatekeeper.sh/version: 1.0.0
    guard.statcan.gc.ca/controls: "AC-6,CM-7"
    guard.statcan.gc.ca/severity: critical
spec:
  crd:
    spec:
      names:
        kind: E2EReportCheck
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package e2ereportcheck

              violation contains {"msg": "never"} if {
                input.review.object.kind == "NeverAKind"
              }
`

const reportAudit = `apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata:
  name: e2e-audit
  namespace: daaas-guard
summary: {pass: 0, fail: 1, warn: 0, error: 0, skip: 0}
results:
  - policy: E2EReportCheck
    rule: report-check
    result: fail
    resources:
      - {apiVersion: v1, kind: Pod, namespace: daaas-guard, name: unscanned}
    message: found by the audit
`

func object(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestReport_FromTheCluster runs guardctl report against the real API
// server: templates, constraints, the webhook configuration, PolicyReports,
// ImageScans, pods, the kube-bench and kube-hunter summaries and the nodes
// (one without a NodeBenchmark) are read through a kubeconfig, as an
// auditor would;
// the result is then stored as a ComplianceReport, whose CRD must accept
// it.
func TestReport_FromTheCluster(t *testing.T) {
	c := startCluster(t)
	if c.stopped {
		t.Fatal("the webhook was stopped by an earlier test; this test must run before TestWebhook stops it")
	}
	ctx := context.Background()
	template := object(t, reportTemplate)
	if err := c.client.Create(ctx, template); err != nil {
		t.Fatalf("creating the template: %v", err)
	}
	// The constraint's CRD exists once the webhook has reconciled the
	// template.
	constraint := object(t, `{"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "E2EReportCheck", "metadata": {"name": "report-check"}, "spec": {"enforcementAction": "deny"}}`)
	eventually(t, 20*time.Second, func() error { return c.client.Create(ctx, constraint.DeepCopy()) })
	audit := object(t, reportAudit)
	pod := pod(guardNamespace, "unscanned", false)
	pod.Spec.Containers[0].Image = "k8scc01covidacr.azurecr.io/unscanned:1"
	// The scanner's verdict on the image another pod runs: a fixable
	// critical CVE.
	scanned := pod.DeepCopy()
	scanned.Name = "scanned"
	scanned.Spec.Containers[0].Image = scannedRepo + "@" + scannedDigest
	verdict := imageScanVerdict(t)
	// The verdict before the pods: the scanner, seeing a pod first, would
	// create or update the ImageScan for its digest itself.
	// Cleaned up whatever happens next: the other tests share the cluster.
	t.Cleanup(func() {
		for _, o := range []client.Object{verdict, scanned, pod, audit, constraint, template} {
			_ = c.client.Delete(ctx, o)
		}
	})
	for _, o := range []client.Object{audit, verdict} {
		if err := c.client.Create(ctx, o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
	setImageScanVerdict(t, c.client, verdict)
	for _, o := range []client.Object{pod, scanned} {
		if err := c.client.Create(ctx, o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
	scheme := runtime.NewScheme()
	if err := guardv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	gc, err := client.New(c.cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// The scanner's kube-bench and kube-hunter summaries, as
	// pkg/clusterscan writes them.
	for _, o := range infraSummaries() {
		status := o.DeepCopyObject().(client.Object)
		if err := gc.Create(ctx, o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		t.Cleanup(func() { _ = gc.Delete(ctx, o) })
		status.SetResourceVersion(o.GetResourceVersion())
		if err := gc.Status().Update(ctx, status); err != nil {
			t.Fatalf("writing the status of %s: %v", o.GetName(), err)
		}
	}
	// The nodes: e2e-node has its NodeBenchmark, e2e-unbenchmarked none.
	for _, name := range []string{"e2e-node", "e2e-unbenchmarked"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := gc.Create(ctx, n); err != nil {
			t.Fatalf("creating node %s: %v", name, err)
		}
		t.Cleanup(func() { _ = gc.Delete(ctx, n) })
	}

	user, err := c.env.AddUser(envtest.User{Name: "auditor", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	trivy := filepath.Join(repoRoot(t), "pkg", "evidence", "testdata", "evidence", "scans", "trivy-pipeline-base.json")
	cmd := exec.Command(filepath.Join(build(t, "./cmd/guardctl"), "guardctl"), "report", "--kubeconfig", kubeconfig, "--cluster-name", "e2e", "--trivy", trivy, "--format", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("guardctl report: %v\n%s", err, stderr.String())
	}
	report, err := compliance.ReadReport("guardctl report", stdout.Bytes())
	if err != nil {
		t.Fatal(err)
	}

	found := map[string]string{}
	for _, ctl := range report.Controls {
		for _, e := range ctl.Evidence {
			var subjects []string
			for _, s := range e.Subjects {
				subjects = append(subjects, s.String())
			}
			found[string(e.Source)+" "+e.ID+" "+strings.Join(subjects, ",")] = string(e.Result) + " from " + e.Origin
		}
	}
	for key, want := range map[string]string{
		"policy E2EReportCheck E2EReportCheck report-check":                                                                  "pass from cluster",
		"audit E2EReportCheck Pod daaas-guard/unscanned":                                                                     "fail from cluster",
		"webhook-config failure-policy ValidatingWebhookConfiguration daaas-guard-validating#validation.guard.statcan.gc.ca": "pass from cluster",
		// Cluster-scoped objects fail open on purpose (the manifest says
		// why); the report keeps that visible.
		"webhook-config failure-policy ValidatingWebhookConfiguration daaas-guard-validating#cluster.validation.guard.statcan.gc.ca": "fail from cluster",
		"image-scan unscanned Image k8scc01covidacr.azurecr.io/unscanned:1":                                                          "fail from cluster",
		"image-scan VULN-CRITICAL Image k8scc01covidacr.azurecr.io/pipeline-base:3.9":                                                "fail from " + trivy,
		"image-scan scanned Image " + scannedRepo + "@" + scannedDigest:                                                              "pass from cluster",
		"image-scan VULN-CRITICAL Image " + scannedRepo + "@" + scannedDigest:                                                        "fail from cluster",
		"image-scan unscanned Image " + scannedRepo + "@" + scannedDigest:                                                            "", // the verdict covers it
		"kube-bench 4.2.1 Node e2e-node":                                                                                             "fail from cluster",
		"kube-bench benchmark-run Node e2e-node":                                                                                     "pass from cluster",
		"kube-bench node-coverage Node e2e-unbenchmarked":                                                                            "fail from cluster",
		"kube-hunter KHV036 Endpoint 10.0.0.21:10250":                                                                                "fail from cluster",
		"kube-hunter hunter-run ":                                                                                                    "pass from cluster",
	} {
		if got := found[key]; got != want {
			t.Errorf("evidence %q: %q, want %q", key, got, want)
		}
	}
	for _, s := range report.Sources {
		// Other tests' scans share the cluster, so the header may name the
		// oldest of several DB builds.
		if s.Source == compliance.SourceImageScan && (!strings.HasPrefix(s.DBVersion, "trivy-db v2") || s.Version != "0.74.0") {
			t.Errorf("image-scan source %+v: want the verdict's Trivy 0.74.0 and trivy-db v2", s)
		}
	}
	// The summaries assess the CIS configuration checks (CM-6) and add
	// kube-hunter's runs and findings to RA-5 and SI-4.
	status := map[string]compliance.Status{}
	for _, ctl := range report.Controls {
		status[ctl.ID] = ctl.Status
	}
	if status["CM-6"] != compliance.StatusPartially || status["SI-4"] != compliance.StatusSatisfied {
		t.Errorf("CM-6 %s, SI-4 %s; want partially satisfied (section 4 passes and fails), satisfied (kube-hunter ran)", status["CM-6"], status["SI-4"])
	}
	if t.Failed() {
		t.Logf("evidence found: %v\nstderr: %s", found, stderr.String())
	}
	if report.Cluster != "e2e" {
		t.Errorf("cluster %q", report.Cluster)
	}

	// The summary goes to etcd as a ComplianceReport.
	cr := &guardv1alpha1.ComplianceReport{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Spec: guardv1alpha1.ComplianceReportSpec{ClusterName: "e2e"}}
	if err := gc.Create(ctx, cr); err != nil {
		t.Fatalf("creating the ComplianceReport: %v", err)
	}
	t.Cleanup(func() { _ = gc.Delete(ctx, cr) })
	if cr.Spec.Schedule != "0 */6 * * *" {
		t.Errorf("schedule defaulted to %q", cr.Spec.Schedule)
	}
	cr.Status = report.CRStatus()
	cr.Status.ObservedGeneration = cr.Generation
	cr.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Refreshed", Message: "report built", LastTransitionTime: metav1.Now()}}
	if err := gc.Status().Update(ctx, cr); err != nil {
		t.Fatalf("writing the status: %v", err)
	}
	var back guardv1alpha1.ComplianceReport
	if err := gc.Get(ctx, client.ObjectKey{Name: "cluster"}, &back); err != nil {
		t.Fatal(err)
	}
	if back.Status.Summary != cr.Status.Summary || len(back.Status.Controls) != len(report.Controls) || back.Status.Cluster != "e2e" {
		t.Errorf("stored status %+v", back.Status.Summary)
	}
	raw, _ := sigsyaml.Marshal(back)
	t.Logf("ComplianceReport: %d bytes as YAML; %d satisfied, %d partially, %d not satisfied, %d not assessed",
		len(raw), back.Status.Summary.Satisfied, back.Status.Summary.Partially, back.Status.Summary.NotSatisfied, back.Status.Summary.NotAssessed)
}

const (
	scannedRepo   = "k8scc01covidacr.azurecr.io/scanned"
	scannedDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// imageScanVerdict is the ImageScan of scannedDigest, without its status.
func imageScanVerdict(t *testing.T) *guardv1alpha1.ImageScan {
	t.Helper()
	name, err := guardv1alpha1.ImageScanName(scannedDigest)
	if err != nil {
		t.Fatal(err)
	}
	return &guardv1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: guardv1alpha1.ImageScanSpec{Digest: scannedDigest, Repository: scannedRepo}}
}

// setImageScanVerdict writes the status the scanner writes after a Trivy
// scan that found a fixable critical CVE.
func setImageScanVerdict(t *testing.T, c client.Client, is *guardv1alpha1.ImageScan) {
	t.Helper()
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	is.Status = guardv1alpha1.ImageScanStatus{
		Conditions: []metav1.Condition{{Type: guardv1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: guardv1alpha1.ReasonScanSucceeded, LastTransitionTime: now}},
		Source:     guardv1alpha1.SourceTrivy, Scanner: "Trivy v0.74.0", ScannedAt: &now,
		DB:              &guardv1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: now},
		Vulnerabilities: guardv1alpha1.SeverityCounts{Critical: 1},
		Fixable:         guardv1alpha1.SeverityCounts{Critical: 1},
		FixableCriticalHigh: []guardv1alpha1.FixableVulnerability{
			{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19"}},
	}
	if err := c.Status().Update(context.Background(), is); err != nil {
		t.Fatalf("writing the verdict of ImageScan %s: %v", is.Name, err)
	}
}

// infraSummaries are a NodeBenchmark, whose summary leaves a failing check
// out, and a PenetrationTest with a finding, as the scanner writes them.
func infraSummaries() []client.Object {
	at := metav1.NewTime(time.Now().Truncate(time.Second))
	done := []metav1.Condition{{Type: guardv1alpha1.InfraScanConditionScanned, Status: metav1.ConditionTrue,
		Reason: guardv1alpha1.InfraScanReasonSucceeded, Message: "e2e", LastTransitionTime: at}}
	origin := func(name string) *guardv1alpha1.InfraScanOrigin {
		return &guardv1alpha1.InfraScanOrigin{Source: guardv1alpha1.InfraScanSourceJob, Name: name, ScanTime: at}
	}
	return []client.Object{
		&guardv1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "e2e-node"}, Status: guardv1alpha1.NodeBenchmarkStatus{
			Origin: origin("kube-bench-e2e-node"), Conditions: done,
			Summary: &guardv1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", NodeTypes: []string{"node"},
				Totals:          guardv1alpha1.BenchmarkTotals{Pass: 10, Fail: 2},
				Sections:        []guardv1alpha1.BenchmarkSection{{ID: "4", Text: "Worker Node Security Configuration", NodeType: "node", Totals: guardv1alpha1.BenchmarkTotals{Pass: 10, Fail: 2}}},
				Failures:        []guardv1alpha1.BenchmarkFailure{{ID: "4.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Scored: true}},
				FailuresOmitted: 1}}},
		&guardv1alpha1.PenetrationTest{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: guardv1alpha1.PenetrationTestStatus{
			Origin: origin("kube-hunter-e2e"), Conditions: done,
			Summary: &guardv1alpha1.PenetrationTestSummary{Nodes: 1, Services: 2, Counts: guardv1alpha1.PenetrationSeverityCounts{High: 1},
				Findings: []guardv1alpha1.PenetrationFinding{{ID: "KHV036", Name: "Anonymous Authentication", Severity: "high",
					Category: "Initial Access // Exposed sensitive interfaces", Location: "10.0.0.21:10250"}}}}},
	}
}
