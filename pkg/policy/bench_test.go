package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/target"
)

// benchEngine loads the ten benchmark templates and the first n of the 50
// benchmark constraints (the first ten use each template once).
func benchEngine(b *testing.B, n int) *Engine {
	b.Helper()
	ctx := context.Background()
	e, err := New()
	if err != nil {
		b.Fatal(err)
	}
	tdocs, err := manifest.ReadFile(filepath.Join("testdata", "bench", "templates.yaml"), manifest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range tdocs {
		t, err := NewTemplate(d.Object, d)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.AddTemplate(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	cdocs, err := manifest.ReadFile(filepath.Join("testdata", "bench", "constraints.yaml"), manifest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if n > len(cdocs) {
		b.Fatalf("only %d constraints", len(cdocs))
	}
	for _, d := range cdocs[:n] {
		if err := e.AddConstraint(ctx, d.Object, d); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// pipelinePodRequest is the admission request the API server sends when a
// KFP v2 pipeline step's pod is created.
func pipelinePodRequest(b testing.TB) *admissionv1.AdmissionRequest {
	return podRequest(b, "pipeline_pod.yaml")
}

// podRequest is a CREATE request for the first object of a file under
// testdata/bench.
func podRequest(b testing.TB, file string) *admissionv1.AdmissionRequest {
	b.Helper()
	docs, err := manifest.ReadFile(filepath.Join("testdata", "bench", file), manifest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pod := docs[0].Object
	raw, err := json.Marshal(pod.Object)
	if err != nil {
		b.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		UID:       "b2c4",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name:      pod.GetName(),
		Namespace: pod.GetNamespace(),
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}
}

// BenchmarkReview measures one webhook review of a realistic pipeline pod
// against 1, 10 and 50 constraints. `make bench` reports each size as a
// ratio to the 1-constraint run.
func BenchmarkReview(b *testing.B) {
	req := pipelinePodRequest(b)
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("constraints=%d", n), func(b *testing.B) {
			e := benchEngine(b, n)
			ctx := context.Background()
			in := &target.Request{AdmissionRequest: req, Source: match.SourceOriginal}
			b.ReportAllocs()
			violations := 0
			for b.Loop() {
				resp, err := e.Review(ctx, in, AtEnforcementPoint(EnforcementPointWebhook))
				if err != nil {
					b.Fatal(err)
				}
				violations = len(resp.Results)
			}
			b.ReportMetric(float64(violations), "violations/op")
		})
	}
}

// BenchmarkAddTemplate measures compiling one template, the cost every
// template change pays.
func BenchmarkAddTemplate(b *testing.B) {
	docs, err := manifest.ReadFile(filepath.Join("testdata", "bench", "templates.yaml"), manifest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	t, err := NewTemplate(docs[0].Object, docs[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := New()
		if err != nil {
			b.Fatal(err)
		}
		if err := e.AddTemplate(context.Background(), t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReviewProfile reviews a pipeline pod and a notebook pod against
// the platform profile (every template, the platform's constraints, its
// inventory fixture as synced data), the workload the webhook performance
// targets are set for.
func BenchmarkReviewProfile(b *testing.B) {
	for _, ev := range []struct {
		name string
		opts []Option
	}{
		{"topdown", []Option{WithTopdownOnly()}},
		{"vm", nil},
		// The same review again and again: every run after the first is
		// answered by the review cache.
		{"vm-cached", []Option{WithReviewCache(64)}},
	} {
		b.Run(ev.name, func(b *testing.B) {
			ctx := context.Background()
			e := profileEngineWith(b, ev.opts...)
			for _, pod := range []struct{ name, file string }{
				// A KFP v2 pipeline step's pod, as written.
				{"pipeline", "pipeline_pod.yaml"},
				// The profile's notebook pod as the API server sends it
				// to webhooks: defaulted, with managedFields (captured
				// with a server-side dry run; 13 KB).
				{"notebook-apiserver", "notebook_pod_apiserver.json"},
			} {
				b.Run(pod.name, func(b *testing.B) {
					in := &target.Request{AdmissionRequest: podRequest(b, pod.file), Source: match.SourceOriginal}
					// The first review builds the VM program.
					if _, err := e.Review(ctx, in, AtEnforcementPoint(EnforcementPointWebhook)); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := e.Review(ctx, in, AtEnforcementPoint(EnforcementPointWebhook)); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// noopTemplate is a template whose rule never holds.
func noopTemplate(i int) map[string]interface{} {
	kind := fmt.Sprintf("Noop%d", i)
	return map[string]interface{}{
		"apiVersion": "templates.gatekeeper.sh/v1",
		"kind":       "ConstraintTemplate",
		"metadata":   map[string]interface{}{"name": fmt.Sprintf("noop%d", i)},
		"spec": map[string]interface{}{
			"crd": map[string]interface{}{"spec": map[string]interface{}{"names": map[string]interface{}{"kind": kind}}},
			"targets": []interface{}{map[string]interface{}{
				"target": "admission.k8s.gatekeeper.sh",
				"rego":   fmt.Sprintf("package noop%d\nviolation[{\"msg\": m}] {\n  input.review.object.spec.nothing\n  m := \"x\"\n}\n", i),
			}},
		},
	}
}

// BenchmarkEngineOverhead reviews the pipeline pod against 1 and 40
// constraints whose templates do nothing: what the engine itself costs per
// review and per constraint, whatever the policies.
func BenchmarkEngineOverhead(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 40} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e, err := New()
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i++ {
				t, err := NewTemplate(&unstructured.Unstructured{Object: noopTemplate(i)}, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := e.AddTemplate(ctx, t); err != nil {
					b.Fatal(err)
				}
				c := &unstructured.Unstructured{Object: map[string]interface{}{
					"apiVersion": "constraints.gatekeeper.sh/v1beta1",
					"kind":       fmt.Sprintf("Noop%d", i),
					"metadata":   map[string]interface{}{"name": "c"},
					"spec":       map[string]interface{}{},
				}}
				if err := e.AddConstraint(ctx, c, nil); err != nil {
					b.Fatal(err)
				}
			}
			req := pipelinePodRequest(b)
			in := &target.Request{AdmissionRequest: req, Source: match.SourceOriginal}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Review(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReviewCache measures the review cache on 64 copies of the
// profile's notebook pod (as the API server sends it), reviewed in turn:
// without the cache (the baseline); relabelled, so that every review
// misses (a label set some templates iterate over differs; the runs
// kept are checked and a new one recorded, the cache's cost when it
// cannot help); and renamed, so that every review after the first is
// answered from it (no template of the profile reads the name).
func BenchmarkReviewCache(b *testing.B) {
	base := podRequest(b, "notebook_pod_apiserver.json")
	copies := func(change func(*unstructured.Unstructured, int)) []*target.Request {
		var pod unstructured.Unstructured
		if err := pod.UnmarshalJSON(base.Object.Raw); err != nil {
			b.Fatal(err)
		}
		var out []*target.Request
		for i := 0; i < 64; i++ {
			c := pod.DeepCopy()
			change(c, i)
			raw, err := c.MarshalJSON()
			if err != nil {
				b.Fatal(err)
			}
			req := *base
			req.Name, req.Object = c.GetName(), runtime.RawExtension{Raw: raw}
			out = append(out, &target.Request{AdmissionRequest: &req, Source: match.SourceOriginal})
		}
		return out
	}
	relabelled := copies(func(u *unstructured.Unstructured, i int) {
		labels := u.GetLabels()
		labels["app.kubernetes.io/instance"] = fmt.Sprintf("analysis-%d", i)
		u.SetLabels(labels)
	})
	renamed := copies(func(u *unstructured.Unstructured, i int) { u.SetName(fmt.Sprintf("analysis-%d", i)) })
	for _, tc := range []struct {
		name  string
		cache int
		reqs  []*target.Request
	}{
		{"off", 0, relabelled},
		{"misses", 256, relabelled},
		{"hits", 256, renamed},
	} {
		b.Run(tc.name, func(b *testing.B) {
			counts := &EvaluatorCounts{}
			e := profileEngineWith(b, WithReviewCache(tc.cache), WithEvaluatorCounts(counts))
			ctx := context.Background()
			// The first review builds the program; its copy comes last in
			// the loop, so that relabelled copies miss from the start.
			if _, err := e.Review(ctx, tc.reqs[len(tc.reqs)-1], AtEnforcementPoint(EnforcementPointWebhook)); err != nil {
				b.Fatal(err)
			}
			h0 := counts.CacheHits.Load()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := e.Review(ctx, tc.reqs[i%len(tc.reqs)], AtEnforcementPoint(EnforcementPointWebhook)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(counts.CacheHits.Load()-h0)/float64(i), "hits/op")
		})
	}
}
