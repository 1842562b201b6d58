package inventory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/statcan/daaas-guard/pkg/target"
)

var podGVK = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}

// frameworkValue is what syncing u gave before this package: the object
// decoded as unstructured, its managedFields dropped, then the constraint
// framework's round trip (JSON, interface{}, ast.InterfaceToValue).
func frameworkValue(t testing.TB, u *unstructured.Unstructured) string {
	t.Helper()
	u = u.DeepCopy()
	u.SetManagedFields(nil)
	raw, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	var x interface{}
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	v, err := ast.InterfaceToValue(x)
	if err != nil {
		t.Fatal(err)
	}
	// The text, not ast.Compare: 1e+06 and 1000000 compare equal but are
	// different values to a template that prints or concatenates them.
	return v.String()
}

// apiServerPod is a notebook pod as the API server writes it (defaulted,
// with managedFields).
func apiServerPod(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "policy", "testdata", "bench", "notebook_pod_apiserver.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDecodeEvent_GivesTheFrameworksValue(t *testing.T) {
	pod := apiServerPod(t)
	for _, tc := range []struct {
		name string
		obj  []byte
	}{
		{"notebook pod from the API server", pod},
		{"numbers", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"n","namespace":"a","resourceVersion":"7","managedFields":[{"manager":"x"}]},
			"spec":{"a":1000000,"b":-0,"c":-0.0,"d":1.50,"e":1e3,"f":123456789012345678901234,"g":9007199254740993,"h":0.1,"i":-12,"j":1E-7}}`)},
		{"strings", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s","namespace":"a"},
			"data":{"esc":"\u00e9\n\t\"\\\/","bad":"\ud800x","dup":"first","dup":"last","bytes":"` + "\xff\xfe" + `"}}`)},
		{"cluster-scoped", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"alice","labels":{"state.aaw.statcan.gc.ca/non-employee-users":"true"}}}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(tc.obj); err != nil {
				t.Fatal(err)
			}
			ev, err := DecodeEvent([]byte(`{"type":"MODIFIED","object":` + string(tc.obj) + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != watch.Modified {
				t.Errorf("type %s", ev.Type)
			}
			o := ev.Object.(*Object)
			if diff := cmp.Diff(frameworkValue(t, u), o.Value.String()); diff != "" {
				t.Errorf("value differs from the framework's (-want +got):\n%s", diff)
			}
			if o.Name != u.GetName() || o.Namespace != u.GetNamespace() || o.ResourceVersion != u.GetResourceVersion() || o.UID != u.GetUID() {
				t.Errorf("identity %s/%s rv %s uid %s, want %s/%s rv %s uid %s", o.Namespace, o.Name, o.ResourceVersion, o.UID,
					u.GetNamespace(), u.GetName(), u.GetResourceVersion(), u.GetUID())
			}
		})
	}
}

func TestDecodeList_FillsItemKindsAsUnstructuredDoes(t *testing.T) {
	pod := apiServerPod(t)
	var p map[string]interface{}
	if err := json.Unmarshal(pod, &p); err != nil {
		t.Fatal(err)
	}
	delete(p, "apiVersion")
	delete(p, "kind") // the API server leaves them out of a PodList's items
	item, _ := json.Marshal(p)
	raw := []byte(`{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"812","continue":"abc"},"items":[` +
		string(item) + `,{"apiVersion":"v1","kind":"Pod","metadata":{"name":"second","namespace":"bob"}}]}`)

	want := &unstructured.UnstructuredList{}
	if err := want.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeList(raw, podGVK)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != "812" || got.Continue != "abc" {
		t.Errorf("list meta %+v", got.ListMeta)
	}
	if len(got.Items) != len(want.Items) {
		t.Fatalf("%d items, want %d", len(got.Items), len(want.Items))
	}
	for i := range want.Items {
		o := got.Items[i].(*Object)
		if diff := cmp.Diff(frameworkValue(t, &want.Items[i]), o.Value.String()); diff != "" {
			t.Errorf("item %d differs (-want +got):\n%s", i, diff)
		}
		if o.Kind != "Pod" || o.APIVersion != "v1" {
			t.Errorf("item %d: %s %s", i, o.APIVersion, o.Kind)
		}
	}
}

