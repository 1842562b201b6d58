package policies

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/statcan/daaas-guard/pkg/mutate"
	"github.com/statcan/daaas-guard/pkg/policy"
)

// What daaas-guard's mutating webhook injects must be admitted by the
// platform profile: the Vault agent's image, limits, securityContext and
// volumes, the GPU tolerations. Layout:
//
//	profiles/daaas/workloads/mutation/<name>.yaml          pods as the mutating webhook receives them
//	profiles/daaas/workloads/admitted/<name>-mutated.yaml  the same pods after it, generated
//
// The generated fixtures are reviewed with the other admitted workloads
// (TestProfile_AdmitsPlatformWorkloads); this file keeps them current.

var update = flag.Bool("update", false, "rewrite profiles/daaas/workloads/admitted/*-mutated.yaml from the mutators' output")

const regenerate = "go test ./policies -run TestProfile_MutatedFixturesAreCurrent -update"

// mutatePod runs the mutating handler, with the default configuration, on
// a pod's JSON created in ns, and applies its patch as the API server
// does.
func mutatePod(t *testing.T, raw []byte, ns string) ([]byte, []map[string]any) {
	t.Helper()
	h, err := mutate.NewHandler(mutate.HandlerConfig{Own: "daaas-guard", Metrics: mutate.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "fixture", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: ns,
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed {
		t.Fatalf("the mutating webhook refused the pod: %s", resp.Result.Message)
	}
	if len(resp.Patch) == 0 {
		t.Fatal("the mutating webhook left the pod unchanged")
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("the patch does not apply: %v", err)
	}
	var ops []map[string]any
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	return out, ops
}

func yamlFileJSON(t *testing.T, path string) []byte {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raw
}

// renderMutated writes a mutated pod as a fixture: a header that says
// where it comes from, what changed and what the agent is told, then the
// pod.
func renderMutated(t *testing.T, input string, out []byte, ops []map[string]any) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# GENERATED from ../mutation/%s by policies/mutation_test.go: the pod after\n", filepath.Base(input))
	fmt.Fprintf(&b, "# daaas-guard's mutating webhook, with the default MutationConfig. Do not\n# edit; regenerate with\n#   %s\n#\n", regenerate)
	b.WriteString("# The webhook's JSON patch:\n")
	for _, op := range ops {
		fmt.Fprintf(&b, "#   %s %s\n", op["op"], op["path"])
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(out, pod); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name != "VAULT_CONFIG" {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			var indented bytes.Buffer
			if err := json.Indent(&indented, raw, "#   ", "  "); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "#\n# VAULT_CONFIG of %s, decoded:\n#   %s\n", c.Name, indented.String())
		}
	}
	y, err := yaml.JSONToYAML(out)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(y)
	return b.Bytes()
}

func TestProfile_MutatedFixturesAreCurrent(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join(profile, "workloads", "mutation", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no mutation inputs (%v)", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			raw := yamlFileJSON(t, in)
			var meta struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(raw, &meta); err != nil {
				t.Fatal(err)
			}
			out, ops := mutatePod(t, raw, meta.Metadata.Namespace)
			want := renderMutated(t, in, out, ops)
			golden := filepath.Join(profile, "workloads", "admitted", name+"-mutated.yaml")
			if *update {
				if err := os.WriteFile(golden, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v; create it with: %s", err, regenerate)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale: the mutators now produce something else; regenerate it with\n  %s\nand review the diff", golden, regenerate)
			}
		})
	}
}

// TestProfile_AdmitsMutatedPlatformPods runs the mutators on the profile's
// own pipeline and notebook fixtures, asking for Vault (and a GPU where the
// namespace may have one), and reviews the result with the profile.
func TestProfile_AdmitsMutatedPlatformPods(t *testing.T) {
	vault := map[string]string{
		"vault.hashicorp.com/agent-inject":                       "true",
		"vault.hashicorp.com/agent-inject-secret-minio-standard": "minio_standard/keys/profile",
	}
	p := newProfileEngine(t)
	for _, tc := range []struct {
		name, file string
		ns         string // moves the pod
		gpu        string // container that gets a GPU
		injected   string // the agent container expected
	}{
		{name: "pipeline step", file: "pipeline-kfp.yaml", injected: "vault-agent-init"},
		{name: "pipeline GPU step in a GPU profile", file: "pipeline-kfp.yaml", ns: "bob-jones", gpu: "main", injected: "vault-agent-init"},
		{name: "notebook", file: "notebook.yaml", injected: "vault-agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs := strings.SplitN(string(yamlDoc(t, filepath.Join(profile, "workloads", "admitted", tc.file))), "\n---\n", 2)
			raw, err := yaml.YAMLToJSON([]byte(docs[0]))
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{}
			if err := json.Unmarshal(raw, pod); err != nil {
				t.Fatal(err)
			}
			if tc.ns != "" {
				pod.Namespace = tc.ns
			}
			for k, v := range vault {
				pod.Annotations[k] = v
			}
			for i := range pod.Spec.Containers {
				if c := &pod.Spec.Containers[i]; c.Name == tc.gpu {
					c.Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
					if c.Resources.Requests != nil {
						c.Resources.Requests["nvidia.com/gpu"] = resource.MustParse("1")
					}
				}
			}
			raw, err = json.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := mutatePod(t, raw, pod.Namespace)
			mutated := &corev1.Pod{}
			if err := json.Unmarshal(out, mutated); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range append(mutated.Spec.InitContainers, mutated.Spec.Containers...) {
				found = found || c.Name == tc.injected
			}
			if !found {
				t.Fatalf("no %s container was injected", tc.injected)
			}
			if tc.gpu != "" && len(mutated.Spec.Tolerations) != len(pod.Spec.Tolerations)+2 {
				t.Errorf("GPU tolerations not added: %+v", mutated.Spec.Tolerations)
			}
			y, err := yaml.JSONToYAML(out)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "mutated.yaml")
			if err := os.WriteFile(path, y, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, o := range p.review(t, path) {
				for _, r := range o.Results {
					if r.Has(policy.ActionDeny) {
						t.Errorf("%s denied: %s", o.Doc.Ref(), describe(r))
					}
				}
			}
		})
	}
}

func yamlDoc(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
