package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sbv1alpha1 "github.com/aquasecurity/starboard/pkg/apis/aquasecurity/v1alpha1"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// bigList stands for a running workflow's node statuses or a PipelineRun's
// child references: many entries, none of them read.
func bigList(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"name": fmt.Sprintf("node-%d", i), "phase": "Succeeded",
			"message": strings.Repeat("x", 200), "outputs": map[string]any{"parameters": []any{}}}
	}
	return out
}

// identity is the metadata TrimWorkload keeps.
func identity(apiVersion, kind string) map[string]any {
	return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{
		"namespace": "team-a", "name": "train", "uid": "u-1", "resourceVersion": "42", "generation": int64(3)}}
}

func withContent(obj map[string]any, content map[string]any) map[string]any {
	for k, v := range content {
		obj[k] = v
	}
	return obj
}

// fullMetadata is what the API server sends: identity and more.
func fullMetadata(apiVersion, kind string) map[string]any {
	obj := identity(apiVersion, kind)
	md := obj["metadata"].(map[string]any)
	md["labels"] = map[string]any{"workflows.argoproj.io/phase": "Running"}
	md["annotations"] = map[string]any{"big": strings.Repeat("a", 4096)}
	md["managedFields"] = []any{map[string]any{"manager": "argo", "operation": "Update"}}
	md["creationTimestamp"] = "2026-08-20T12:00:00Z"
	return obj
}

