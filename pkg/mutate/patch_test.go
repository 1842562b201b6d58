package mutate

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
)

func TestEscapePointer(t *testing.T) {
	for in, want := range map[string]string{
		"vault.hashicorp.com/agent-inject-status": "vault.hashicorp.com~1agent-inject-status",
		"a~b/c":   "a~0b~1c",
		"~1":      "~01",
		"plain":   "plain",
		"//":      "~1~1",
		"~/~":     "~0~1~0",
		"":        "",
		"dedicat": "dedicat",
	} {
		if got := EscapePointer(in); got != want {
			t.Errorf("EscapePointer(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPod_PatchReproducesChanges applies the recorded patch to the pod as
// the API server may send it (lists and maps absent, null or empty) and
// checks that the result is the changed pod.
func TestPod_PatchReproducesChanges(t *testing.T) {
	container := `{"name":"main","image":"x"}`
	tol := corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	req := corev1.NodeSelectorRequirement{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"gpu"}}
	tests := []struct {
		name   string
		raw    string
		change func(t *testing.T, p *Pod)
		ops    int
	}{
		{
			name:   "toleration without spec.tolerations",
			raw:    `{"metadata":{"name":"p"},"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.AddToleration(tol); p.AddToleration(tol) },
			ops:    2,
		},
		{
			name:   "toleration with tolerations null",
			raw:    `{"metadata":{"name":"p"},"spec":{"tolerations":null,"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.AddToleration(tol) },
			ops:    1,
		},
		{
			name:   "toleration with tolerations empty",
			raw:    `{"metadata":{"name":"p"},"spec":{"tolerations":[],"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.AddToleration(tol) },
			ops:    1,
		},
		{
			name:   "toleration appended after existing ones",
			raw:    `{"metadata":{"name":"p"},"spec":{"tolerations":[{"key":"a","operator":"Exists"}],"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.AddToleration(tol) },
			ops:    1,
		},
		{
			name: "annotations without an annotations map, keys with / and ~, empty value",
			raw:  `{"metadata":{"name":"p"},"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) {
				p.SetAnnotation("vault.hashicorp.com/agent-inject-status", "injected")
				p.SetAnnotation("a~b/c", "")
				p.SetAnnotation("a~b/c", "") // unchanged: no operation
			},
			ops: 2,
		},
		{
			name:   "annotation with annotations null",
			raw:    `{"metadata":{"name":"p","annotations":null},"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.SetAnnotation("k/x", "v") },
			ops:    1,
		},
		{
			name:   "annotation without metadata",
			raw:    `{"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.SetAnnotation("k/x", "v") },
			ops:    1,
		},
		{
			name:   "annotation with metadata null",
			raw:    `{"metadata":null,"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.SetAnnotation("k/x", "v") },
			ops:    1,
		},
		{
			name:   "annotation replaced",
			raw:    `{"metadata":{"annotations":{"k/x":"old"}},"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.SetAnnotation("k/x", "new") },
			ops:    1,
		},
		{
			name: "volumes, mounts into a container and an init container, containers",
			raw:  `{"metadata":{"name":"p"},"spec":{"initContainers":[{"name":"init"}],"containers":[{"name":"wait"},{"name":"main","volumeMounts":[{"name":"a","mountPath":"/a"}]}]}}`,
			change: func(t *testing.T, p *Pod) {
				p.AddVolume(memoryVolume("v1"))
				p.AddVolume(memoryVolume("v2"))
				must(t, p.AddVolumeMount("main", corev1.VolumeMount{Name: "v1", MountPath: "/v"}))
				must(t, p.AddVolumeMount("wait", corev1.VolumeMount{Name: "v1", MountPath: "/v"}))
				must(t, p.AddVolumeMount("init", corev1.VolumeMount{Name: "v1", MountPath: "/v"}))
				p.AddContainer(corev1.Container{Name: "side"})
			},
			ops: 6,
		},
		{
			name: "init container first among existing ones, then mounts by their new index",
			raw:  `{"metadata":{"name":"p"},"spec":{"initContainers":[{"name":"a"},{"name":"b"}],"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) {
				p.AddInitContainer(corev1.Container{Name: "first"}, true)
				must(t, p.AddVolumeMount("b", corev1.VolumeMount{Name: "v", MountPath: "/v"}))
				p.AddInitContainer(corev1.Container{Name: "last"}, false)
			},
			ops: 3,
		},
		{
			name:   "init container first when there are none",
			raw:    `{"metadata":{"name":"p"},"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.AddInitContainer(corev1.Container{Name: "first"}, true) },
			ops:    1,
		},
		{
			name:   "node affinity without affinity",
			raw:    `{"metadata":{"name":"p"},"spec":{"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.RequireNodeAffinity([]corev1.NodeSelectorRequirement{req}) },
			ops:    1,
		},
		{
			name:   "node affinity beside pod affinity",
			raw:    `{"metadata":{"name":"p"},"spec":{"affinity":{"podAffinity":{}},"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.RequireNodeAffinity([]corev1.NodeSelectorRequirement{req}) },
			ops:    1,
		},
		{
			name:   "node affinity with preferred terms only",
			raw:    `{"metadata":{"name":"p"},"spec":{"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":{"matchExpressions":[{"key":"z","operator":"Exists"}]}}]}},"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.RequireNodeAffinity([]corev1.NodeSelectorRequirement{req}) },
			ops:    1,
		},
		{
			name: "node affinity ANDed into every term but empty ones, once",
			raw: `{"metadata":{"name":"p"},"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[` +
				`{"matchExpressions":[{"key":"zone","operator":"In","values":["a"]}]},{},{"matchFields":[{"key":"metadata.name","operator":"In","values":["n1"]}]},` +
				`{"matchExpressions":[{"key":"pool","operator":"In","values":["gpu"]}]}]}}},"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) {
				p.RequireNodeAffinity([]corev1.NodeSelectorRequirement{req})
				p.RequireNodeAffinity([]corev1.NodeSelectorRequirement{req})
			},
			ops: 2,
		},
		{
			name:   "node affinity with an empty term list",
			raw:    `{"metadata":{"name":"p"},"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":null}}},"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) { p.RequireNodeAffinity([]corev1.NodeSelectorRequirement{req}) },
			ops:    1,
		},
		{
			name: "shareProcessNamespace false is written, not dropped",
			raw:  `{"metadata":{"name":"p"},"spec":{"shareProcessNamespace":true,"containers":[` + container + `]}}`,
			change: func(t *testing.T, p *Pod) {
				p.SetShareProcessNamespace(false)
				p.SetShareProcessNamespace(false)
			},
			ops: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPod(decodePod(t, []byte(tc.raw)), "alice")
			tc.change(t, p)
			if len(p.Patch()) != tc.ops {
				t.Errorf("%d operations, want %d: %+v", len(p.Patch()), tc.ops, p.Patch())
			}
			raw, err := json.Marshal(p.Patch())
			if err != nil {
				t.Fatal(err)
			}
			patch, err := jsonpatch.DecodePatch(raw)
			if err != nil {
				t.Fatal(err)
			}
			out, err := patch.Apply([]byte(tc.raw))
			if err != nil {
				t.Fatalf("patch %s does not apply: %v", raw, err)
			}
			if d := cmp.Diff(p.Object(), decodePod(t, out)); d != "" {
				t.Errorf("patched request differs from the changed pod (-changed +patched):\n%s\npatch: %s", d, raw)
			}
		})
	}
}

func TestPod_AddVolumeMountNeedsAContainer(t *testing.T) {
	p := NewPod(decodePod(t, []byte(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"main"}]}}`)), "alice")
	if err := p.AddVolumeMount("missing", corev1.VolumeMount{Name: "v", MountPath: "/v"}); err == nil {
		t.Error("mount into a missing container accepted")
	}
	if err := p.AddVolumeMount("", corev1.VolumeMount{Name: "v", MountPath: "/v"}); err == nil {
		t.Error("mount into an unnamed container accepted")
	}
	if len(p.Patch()) != 0 {
		t.Errorf("failed mounts left operations: %+v", p.Patch())
	}
}

func TestPod_Ref(t *testing.T) {
	p := NewPod(decodePod(t, []byte(`{"metadata":{"generateName":"web-"},"spec":{}}`)), "alice")
	if got := p.Ref(); got != "alice/web-*" {
		t.Errorf("Ref = %q", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
