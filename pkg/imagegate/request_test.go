package imagegate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func request(t testing.TB, op admissionv1.Operation, group, kind string, obj, old any) admission.Request {
	t.Helper()
	raw := func(o any) []byte {
		if o == nil {
			return nil
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind}, Namespace: "alice", Name: "x",
		Operation: op, Object: runtime.RawExtension{Raw: raw(obj)}, OldObject: runtime.RawExtension{Raw: raw(old)}}}
}

func pod(labels map[string]string, imgs ...string) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "alice", Labels: labels}}
	for i, img := range imgs {
		name := "main"
		if i > 0 {
			name = "wait"
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: img})
	}
	return p
}

func TestReviewRequest(t *testing.T) {
	vuln := repo + "@" + vulnDigest
	fixed := repo + "@" + fixedDigest
	argo := map[string]string{"workflows.argoproj.io/workflow": "wf"}
	workflow := map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
		"metadata": map[string]any{"name": "wf", "namespace": "alice"},
		"spec": map[string]any{"templates": []any{
			map[string]any{"name": "prep", "container": map[string]any{"image": fixed}},
			map[string]any{"name": "train", "script": map[string]any{"image": vuln}},
		}}}
	pipelineRun := map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
		"metadata": map[string]any{"name": "pr", "namespace": "alice"},
		"spec": map[string]any{"pipelineSpec": map[string]any{"tasks": []any{
			map[string]any{"name": "t", "taskSpec": map[string]any{"steps": []any{map[string]any{"name": "s", "image": vuln}}}},
		}}}}
	tests := []struct {
		name   string
		req    admission.Request
		denied bool
	}{
		{"pipeline pod on the vulnerable image", request(t, admissionv1.Create, "", "Pod", pod(argo, vuln), nil), true},
		{"the engine's container counts too", request(t, admissionv1.Create, "", "Pod", pod(argo, fixed, vuln), nil), true},
		{"pipeline pod on the fixed image", request(t, admissionv1.Create, "", "Pod", pod(argo, fixed), nil), false},
		{"a pod that is not a pipeline step is not gated", request(t, admissionv1.Create, "", "Pod", pod(nil, vuln), nil), false},
		{"update that keeps the images", request(t, admissionv1.Update, "", "Pod", pod(argo, vuln), pod(argo, vuln)), false},
		{"update that adds a vulnerable image", request(t, admissionv1.Update, "", "Pod", pod(argo, fixed, vuln), pod(argo, fixed)), true},
		{"delete passes", request(t, admissionv1.Delete, "", "Pod", nil, pod(argo, vuln)), false},
		{"Argo Workflow by any template", request(t, admissionv1.Create, "argoproj.io", "Workflow", workflow, nil), true},
		{"Tekton PipelineRun by its steps", request(t, admissionv1.Create, "tekton.dev", "PipelineRun", pipelineRun, nil), true},
		{"other kinds pass", request(t, admissionv1.Create, "apps", "Deployment", map[string]any{"spec": 1}, nil), false},
	}
	g := New(Config{Verdicts: verdicts(), Now: func() time.Time { return now }})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			denies, _, _ := g.ReviewRequest(context.Background(), tc.req, nil, nil, false)
			if got := len(denies) > 0; got != tc.denied {
				t.Fatalf("denied = %v, want %v (%q)", got, tc.denied, denies)
			}
			if tc.denied && !strings.Contains(strings.Join(denies, "\n"), "CVE-2026-0001 (libcrypto3 fixed in 3.5.2-r0)") {
				t.Errorf("denial %q does not name the CVE", denies)
			}
		})
	}
}

func TestReviewRequest_MalformedObjectIsDeniedNamingIt(t *testing.T) {
	g := New(Config{Verdicts: verdicts()})
	req := request(t, admissionv1.Create, "", "Pod", nil, nil)
	req.Object.Raw = []byte(`{"spec":{"containers":7}}`)
	denies, _, _ := g.ReviewRequest(context.Background(), req, nil, nil, false)
	if len(denies) != 1 || !strings.Contains(denies[0], "Pod alice/x: decoding the pod") {
		t.Errorf("denies = %q", denies)
	}
}

// With the object's metadata known (the review's parse), a pod it does not
// make a pipeline pod is not decoded again; one it does is gated as usual.
func TestReviewRequest_KnownMetadata(t *testing.T) {
	g := New(Config{Verdicts: verdicts(), Now: func() time.Time { return now }})
	malformed := request(t, admissionv1.Create, "", "Pod", nil, nil)
	malformed.Object.Raw = []byte(`{"metadata":{"labels":{"workflows.argoproj.io/workflow":"w"}},"spec":{"containers":7}}`)
	notebook := &metav1.ObjectMeta{Labels: map[string]string{"notebook-name": "nb"}}
	if denies, _, _ := g.ReviewRequest(context.Background(), malformed, nil, notebook, false); len(denies) != 0 {
		t.Errorf("not a pipeline pod by its known metadata, yet decoded: %q", denies)
	}
	argo := map[string]string{"workflows.argoproj.io/workflow": "wf"}
	if denies, _, _ := g.ReviewRequest(context.Background(), malformed, nil, &metav1.ObjectMeta{Labels: argo}, false); len(denies) != 1 || !strings.Contains(denies[0], "decoding the pod") {
		t.Errorf("a pipeline pod by its known metadata: denies %q, want the decoding error", denies)
	}
	vuln := request(t, admissionv1.Create, "", "Pod", pod(argo, repo+"@"+vulnDigest), nil)
	kfp := &metav1.ObjectMeta{Labels: argo, Annotations: map[string]string{"pipelines.kubeflow.org/v2_component": "true"}}
	if denies, _, _ := g.ReviewRequest(context.Background(), vuln, nil, kfp, false); len(denies) != 1 {
		t.Errorf("pipeline pod on the vulnerable image, metadata known: denies %q", denies)
	}
}