func TestTrimWorkload(t *testing.T) {
	argo, tekton := "argoproj.io/v1alpha1", "tekton.dev/v1"
	for _, tc := range []struct {
		name string
		in   map[string]any
		want map[string]any
		// imagesOf lists the images the scanner reads of the object.
		imagesOf func(map[string]any) []images.Container
	}{
		{
			name: "Argo Workflow",
			in: withContent(fullMetadata(argo, "Workflow"), map[string]any{
				"spec": map[string]any{
					"entrypoint":       "main",
					"arguments":        map[string]any{"parameters": []any{map[string]any{"name": "p", "value": "v"}}},
					"imagePullSecrets": []any{map[string]any{"name": "acr"}},
					"templates": []any{
						map[string]any{"name": "main", "steps": []any{[]any{map[string]any{"name": "a", "template": "train"}}}},
						map[string]any{"name": "train",
							"container": map[string]any{"image": "acr.example.ca/train:1", "command": []any{"python"},
								"env": []any{map[string]any{"name": "TOKEN", "value": "x"}}},
							"initContainers": []any{map[string]any{"name": "fetch", "image": "alpine:3", "args": []any{"wget"}}},
							"sidecars":       []any{map[string]any{"name": "proxy", "image": "envoy:1", "ports": []any{}}}},
						map[string]any{"name": "prep", "script": map[string]any{"image": "python:3", "source": strings.Repeat("print(1)\n", 500)}},
						map[string]any{"name": "set", "containerSet": map[string]any{"containers": []any{
							map[string]any{"name": "c1", "image": "busybox:1", "command": []any{"sh"}}}}},
					},
				},
				"status": map[string]any{
					"phase": "Running",
					"nodes": map[string]any{"list": bigList(2000)},
					"storedWorkflowTemplateSpec": map[string]any{"entrypoint": "main", "templates": []any{
						map[string]any{"name": "stored", "container": map[string]any{"image": "stored:1", "args": []any{"x"}}},
					}},
				},
			}),
			want: withContent(identity(argo, "Workflow"), map[string]any{
				"spec": map[string]any{
					"imagePullSecrets": []any{map[string]any{"name": "acr"}},
					"templates": []any{
						map[string]any{"name": "main"},
						map[string]any{"name": "train", "container": map[string]any{"image": "acr.example.ca/train:1"},
							"initContainers": []any{map[string]any{"name": "fetch", "image": "alpine:3"}},
							"sidecars":       []any{map[string]any{"name": "proxy", "image": "envoy:1"}}},
						map[string]any{"name": "prep", "script": map[string]any{"image": "python:3"}},
						map[string]any{"name": "set", "containerSet": map[string]any{"containers": []any{
							map[string]any{"name": "c1", "image": "busybox:1"}}}},
					},
				},
				"status": map[string]any{"storedWorkflowTemplateSpec": map[string]any{"templates": []any{
					map[string]any{"name": "stored", "container": map[string]any{"image": "stored:1"}},
				}}},
			}),
			imagesOf: images.OfWorkflow,
		},
		{
			name: "Argo Workflow from a WorkflowTemplate, not started",
			in: withContent(fullMetadata(argo, "Workflow"), map[string]any{
				"spec": map[string]any{"workflowTemplateRef": map[string]any{"name": "t"}},
			}),
			want:     identity(argo, "Workflow"),
			imagesOf: images.OfWorkflow,
		},
		{
			name: "Tekton PipelineRun",
			in: withContent(fullMetadata(tekton, "PipelineRun"), map[string]any{
				"spec": map[string]any{
					"params":          []any{map[string]any{"name": "p", "value": "v"}},
					"taskRunTemplate": map[string]any{"serviceAccountName": "sa", "podTemplate": map[string]any{"imagePullSecrets": []any{map[string]any{"name": "acr"}}, "nodeSelector": map[string]any{"a": "b"}}},
					"pipelineSpec": map[string]any{
						"tasks": []any{map[string]any{"name": "build", "params": []any{}, "taskSpec": map[string]any{
							"steps":        []any{map[string]any{"name": "compile", "image": "golang:1", "script": strings.Repeat("go build\n", 500)}},
							"sidecars":     []any{map[string]any{"name": "db", "image": "postgres:16", "env": []any{}}},
							"stepTemplate": map[string]any{"image": "base:1", "env": []any{map[string]any{"name": "A", "value": "b"}}},
						}}, map[string]any{"name": "lint", "taskRef": map[string]any{"name": "lint"}}},
						"finally": []any{map[string]any{"name": "notify", "taskSpec": map[string]any{
							"steps": []any{map[string]any{"name": "send", "image": "curl:8", "args": []any{"-X"}}}}}},
					},
				},
				"status": map[string]any{
					"conditions":      []any{map[string]any{"type": "Succeeded", "status": "Unknown"}},
					"childReferences": bigList(2000),
					"pipelineSpec": map[string]any{"tasks": []any{map[string]any{"name": "resolved", "taskSpec": map[string]any{
						"steps": []any{map[string]any{"name": "s", "image": "resolved:1", "script": "echo"}}}}}},
				},
			}),
			want: withContent(identity(tekton, "PipelineRun"), map[string]any{
				"spec": map[string]any{
					"taskRunTemplate": map[string]any{"podTemplate": map[string]any{"imagePullSecrets": []any{map[string]any{"name": "acr"}}}},
					"pipelineSpec": map[string]any{
						"tasks": []any{map[string]any{"name": "build", "taskSpec": map[string]any{
							"steps":        []any{map[string]any{"name": "compile", "image": "golang:1"}},
							"sidecars":     []any{map[string]any{"name": "db", "image": "postgres:16"}},
							"stepTemplate": map[string]any{"image": "base:1"},
						}}, map[string]any{"name": "lint"}},
						"finally": []any{map[string]any{"name": "notify", "taskSpec": map[string]any{
							"steps": []any{map[string]any{"name": "send", "image": "curl:8"}}}}},
					},
				},
				"status": map[string]any{"pipelineSpec": map[string]any{"tasks": []any{map[string]any{"name": "resolved", "taskSpec": map[string]any{
					"steps": []any{map[string]any{"name": "s", "image": "resolved:1"}}}}}}},
			}),
			imagesOf: images.OfPipelineRun,
		},
		{
			name: "Tekton v1beta1 PipelineRun's pod template",
			in: withContent(fullMetadata("tekton.dev/v1beta1", "PipelineRun"), map[string]any{
				"spec": map[string]any{"pipelineRef": map[string]any{"name": "p"},
					"podTemplate": map[string]any{"imagePullSecrets": []any{map[string]any{"name": "old"}}, "tolerations": []any{}}},
				"status": map[string]any{"childReferences": bigList(10)},
			}),
			want: withContent(identity("tekton.dev/v1beta1", "PipelineRun"), map[string]any{
				"spec": map[string]any{"podTemplate": map[string]any{"imagePullSecrets": []any{map[string]any{"name": "old"}}}},
			}),
			imagesOf: images.OfPipelineRun,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &unstructured.Unstructured{Object: tc.in}
			orig := in.DeepCopy()
			out, err := TrimWorkload(in)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.(*unstructured.Unstructured)
			if !ok {
				t.Fatalf("TrimWorkload gave a %T", out)
			}
			if diff := cmp.Diff(tc.want, got.Object); diff != "" {
				t.Errorf("trimmed (-want +got):\n%s", diff)
			}
			// The scanner finds the same images on both (the pull secrets,
			// kept where ObserveWorkload looks, are in want).
			if diff := cmp.Diff(tc.imagesOf(orig.Object), tc.imagesOf(got.Object)); diff != "" {
				t.Errorf("images of the trimmed object (-original +trimmed):\n%s", diff)
			}
			// Nothing of the bulk is left.
			if b, err := json.Marshal(got.Object); err != nil || len(b) > 2048 {
				t.Errorf("trimmed to %d bytes (%v), want at most 2 KiB", len(b), err)
			}
		})
	}
}

