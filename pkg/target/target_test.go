package target

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func pod(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]interface{}{"name": name, "namespace": "alice", "labels": map[string]interface{}{"app": "web"}},
	}}
}

func reviewJSON(t *testing.T, in interface{}) map[string]interface{} {
	t.Helper()
	r, err := (&Target{}).NewReview(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Policies read input.review; its shape must be the AdmissionRequest's, as
// in Gatekeeper, including for objects reviewed outside admission.
func TestReview_ShapeForStoredObjects(t *testing.T) {
	got := reviewJSON(t, pod("web"))
	want := map[string]interface{}{
		"uid":       "",
		"kind":      map[string]interface{}{"group": "", "version": "v1", "kind": "Pod"},
		"resource":  map[string]interface{}{"group": "", "version": "", "resource": ""},
		"name":      "web",
		"namespace": "alice",
		"operation": "",
		"userInfo":  map[string]interface{}{},
		"object":    pod("web").Object,
		"oldObject": nil,
		"options":   nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReview_DeleteMovesOldObjectToObject(t *testing.T) {
	got := reviewJSON(t, &Object{Object: pod("gone"), Operation: admissionv1.Delete})
	if diff := cmp.Diff(pod("gone").Object, got["object"]); diff != "" {
		t.Errorf("object (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(pod("gone").Object, got["oldObject"]); diff != "" {
		t.Errorf("oldObject (-want +got):\n%s", diff)
	}
	if got["operation"] != "DELETE" {
		t.Errorf("operation = %v", got["operation"])
	}
}

func TestReview_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   interface{}
		want error
	}{
		{"delete without oldObject", &admissionv1.AdmissionRequest{Operation: admissionv1.Delete, Kind: metav1.GroupVersionKind{Kind: "Pod"}}, ErrMissingOld},
		{"object that is not JSON", &admissionv1.AdmissionRequest{Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte("{not json")}}, ErrReview},
		{"nil request", &Request{}, ErrReview},
		{"nil object", &Object{}, ErrReview},
		{"unsupported input", 42, ErrUnknownInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Target{}).NewReview(tc.in)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMatchObject_IsLenientLikeUnstructured(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want map[string]string
	}{
		{"string labels", `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"a":"b"}}}`, map[string]string{"a": "b"}},
		{"a non-string label drops all labels", `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"a":1}}}`, nil},
		{"labels of the wrong type", `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":[1]}}`, nil},
		{"metadata of the wrong type", `{"apiVersion":"v1","kind":"Pod","metadata":"x"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseJSON([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			o, _ := matchObject(v)
			if diff := cmp.Diff(tc.want, o.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if o.Kind != "Pod" || o.Group != "" {
				t.Errorf("group/kind = %q/%q", o.Group, o.Kind)
			}
		})
	}
	v, err := ParseJSON([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generateName":"d-"}}`))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := matchObject(v)
	if o.Group != "apps" || o.Name != "d" || o.GenerateName != "d-" {
		t.Errorf("got %+v", o)
	}
}

func TestProcessData_InventoryKeys(t *testing.T) {
	tgt := &Target{}
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want []string
	}{
		{"namespaced", pod("web"), []string{"namespace", "alice", "v1", "Pod", "web"}},
		{"cluster-scoped", &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]interface{}{"name": "view"},
		}}, []string{"cluster", "rbac.authorization.k8s.io/v1", "ClusterRole", "view"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handled, key, _, err := tgt.ProcessData(tc.obj)
			if err != nil || !handled {
				t.Fatalf("handled=%v err=%v", handled, err)
			}
			if diff := cmp.Diff(tc.want, key); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, _, _, err := tgt.ProcessData(&unstructured.Unstructured{Object: map[string]interface{}{"kind": "Pod"}}); err == nil {
		t.Error("object without apiVersion accepted")
	}
	if handled, _, _, _ := tgt.ProcessData("not an object"); handled {
		t.Error("strings handled as data")
	}
}

func TestNamespaceCache(t *testing.T) {
	tgt := &Target{}
	ns := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]interface{}{"name": "alice", "labels": map[string]interface{}{"team": "x"}},
	}}
	key := InventoryKey(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, "", "alice")
	if err := tgt.GetCache().Add(key, ns.Object); err != nil {
		t.Fatal(err)
	}
	if got := tgt.Namespace("alice"); got == nil || got.Labels["team"] != "x" {
		t.Fatalf("Namespace(alice) = %v", got)
	}
	// Other kinds are not Namespaces.
	if err := tgt.GetCache().Add([]string{"namespace", "alice", "v1", "Pod", "web"}, pod("web").Object); err != nil {
		t.Fatal(err)
	}
	tgt.GetCache().Remove(key)
	if tgt.Namespace("alice") != nil {
		t.Error("Namespace still cached after Remove")
	}
	_ = tgt.GetCache().Add(key, ns.Object)
	tgt.GetCache().Remove([]string{"cluster"})
	if tgt.Namespace("alice") != nil {
		t.Error("Namespace still cached after wiping cluster data")
	}
}

