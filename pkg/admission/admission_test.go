package admission

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/imagegate"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
)

const privilegedTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snoprivileged
spec:
  crd:
    spec:
      names:
        kind: K8sNoPrivileged
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8snoprivileged
              violation contains {"msg": sprintf("container %v is privileged", [c.name])} if {
                some c in input.review.object.spec.containers
                c.securityContext.privileged
              }
`

func constraint(name, action string, extra string) string {
	return "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoPrivileged\nmetadata:\n  name: " + name +
		"\nspec:\n  enforcementAction: " + action + "\n" + extra
}

type namespaces map[string]*corev1.Namespace

func (n namespaces) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return n[name], nil
}

func newValidator(t testing.TB, constraints ...string) *Validator {
	t.Helper()
	ctx := context.Background()
	e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointWebhook))
	if err != nil {
		t.Fatal(err)
	}
	add := func(src string, template bool) {
		docs, err := manifest.Parse("test.yaml", []byte(src), manifest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if template {
			tm, err := policy.NewTemplate(docs[0].Object, docs[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := e.AddTemplate(ctx, tm); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := e.AddConstraint(ctx, docs[0].Object, docs[0]); err != nil {
			t.Fatal(err)
		}
	}
	add(privilegedTemplate, true)
	for _, c := range constraints {
		add(c, false)
	}
	v, err := NewValidator(ValidatorConfig{
		Engine: e,
		Namespaces: namespaces{
			"alice": {ObjectMeta: metav1.ObjectMeta{Name: "alice", Labels: map[string]string{"team": "a"}}},
		},
		Exemptions:     &Exemptions{Own: "daaas-guard", MayIgnore: []match.Glob{"kube-*"}},
		Metrics:        NewMetrics(prometheus.NewRegistry()),
		Log:            logr.Discard(),
		ServiceAccount: "system:serviceaccount:daaas-guard:daaas-guard-webhook",
		EvalTimeout:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func podRequest(t testing.TB, ns string, privileged bool) admission.Request {
	t.Helper()
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "x", SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
		}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Name: "p", Namespace: ns,
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		UserInfo: authenticationv1.UserInfo{Username: "alice@statcan.gc.ca"},
	}}
}

func TestValidator(t *testing.T) {
	tests := []struct {
		name        string
		constraints []string
		req         func(t *testing.T) admission.Request
		allowed     bool
		wantMsg     string
		wantWarning string
	}{
		{
			name:        "deny lists every message prefixed by its constraint",
			constraints: []string{constraint("a-deny", "deny", ""), constraint("b-deny", "deny", "")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "alice", true) },
			wantMsg:     "[a-deny] container main is privileged\n[b-deny] container main is privileged",
		},
		{
			name:        "warn admits with a warning",
			constraints: []string{constraint("w", "warn", "")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "alice", true) },
			allowed:     true,
			wantWarning: "[w] container main is privileged",
		},
		{
			name:        "dryrun admits silently",
			constraints: []string{constraint("d", "dryrun", "")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "alice", true) },
			allowed:     true,
		},
		{
			name:        "compliant pod admitted",
			constraints: []string{constraint("a-deny", "deny", "")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "alice", false) },
			allowed:     true,
		},
		{
			name:        "own namespace is never reviewed",
			constraints: []string{constraint("a-deny", "deny", "")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "daaas-guard", true) },
			allowed:     true,
		},
		{
			name:        "own service account is always allowed",
			constraints: []string{constraint("a-deny", "deny", "")},
			req: func(t *testing.T) admission.Request {
				r := podRequest(t, "alice", true)
				r.UserInfo.Username = "system:serviceaccount:daaas-guard:daaas-guard-webhook"
				return r
			},
			allowed: true,
		},
		{
			name:        "namespaceSelector uses the cached Namespace",
			constraints: []string{constraint("team-a", "deny", "  match:\n    namespaceSelector:\n      matchLabels: {team: a}\n")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "alice", true) },
			wantMsg:     "[team-a] container main is privileged",
		},
		{
			name:        "a namespace missing from the cache fails closed under namespaceSelector",
			constraints: []string{constraint("team-a", "deny", "  match:\n    namespaceSelector:\n      matchLabels: {team: a}\n")},
			req:         func(t *testing.T) admission.Request { return podRequest(t, "unknown", false) },
			wantMsg:     "[team-a] unable to match constraints",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newValidator(t, tc.constraints...)
			resp := v.Handle(context.Background(), tc.req(t))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.wantMsg != "" && (resp.Result == nil || !strings.HasPrefix(resp.Result.Message, tc.wantMsg)) {
				t.Errorf("message = %q, want prefix %q", resp.Result.Message, tc.wantMsg)
			}
			if tc.wantWarning != "" && (len(resp.Warnings) != 1 || resp.Warnings[0] != tc.wantWarning) {
				t.Errorf("warnings = %q, want %q", resp.Warnings, tc.wantWarning)
			}
			if tc.wantWarning == "" && len(resp.Warnings) != 0 {
				t.Errorf("unexpected warnings %q", resp.Warnings)
			}
		})
	}
}

func TestValidator_NotReadyAsksToRetry(t *testing.T) {
	v := newValidator(t, constraint("a", "deny", ""))
	v.cfg.Ready = func() bool { return false }
	resp := v.Handle(context.Background(), podRequest(t, "alice", false))
	if resp.Allowed || resp.Result.Code != 503 || !strings.Contains(resp.Result.Message, "retry") {
		t.Errorf("got %+v", resp.Result)
	}
}

func TestValidator_OverloadGivesAClearError(t *testing.T) {
	v := newValidator(t, constraint("a", "deny", ""))
	v.cfg.EvalTimeout = 20 * time.Millisecond
	queued := 0
	v.cfg.Queued = func() { queued++ }
	v.sem = make(chan struct{}) // no free evaluation slot
	resp := v.Handle(context.Background(), podRequest(t, "alice", false))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "overloaded") {
		t.Errorf("got %+v", resp.Result)
	}
	if queued != 1 {
		t.Errorf("Queued called %d times, want 1", queued)
	}
}

func TestValidator_QueuedOnlyWhenWaitingForASlot(t *testing.T) {
	v := newValidator(t, constraint("a", "deny", ""))
	var queued atomic.Int32
	v.cfg.Queued = func() { queued.Add(1) }
	v.sem = make(chan struct{}, 1)
	if resp := v.Handle(context.Background(), podRequest(t, "alice", true)); resp.Allowed {
		t.Fatalf("got %+v", resp.Result)
	}
	if n := queued.Load(); n != 0 {
		t.Fatalf("Queued called %d times with a slot free, want 0", n)
	}
	v.sem <- struct{}{} // the only slot is taken
	done := make(chan admission.Response)
	req := podRequest(t, "alice", true)
	go func() { done <- v.Handle(context.Background(), req) }()
	for queued.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	<-v.sem // freed: the waiting review takes it
	if resp := <-done; resp.Allowed {
		t.Errorf("got %+v", resp.Result)
	}
	if n := queued.Load(); n != 1 {
		t.Errorf("Queued called %d times, want 1", n)
	}
	var m dto.Metric
	if err := v.cfg.Metrics.SlotWait.Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() != 2 || h.GetBucket()[0].GetCumulativeCount() != 1 {
		t.Errorf("slot waits: %d observed, %d of them 0; want 2 and 1", h.GetSampleCount(), h.GetBucket()[0].GetCumulativeCount())
	}
	if len(v.sem) != 0 {
		t.Errorf("%d slots still taken after the reviews", len(v.sem))
	}
}

func TestLabelGuard(t *testing.T) {
	g := &LabelGuard{Exemptions: &Exemptions{Own: "daaas-guard", MayIgnore: []match.Glob{"kube-*"}}}
	nsReq := func(name string, labels map[string]string) admission.Request {
		raw, _ := json.Marshal(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Namespace"}, Name: name, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw}}}
	}
	ignore := map[string]string{IgnoreLabel: "x"}
	for _, tc := range []struct {
		req     admission.Request
		allowed bool
	}{
		{nsReq("kube-system", ignore), true},
		{nsReq("daaas-guard", ignore), true},
		{nsReq("alice", ignore), false},
		{nsReq("alice", map[string]string{"team": "a"}), true},
	} {
		if got := g.Handle(context.Background(), tc.req).Allowed; got != tc.allowed {
			t.Errorf("%s %v: allowed = %v, want %v", tc.req.Name, tc.req.Object, got, tc.allowed)
		}
	}
}

// FuzzValidator feeds arbitrary admission requests to the handler: it must
// answer every one without panicking.
func FuzzValidator(f *testing.F) {
	good, _ := json.Marshal(podRequest(f, "alice", true).AdmissionRequest)
	f.Add(good)
	f.Add([]byte(`{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"DELETE","namespace":"alice"}`))
	f.Add([]byte(`{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"UPDATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"a":1}}},"oldObject":[]}`))
	f.Add([]byte(`{"operation":"CONNECT","kind":{"kind":"PodExecOptions"},"object":{"kind":"PodExecOptions","apiVersion":"v1"}}`))
	v := newValidator(f, constraint("a-deny", "deny", ""), constraint("team-a", "warn", "  match:\n    namespaceSelector:\n      matchLabels: {team: a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req admissionv1.AdmissionRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return
		}
		resp := v.Handle(context.Background(), admission.Request{AdmissionRequest: req})
		if !resp.Allowed && resp.Result == nil {
			t.Fatal("denied without a reason")
		}
	})
}

