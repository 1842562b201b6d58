// Package inventory lists and watches the kinds a Config syncs and hands
// each object over as the Rego value data.inventory holds, parsed once from
// the API server's JSON.
//
// An informer of unstructured objects decodes every watch event two or
// three times (the event envelope, the object's type meta, the object into
// maps) before the object is converted to a Rego value; for Pods, most of
// what the webhook spends on a created pod besides its review. Here the
// event is parsed once, straight into the Rego value, and the informer's
// store keeps that value and the object's identity only.
package inventory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/statcan/daaas-guard/pkg/target"
)

// Object is a synced object: its identity and its Rego value, which is
// what the constraint framework's round trip of the object gives, without
// metadata.managedFields (never read by policies; most of a Pod's size).
// Value is shared, never modified.
type Object struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Value ast.Value
}

// DeepCopyObject copies the identity; the value is immutable and shared.
func (o *Object) DeepCopyObject() runtime.Object {
	c := *o
	o.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// List is one page of a list.
type List struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []runtime.Object
}

// DeepCopyObject copies the page; the items' values are shared.
func (l *List) DeepCopyObject() runtime.Object {
	c := &List{TypeMeta: l.TypeMeta, Items: make([]runtime.Object, len(l.Items))}
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	for i, o := range l.Items {
		c.Items[i] = o.DeepCopyObject()
	}
	return c
}

// ListerWatcher lists and watches one kind across all namespaces, in JSON.
type ListerWatcher struct {
	client   rest.Interface
	resource string
	gvk      schema.GroupVersionKind
}

var _ toolscache.ListerWatcherWithContext = &ListerWatcher{}

// NewListerWatcher lists and watches the kind of mapping with cfg's
// credentials over httpClient (the manager's, so connections are shared).
func NewListerWatcher(cfg *rest.Config, httpClient *http.Client, mapping *meta.RESTMapping) (*ListerWatcher, error) {
	c := rest.CopyConfig(cfg)
	gv := mapping.GroupVersionKind.GroupVersion()
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	if gv.Group == "" {
		c.APIPath = "/api"
	}
	// JSON, whatever the kind: the values must be what a JSON round trip
	// gives, and custom resources have no protobuf form.
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientForConfigAndClient(c, httpClient)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", mapping.GroupVersionKind, err)
	}
	return &ListerWatcher{client: rc, resource: mapping.Resource.Resource, gvk: mapping.GroupVersionKind}, nil
}

// IsWatchListSemanticsUnSupported makes informers list, then watch,
// rather than ask for the initial objects as watch events: pages of a
// list are parsed in one go.
func (lw *ListerWatcher) IsWatchListSemanticsUnSupported() bool { return true }

// List lists one page.
func (lw *ListerWatcher) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), opts)
}

// Watch watches from opts.ResourceVersion.
func (lw *ListerWatcher) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), opts)
}

// ListWithContext lists one page.
func (lw *ListerWatcher) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	opts.Watch = false
	res := lw.client.Get().Resource(lw.resource).VersionedParams(&opts, scheme.ParameterCodec).Do(ctx)
	// Error, not Raw, turns the server's Status into the error
	// ("pods is forbidden: ...").
	if err := res.Error(); err != nil {
		return nil, err
	}
	raw, err := res.Raw()
	if err != nil {
		return nil, err
	}
	return DecodeList(raw, lw.gvk)
}

// WatchWithContext watches from opts.ResourceVersion.
func (lw *ListerWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	body, err := lw.client.Get().Resource(lw.resource).VersionedParams(&opts, scheme.ParameterCodec).Stream(ctx)
	if err != nil {
		return nil, err
	}
	return newWatcher(body, lw.gvk), nil
}

