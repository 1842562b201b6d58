// Package e2e runs the built binaries the way a user does. The demo test
// keeps `make demo` from rotting: it runs the same script and checks each
// step's outcome.
package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildGuardctl compiles guardctl into a temporary directory.
func buildGuardctl(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "guardctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/guardctl")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building guardctl: %v\n%s", err, out)
	}
	return bin
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
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	cmd := exec.Command("bash", "hack/demo.sh")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GUARDCTL="+buildGuardctl(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"test: ",
		`PSPPrivilegedContainer/`,
		`runs privileged`,
		`PipelineImageProvenance/`,
		"spec.parameters.exemptImages[0]: must be of type string, found integer",
		"<testsuites",
		`add /spec/tolerations/- {"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"}`,
		"key: nvidia.com/gpu",
		`add /spec/initContainers/- {"name":"vault-agent-init"`,
		`annotation vault.hashicorp.com/agent-limits-cpu: "lots" is not a resource quantity`,
		"steps behaved as expected",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "expected exit") {
		t.Errorf("a step had an unexpected exit status:\n%s", text)
	}
}
