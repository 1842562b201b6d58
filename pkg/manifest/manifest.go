// Package manifest reads Kubernetes objects from YAML and JSON: multi-document
// YAML streams (kubectl and kustomize output), single JSON objects, JSON
// arrays and concatenated JSON objects, and v1 List objects. Every object
// keeps where it came from, so errors and results can name the file, the
// document and the line.
//
// YAML is read as YAML 1.2 (yes/no stay strings), as Gatekeeper's gator
// reads test fixtures, and timestamps stay the strings they were written
// as, as kubectl reads them.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ErrInvalid is wrapped by every error about the content of a manifest.
var ErrInvalid = errors.New("invalid manifest")

// Aliases may expand a document to at most aliasFactor times its own size
// (plus aliasSlack nodes), so that an alias bomb fails fast instead of
// exhausting time and memory; real manifests barely use aliases.
const (
	aliasFactor = 10
	aliasSlack  = 10_000
)

// maxDepth bounds nesting; real objects are far shallower.
const maxDepth = 1000

// Error describes a problem in one document of a file.
type Error struct {
	File  string // "-" for standard input
	Line  int    // 1-based; 0 when unknown
	Doc   int    // 1-based document number in the file; 0 when unknown
	Field string // dotted field path, when the problem is a field
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", e.Doc)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// Document is one object read from a file.
type Document struct {
	Object *unstructured.Unstructured
	File   string // path, or Stdin
	Doc    int    // 1-based document number in the file
	Item   int    // 1-based index within a List document; 0 otherwise
	Line   int    // first line of the object
	node   *yaml.Node
}

// Pos is "file:line", for messages.
func (d *Document) Pos() string {
	if d.Line > 0 {
		return fmt.Sprintf("%s:%d", d.File, d.Line)
	}
	return d.File
}

// Ref names the object for messages: "Pod default/web (file:line)".
func (d *Document) Ref() string {
	o := d.Object
	name := o.GetName()
	if name == "" && o.GetGenerateName() != "" {
		name = o.GetGenerateName() + "*"
	}
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s (%s)", o.GetKind(), name, d.Pos())
}

// LineOf returns the line of the value at path (map keys as strings, list
// indices as ints), or 0 when unknown (JSON input or a missing field).
func (d *Document) LineOf(path ...interface{}) int {
	n := lookup(d.node, path)
	if n == nil {
		return 0
	}
	return n.Line
}

// ContentLine returns the line where the text of the string at path starts:
// for a block scalar ("rego: |") that is the line after the key. It is
// what maps a line inside embedded source code back to the file.
func (d *Document) ContentLine(path ...interface{}) int {
	n := lookup(d.node, path)
	if n == nil {
		return 0
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + 1
	}
	return n.Line
}

func lookup(n *yaml.Node, path []interface{}) *yaml.Node {
	for n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, p := range path {
		if n == nil {
			return nil
		}
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		switch key := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return nil
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
				}
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || key < 0 || key >= len(n.Content) {
				return nil
			}
			n = n.Content[key]
		default:
			return nil
		}
	}
	return n
}

// Options change how documents are read.
type Options struct {
	// KeepLists reviews a List as one object instead of its items, as
	// gator does for test fixtures.
	KeepLists bool
	// AllowUntyped accepts documents without apiVersion or kind (for files
	// that are not Kubernetes objects, such as test suites).
	AllowUntyped bool
}

// Files lists the files under paths that have one of the extensions: a
// file named directly is taken whatever its extension, a directory is
// walked recursively (hidden directories such as .git are skipped). Each
// path's files come sorted; a file is listed once.
func Files(paths []string, exts ...string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			add(p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && path != p && strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			case !d.IsDir() && slices.Contains(exts, filepath.Ext(path)):
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		for _, f := range found {
			add(f)
		}
	}
	return out, nil
}

// Stdin is the name documents read from standard input carry.
const Stdin = "<stdin>"

// ReadFile reads every object in a file; "-" reads standard input.
func ReadFile(path string, opts Options) ([]*Document, error) {
	if path == "-" {
		return Read(Stdin, os.Stdin, opts)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts)
}

// Read reads every object from r; name is used in messages.
func Read(name string, r io.Reader, opts Options) ([]*Document, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return Parse(name, data, opts)
}

// Parse reads every object in data; name is used in errors.
func Parse(name string, data []byte, opts Options) ([]*Document, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte order mark is not content
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(firstJSONValue(trimmed)) {
		return parseJSON(name, data, opts)
	}
	return parseYAML(name, data, opts)
}

// firstJSONValue returns the first complete JSON value in b, or b itself
// when there is none (so that json.Valid fails and YAML is tried).
func firstJSONValue(b []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return b
	}
	return raw
}