func TestTrimWorkload_PassesOtherObjects(t *testing.T) {
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c"}, "data": map[string]any{"a": "b"}}}
	for _, obj := range []any{cm, &corev1.Pod{}, &v1alpha1.ImageScan{}, &metav1.PartialObjectMetadata{}} {
		got, err := TrimWorkload(obj)
		if err != nil || got != obj {
			t.Errorf("TrimWorkload(%T) = %v, %v: want it unchanged", obj, got, err)
		}
	}
}

// TestWorkloadChanged feeds the workload watch's predicate what the cache
// holds: objects as TrimWorkload leaves them. A pipeline or workflow
// template resolved into status after creation (through the status
// subresource: same generation) carries the images; other status churn
// does not reach the reconciler.
func TestWorkloadChanged(t *testing.T) {
	trim := func(obj map[string]any) client.Object {
		t.Helper()
		out, err := TrimWorkload(&unstructured.Unstructured{Object: obj})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*unstructured.Unstructured)
	}
	const tekton, argo = "tekton.dev/v1", "argoproj.io/v1alpha1"
	pipelineRun := func(status map[string]any) map[string]any {
		return withContent(fullMetadata(tekton, "PipelineRun"), map[string]any{
			"spec":   map[string]any{"pipelineRef": map[string]any{"name": "train"}},
			"status": status,
		})
	}
	started := map[string]any{"conditions": []any{map[string]any{"type": "Succeeded", "status": "Unknown", "reason": "Running"}}}
	resolved := map[string]any{
		"conditions":      started["conditions"],
		"childReferences": []any{map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "train-fit", "pipelineTaskName": "fit"}},
		"pipelineSpec": map[string]any{"tasks": []any{
			map[string]any{"name": "fit", "taskSpec": map[string]any{"steps": []any{map[string]any{"name": "train", "image": "acr.example.ca/train:1", "script": "python fit.py"}}}},
			map[string]any{"name": "lint", "taskRef": map[string]any{"name": "lint"}},
		}},
	}
	finished := map[string]any{"conditions": []any{map[string]any{"type": "Succeeded", "status": "True"}},
		"childReferences": resolved["childReferences"], "pipelineSpec": resolved["pipelineSpec"], "completionTime": "2026-08-20T13:00:00Z"}
	workflow := func(status map[string]any) map[string]any {
		return withContent(fullMetadata(argo, "Workflow"), map[string]any{
			"spec":   map[string]any{"workflowTemplateRef": map[string]any{"name": "train"}},
			"status": status,
		})
	}
	stored := map[string]any{"phase": "Running", "storedWorkflowTemplateSpec": map[string]any{"entrypoint": "main",
		"templates": []any{map[string]any{"name": "main", "container": map[string]any{"image": "acr.example.ca/train:2"}}}}}
	respecced := pipelineRun(nil)
	respecced["metadata"].(map[string]any)["generation"] = int64(4)

	for _, tc := range []struct {
		name     string
		old, new map[string]any
		want     bool
		images   []string // of the new object, as discovery reads them
	}{
		{"Tekton resolves the pipelineRef into status", pipelineRun(started), pipelineRun(resolved), true, []string{"acr.example.ca/train:1"}},
		{"Tekton's status churn", pipelineRun(resolved), pipelineRun(finished), false, []string{"acr.example.ca/train:1"}},
		{"a PipelineRun's conditions", pipelineRun(nil), pipelineRun(started), false, nil},
		{"a new generation", pipelineRun(nil), respecced, true, nil},
		{"Argo stores the workflowTemplateRef's spec", workflow(map[string]any{"phase": "Pending"}), workflow(stored), true, []string{"acr.example.ca/train:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldObj, newObj := trim(tc.old), trim(tc.new)
			if got := workloadChanged.Update(event.UpdateEvent{ObjectOld: oldObj, ObjectNew: newObj}); got != tc.want {
				t.Errorf("update passed = %v, want %v", got, tc.want)
			}
			var imgs []string
			for _, c := range workloadImages(newObj) {
				imgs = append(imgs, c.Image)
			}
			if diff := cmp.Diff(tc.images, imgs); diff != "" {
				t.Errorf("images of the cached object (-want +got):\n%s", diff)
			}
		})
	}
	if !workloadChanged.Create(event.CreateEvent{Object: trim(pipelineRun(nil))}) {
		t.Error("a PipelineRun's creation is not passed")
	}
}