func TestValidateConstraint(t *testing.T) {
	tests := []struct {
		name    string
		match   map[string]interface{}
		wantErr bool
	}{
		{"no match", nil, false},
		{"good selector", map[string]interface{}{"labelSelector": map[string]interface{}{"matchLabels": map[string]interface{}{"a": "b"}}}, false},
		{"bad operator", map[string]interface{}{"namespaceSelector": map[string]interface{}{"matchExpressions": []interface{}{
			map[string]interface{}{"key": "a", "operator": "Maybe"},
		}}}, true},
		{"In without values", map[string]interface{}{"labelSelector": map[string]interface{}{"matchExpressions": []interface{}{
			map[string]interface{}{"key": "a", "operator": "In"},
		}}}, true},
		{"bad scope", map[string]interface{}{"scope": "Everything"}, true},
		{"good scope", map[string]interface{}{"scope": "Namespaced"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: map[string]interface{}{"spec": map[string]interface{}{}}}
			if tc.match != nil {
				u.Object["spec"].(map[string]interface{})["match"] = tc.match
			}
			err := (&Target{}).ValidateConstraint(u)
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrMatchSpec) {
				t.Errorf("err = %v, want ErrMatchSpec", err)
			}
		})
	}
}

// ObjectMetadata gives what the review parsed, once there is a review.
func TestRequest_ObjectMetadata(t *testing.T) {
	for _, tc := range []struct {
		name, object   string
		labels, annots map[string]string
		ok             bool
	}{
		{"labels and annotations", `"metadata":{"labels":{"a":"1"},"annotations":{"b":"2"}}`, map[string]string{"a": "1"}, map[string]string{"b": "2"}, true},
		{"none", `"metadata":{"name":"p"}`, nil, nil, true},
		{"null", `"metadata":{"labels":null,"annotations":null}`, nil, nil, true},
		{"no metadata", `"spec":{}`, nil, nil, true},
		{"a label that is not a string", `"metadata":{"labels":{"a":1}}`, nil, nil, false},
		{"annotations that are not an object", `"metadata":{"annotations":"x"}`, nil, nil, false},
		{"metadata that is not an object", `"metadata":[]`, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &Request{AdmissionRequest: &admissionv1.AdmissionRequest{
				Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: admissionv1.Create,
				Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod",` + tc.object + `}`)},
			}}
			if _, _, ok := in.ObjectMetadata(); ok {
				t.Fatal("metadata before any review")
			}
			if _, err := (&Target{}).NewReview(in); err != nil {
				t.Fatal(err)
			}
			labels, annots, ok := in.ObjectMetadata()
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.labels, labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.annots, annots); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
		})
	}
}

// An object sent for review must name its kind: matching reads it from
// the object, so without it no constraint would apply.
func TestNewReview_ObjectKind(t *testing.T) {
	for _, tc := range []struct {
		name, object, oldObject string
		op                      admissionv1.Operation
		wantErr                 string
	}{
		{name: "both", object: `{"apiVersion":"v1","kind":"Pod"}`, op: admissionv1.Create},
		{name: "no kind", object: `{"apiVersion":"v1","metadata":{"name":"p"}}`, op: admissionv1.Create,
			wantErr: `Pod "p": object: kind is missing`},
		{name: "no apiVersion", object: `{"kind":"Pod"}`, op: admissionv1.Create,
			wantErr: `Pod "p": object: apiVersion is missing`},
		{name: "kind not a string", object: `{"apiVersion":"v1","kind":7}`, op: admissionv1.Create,
			wantErr: `Pod "p": object: kind must be a non-empty string`},
		{name: "empty kind", object: `{"apiVersion":"v1","kind":""}`, op: admissionv1.Create,
			wantErr: `Pod "p": object: kind must be a non-empty string`},
		{name: "old object without kind", object: `{"apiVersion":"v1","kind":"Pod"}`, oldObject: `{"apiVersion":"v1"}`,
			op: admissionv1.Update, wantErr: `Pod "p": oldObject: kind is missing`},
		{name: "deleted object without kind", oldObject: `{"apiVersion":"v1"}`, op: admissionv1.Delete,
			wantErr: `Pod "p": object: kind is missing`},
		{name: "null object", object: `null`, op: admissionv1.Create},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Name: "p", Operation: tc.op}
			if tc.object != "" {
				req.Object = runtime.RawExtension{Raw: []byte(tc.object)}
			}
			if tc.oldObject != "" {
				req.OldObject = runtime.RawExtension{Raw: []byte(tc.oldObject)}
			}
			_, err := (&Target{}).NewReview(&Request{AdmissionRequest: req})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrReview)):
				t.Fatalf("error = %v, want ErrReview with %q", err, tc.wantErr)
			}
		})
	}
}
