package admission

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/imagegate"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
)

// BenchmarkPipelinePodReview measures what the image gate adds to the
// review of an Argo pipeline pod (three images, all with verdicts in the
// index, one of them excepted): the first sub-benchmark, without the gate,
// is the baseline hack/benchratio reports the other against.
func BenchmarkPipelinePodReview(b *testing.B) {
	const repo = "k8scc01covidacr.azurecr.io/team/etl"
	digests := []string{
		"sha256:1111111111111111111111111111111111111111111111111111111111111111",
		"sha256:2222222222222222222222222222222222222222222222222222222222222222",
		"sha256:3333333333333333333333333333333333333333333333333333333333333333",
	}
	ix := verdict.New()
	for i, d := range digests {
		is := &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: v1alpha1.ImageScanSpec{Digest: d, Repository: repo},
			Status: v1alpha1.ImageScanStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue}}}}
		if i == 0 {
			is.Status.Fixable.Critical = 1
			is.Status.FixableCriticalHigh = []v1alpha1.FixableVulnerability{{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox", FixedVersion: "1.37.0-r19"}}
		}
		ix.Set(is)
	}
	gate := imagegate.New(imagegate.Config{Verdicts: ix})
	ex, err := imagegate.CompileException(&v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: "e"},
		Spec: v1alpha1.ImageExceptionSpec{CVEIDs: []string{"CVE-2099-0001"}, Images: []string{repo},
			Expires: metav1.Now(), Reason: "bench"}})
	if err != nil {
		b.Fatal(err)
	}
	ex.Expires = ex.Expires.AddDate(1, 0, 0)
	gate.SetExceptions([]*imagegate.Exception{ex})

	f := false
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "step", Namespace: "alice", Labels: map[string]string{"workflows.argoproj.io/workflow": "wf"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: repo + "@" + digests[1]}},
			Containers: []corev1.Container{
				{Name: "main", Image: repo + "@" + digests[0], SecurityContext: &corev1.SecurityContext{Privileged: &f}},
				{Name: "wait", Image: repo + "@" + digests[2]},
			}}}
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1",
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Name: "step", Namespace: "alice",
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}}

	for _, bc := range []struct {
		name   string
		images ImageReviewer
	}{{"without-gate", nil}, {"with-gate", gate}} {
		b.Run(bc.name, func(b *testing.B) {
			v := newValidator(b, constraint("a-deny", "deny", ""))
			v.cfg.Images = bc.images
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if resp := v.Handle(ctx, req); !resp.Allowed {
					b.Fatalf("denied: %v", resp.Result)
				}
			}
		})
	}
}
