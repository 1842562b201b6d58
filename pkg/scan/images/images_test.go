package images

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var digest = "sha256:" + strings.Repeat("ab", 32)

func TestParse(t *testing.T) {
	tests := []struct {
		image string
		want  Ref
	}{
		{"python", Ref{Repository: "index.docker.io/library/python", Tag: "latest"}},
		{"python:3.12", Ref{Repository: "index.docker.io/library/python", Tag: "3.12"}},
		{"docker.io/jupyter/scipy-notebook:2024-01-01", Ref{Repository: "index.docker.io/jupyter/scipy-notebook", Tag: "2024-01-01"}},
		{"k8scc01covidacr.azurecr.io/jupyter-lab:v2", Ref{Repository: "k8scc01covidacr.azurecr.io/jupyter-lab", Tag: "v2"}},
		{"127.0.0.1:5000/team/app:1", Ref{Repository: "127.0.0.1:5000/team/app", Tag: "1"}},
		{"127.0.0.1:5000/team/app", Ref{Repository: "127.0.0.1:5000/team/app", Tag: "latest"}},
		{"ghcr.io/x/y@" + digest, Ref{Repository: "ghcr.io/x/y", Digest: digest}},
		{"ghcr.io/x/y:1.0@" + digest, Ref{Repository: "ghcr.io/x/y", Tag: "1.0", Digest: digest}},
		{"127.0.0.1:5000/y@" + digest, Ref{Repository: "127.0.0.1:5000/y", Digest: digest}},
		{"docker-pullable://nginx@" + digest, Ref{Repository: "index.docker.io/library/nginx", Digest: digest}},
		{"docker.io/library/nginx@" + digest, Ref{Repository: "index.docker.io/library/nginx", Digest: digest}},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			got, err := Parse(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse_RejectsWithTheImageNamed(t *testing.T) {
	for _, image := range []string{"", "UPPER/case:1", "x@sha256:short", "x@md5:" + strings.Repeat("a", 32), "a b"} {
		t.Run(image, func(t *testing.T) {
			if _, err := Parse(image); err == nil || !strings.Contains(err.Error(), "image reference") {
				t.Errorf("Parse(%q) error %v, want one naming the reference", image, err)
			}
		})
	}
}

func TestRefNames(t *testing.T) {
	r := Ref{Repository: "ghcr.io/x/y", Tag: "1", Digest: digest}
	if got, want := r.TagName(), "ghcr.io/x/y:1"; got != want {
		t.Errorf("TagName %q, want %q", got, want)
	}
	if got, want := r.DigestName(), "ghcr.io/x/y@"+digest; got != want {
		t.Errorf("DigestName %q, want %q", got, want)
	}
	if got := (Ref{Repository: "r", Digest: digest}).TagName(); got != "" {
		t.Errorf("TagName of a digest reference %q, want empty", got)
	}
}

func TestDigestOf(t *testing.T) {
	tests := []struct {
		imageID string
		want    string
	}{
		{"docker.io/library/python@" + digest, digest},
		{"docker-pullable://python@" + digest, digest},
		{digest, ""}, // an image config ID: not a registry digest
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.imageID, func(t *testing.T) {
			r, ok := DigestOf(tc.imageID)
			if ok != (tc.want != "") || r.Digest != tc.want {
				t.Errorf("DigestOf = %+v, %v; want digest %q", r, ok, tc.want)
			}
		})
	}
}

func TestOfPod(t *testing.T) {
	pod := &corev1.Pod{
		Spec: corev1.PodSpec{
			InitContainers:      []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:          []corev1.Container{{Name: "main", Image: "python:3.12"}, {Name: "side", Image: "envoy"}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "alpine"}}},
		},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "main", ImageID: "docker.io/library/python@" + digest}}},
	}
	want := []Container{
		{Name: "init", Image: "busybox"},
		{Name: "main", Image: "python:3.12", ImageID: "docker.io/library/python@" + digest},
		{Name: "side", Image: "envoy"},
		{Name: "debug", Image: "alpine"},
	}
	if diff := cmp.Diff(want, OfPod(pod)); diff != "" {
		t.Errorf("OfPod (-want +got):\n%s", diff)
	}
}