func TestDecodeEvent_BookmarksAndErrors(t *testing.T) {
	ev, err := DecodeEvent([]byte(`{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12746"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != watch.Bookmark || ev.Object.(*Object).ResourceVersion != "12746" {
		t.Errorf("bookmark: %+v", ev)
	}
	ev, err = DecodeEvent([]byte(`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (12746)","reason":"Expired","code":410}}`))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || st.Code != 410 || st.Reason != metav1.StatusReasonExpired {
		t.Errorf("error event: %+v", ev)
	}
}

func TestDecode_BadInputNamesTheField(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"not JSON", `{"type":`, "watch event: invalid JSON"},
		{"not an object", `[1]`, "want a JSON object, found array"},
		{"unknown type", `{"type":"RENAMED","object":{}}`, `field type: unknown event type "RENAMED"`},
		{"no object", `{"type":"ADDED"}`, "ADDED without field object"},
		{"object not an object", `{"type":"ADDED","object":"pod"}`, "field object: want an object, found string"},
		{"no metadata", `{"type":"ADDED","object":{"kind":"Pod"}}`, "field object: no metadata"},
		{"metadata not an object", `{"type":"ADDED","object":{"metadata":[]}}`, "field metadata: want an object, found array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(tc.raw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, raw, want string }{
		{"items not an array", `{"kind":"PodList","items":{}}`, "Pod list: field items: want an array, found object"},
		{"item not an object", `{"kind":"PodList","items":[1]}`, "Pod list: items[0]: want an object, found number"},
		{"item without metadata", `{"kind":"PodList","items":[{}]}`, "Pod list: items[0]: no metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeList([]byte(tc.raw), podGVK)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if l, err := DecodeList([]byte(`{"kind":"PodList","metadata":{"resourceVersion":"3"},"items":null}`), podGVK); err != nil || len(l.Items) != 0 || l.ResourceVersion != "3" {
		t.Errorf("empty list: %+v, %v", l, err)
	}
}

// The watcher reads events as the API server streams them, one JSON
// object after another, and stops cleanly.
func TestWatcher_StreamsEventsAndStops(t *testing.T) {
	var stream bytes.Buffer
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&stream, `{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p%d","namespace":"a","resourceVersion":"%d"}}}`+"\n", i, i)
	}
	stream.WriteString(`{"type":"ADDED","object":{"apiVersion":"v1"`) // cut off mid-event
	w := newWatcher(io.NopCloser(&stream), podGVK)
	var names []string
	for ev := range w.ResultChan() {
		if ev.Type != watch.Added {
			t.Fatalf("event %+v", ev)
		}
		names = append(names, ev.Object.(*Object).Name)
	}
	if diff := cmp.Diff([]string{"p1", "p2", "p3"}, names); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// A malformed event ends the watch with an error event for the
	// informer, which then watches again.
	w = newWatcher(io.NopCloser(strings.NewReader(`{"type":"ADDED","object":{"metadata":7}}`)), podGVK)
	ev := <-w.ResultChan()
	if st, ok := ev.Object.(*metav1.Status); ev.Type != watch.Error || !ok || !strings.Contains(st.Message, "Pod watch event: field object: field metadata") {
		t.Errorf("event %+v", ev)
	}
	if _, open := <-w.ResultChan(); open {
		t.Error("the watch goes on after a malformed event")
	}

	// Stop while the server sends nothing: the watcher ends.
	r, pw := io.Pipe()
	w = newWatcher(r, podGVK)
	w.Stop()
	select {
	case _, open := <-w.ResultChan():
		if open {
			t.Error("an event after Stop")
		}
	case <-time.After(5 * time.Second):
		t.Error("Stop does not end the watch")
	}
	_ = pw.Close()
}

// Whatever the object, the value is the framework's whenever unstructured
// decoding accepts it.
func FuzzDecodeEvent(f *testing.F) {
	// (The 13 KB notebook pod of the tests above slows the fuzzer to a
	// crawl; a small pod with the same parts seeds it instead.)
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nb-0","namespace":"alice","uid":"9f1c","resourceVersion":"812",
		"labels":{"app":"nb"},"managedFields":[{"manager":"kubectl","operation":"Apply","fieldsV1":{"f:spec":{}}}]},
		"spec":{"containers":[{"name":"nb","image":"k8scc01covidacr.azurecr.io/jupyterlab-cpu:v1","resources":{"limits":{"cpu":"2","memory":"8Gi"}},
		"ports":[{"containerPort":8888,"protocol":"TCP"}]}],"terminationGracePeriodSeconds":30},"status":{"phase":"Pending"}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"n","managedFields":[]},"spec":{"a":-0,"b":1e400,"c":1.0,"d":"\ud83d\ude00"}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"n"},"spec":[0.000001,1000000,-0.0,12345678901234567890]}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(obj); err != nil {
			return
		}
		if _, ok := u.Object["metadata"].(map[string]interface{}); !ok {
			return
		}
		ev, err := DecodeEvent([]byte(`{"type":"ADDED","object":` + string(obj) + `}`))
		if err != nil {
			t.Fatalf("unstructured decoding accepts the object, DecodeEvent does not: %v", err)
		}
		if diff := cmp.Diff(frameworkValue(t, u), ev.Object.(*Object).Value.String()); diff != "" {
			t.Errorf("value differs from the framework's (-want +got):\n%s", diff)
		}
	})
}