// noWholeReports is the manager's client as the scanner sets it up:
// VulnerabilityReports are watched for metadata only, so reading a whole
// one through the cache would start an informer caching them all whole.
type noWholeReports struct{ client.Client }

func (c noWholeReports) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*sbv1alpha1.VulnerabilityReport); ok {
		return errors.New("a whole VulnerabilityReport read through the cache")
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func TestReconcileVulnerabilityReport_ReadsTheReportFromTheAPIServer(t *testing.T) {
	digest, tagged := "sha256:"+strings.Repeat("a", 64), fakeDigest("tagged")
	vr := func(name, tag, digest string) *sbv1alpha1.VulnerabilityReport {
		r := &sbv1alpha1.VulnerabilityReport{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name},
			Report: sbv1alpha1.VulnerabilityScanResult{
				UpdateTimestamp: metav1.NewTime(time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)),
				Scanner:         sbv1alpha1.Scanner{Name: "Trivy", Version: "0.16.0"},
				Registry:        sbv1alpha1.Registry{Server: "acr.example.ca"},
				Artifact:        sbv1alpha1.Artifact{Repository: "legacy/app", Tag: tag, Digest: digest},
			}}
		// A long list, as in the reports the cache must not hold; one
		// finding is fixable and critical.
		r.Report.Vulnerabilities = append(r.Report.Vulnerabilities, sbv1alpha1.Vulnerability{VulnerabilityID: "CVE-2021-3520",
			Resource: "liblz4-1", InstalledVersion: "1.8.3-1", FixedVersion: "1.8.3-1+deb10u1", Severity: sbv1alpha1.SeverityCritical})
		for i := range 500 {
			r.Report.Vulnerabilities = append(r.Report.Vulnerabilities, sbv1alpha1.Vulnerability{VulnerabilityID: fmt.Sprintf("CVE-2099-%04d", i),
				Resource: "pkg", InstalledVersion: "1", Severity: sbv1alpha1.SeverityLow, Title: strings.Repeat("t", 100)})
		}
		return r
	}
	type verdict struct {
		Source, Scanner string
		Tags            []string
		Vulnerabilities v1alpha1.SeverityCounts
		Fixable         v1alpha1.SeverityCounts
	}
	for _, tc := range []struct {
		name   string
		report *sbv1alpha1.VulnerabilityReport
		// digest is where the verdict is expected; empty for none.
		digest string
		want   verdict
	}{
		{name: "report with its digest", report: vr("pod-app-main", "2", digest), digest: digest,
			want: verdict{Source: v1alpha1.SourceStarboard, Scanner: "Trivy 0.16.0", Tags: []string{"acr.example.ca/legacy/app:2"},
				Vulnerabilities: v1alpha1.SeverityCounts{Critical: 1, Low: 500}, Fixable: v1alpha1.SeverityCounts{Critical: 1}}},
		{name: "report naming a tag only", report: vr("pod-app-main", "3", ""), digest: tagged,
			want: verdict{Source: v1alpha1.SourceStarboard, Scanner: "Trivy 0.16.0", Tags: []string{"acr.example.ca/legacy/app:3"},
				Vulnerabilities: v1alpha1.SeverityCounts{Critical: 1, Low: 500}, Fixable: v1alpha1.SeverityCounts{Critical: 1}}},
		{name: "report deleted since"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testScheme()
			must(t, sbv1alpha1.AddToScheme(s))
			b := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v1alpha1.ImageScan{})
			if tc.report != nil {
				b = b.WithObjects(tc.report)
			}
			api := b.Build()
			h := newHarness(t, func(c *Config) { c.Client, c.Reader = noWholeReports{api}, api })
			h.c = api
			h.reg.set("acr.example.ca/legacy/app:3", tagged)
			h.start(t)

			res, err := h.s.ReconcileVulnerabilityReport(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "pod-app-main"}})
			if err != nil || res != (reconcile.Result{}) {
				t.Fatalf("reconcile: %+v, %v", res, err)
			}
			list := &v1alpha1.ImageScanList{}
			must(t, api.List(ctx, list))
			if tc.digest == "" {
				if len(list.Items) != 0 {
					t.Errorf("%d ImageScans written for a report that is gone", len(list.Items))
				}
				return
			}
			st := h.imageScan(t, tc.digest).Status
			got := verdict{Source: st.Source, Scanner: st.Scanner, Tags: st.Tags, Vulnerabilities: st.Vulnerabilities, Fixable: st.Fixable}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ingested verdict (-want +got):\n%s", diff)
			}
		})
	}
}