type fakeImages struct {
	denies, warns []string
	// known records the metadata each call was given.
	known *[]*metav1.ObjectMeta
	// admitted is returned as is.
	admitted func()
}

func (f fakeImages) ReviewRequest(_ context.Context, _ admission.Request, _ *corev1.Namespace, known *metav1.ObjectMeta, _ bool) ([]string, []string, func()) {
	if f.known != nil {
		*f.known = append(*f.known, known)
	}
	return f.denies, f.warns, f.admitted
}

// The image gate gets the object's labels and annotations from the
// review's parse, and nothing when they are not all strings (it then
// decodes the pod itself and names what is wrong).
func TestValidator_ImageGateGetsTheParsedMetadata(t *testing.T) {
	v := newValidator(t, constraint("w", "warn", ""))
	var known []*metav1.ObjectMeta
	v.cfg.Images = fakeImages{known: &known}
	req := podRequest(t, "alice", false)
	req.Object.Raw = []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":"web"},"annotations":{"note":"x"}},"spec":{"containers":[{"name":"main","image":"x"}]}}`)
	v.Handle(context.Background(), req)
	req.Object.Raw = []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":1}},"spec":{"containers":[{"name":"main","image":"x"}]}}`)
	v.Handle(context.Background(), req)
	want := []*metav1.ObjectMeta{{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "x"}}, nil}
	if diff := cmp.Diff(want, known); diff != "" {
		t.Errorf("metadata given to the image gate (-want +got):\n%s", diff)
	}
}

