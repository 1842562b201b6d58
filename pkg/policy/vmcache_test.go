package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/target"
)

// profileEngineWith is the platform profile, with its inventory, on an
// engine made with opts.
func profileEngineWith(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	docs, err := kustomizeProfile(t)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	ctx := context.Background()
	e, err := New(append(opts, WithEnforcementPoints(EnforcementPointWebhook))...)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if IsTemplate(d.Object) {
			tp, err := NewTemplate(d.Object, d)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.AddTemplate(ctx, tp); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range docs {
		if IsConstraint(d.Object) {
			if err := e.AddConstraint(ctx, d.Object, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	inv, err := manifest.ReadFile(filepath.Join("..", "..", "policies", "profiles", "daaas", "workloads", "inventory.yaml"), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range inv {
		if err := e.AddData(ctx, d.Object); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// libraryPods are the Pod samples of the policy library, in file order:
// neighbours often differ only in the field their suite is about.
func libraryPods(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	root := filepath.Join("..", "..", "policies")
	files, err := manifest.Files([]string{filepath.Join(root, "general"), filepath.Join(root, "pod-security-policy"), filepath.Join(root, "pipelines")}, ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pods []*unstructured.Unstructured
	for _, f := range files {
		if !strings.Contains(filepath.ToSlash(f), "/samples/") {
			continue
		}
		docs, err := manifest.ReadFile(f, manifest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if d.Object.GetKind() == "Pod" && d.Object.GetAPIVersion() == "v1" {
				pods = append(pods, d.Object)
			}
		}
	}
	if len(pods) < 200 {
		t.Fatalf("only %d library pods", len(pods))
	}
	return pods
}

func createRequest(t *testing.T, pod *unstructured.Unstructured, user string) *target.Request {
	t.Helper()
	b, err := json.Marshal(pod.Object)
	if err != nil {
		t.Fatal(err)
	}
	ns := pod.GetNamespace()
	if ns == "" {
		ns = "alice"
	}
	return &target.Request{AdmissionRequest: &admissionv1.AdmissionRequest{
		UID: types.UID("uid-" + pod.GetName()), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Name: pod.GetName(), Namespace: ns,
		Operation: admissionv1.Create, UserInfo: authUser(user), Object: runtime.RawExtension{Raw: b},
	}, Source: match.SourceOriginal}
}

// Every Pod sample of the library, reviewed in turn by an engine with the
// review cache, gets the answer an engine without it gives: the first
// time (evaluated, or answered from a neighbour's run: neighbours often
// differ only in the field their suite tests), at once again (answered
// from the cache) and renamed (from the cache too unless a template read
// the name, in a message for instance).
func TestReviewCache_LibraryPodsGetTheUncachedAnswer(t *testing.T) {
	ctx := context.Background()
	plain := profileEngineWith(t)
	counts := &EvaluatorCounts{}
	cached := profileEngineWith(t, WithReviewCache(1024), WithEvaluatorCounts(counts))
	review := func(e *Engine, in *target.Request) []resultSummary {
		t.Helper()
		resp, err := e.Review(ctx, in, AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			t.Fatal(err)
		}
		return summarize(resp)
	}
	check := func(step string, pod *unstructured.Unstructured, user string) (hit bool) {
		t.Helper()
		in := createRequest(t, pod, user)
		h0 := counts.CacheHits.Load()
		if diff := cmp.Diff(review(plain, in), review(cached, in)); diff != "" {
			t.Errorf("%s: pod %s/%s by %s (-uncached +cached):\n%s", step, pod.GetNamespace(), pod.GetName(), user, diff)
		}
		return counts.CacheHits.Load() > h0
	}
	pods := libraryPods(t)
	var renamedHits int
	for _, pod := range pods {
		for _, user := range []string{"alice@statcan.gc.ca", "system:serviceaccount:kubeflow:pipeline-runner"} {
			check("first", pod, user)
			if !check("again", pod, user) {
				t.Errorf("pod %s/%s by %s: not answered from the cache the second time", pod.GetNamespace(), pod.GetName(), user)
			}
			renamed := pod.DeepCopy()
			renamed.SetName(pod.GetName() + "-x7k2p")
			if check("renamed", renamed, user) {
				renamedHits++
			}
		}
	}
	if renamedHits < len(pods) {
		t.Errorf("%d of %d renamed pods answered from the cache, want most", renamedHits, 2*len(pods))
	}
	t.Logf("%d reviews: %d answered from the cache, %d evaluated; %d of %d renamed pods from the cache",
		6*len(pods), counts.CacheHits.Load(), counts.CacheMisses.Load(), renamedHits, 2*len(pods))
}

const sprintfTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8ssprintf
spec:
  crd:
    spec:
      names:
        kind: K8sSprintf
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8ssprintf
              violation contains {"msg": msg} if {
                msg := sprintf("replicas %v labels %v", [input.review.object.spec.replicas, input.review.object.metadata.labels])
              }
`

const clockTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sclock
spec:
  crd:
    spec:
      names:
        kind: K8sClock
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: v1
            rego: |
              package k8sclock
              violation contains {"msg": msg} if {
                now := time.now_ns()
                msg := sprintf("%v at %v", [input.review.object.metadata.name, now > 0])
              }
`

// What decides a cached answer is the value as a template sees it: a
// number as the review's parser wrote it, an object read whole with
// every key and value.
func TestReviewCache_ValuesAsWritten(t *testing.T) {
	ctx := context.Background()
	counts := &EvaluatorCounts{}
	plain := newEngineWith(t, nil, sprintfTemplate)
	cached := newEngineWith(t, []Option{WithReviewCache(16), WithEvaluatorCounts(counts)}, sprintfTemplate)
	for _, e := range []*Engine{plain, cached} {
		addConstraint(t, e, constraint("K8sSprintf", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	}
	review := func(e *Engine, pod string) []string {
		t.Helper()
		req := admissionv1.AdmissionRequest{UID: "u", Name: "p", Namespace: "alice", Operation: admissionv1.Create,
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: []byte(pod)}}
		resp, err := e.Review(ctx, &target.Request{AdmissionRequest: &req}, AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			t.Fatal(err)
		}
		return messages(resp)
	}
	pod := func(replicas string, labels string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"alice","labels":%s},"spec":{"replicas":%s}}`, labels, replicas)
	}
	for _, tc := range []struct {
		pod string
		hit bool
	}{
		{pod("1", `{"a":"b"}`), false},
		{pod("1", `{"a":"b"}`), true},
		{pod("1.5", `{"a":"b"}`), false},
		// Numbers reach templates as the review's parser writes them:
		// these two as 1.5 and 1000, like the ones before them.
		{pod("1.50", `{"a":"b"}`), true},
		{pod("1e3", `{"a":"b"}`), false},
		{pod("1000", `{"a":"b"}`), true},
		{pod("1", `{"a":"b","c":"d"}`), false},
		{pod("1", `{"a":"b"}`), true},
		{pod("1", `{"a":"B"}`), false},
	} {
		h0 := counts.CacheHits.Load()
		if diff := cmp.Diff(review(plain, tc.pod), review(cached, tc.pod)); diff != "" {
			t.Errorf("%s (-uncached +cached):\n%s", tc.pod, diff)
		}
		if hit := counts.CacheHits.Load() > h0; hit != tc.hit {
			t.Errorf("%s: answered from the cache %v, want %v", tc.pod, hit, tc.hit)
		}
	}
}

// A template that reads the clock is evaluated every time.
func TestReviewCache_ClockReadingTemplatesAreNotCached(t *testing.T) {
	ctx := context.Background()
	counts := &EvaluatorCounts{}
	e := newEngineWith(t, []Option{WithReviewCache(16), WithEvaluatorCounts(counts)}, clockTemplate, sprintfTemplate)
	addConstraint(t, e, constraint("K8sClock", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	for i := 0; i < 3; i++ {
		resp, err := e.Review(ctx, podObj("alice", "nb", nil), AtEnforcementPoint(EnforcementPointAudit))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"nb at true"}, messages(resp)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	if h, m, vm := counts.CacheHits.Load(), counts.CacheMisses.Load(), counts.VM.Load(); h != 0 || m != 0 || vm != 3 {
		t.Errorf("%d hits, %d misses, %d VM evaluations; want 0, 0, 3", h, m, vm)
	}
	addConstraint(t, e, constraint("K8sSprintf", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"))
	for i := 0; i < 2; i++ {
		if _, err := e.Review(ctx, podObj("alice", "nb", nil), AtEnforcementPoint(EnforcementPointAudit)); err != nil {
			t.Fatal(err)
		}
	}
	if h := counts.CacheHits.Load(); h != 0 {
		t.Errorf("%d hits with the clock's constraint among those matched, want 0", h)
	}
}

// A run that reads a deferred part of the review (a pod's managedFields)
// is not kept; one kept is not used for a review whose deferred part it
// would have to check.
func TestReviewCache_ManagedFields(t *testing.T) {
	ctx := context.Background()
	counts := &EvaluatorCounts{}
	e := newEngineWith(t, []Option{WithReviewCache(16), WithEvaluatorCounts(counts)}, managersTemplate, sprintfTemplate)
	addConstraint(t, e, constraint("K8sManagers", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n    namespaces: [alice]\n"))
	addConstraint(t, e, constraint("K8sSprintf", "all", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n    namespaces: [bob]\n"))
	review := func(ns, managers string) []string {
		t.Helper()
		pod := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nb","namespace":%q,"labels":{"a":"b"}%s},"spec":{"replicas":1}}`, ns, managers)
		req := admissionv1.AdmissionRequest{UID: "u", Name: "nb", Namespace: ns, Operation: admissionv1.Create,
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: []byte(pod)}}
		resp, err := e.Review(ctx, &target.Request{AdmissionRequest: &req}, AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			t.Fatal(err)
		}
		return messages(resp)
	}
	kubectl := `,"managedFields":[{"manager":"kubectl","operation":"Update"}]`
	both := `,"managedFields":[{"manager":"kubectl","operation":"Update"},{"manager":"kubelet","operation":"Update"}]`
	for _, tc := range []struct{ ns, managers, want string }{
		{"alice", kubectl, `managers ["kubectl"] keys ["labels", "managedFields", "name", "namespace"] size 4 old 0 same false`},
		{"alice", both, `managers ["kubectl", "kubelet"] keys ["labels", "managedFields", "name", "namespace"] size 4 old 0 same false`},
		{"alice", "", `managers [] keys ["labels", "name", "namespace"] size 3 old 0 same false`},
		{"alice", kubectl, `managers ["kubectl"] keys ["labels", "managedFields", "name", "namespace"] size 4 old 0 same false`},
		// The echo template reads the labels, beside the deferred part:
		// the second review is answered from the first's run.
		{"bob", kubectl, `replicas 1 labels {"a": "b"}`},
		{"bob", both, `replicas 1 labels {"a": "b"}`},
	} {
		if diff := cmp.Diff([]string{tc.want}, review(tc.ns, tc.managers)); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tc.ns, tc.managers, diff)
		}
	}
	if h := counts.CacheHits.Load(); h != 1 {
		t.Errorf("%d hits, want 1 (the second pod in bob)", h)
	}
}

func TestReviewCache_KeepsTheMostRecentlyUsed(t *testing.T) {
	prog := &vmProgram{}
	fill := func(c *reviewCache, key string, n int) []*cachedRun {
		var runs []*cachedRun
		for i := 0; i < n; i++ {
			r := &cachedRun{}
			c.add(prog, nil, key, r)
			runs = append(runs, r)
		}
		return runs
	}
	kept := func(c *reviewCache) map[string]int {
		out := map[string]int{}
		for k, runs := range c.runs {
			out[k] = len(runs)
		}
		return out
	}
	c := newReviewCache(40)
	fill(c, "a", 20)
	b := fill(c, "b", perKey)
	if diff := cmp.Diff(map[string]int{"a": perKey, "b": perKey}, kept(c)); diff != "" {
		t.Errorf("runs by key (-want +got):\n%s", diff)
	}
	fill(c, "c", perKey)
	if diff := cmp.Diff(map[string]int{"b": perKey, "c": perKey}, kept(c)); diff != "" {
		t.Errorf("after c, the least recently used key goes (-want +got):\n%s", diff)
	}
	// A run answered moves to the front, and its key to the end.
	c.used("b", b[0])
	if got := c.candidates(prog, nil, "b")[0]; got != b[0] {
		t.Error("the run just used is not the first candidate")
	}
	fill(c, "d", 9)
	if diff := cmp.Diff(map[string]int{"b": perKey, "d": 9}, kept(c)); diff != "" {
		t.Errorf("after b was used (-want +got):\n%s", diff)
	}
	if c.size != 9+perKey {
		t.Errorf("size %d, want %d", c.size, 9+perKey)
	}
	if got := c.candidates(&vmProgram{}, nil, "b"); got != nil {
		t.Errorf("another program's runs: %d, want none", len(got))
	}

	// A cache smaller than perKey keeps its latest key's runs.
	small := newReviewCache(5)
	fill(small, "a", 3)
	fill(small, "b", 10)
	if diff := cmp.Diff(map[string]int{"b": 5}, kept(small)); diff != "" {
		t.Errorf("small cache (-want +got):\n%s", diff)
	}
	if newReviewCache(0) != nil {
		t.Error("a cache of size 0 is not nil")
	}
}

// Library pods with one value changed (a leaf of the pod, chosen at
// random with a fixed seed, changed to another value of its type, or to
// null), each reviewed right after its original with the review cache,
// get the answer an engine without the cache gives. FuzzReviewCache does
// the same with values of the fuzzer's choosing.
func TestReviewCache_EditedPodsGetTheUncachedAnswer(t *testing.T) {
	ctx := context.Background()
	pods := libraryPods(t)
	plain := profileEngineWith(t)
	counts := &EvaluatorCounts{}
	cached := profileEngineWith(t, WithReviewCache(64), WithEvaluatorCounts(counts))
	rng := rand.New(rand.NewPCG(27, 11))
	edits := 400
	if testing.Short() {
		edits = 100
	}
	for n := 0; n < edits; n++ {
		pod := pods[rng.IntN(len(pods))]
		var leaves [][]string
		collectLeaves(pod.Object, nil, &leaves)
		slices.SortFunc(leaves, slices.Compare)
		path := leaves[rng.IntN(len(leaves))]
		old := lookupPath(pod.Object, path)
		var v interface{}
		switch x := old.(type) {
		case string:
			v = x + "x"
		case bool:
			v = !x
		case int64:
			v = x + 1
		case float64:
			v = x + 1
		}
		if rng.IntN(5) == 0 {
			v = nil
		}
		edited := setPath(pod.DeepCopy().Object, path, v).(map[string]interface{})
		for _, obj := range []map[string]interface{}{pod.Object, edited} {
			u := &unstructured.Unstructured{Object: obj}
			in := createRequest(t, u, "alice@statcan.gc.ca")
			want, wantErr := plain.Review(ctx, in, AtEnforcementPoint(EnforcementPointWebhook))
			got, err := cached.Review(ctx, in, AtEnforcementPoint(EnforcementPointWebhook))
			if wantErr != nil || err != nil {
				// An edit can make the object unreviewable (its kind
				// removed): both must say so alike.
				if fmt.Sprint(wantErr) != fmt.Sprint(err) {
					t.Errorf("%s/%s with %s = %v: error %v uncached, %v cached", pod.GetNamespace(), pod.GetName(), strings.Join(path, "."), v, wantErr, err)
				}
				continue
			}
			if diff := cmp.Diff(summarize(want), summarize(got)); diff != "" {
				t.Errorf("%s/%s with %s = %v (-uncached +cached):\n%s", pod.GetNamespace(), pod.GetName(), strings.Join(path, "."), v, diff)
			}
		}
	}
	t.Logf("%d edits: %d reviews answered from the cache, %d evaluated", edits, counts.CacheHits.Load(), counts.CacheMisses.Load())
}

// collectLeaves appends the path of every value below x that is not an
// object or an array.
func collectLeaves(x interface{}, path []string, out *[][]string) {
	switch x := x.(type) {
	case map[string]interface{}:
		for k, v := range x {
			collectLeaves(v, append(path[:len(path):len(path)], k), out)
		}
	case []interface{}:
		for i, v := range x {
			collectLeaves(v, append(path[:len(path):len(path)], fmt.Sprint(i)), out)
		}
	default:
		*out = append(*out, path)
	}
}

func lookupPath(x interface{}, path []string) interface{} {
	for _, p := range path {
		switch y := x.(type) {
		case map[string]interface{}:
			x = y[p]
		case []interface{}:
			var n int
			fmt.Sscan(p, &n)
			x = y[n]
		}
	}
	return x
}

// FuzzReviewCache reviews a library pod and then the same pod with one
// value changed, with the review cache: the changed pod must get the
// answer an engine without the cache gives, whether or not a template
// reads what changed. Paths are dotted, numbers index arrays; a value
// that is not JSON is set as a string.
func FuzzReviewCache(f *testing.F) {
	pods := libraryPods(f)
	for _, seed := range []struct {
		pod         uint8
		path, value string
	}{
		{0, "metadata.name", `"renamed"`},
		{3, "spec.containers.0.image", `"busybox"`},
		{7, "spec.containers.0.resources.limits.cpu", `"1.0"`},
		{7, "spec.containers.0.resources.limits.cpu", `1`},
		{12, "metadata.labels.app", `"x"`},
		{20, "metadata.annotations", `{}`},
		{31, "spec.securityContext.runAsUser", `0`},
		{40, "spec.hostNetwork", `true`},
		{55, "metadata.namespace", `"bob-jones"`},
		{90, "spec.volumes.0", `{"name":"v","hostPath":{"path":"/"}}`},
		{120, "spec.containers.1", `null`},
	} {
		f.Add(seed.pod, seed.path, []byte(seed.value))
	}
	plain := profileEngineWith(f)
	cached := profileEngineWith(f, WithReviewCache(64))
	ctx := context.Background()
	review := func(e *Engine, pod map[string]interface{}) ([]resultSummary, error) {
		raw, err := json.Marshal(pod)
		if err != nil {
			return nil, err
		}
		req := &admissionv1.AdmissionRequest{UID: "fuzz", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Name: "fuzz", Namespace: "alice",
			Operation: admissionv1.Create, UserInfo: authUser("alice@statcan.gc.ca"), Object: runtime.RawExtension{Raw: raw}}
		resp, err := e.Review(ctx, &target.Request{AdmissionRequest: req, Source: match.SourceOriginal}, AtEnforcementPoint(EnforcementPointWebhook))
		if err != nil {
			return nil, err
		}
		return summarize(resp), nil
	}
	f.Fuzz(func(t *testing.T, i uint8, path string, value []byte) {
		pod := pods[int(i)%len(pods)]
		var v interface{}
		if err := json.Unmarshal(value, &v); err != nil {
			v = string(value)
		}
		edited, ok := setPath(pod.DeepCopy().Object, strings.Split(path, "."), v).(map[string]interface{})
		if !ok {
			return
		}
		for _, obj := range []map[string]interface{}{pod.Object, edited, pod.Object} {
			want, err := review(plain, obj)
			got, err2 := review(cached, obj)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("errors: %v without the cache, %v with it", err, err2)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s = %s (-uncached +cached):\n%s", path, value, diff)
			}
		}
	})
}

// setPath sets v at path below x, making objects on the way; a number
// indexes an array (within its length).
func setPath(x interface{}, path []string, v interface{}) interface{} {
	if len(path) == 0 {
		return v
	}
	switch x := x.(type) {
	case []interface{}:
		var n int
		if _, err := fmt.Sscan(path[0], &n); err == nil && n >= 0 && n < len(x) {
			x[n] = setPath(x[n], path[1:], v)
		}
		return x
	case map[string]interface{}:
		x[path[0]] = setPath(x[path[0]], path[1:], v)
		return x
	}
	return setPath(map[string]interface{}{}, path, v)
}