// DecodeList reads a list of gvk's kind as the API server writes it. Items
// without apiVersion and kind (the API server leaves them out of the items
// of built-in lists) get the list's, as unstructured decoding does.
func DecodeList(raw []byte, gvk schema.GroupVersionKind) (*List, error) {
	v, err := target.ParseDataJSONDropping(raw, "items", "*", "metadata", "managedFields")
	if err != nil {
		return nil, fmt.Errorf("%s list: %w", gvk.Kind, err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s list: want a JSON object, found %s", gvk.Kind, ast.ValueName(v))
	}
	l := &List{}
	l.APIVersion, l.Kind = str(obj, "apiVersion"), str(obj, "kind")
	if md := obj.Get(ast.InternedTerm("metadata")); md != nil {
		if m, ok := md.Value.(ast.Object); ok {
			l.ResourceVersion, l.Continue = str(m, "resourceVersion"), str(m, "continue")
		}
	}
	items := obj.Get(ast.InternedTerm("items"))
	if items == nil {
		return l, nil
	}
	arr, ok := items.Value.(*ast.Array)
	if !ok {
		if _, null := items.Value.(ast.Null); null {
			return l, nil
		}
		return nil, fmt.Errorf("%s list: field items: want an array, found %s", gvk.Kind, ast.ValueName(items.Value))
	}
	itemKind := strings.TrimSuffix(l.Kind, "List")
	l.Items = make([]runtime.Object, 0, arr.Len())
	for i := 0; i < arr.Len(); i++ {
		item, ok := arr.Elem(i).Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("%s list: items[%d]: want an object, found %s", gvk.Kind, i, ast.ValueName(arr.Elem(i).Value))
		}
		if str(item, "apiVersion") == "" && str(item, "kind") == "" {
			item.Insert(ast.InternedTerm("apiVersion"), ast.StringTerm(l.APIVersion))
			item.Insert(ast.InternedTerm("kind"), ast.StringTerm(itemKind))
		}
		o, err := newObject(item)
		if err != nil {
			return nil, fmt.Errorf("%s list: items[%d]: %w", gvk.Kind, i, err)
		}
		l.Items = append(l.Items, o)
	}
	return l, nil
}

