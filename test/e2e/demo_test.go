// Package e2e runs the suite the way a user does. The demo test keeps
// `make demo` from rotting: it runs the same program and checks each step's
// outcome.
package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// build compiles packages of this module into a temporary directory and
// returns it.
func build(t testing.TB, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %v: %v\n%s", pkgs, err, out)
	}
	return dir
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestDemo(t *testing.T) {
	requireControlPlane(t)
	bin := build(t, "./cmd/...", "./hack/demo")
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "demo"), "-bin", bin, "-out", out)
	cmd.Dir = repoRoot(t)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	text := buf.String()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, text)
	}
	// Each step's checked outcome, in order.
	want := []string{
		"✓ every suite passes",
		"✓ the webhook enforces the platform profile",
		"[images-pinned-by-digest] container \"analysis\"",
		"✓ admitted",
		"[no-privileged-containers] container \"analysis\" runs privileged",
		"✓ denied by the API server on the webhook's answer",
		"key=dedicated operator=Equal value=gpu effect=NoSchedule",
		"key=nvidia.com/gpu operator=Exists effect=NoSchedule",
		"initContainers: init, kfp-launcher, vault-agent-init",
		"vault.hashicorp.com/agent-inject-status: injected",
		`annotation vault.hashicorp.com/agent-limits-cpu: "lots" is not a resource quantity`,
		"verdict: CRITICAL CVE-2099-0001 in busybox", // the scanner's verdict on the pushed image
		"[image-vulnerabilities] image ",
		"CVE-2099-0001 (busybox fixed in 1.37.0-r19); ask for an ImageException or use a fixed image",
		"✓ denied, citing CVE-2099-0001",
		"admitted under ImageException etl-busybox-sec-1234",
		"matchedAdmissions 1",
		"✓ admitted under the exception",
		`fail PSPAllowedUsers/non-root-users-and-groups (high): container "analysis" runs as root`,
		"✓ found by the audit",
		"AU-6   satisfied", // the audit's PolicyReports are evidence
		// The scanner's verdicts are evidence: the pushed image's fixable
		// critical CVE (admitted under an exception, not remediated), and
		// the other images, from the real registry, cannot be pulled offline.
		"RA-5   not-satisfied        Vulnerability Scanning",
		"SI-2   not-satisfied        Flaw Remediation",
		"image scans: 1 image scanned;",
		"1 of 8 running images scanned; database trivy-db v2",
		"✓ written to",
		"ComplianceReport cluster, refreshed by the scanner",
		"All steps behaved as expected",
	}
	rest := text
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("demo output lacks %q (in order):\n%s", w, text)
		}
		rest = rest[i+len(w):]
	}
	if strings.Contains(text, "✗") {
		t.Errorf("a step did not behave as expected:\n%s", text)
	}
	for _, f := range []string{"compliance-report.html", "compliance-report.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("the demo did not write %s: %v", f, err)
		}
	}
}
