package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mutationInputs = "../../policies/profiles/daaas/workloads/mutation"

func TestMutate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gpuPod := `apiVersion: v1
kind: Pod
metadata: {name: train}
spec:
  serviceAccountName: pipeline-runner
  containers:
    - name: main
      image: x
      resources: {limits: {nvidia.com/gpu: "1"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: passes-through}
`
	gpu := write("gpu.yaml", gpuPod)
	bad := write("bad.yaml", strings.Replace(gpuPod, "metadata: {name: train}",
		"metadata: {name: train, annotations: {vault.hashicorp.com/agent-inject: \"true\", vault.hashicorp.com/log-level: loud}}", 1))
	sku := write("config.yaml", `apiVersion: guard.statcan.gc.ca/v1alpha1
kind: MutationConfig
metadata: {name: default}
spec:
  gpu:
    tolerations: [{key: sku, operator: Equal, value: gpu, effect: NoSchedule}]
    resourceTolerations: false
`)
	invalid := write("invalid.yaml", "apiVersion: guard.statcan.gc.ca/v1alpha1\nkind: MutationConfig\nmetadata: {name: default}\nspec:\n  gpu: {resources: [gpu]}\n")
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     string
		notStdout  string
		stdoutDocs int
	}{
		{name: "yaml: the pod mutated, other objects unchanged", args: []string{"mutate", gpu}, code: 0,
			stdout: []string{"key: dedicated", "key: nvidia.com/gpu", "name: passes-through"}, stdoutDocs: 2},
		{name: "patch", args: []string{"mutate", "-o", "patch", "-n", "bob-jones", gpu}, code: 0,
			stdout: []string{"# Pod train (", "2 operations (gpu)", `add /spec/tolerations [{"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"}]`}},
		{name: "a Vault pipeline pod", args: []string{"mutate", "-o", "patch", mutationInputs + "/pipeline.yaml"}, code: 0,
			stdout: []string{"add /spec/initContainers/- {\"name\":\"vault-agent-init\"", "add /metadata/annotations/vault.hashicorp.com~1agent-inject-status \"injected\""}},
		{name: "configuration from a file", args: []string{"mutate", "--config", sku, gpu}, code: 0, stdout: []string{"key: sku"}, notStdout: "key: dedicated"},
		{name: "a refused pod", args: []string{"mutate", bad}, code: 1,
			stderr: `bad.yaml:1: refused: pod default/train: Vault agent injection: annotation vault.hashicorp.com/log-level: "loud" is not one of trace, debug, info, warn, error`},
		{name: "an invalid configuration", args: []string{"mutate", "--config", invalid, gpu}, code: 2,
			stderr: `MutationConfig "default": spec.gpu.resources[0]: Invalid value: "gpu"`},
		{name: "a configuration that is not one", args: []string{"mutate", "--config", gpu, gpu}, code: 2},
		{name: "unknown format", args: []string{"mutate", "-o", "json", gpu}, code: 2},
		{name: "missing file", args: []string{"mutate", filepath.Join(dir, "nope.yaml")}, code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := guardctl(t, "", tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if tc.notStdout != "" && strings.Contains(r.stdout, tc.notStdout) {
				t.Errorf("stdout has %q:\n%s", tc.notStdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
			if tc.stdoutDocs > 0 && strings.Count(r.stdout, "\n---\n")+1 != tc.stdoutDocs {
				t.Errorf("%d documents, want %d:\n%s", strings.Count(r.stdout, "\n---\n")+1, tc.stdoutDocs, r.stdout)
			}
		})
	}
}