// FuzzReviewRequest feeds arbitrary objects of the gated kinds: every one
// gets an answer without a panic, and a denial always says why.
func FuzzReviewRequest(f *testing.F) {
	f.Add("Pod", []byte(`{"metadata":{"labels":{"workflows.argoproj.io/workflow":"w"}},"spec":{"containers":[{"name":"main","image":"registry.example.ca/team/etl@`+vulnDigest+`"}]}}`))
	f.Add("Workflow", []byte(`{"spec":{"templates":[{"container":{"image":"x"}},{"steps":[[{"name":"a"}]]},{"containerSet":{"containers":[{"image":7}]}}]}}`))
	f.Add("PipelineRun", []byte(`{"spec":{"pipelineSpec":{"tasks":[{"taskSpec":{"steps":[{"image":"::"}]}}]}}}`))
	f.Add("Pod", []byte(`{"spec":{"initContainers":null,"ephemeralContainers":[{"image":""}]}}`))
	groups := map[string]string{"Pod": "", "Workflow": "argoproj.io", "PipelineRun": "tekton.dev"}
	g := New(Config{Verdicts: verdicts(), Scans: &recorder{}, Usage: &recorder{}})
	p, _ := CompilePolicy(&fuzzPolicy)
	g.SetPolicy(p)
	f.Fuzz(func(t *testing.T, kind string, raw []byte) {
		group, ok := groups[kind]
		if !ok {
			return
		}
		req := request(t, admissionv1.Create, group, kind, nil, nil)
		req.Object.Raw = raw
		denies, _, _ := g.ReviewRequest(context.Background(), req, nil, nil, false)
		for _, d := range denies {
			if !strings.HasPrefix(d, Source+" ") {
				t.Fatalf("denial without its source: %q", d)
			}
		}
	})
}

// fuzzPolicy denies unscanned images, so the fuzzer reaches every branch.
var fuzzPolicy = v1alpha1.ImagePolicySpec{DefaultUnscanned: v1alpha1.UnscannedDeny, MinimumSeverity: v1alpha1.SeverityHigh}

// BenchmarkReviewRequest is the gate's own cost on an Argo pipeline pod
// whose image is denied (the costliest path: message built), against
// decoding the same request's pod alone (baseline).
func BenchmarkReviewRequest(b *testing.B) {
	argo := map[string]string{"workflows.argoproj.io/workflow": "wf"}
	req := request(b, admissionv1.Create, "", "Pod", pod(argo, repo+"@"+vulnDigest, repo+"@"+fixedDigest), nil)
	g := New(Config{Verdicts: verdicts()})
	b.Run("decode-pod", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p := &corev1.Pod{}
			if err := json.Unmarshal(req.Object.Raw, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d, _, _ := g.ReviewRequest(context.Background(), req, nil, nil, false); len(d) != 1 {
				b.Fatal(d)
			}
		}
	})
}

// BenchmarkReviewRequest_KnownMetadata is the gate on a notebook pod as the
// API server writes it (compacted, as in an AdmissionReview): decoding it
// (baseline), against passing it on the metadata the review already
// parsed, as the webhook does.
func BenchmarkReviewRequest_KnownMetadata(b *testing.B) {
	g := New(Config{Verdicts: verdicts()})
	raw, err := os.ReadFile(filepath.Join("..", "policy", "testdata", "bench", "notebook_pod_apiserver.json"))
	if err != nil {
		b.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		b.Fatal(err)
	}
	notebook := request(b, admissionv1.Create, "", "Pod", nil, nil)
	notebook.Object.Raw = compact.Bytes()
	var p corev1.Pod
	if err := json.Unmarshal(notebook.Object.Raw, &p); err != nil {
		b.Fatal(err)
	}
	known := &metav1.ObjectMeta{Labels: p.Labels, Annotations: p.Annotations}
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d, _, _ := g.ReviewRequest(context.Background(), notebook, nil, nil, false); len(d) != 0 {
				b.Fatal(d)
			}
		}
	})
	b.Run("known", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d, _, _ := g.ReviewRequest(context.Background(), notebook, nil, known, false); len(d) != 0 {
				b.Fatal(d)
			}
		}
	})
}