func TestOfWorkflow(t *testing.T) {
	const wf = `
apiVersion: argoproj.io/v1alpha1
kind: Workflow
spec:
  templates:
  - name: train
    container: {image: "registry.example.ca/train:1"}
    initContainers: [{name: fetch, image: "alpine:3.20"}]
    sidecars: [{name: db, image: "postgres:16"}]
  - name: report
    script: {image: "python:3.12", source: "print(1)"}
  - name: pair
    containerSet:
      containers: [{name: a, image: "a:1"}, {name: b, image: "b:1"}]
  - name: steps
    steps: [[{name: x, template: train}]]
status:
  storedWorkflowTemplateSpec:
    templates:
    - name: train
      container: {image: "registry.example.ca/train:1"}
    - name: extra
      container: {image: "extra:2"}
`
	want := []Container{
		{Name: "train/container", Image: "registry.example.ca/train:1"},
		{Name: "train/fetch", Image: "alpine:3.20"},
		{Name: "train/db", Image: "postgres:16"},
		{Name: "report/script", Image: "python:3.12"},
		{Name: "pair/a", Image: "a:1"},
		{Name: "pair/b", Image: "b:1"},
		{Name: "extra/container", Image: "extra:2"},
	}
	if diff := cmp.Diff(want, OfWorkflow(obj(t, wf))); diff != "" {
		t.Errorf("OfWorkflow (-want +got):\n%s", diff)
	}
}

func TestOfPipelineRun(t *testing.T) {
	const pr = `
apiVersion: tekton.dev/v1
kind: PipelineRun
spec:
  pipelineSpec:
    tasks:
    - name: build
      taskSpec:
        stepTemplate: {image: "base:1"}
        steps: [{name: compile, image: "golang:1.26"}, {name: test}]
        sidecars: [{name: docker, image: "docker:dind"}]
    - name: ref
      taskRef: {name: shared-task}
    finally:
    - name: notify
      taskSpec:
        steps: [{name: send, image: "curl:8"}]
status:
  pipelineSpec:
    tasks:
    - name: build
      taskSpec:
        steps: [{name: compile, image: "golang:1.26"}]
`
	want := []Container{
		{Name: "build/compile", Image: "golang:1.26"},
		{Name: "build/docker", Image: "docker:dind"},
		{Name: "build/stepTemplate", Image: "base:1"},
		{Name: "notify/send", Image: "curl:8"},
	}
	if diff := cmp.Diff(want, OfPipelineRun(obj(t, pr))); diff != "" {
		t.Errorf("OfPipelineRun (-want +got):\n%s", diff)
	}
}

func TestOfWorkload_ToleratesOddShapes(t *testing.T) {
	for _, y := range []string{`{}`, `spec: 3`, `spec: {templates: [1, "x", {container: 5}]}`, `spec: {pipelineSpec: {tasks: [{taskSpec: {steps: [7]}}]}}`} {
		o := obj(t, y)
		if got := append(OfWorkflow(o), OfPipelineRun(o)...); len(got) != 0 {
			t.Errorf("%s: got %v", y, got)
		}
	}
}

func obj(t *testing.T, y string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOfWorkload_ByKind(t *testing.T) {
	wf := obj(t, `spec: {templates: [{name: main, container: {image: "a:1"}}]}`)
	pr := obj(t, `spec: {pipelineSpec: {tasks: [{name: build, taskSpec: {steps: [{name: s, image: "b:1"}]}}]}}`)
	for _, tc := range []struct {
		kind string
		obj  map[string]any
		want []Container
	}{
		{kind: "Workflow", obj: wf, want: OfWorkflow(wf)},
		{kind: "PipelineRun", obj: pr, want: OfPipelineRun(pr)},
		{kind: "Deployment", obj: wf},
	} {
		if diff := cmp.Diff(tc.want, OfWorkload(tc.kind, tc.obj)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.kind, diff)
		}
	}
	if len(OfWorkflow(wf)) != 1 || len(OfPipelineRun(pr)) != 1 {
		t.Fatalf("fixtures: %v %v", OfWorkflow(wf), OfPipelineRun(pr))
	}
}