func TestFrameReader_SplitsEvents(t *testing.T) {
	stream := `{"a":"}{\"","b":[{}]}` + "\n" + `  {"c":"\\"}{"d":{"e":"[\\\"]"}}` + "\r\n\t" + `{}`
	want := []string{`{"a":"}{\"","b":[{}]}`, `{"c":"\\"}`, `{"d":{"e":"[\\\"]"}}`, `{}`}
	// Whole, and a byte at a time through the smallest buffer: events
	// and escapes cut across what the reader has buffered.
	for name, r := range map[string]*bufio.Reader{
		"whole":     bufio.NewReader(strings.NewReader(stream)),
		"byte-wise": bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(stream)), 16),
	} {
		got, err := frames(r)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", name, diff)
		}
	}
	for _, tc := range []struct{ stream, want string }{
		{`{"a":1`, io.ErrUnexpectedEOF.Error()},
		{`[1]`, `want an event object, found '['`},
	} {
		f := &frameReader{r: bufio.NewReader(strings.NewReader(tc.stream))}
		if _, err := f.next(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.stream, err, tc.want)
		}
	}
}

// frames reads every event of the stream in r.
func frames(r *bufio.Reader) ([]string, error) {
	f := &frameReader{r: r}
	var got []string
	for {
		raw, err := f.next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(raw))
	}
}

// A stream of JSON objects splits into the objects encoding/json reads
// from it, however the reader's buffer cuts it.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte(`{"type":"ADDED","object":{"a":"}{\\\"","b":[{}],"c":"\\\\"}}` + "\n" + `{"d":"\u005c"}`))
	f.Add([]byte(` {"a":[1,{"b":"]"}]}{}` + "\r\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var want []string
		dec := json.NewDecoder(bytes.NewReader(stream))
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err == io.EOF {
				break
			} else if err != nil || raw[0] != '{' {
				return // not a stream of objects
			}
			want = append(want, string(raw))
		}
		for _, size := range []int{16, 4096} {
			got, err := frames(bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(stream)), size))
			if err != nil {
				t.Fatalf("buffer %d: %v", size, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("buffer %d: events (-want +got):\n%s", size, diff)
			}
		}
	})
}

// Against an HTTP server standing in for the API server: a page comes back
// as a List, a refusal as the server's own Status message.
func TestListerWatcher_ListsAndReportsTheServersError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/pods" && r.URL.Query().Get("limit") == "500":
			fmt.Fprint(w, `{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"9","continue":"next"},"items":[{"metadata":{"name":"a","namespace":"n"}}]}`)
		case r.URL.Path == "/api/v1/namespaces" || r.URL.Path == "/api/v1/pods":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden: User \"x\" cannot list resource \"pods\"","reason":"Forbidden","code":403}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	mapping := &meta.RESTMapping{Resource: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, GroupVersionKind: podGVK, Scope: meta.RESTScopeNamespace}
	lw, err := NewListerWatcher(&rest.Config{Host: srv.URL}, srv.Client(), mapping)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lw.List(metav1.ListOptions{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	l := got.(*List)
	if l.ResourceVersion != "9" || l.Continue != "next" || len(l.Items) != 1 || l.Items[0].(*Object).Kind != "Pod" {
		t.Errorf("list %+v", l)
	}
	_, err = lw.List(metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `pods is forbidden: User "x" cannot list resource "pods"`) {
		t.Errorf("error %v, want the server's Forbidden status", err)
	}
}

// BenchmarkDecodeEvent decodes the watch event of a notebook pod as the API
// server sends it: what each change of a synced pod costs the webhook.
// `make bench` reports it against parsing the same event whole.
func BenchmarkDecodeEvent(b *testing.B) {
	event := []byte(`{"type":"MODIFIED","object":` + string(apiServerPod(b)) + `}`)
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := target.ParseDataJSON(event); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeEvent(event); err != nil {
				b.Fatal(err)
			}
		}
	})
}