func TestValidator_ImageVerdictsJoinTheConstraints(t *testing.T) {
	v := newValidator(t, constraint("w", "warn", ""))
	v.cfg.Images = fakeImages{denies: []string{"[image-vulnerabilities] image x: CVE-1"}, warns: []string{"[image-vulnerabilities] y"}}
	resp := v.Handle(context.Background(), podRequest(t, "alice", true))
	if resp.Allowed || resp.Result.Message != "[image-vulnerabilities] image x: CVE-1" {
		t.Errorf("got allowed=%v %+v", resp.Allowed, resp.Result)
	}
	if diff := cmp.Diff([]string{"[image-vulnerabilities] y", "[w] container main is privileged"}, resp.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

type usage []string

// pipelinePodRequest is podRequest for an Argo pod running imgs.
func pipelinePodRequest(t *testing.T, privileged, dryRun bool, imgs ...string) admission.Request {
	t.Helper()
	req := podRequest(t, "alice", privileged)
	p := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, p); err != nil {
		t.Fatal(err)
	}
	p.Labels = map[string]string{"workflows.argoproj.io/workflow": "wf"}
	p.Spec.Containers[0].Image = imgs[0]
	for _, img := range imgs[1:] {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "wait", Image: img})
	}
	var err error
	if req.Object.Raw, err = json.Marshal(p); err != nil {
		t.Fatal(err)
	}
	req.DryRun = &dryRun
	return req
}

type scanRequests []string

func (s *scanRequests) RequestScan(digest, _ string) { *s = append(*s, digest) }

