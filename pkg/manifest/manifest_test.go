package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type summary struct {
	Kind, Name string
	Doc, Item  int
	Line       int
}

func summarize(docs []*Document) []summary {
	var out []summary
	for _, d := range docs {
		out = append(out, summary{Kind: d.Object.GetKind(), Name: d.Object.GetName(), Doc: d.Doc, Item: d.Item, Line: d.Line})
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opts Options
		want []summary
	}{
		{
			name: "multi-document YAML with empty and comment-only documents",
			in:   "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n# nothing here\n---\n\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n",
			want: []summary{{"Pod", "a", 1, 0, 2}, {"Service", "b", 4, 0, 11}},
		},
		{
			name: "JSON object",
			in:   `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}`,
			want: []summary{{"Pod", "a", 1, 0, 1}},
		},
		{
			name: "concatenated JSON objects",
			in:   "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\"}}\n",
			want: []summary{{"Pod", "a", 1, 0, 1}, {"Pod", "b", 2, 0, 1}},
		},
		{
			name: "JSON array",
			in:   `[{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}]`,
			want: []summary{{"Pod", "a", 1, 0, 1}, {"Pod", "b", 1, 0, 1}},
		},
		{
			name: "v1 List is flattened",
			in:   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n",
			want: []summary{{"Pod", "a", 1, 1, 4}, {"Pod", "b", 1, 2, 7}},
		},
		{
			name: "typed list is flattened",
			in:   "apiVersion: v1\nkind: PodList\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n",
			want: []summary{{"Pod", "a", 1, 1, 4}},
		},
		{
			name: "lists kept whole when asked",
			in:   "apiVersion: v1\nkind: List\nitems: []\n",
			opts: Options{KeepLists: true},
			want: []summary{{"List", "", 1, 0, 1}},
		},
		{
			name: "byte order mark",
			in:   "\ufeffapiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n",
			want: []summary{{"Pod", "a", 1, 0, 1}},
		},
		{
			name: "untyped documents allowed when asked",
			in:   "resources:\n- a.yaml\n",
			opts: Options{AllowUntyped: true},
			want: []summary{{"", "", 1, 0, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Parse("in.yaml", []byte(tc.in), tc.opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, summarize(docs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse_Values(t *testing.T) {
	in := `apiVersion: v1
kind: ConfigMap
metadata:
  name: values
  labels: &labels
    app: web
data:
  answer: yes
  date: 2024-01-01
  octal: 0o17
  big: 1e3
  frac: 1.5
  empty: ~
  "1": one
spec:
  <<: {base: true, app: overridden}
  app: kept
  copy: *labels
`
	docs, err := Parse("in.yaml", []byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := docs[0].Object.Object
	want := map[string]interface{}{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]interface{}{"name": "values", "labels": map[string]interface{}{"app": "web"}},
		"data": map[string]interface{}{
			"answer": "yes",        // YAML 1.2: not a boolean
			"date":   "2024-01-01", // kept as written
			"octal":  int64(15),
			"big":    int64(1000),
			"frac":   1.5,
			"empty":  nil,
			"1":      "one",
		},
		"spec": map[string]interface{}{
			"base": true,
			"app":  "kept",
			"copy": map[string]interface{}{"app": "web"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		wantIn []string
	}{
		{"bad indentation", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n name: b\n", []string{"in.yaml:4", "document 1", "invalid YAML"}},
		{"missing kind", "apiVersion: v1\nmetadata:\n  name: a\n", []string{"in.yaml:1", "kind: is required"}},
		{"kind not a string", "apiVersion: v1\nkind: [Pod]\n", []string{"in.yaml:2", "kind: must be a string"}},
		{"empty apiVersion", "apiVersion: \"\"\nkind: Pod\n", []string{"apiVersion: must not be empty"}},
		{"metadata not an object", "apiVersion: v1\nkind: Pod\nmetadata: x\n", []string{"in.yaml:3", "metadata: must be an object"}},
		{"not a mapping", "- a\n- b\n", []string{"in.yaml:1", "expected an object"}},
		{"second document broken", "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\n  x: [\n", []string{"document 2", "invalid YAML"}},
		{"duplicate key", "apiVersion: v1\nkind: Pod\nkind: Service\n", []string{"in.yaml:3", `key "kind" is defined twice`}},
		{"null key", "apiVersion: v1\nkind: Pod\n~: x\n", []string{"in.yaml:3", "must not be null"}},
		{"bad JSON", "{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}\n{\"apiVersion\": \n", []string{"document 2", "invalid JSON"}},
		{"JSON scalar in array", `[1]`, []string{"expected a JSON object, found a number"}},
		{"list item not an object", "apiVersion: v1\nkind: List\nitems:\n- 1\n", []string{"in.yaml:4", "items[0]: must be an object"}},
		{"list items not a list", "apiVersion: v1\nkind: List\nitems: 3\n", []string{"items: must be a list"}},
		{"list item without kind", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  metadata: {name: a}\n", []string{"kind: is required"}},
		{"infinity", "apiVersion: v1\nkind: Pod\nx: .inf\n", []string{"in.yaml:3", "not a number JSON can hold"}},
		{"alias bomb", aliasBomb(), []string{"too large"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("in.yaml", []byte(tc.in), Options{})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// aliasBomb nests aliases so that expanding them would take billions of
// nodes.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		b.WriteString("a")
		b.WriteString(itoa(i))
		b.WriteString(": &a")
		b.WriteString(itoa(i))
		b.WriteString(" [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a")
			b.WriteString(itoa(i - 1))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

func TestDocument_Locations(t *testing.T) {
	in := `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: x
spec:
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package x
        violation[{"msg": "m"}] { true }
      libs:
        - "package lib.a"
`
	docs, err := Parse("t.yaml", []byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := docs[0]
	tests := []struct {
		name string
		got  int
		want int
	}{
		{"kind", d.LineOf("kind"), 2},
		{"name", d.LineOf("metadata", "name"), 4},
		{"target", d.LineOf("spec", "targets", 0, "target"), 7},
		{"rego value", d.LineOf("spec", "targets", 0, "rego"), 8},
		{"rego text", d.ContentLine("spec", "targets", 0, "rego"), 9},
		{"quoted lib", d.ContentLine("spec", "targets", 0, "libs", 0), 12},
		{"missing", d.LineOf("spec", "nope"), 0},
		{"index out of range", d.LineOf("spec", "targets", 3), 0},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: line %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	if got, want := d.Ref(), "ConstraintTemplate x (t.yaml:1)"; got != want {
		t.Errorf("Ref() = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n",
		`{"apiVersion": "v1", "kind": "Pod"}`,
		`[{"apiVersion": "v1", "kind": "Pod"}]`,
		"a: &x [1]\nb: *x\n<<: {c: 1}\n",
		"---\n---\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []Options{{}, {KeepLists: true, AllowUntyped: true}} {
			docs, err := Parse("fuzz.yaml", data, opts)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error without ErrInvalid: %v", err)
				}
				continue
			}
			for _, d := range docs {
				if d.Object == nil || d.Object.Object == nil {
					t.Fatal("document without an object")
				}
				if !opts.AllowUntyped && (d.Object.GetKind() == "" || d.Object.GetAPIVersion() == "") {
					t.Fatalf("typed document without kind or apiVersion: %v", d.Object.Object)
				}
				// Objects must survive JSON encoding, as reviews need.
				if _, err := d.Object.MarshalJSON(); err != nil {
					t.Fatalf("object does not encode: %v", err)
				}
			}
		}
	})
}