// Ephemeral containers reach the API server only through an UPDATE of
// pods/ephemeralcontainers: the ones it adds to a pipeline pod are judged,
// those the pod already had are not, and other subresources pass.
func TestReviewRequest_EphemeralContainers(t *testing.T) {
	vuln := repo + "@" + vulnDigest
	fixed := repo + "@" + fixedDigest
	argo := map[string]string{"workflows.argoproj.io/workflow": "wf"}
	debugged := func(labels map[string]string, ephemeral ...corev1.EphemeralContainer) *corev1.Pod {
		p := pod(labels, fixed)
		p.Spec.EphemeralContainers = ephemeral
		return p
	}
	debug := func(name, image string) corev1.EphemeralContainer {
		return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: name, Image: image}}
	}
	subresource := func(sub string, obj, old *corev1.Pod) admission.Request {
		req := request(t, admissionv1.Update, "", "Pod", obj, old)
		req.SubResource = sub
		return req
	}
	tests := []struct {
		name   string
		req    admission.Request
		denied bool
	}{
		{"adding a container on the vulnerable image",
			subresource("ephemeralcontainers", debugged(argo, debug("debugger", vuln)), debugged(argo)), true},
		{"adding one beside an existing one",
			subresource("ephemeralcontainers", debugged(argo, debug("a", fixed), debug("b", vuln)), debugged(argo, debug("a", fixed))), true},
		{"adding one on the fixed image",
			subresource("ephemeralcontainers", debugged(argo, debug("debugger", fixed)), debugged(argo)), false},
		{"an ephemeral container the pod already had is not judged again",
			subresource("ephemeralcontainers", debugged(argo, debug("old", vuln), debug("new", fixed)), debugged(argo, debug("old", vuln))), false},
		{"a pod that is not a pipeline step is not gated",
			subresource("ephemeralcontainers", debugged(nil, debug("debugger", vuln)), debugged(nil)), false},
		{"other subresources pass",
			subresource("status", debugged(argo, debug("debugger", vuln)), debugged(argo)), false},
	}
	g := New(Config{Verdicts: verdicts(), Now: func() time.Time { return now }})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			denies, _, _ := g.ReviewRequest(context.Background(), tc.req, nil, nil, false)
			if got := len(denies) > 0; got != tc.denied {
				t.Fatalf("denied = %v, want %v (%q)", got, tc.denied, denies)
			}
			if tc.denied && !strings.Contains(strings.Join(denies, "\n"), "image "+vuln+": CVE-2026-0001") {
				t.Errorf("denial %q does not name the image and CVE", denies)
			}
		})
	}
}

// ReviewRequest leaves the recording of exception use to its caller, and a
// dry run leaves no trace: no scan requested, nothing to record. Nor does a
// request the caller denies anyway request a scan.
func TestReviewRequest_SideEffects(t *testing.T) {
	vuln := repo + "@" + vulnDigest
	unscanned := repo + "@" + newDigest
	argo := map[string]string{"workflows.argoproj.io/workflow": "wf"}
	tests := []struct {
		name   string
		pod    *corev1.Pod
		dryRun bool
		// deniedElsewhere is passed to ReviewRequest.
		deniedElsewhere bool
		denied          bool
		wantScans       []string
		wantUsed        []string
	}{
		{name: "an excepted image: the use is recorded once admitted", pod: pod(argo, vuln), wantUsed: []string{"etl-openssl"}},
		{name: "an excepted image on a dry run: nothing to record", pod: pod(argo, vuln), dryRun: true},
		{name: "an unscanned digest: a scan is requested", pod: pod(argo, unscanned), denied: true, wantScans: []string{newDigest}},
		{name: "an unscanned digest on a dry run: no scan is requested", pod: pod(argo, unscanned), dryRun: true, denied: true},
		{name: "an unscanned digest in a request denied elsewhere: no scan is requested", pod: pod(argo, unscanned), deniedElsewhere: true, denied: true},
		{name: "an excepted image beside a denied one: nothing to record", pod: pod(argo, vuln, unscanned), denied: true, wantScans: []string{newDigest}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			g := New(Config{Verdicts: verdicts(), Scans: rec, Usage: rec, Now: func() time.Time { return now }})
			p, err := CompilePolicy(&v1alpha1.ImagePolicySpec{DefaultUnscanned: v1alpha1.UnscannedDeny})
			if err != nil {
				t.Fatal(err)
			}
			g.SetPolicy(p)
			g.SetExceptions([]*Exception{exception("etl-openssl", nil)})
			req := request(t, admissionv1.Create, "", "Pod", tc.pod, nil)
			req.DryRun = &tc.dryRun
			denies, _, admitted := g.ReviewRequest(context.Background(), req, nil, nil, tc.deniedElsewhere)
			if got := len(denies) > 0; got != tc.denied {
				t.Fatalf("denied = %v, want %v (%q)", got, tc.denied, denies)
			}
			if len(rec.used) > 0 {
				t.Fatalf("exception use %q recorded before the caller admitted the request", rec.used)
			}
			if admitted != nil {
				admitted()
			}
			if diff := cmp.Diff(tc.wantScans, rec.scans); diff != "" {
				t.Errorf("scan requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUsed, rec.used); diff != "" {
				t.Errorf("exceptions used (-want +got):\n%s", diff)
			}
		})
	}
}