func parseYAML(name string, data []byte, opts Options) ([]*Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*Document
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &Error{File: name, Line: YAMLErrorLine(err), Doc: doc, Msg: YAMLErrorText(err)}
		}
		root := &n
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			continue // empty document, e.g. only comments
		}
		if root.Kind != yaml.MappingNode {
			return nil, &Error{File: name, Line: root.Line, Doc: doc, Msg: "expected an object (a YAML mapping), found " + describe(root)}
		}
		c := converter{budget: aliasFactor*countNodes(root, 0) + aliasSlack}
		v, err := c.value(root, 0)
		if err != nil {
			var ce *convertError
			if errors.As(err, &ce) {
				return nil, &Error{File: name, Line: ce.line, Doc: doc, Msg: ce.msg}
			}
			return nil, &Error{File: name, Line: root.Line, Doc: doc, Msg: err.Error()}
		}
		obj := v.(map[string]interface{})
		out, err := expand(name, doc, root.Line, obj, root, opts)
		if err != nil {
			return nil, err
		}
		docs = append(docs, out...)
	}
	return docs, nil
}

func parseJSON(name string, data []byte, opts Options) ([]*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var docs []*Document
	for doc := 1; ; doc++ {
		start := dec.InputOffset()
		var v interface{}
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &Error{File: name, Line: jsonErrorLine(data, start, err), Doc: doc, Msg: "invalid JSON: " + err.Error()}
		}
		line := lineAt(data, start)
		items := []interface{}{v}
		if arr, ok := v.([]interface{}); ok {
			items = arr // a JSON array of objects
		}
		for _, it := range items {
			norm, err := normalizeJSON(it, 0)
			if err != nil {
				return nil, &Error{File: name, Line: line, Doc: doc, Msg: err.Error()}
			}
			obj, ok := norm.(map[string]interface{})
			if !ok {
				return nil, &Error{File: name, Line: line, Doc: doc, Msg: fmt.Sprintf("expected a JSON object, found %s", jsonKind(norm))}
			}
			out, err := expand(name, doc, line, obj, nil, opts)
			if err != nil {
				return nil, err
			}
			docs = append(docs, out...)
		}
	}
	return docs, nil
}

// expand checks one decoded document and, unless asked not to, replaces a
// List by its items.
func expand(name string, doc, line int, obj map[string]interface{}, node *yaml.Node, opts Options) ([]*Document, error) {
	d := &Document{Object: &unstructured.Unstructured{Object: obj}, File: name, Doc: doc, Line: line, node: node}
	if err := checkTyped(d, opts); err != nil {
		return nil, err
	}
	if opts.KeepLists || opts.AllowUntyped || !isList(d.Object) {
		return []*Document{d}, nil
	}
	raw := obj["items"]
	items, ok := raw.([]interface{})
	if !ok && raw != nil {
		return nil, &Error{File: name, Line: d.LineOf("items"), Doc: doc, Field: "items", Msg: "must be a list of objects"}
	}
	out := make([]*Document, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]interface{})
		if !ok {
			return nil, &Error{File: name, Line: d.LineOf("items", i), Doc: doc, Field: fmt.Sprintf("items[%d]", i), Msg: "must be an object"}
		}
		var child *yaml.Node
		itemLine := line
		if node != nil {
			child = lookup(node, []interface{}{"items", i})
			if child != nil {
				itemLine = child.Line
			}
		}
		cd := &Document{Object: &unstructured.Unstructured{Object: m}, File: name, Doc: doc, Item: i + 1, Line: itemLine, node: child}
		if err := checkTyped(cd, opts); err != nil {
			return nil, err
		}
		out = append(out, cd)
	}
	return out, nil
}

// isList reports whether an object is a List to be flattened: v1 List, or
// any <Kind>List whose items field is a list.
func isList(u *unstructured.Unstructured) bool {
	kind := u.GetKind()
	if !strings.HasSuffix(kind, "List") {
		return false
	}
	_, isSlice := u.Object["items"].([]interface{})
	return kind == "List" || isSlice
}

func checkTyped(d *Document, opts Options) error {
	if opts.AllowUntyped {
		return nil
	}
	for _, f := range []string{"apiVersion", "kind"} {
		v, found := d.Object.Object[f]
		s, isString := v.(string)
		switch {
		case !found:
			return d.fieldError(f, "is required")
		case !isString:
			return d.fieldError(f, "must be a string")
		case s == "":
			return d.fieldError(f, "must not be empty")
		}
	}
	if md, found := d.Object.Object["metadata"]; found {
		if _, ok := md.(map[string]interface{}); !ok {
			return d.fieldError("metadata", "must be an object")
		}
	}
	return nil
}

func (d *Document) fieldError(field, msg string) error {
	line := d.LineOf(field)
	if line == 0 {
		line = d.Line
	}
	return &Error{File: d.File, Line: line, Doc: d.Doc, Field: field, Msg: msg}
}

// converter turns a YAML node tree into the JSON-compatible values
// unstructured objects hold: map[string]interface{}, []interface{}, string,
// int64, float64, bool and nil.
type converter struct{ nodes, budget int }