// A scan is requested only for a request that nothing but its unscanned
// images denies: users cannot have scans queued with pods that a
// constraint refuses anyway.
func TestValidator_ScanRequestedOnlyWhenOnlyTheImagesDeny(t *testing.T) {
	const digest = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	unscanned := "registry.example.ca/team/etl@" + digest
	tests := []struct {
		name      string
		req       admission.Request
		wantMsg   string
		wantScans scanRequests
	}{
		{"denied for its image only", pipelinePodRequest(t, false, false, unscanned), "a scan has been requested", scanRequests{digest}},
		{"denied by a constraint too", pipelinePodRequest(t, true, false, unscanned), "no scan was requested as the request is denied for other reasons too", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var scans scanRequests
			gate := imagegate.New(imagegate.Config{Verdicts: verdict.New(), Scans: &scans})
			ip, err := imagegate.CompilePolicy(&v1alpha1.ImagePolicySpec{DefaultUnscanned: v1alpha1.UnscannedDeny})
			if err != nil {
				t.Fatal(err)
			}
			gate.SetPolicy(ip)
			v := newValidator(t, constraint("a-deny", "deny", ""))
			v.cfg.Images = gate
			resp := v.Handle(context.Background(), tc.req)
			if resp.Allowed || !strings.Contains(resp.Result.Message, tc.wantMsg) {
				t.Errorf("allowed = %v, message %q; want a denial saying %q", resp.Allowed, resp.Result.Message, tc.wantMsg)
			}
			if diff := cmp.Diff(tc.wantScans, scans); diff != "" {
				t.Errorf("scan requests (-want +got):\n%s", diff)
			}
		})
	}
}

func (u *usage) Used(name string) { *u = append(*u, name) }

// An ImageException is used by an admission only when the final answer,
// constraints included, admits it; a dry run uses none.
func TestValidator_ExceptionUseOnlyWhenAdmitted(t *testing.T) {
	const (
		repo      = "registry.example.ca/team/etl"
		excepted  = repo + "@sha256:1111111111111111111111111111111111111111111111111111111111111111"
		unscanned = repo + "@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	)
	ix := verdict.New()
	ix.Set(&v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Spec: v1alpha1.ImageScanSpec{Digest: strings.TrimPrefix(excepted, repo+"@"), Repository: repo},
		Status: v1alpha1.ImageScanStatus{
			Conditions:          []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue}},
			Fixable:             v1alpha1.SeverityCounts{Critical: 1},
			FixableCriticalHigh: []v1alpha1.FixableVulnerability{{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox", FixedVersion: "1.37.0-r19"}}}})
	ex, err := imagegate.CompileException(&v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: "etl"},
		Spec: v1alpha1.ImageExceptionSpec{CVEIDs: []string{"CVE-2099-0001"}, Images: []string{repo},
			Expires: metav1.NewTime(time.Now().Add(time.Hour)), Reason: "fix ships next sprint"}})
	if err != nil {
		t.Fatal(err)
	}
	pipelinePod := func(privileged, dryRun bool, imgs ...string) admission.Request {
		return pipelinePodRequest(t, privileged, dryRun, imgs...)
	}
	tests := []struct {
		name     string
		req      admission.Request
		allowed  bool
		wantUsed usage
	}{
		{"admitted under the exception", pipelinePod(false, false, excepted), true, usage{"etl"}},
		{"denied by a constraint", pipelinePod(true, false, excepted), false, nil},
		{"denied for another image", pipelinePod(false, false, excepted, unscanned), false, nil},
		{"admitted on a dry run", pipelinePod(false, true, excepted), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var used usage
			gate := imagegate.New(imagegate.Config{Verdicts: ix, Usage: &used})
			ip, err := imagegate.CompilePolicy(&v1alpha1.ImagePolicySpec{DefaultUnscanned: v1alpha1.UnscannedDeny})
			if err != nil {
				t.Fatal(err)
			}
			gate.SetPolicy(ip)
			gate.SetExceptions([]*imagegate.Exception{ex})
			v := newValidator(t, constraint("a-deny", "deny", ""))
			v.cfg.Images = gate
			resp := v.Handle(context.Background(), tc.req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if diff := cmp.Diff(tc.wantUsed, used); diff != "" {
				t.Errorf("exceptions used (-want +got):\n%s", diff)
			}
		})
	}
}