// DecodeEvent reads one watch event as the API server writes it.
func DecodeEvent(raw []byte) (watch.Event, error) {
	v, err := target.ParseDataJSONDropping(raw, "object", "metadata", "managedFields")
	if err != nil {
		return watch.Event{}, fmt.Errorf("watch event: %w", err)
	}
	ev, ok := v.(ast.Object)
	if !ok {
		return watch.Event{}, fmt.Errorf("watch event: want a JSON object, found %s", ast.ValueName(v))
	}
	typ := watch.EventType(str(ev, "type"))
	switch typ {
	case watch.Added, watch.Modified, watch.Deleted, watch.Bookmark:
	case watch.Error:
		// A Status, for the informer to act on (410 Gone: list again).
		var e struct {
			Object metav1.Status `json:"object"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return watch.Event{}, fmt.Errorf("watch event: field object: %w", err)
		}
		return watch.Event{Type: watch.Error, Object: &e.Object}, nil
	default:
		return watch.Event{}, fmt.Errorf("watch event: field type: unknown event type %q", typ)
	}
	t := ev.Get(ast.InternedTerm("object"))
	if t == nil {
		return watch.Event{}, fmt.Errorf("watch event: %s without field object", typ)
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return watch.Event{}, fmt.Errorf("watch event: field object: want an object, found %s", ast.ValueName(t.Value))
	}
	o, err := newObject(obj)
	if err != nil {
		return watch.Event{}, fmt.Errorf("watch event: field object: %w", err)
	}
	return watch.Event{Type: typ, Object: o}, nil
}

// newObject takes the identity of obj, whose metadata.managedFields the
// decoders left out.
func newObject(obj ast.Object) (*Object, error) {
	o := &Object{Value: obj}
	o.APIVersion, o.Kind = str(obj, "apiVersion"), str(obj, "kind")
	mdt := obj.Get(ast.InternedTerm("metadata"))
	if mdt == nil {
		return nil, errors.New("no metadata")
	}
	md, ok := mdt.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("field metadata: want an object, found %s", ast.ValueName(mdt.Value))
	}
	o.Name, o.Namespace, o.ResourceVersion = str(md, "name"), str(md, "namespace"), str(md, "resourceVersion")
	o.UID = types.UID(str(md, "uid"))
	return o, nil
}

// str is obj[key] when it is a string.
func str(obj ast.Object, key string) string {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return ""
	}
	s, _ := t.Value.(ast.String)
	return string(s)
}

// watcher turns a watch response, one JSON event after another, into
// events.
type watcher struct {
	body   io.ReadCloser
	result chan watch.Event
	done   chan struct{}
	once   sync.Once
}

func newWatcher(body io.ReadCloser, gvk schema.GroupVersionKind) *watcher {
	w := &watcher{body: body, result: make(chan watch.Event), done: make(chan struct{})}
	go w.receive(gvk)
	return w
}

func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

func (w *watcher) Stop() {
	w.once.Do(func() {
		close(w.done)
		_ = w.body.Close()
	})
}

func (w *watcher) receive(gvk schema.GroupVersionKind) {
	defer close(w.result)
	defer w.Stop()
	frames := &frameReader{r: bufio.NewReaderSize(w.body, 64<<10)}
	for {
		raw, err := frames.next()
		if err != nil {
			select {
			case <-w.done: // stopped
				return
			default:
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return // the server ended the watch: the informer watches again
			}
			w.send(errorEvent(fmt.Errorf("reading %s watch: %w", gvk.Kind, err)))
			return
		}
		ev, err := DecodeEvent(raw)
		if err != nil {
			w.send(errorEvent(fmt.Errorf("%s %w", gvk.Kind, err)))
			return
		}
		if !w.send(ev) {
			return
		}
	}
}

// frameReader splits a watch response into its events: JSON objects one
// after another. It only finds where each ends (strings and nesting);
// DecodeEvent checks the rest. A full JSON decoder here cost about as much
// as parsing the event, and reading it a byte at a time a third of that:
// it scans what the reader has buffered instead.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

// next returns the next event, valid until the following call; io.EOF at
// the end of the stream, io.ErrUnexpectedEOF inside an event.
func (f *frameReader) next() ([]byte, error) {
	f.buf = f.buf[:0]
	depth := 0
	inString, escaped := false, false
	for {
		if _, err := f.r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) && len(f.buf) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		chunk, _ := f.r.Peek(f.r.Buffered())
		start := 0
		if len(f.buf) == 0 {
			for start < len(chunk) {
				c := chunk[start]
				if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
					start++
					continue
				}
				if c != '{' {
					return nil, fmt.Errorf("watch stream: want an event object, found %q", c)
				}
				break
			}
			if start == len(chunk) {
				_, _ = f.r.Discard(start)
				continue
			}
		}
		end := -1
	scan:
		for i := start; i < len(chunk); i++ {
			if inString {
				// Most of an event is strings: jump to the next quote and
				// count the backslashes before it.
				if escaped {
					escaped = false
					continue
				}
				q := bytes.IndexByte(chunk[i:], '"')
				if q < 0 {
					escaped = trailingBackslashes(chunk[i:])%2 == 1
					break
				}
				i += q
				if trailingBackslashes(chunk[i-q:i])%2 == 0 {
					inString = false
				}
				continue
			}
			switch chunk[i] {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					end = i + 1
					break scan
				}
			}
		}
		if end < 0 {
			f.buf = append(f.buf, chunk[start:]...)
			_, _ = f.r.Discard(len(chunk))
			continue
		}
		f.buf = append(f.buf, chunk[start:end]...)
		_, _ = f.r.Discard(end)
		return f.buf, nil
	}
}

// trailingBackslashes counts the backslashes b ends with.
func trailingBackslashes(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\\' {
		n++
	}
	return n
}

func (w *watcher) send(ev watch.Event) bool {
	select {
	case w.result <- ev:
		return true
	case <-w.done:
		return false
	}
}

// errorEvent reports a stream the informer must give up and watch again.
func errorEvent(err error) watch.Event {
	return watch.Event{Type: watch.Error, Object: &metav1.Status{
		Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Code: http.StatusInternalServerError, Message: err.Error(),
	}}
}