// countNodes counts the nodes of a tree without following aliases.
func countNodes(n *yaml.Node, depth int) int {
	if n == nil || depth > maxDepth {
		return 0
	}
	total := 1
	for _, c := range n.Content {
		total += countNodes(c, depth+1)
	}
	return total
}

type convertError struct {
	line int
	msg  string
}

func (e *convertError) Error() string { return e.msg }

func (c *converter) value(n *yaml.Node, depth int) (interface{}, error) {
	c.nodes++
	if c.nodes > c.budget {
		return nil, &convertError{n.Line, "document is too large once aliases are expanded"}
	}
	if depth > maxDepth {
		return nil, &convertError{n.Line, "document is nested too deeply"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, &convertError{n.Line, "unknown alias"}
		}
		return c.value(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := make([]interface{}, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := c.value(item, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return c.mapping(n, depth)
	case yaml.ScalarNode:
		return scalar(n)
	default:
		return nil, &convertError{n.Line, "unsupported YAML node"}
	}
}

func (c *converter) mapping(n *yaml.Node, depth int) (map[string]interface{}, error) {
	out := make(map[string]interface{}, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return nil, &convertError{k.Line, "mapping keys must be strings, found " + describe(k)}
		}
		if k.Tag == "!!null" {
			return nil, &convertError{k.Line, "mapping key must not be null"}
		}
		// JSON has only string keys: a key such as 1 or true is kept as
		// the text it was written as.
		if _, dup := out[k.Value]; dup {
			return nil, &convertError{k.Line, fmt.Sprintf("key %q is defined twice in the same mapping", k.Value)}
		}
		val, err := c.value(v, depth+1)
		if err != nil {
			return nil, err
		}
		out[k.Value] = val
	}
	// Merge keys ("<<: *base") fill in what the mapping does not set itself.
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			v, err := c.value(s, depth+1)
			if err != nil {
				return nil, err
			}
			mm, ok := v.(map[string]interface{})
			if !ok {
				return nil, &convertError{s.Line, "merge key (<<) must refer to a mapping"}
			}
			for k, val := range mm {
				if _, set := out[k]; !set {
					out[k] = val
				}
			}
		}
	}
	return out, nil
}

func scalar(n *yaml.Node) (interface{}, error) {
	tag := n.ShortTag()
	// Fast paths for the common spellings; anything else goes through the
	// YAML library's own resolution.
	switch tag {
	case "!!bool":
		switch n.Value {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			return i, nil
		}
	}
	switch tag {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &convertError{n.Line, err.Error()}
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var f float64 // beyond int64: keep the magnitude, as JSON decoding would
		if err := n.Decode(&f); err != nil {
			return nil, &convertError{n.Line, fmt.Sprintf("invalid integer %q", n.Value)}
		}
		return f, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, &convertError{n.Line, fmt.Sprintf("invalid number %q", n.Value)}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, &convertError{n.Line, fmt.Sprintf("%q is not a number JSON can hold", n.Value)}
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil // 1e3 is the integer 1000, as in JSON decoding
		}
		return f, nil
	case "!!binary":
		return n.Value, nil
	default:
		// !!str, !!timestamp and custom tags: the text as written.
		return n.Value, nil
	}
}

// normalizeJSON converts json.Number to int64 or float64.
func normalizeJSON(v interface{}, depth int) (interface{}, error) {
	if depth > maxDepth {
		return nil, errors.New("document is nested too deeply")
	}
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, fmt.Errorf("invalid number %s", t)
		}
		return f, nil
	case map[string]interface{}:
		for k, val := range t {
			nv, err := normalizeJSON(val, depth+1)
			if err != nil {
				return nil, err
			}
			t[k] = nv
		}
		return t, nil
	case []interface{}:
		for i, val := range t {
			nv, err := normalizeJSON(val, depth+1)
			if err != nil {
				return nil, err
			}
			t[i] = nv
		}
		return t, nil
	default:
		return v, nil
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	default:
		if len(n.Value) > 40 {
			return fmt.Sprintf("the value %q...", n.Value[:40])
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
}

func jsonKind(v interface{}) string {
	switch v.(type) {
	case []interface{}:
		return "a list"
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// YAMLErrorLine extracts "line N" from a yaml.v3 error message, or 0.
func YAMLErrorLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	j := i + len("line ")
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, _ := strconv.Atoi(msg[j:k])
	return n
}

// YAMLErrorText is a yaml.v3 error without its "yaml: line N:" prefix
// (callers show the line themselves), prefixed with "invalid YAML: ".
func YAMLErrorText(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ": "); i > 0 {
			msg = msg[i+2:]
		}
	}
	return "invalid YAML: " + msg
}

func jsonErrorLine(data []byte, start int64, err error) int {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return lineAt(data, se.Offset)
	}
	return lineAt(data, start)
}

func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}
