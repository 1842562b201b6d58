// Package suite reads and runs policy test suites in Gatekeeper's gator
// format (test.gatekeeper.sh/v1alpha1 Suite, see Gatekeeper's
// website/docs/gator.md), so that suites written for `gator verify` run
// unchanged and get the same verdicts.
//
// Where gator is silent we are stricter, without changing verdicts: unknown
// fields in a suite are reported as warnings (errors with Strict), and
// every problem names the suite file, the test and the case.
package suite

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/statcan/daaas-guard/pkg/manifest"
)

// Group, Version and Kind identify suite files; other YAML files are skipped.
const (
	Group   = "test.gatekeeper.sh"
	Version = "v1alpha1"
	Kind    = "Suite"
)

// ErrInput marks problems with the input itself (unreadable or malformed
// files, templates that do not compile, constraints that break their
// schema) as opposed to failing assertions.
var ErrInput = errors.New("unusable input")

// InputError is an ErrInput with its location.
type InputError struct {
	File string
	Line int
	Msg  string
}

func (e *InputError) Error() string {
	if e.File == "" {
		return e.Msg
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInput) hold.
func (e *InputError) Unwrap() error { return ErrInput }

// Suite is one suite file.
type Suite struct {
	Path     string // as found, relative to the working directory when possible
	Skip     bool
	Tests    []*Test
	Warnings []string
}

// Test pairs a template and a constraint with cases.
type Test struct {
	Name       string
	Template   string
	Constraint string
	Expansion  string
	Invalid    bool // the constraint is expected to break its schema
	Skip       bool
	Cases      []*Case
	Line       int
}

// Case reviews one object, with optional inventory, and checks assertions.
type Case struct {
	Name       string
	Object     string
	Inventory  []string
	Skip       bool
	Assertions []*Assertion
	Line       int
}

// Assertion counts the results whose message matches Message (all results
// when Message is nil) and compares the count with Violations.
type Assertion struct {
	Violations Count
	Message    *string
	Line       int
}

// Count is "yes" (at least one), "no" (none) or an exact number.
type Count struct {
	Raw   string // as written; "yes" when omitted
	Exact int    // -1 unless an exact number
}

// String renders the count as written.
func (c Count) String() string { return c.Raw }

// Find lists suite candidates under the given paths: directories are
// walked recursively (a trailing "/..." as in gator is accepted), files are
// taken as they are.
func Find(paths []string) ([]string, error) {
	trimmed := make([]string, len(paths))
	for i, p := range paths {
		if trimmed[i] = strings.TrimSuffix(p, "..."); trimmed[i] == "" {
			trimmed[i] = "."
		}
	}
	files, err := manifest.Files(trimmed, ".yaml", ".yml")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &InputError{File: pe.Path, Msg: pe.Err.Error()}
		}
		return nil, &InputError{Msg: err.Error()}
	}
	return files, nil
}

func describeFSError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Load reads a file and returns its suite, or nil when the file is not a
// suite (as gator does, other YAML is skipped). Only the first document of
// a file can be a suite.
func Load(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &InputError{File: path, Msg: describeFSError(err)}
	}
	return Parse(path, data)
}

// Parse reads a suite from data; path is used in messages and to resolve
// the files the suite names.
func Parse(path string, data []byte) (*Suite, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty file
		}
		return nil, &InputError{File: path, Line: manifest.YAMLErrorLine(err), Msg: manifest.YAMLErrorText(err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil
	}
	apiVersion, kind := scalarOf(root, "apiVersion"), scalarOf(root, "kind")
	group, version := "", apiVersion
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group, version = apiVersion[:i], apiVersion[i+1:]
	}
	if group != Group || kind != Kind {
		return nil, nil
	}
	p := parser{file: path}
	s := &Suite{Path: path}
	p.keys(root, "", "apiVersion", "kind", "metadata", "tests", "skip")
	s.Skip = p.boolean(root, "skip")
	if version != Version {
		p.warn(root.Line, fmt.Sprintf("apiVersion %q: this tool knows %s/%s", apiVersion, Group, Version))
	}
	for i, tn := range p.list(root, "tests") {
		s.Tests = append(s.Tests, p.test(tn, fmt.Sprintf("tests[%d]", i)))
	}
	if p.err != nil {
		return nil, p.err
	}
	s.Warnings = p.warnings
	return s, nil
}

// parser walks a suite's YAML nodes, collecting the first hard error and
// any warnings.
type parser struct {
	file     string
	err      error
	warnings []string
}

func (p *parser) fail(line int, msg string) {
	if p.err == nil {
		p.err = &InputError{File: p.file, Line: line, Msg: msg}
	}
}

func (p *parser) warn(line int, msg string) {
	p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s", p.file, line, msg))
}

// keys warns about fields the format does not define; gator ignores them,
// which hides typos such as "assertion:" for "assertions:".
func (p *parser) keys(n *yaml.Node, where string, known ...string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !contains(known, k) {
			field := k
			if where != "" {
				field = where + "." + k
			}
			p.warn(n.Content[i].Line, fmt.Sprintf("unknown field %q (ignored)", field))
		}
	}
}

func (p *parser) test(n *yaml.Node, where string) *Test {
	t := &Test{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.fail(n.Line, where+": must be a mapping")
		return t
	}
	p.keys(n, where, "name", "template", "constraint", "expansion", "cases", "invalid", "skip")
	t.Name = p.str(n, "name")
	t.Template = p.str(n, "template")
	t.Constraint = p.str(n, "constraint")
	t.Expansion = p.str(n, "expansion")
	t.Invalid = p.boolean(n, "invalid")
	t.Skip = p.boolean(n, "skip")
	for i, cn := range p.list(n, "cases") {
		t.Cases = append(t.Cases, p.caseOf(cn, fmt.Sprintf("%s.cases[%d]", where, i)))
	}
	return t
}

func (p *parser) caseOf(n *yaml.Node, where string) *Case {
	c := &Case{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.fail(n.Line, where+": must be a mapping")
		return c
	}
	p.keys(n, where, "name", "object", "inventory", "assertions", "skip")
	c.Name = p.str(n, "name")
	c.Object = p.str(n, "object")
	c.Skip = p.boolean(n, "skip")
	for _, in := range p.list(n, "inventory") {
		if in.Kind != yaml.ScalarNode {
			p.fail(in.Line, where+".inventory: entries must be file paths")
			continue
		}
		c.Inventory = append(c.Inventory, in.Value)
	}
	for i, an := range p.list(n, "assertions") {
		c.Assertions = append(c.Assertions, p.assertion(an, fmt.Sprintf("%s.assertions[%d]", where, i)))
	}
	return c
}

func (p *parser) assertion(n *yaml.Node, where string) *Assertion {
	a := &Assertion{Line: n.Line, Violations: Count{Raw: "yes", Exact: -1}}
	if n.Kind != yaml.MappingNode {
		p.fail(n.Line, where+": must be a mapping")
		return a
	}
	p.keys(n, where, "violations", "message")
	if v := valueOf(n, "violations"); v != nil {
		a.Violations = p.count(v, where)
	}
	if m := valueOf(n, "message"); m != nil {
		if m.Kind != yaml.ScalarNode || m.ShortTag() == "!!null" {
			p.fail(m.Line, where+".message: must be a regular expression")
		} else {
			s := m.Value
			a.Message = &s
		}
	}
	return a
}

// count reads violations as gator does: an unquoted integer is a number,
// anything else is text that must be "yes" or "no".
func (p *parser) count(v *yaml.Node, where string) Count {
	if v.Kind != yaml.ScalarNode {
		p.fail(v.Line, where+".violations: must be yes, no or a number")
		return Count{Raw: "yes", Exact: -1}
	}
	if v.ShortTag() == "!!int" {
		n, err := strconv.Atoi(v.Value)
		if err != nil || n < 0 {
			p.fail(v.Line, fmt.Sprintf("%s.violations: %q must be yes, no or a number of at least 0", where, v.Value))
			return Count{Raw: v.Value, Exact: -1}
		}
		return Count{Raw: v.Value, Exact: n}
	}
	switch v.Value {
	case "yes", "no":
		return Count{Raw: v.Value, Exact: -1}
	}
	p.fail(v.Line, fmt.Sprintf("%s.violations: %q must be yes, no or a number of at least 0", where, v.Value))
	return Count{Raw: v.Value, Exact: -1}
}

func (p *parser) str(n *yaml.Node, key string) string {
	v := valueOf(n, key)
	if v == nil || v.ShortTag() == "!!null" {
		return ""
	}
	if v.Kind != yaml.ScalarNode {
		p.fail(v.Line, fmt.Sprintf("%s: must be a string", key))
		return ""
	}
	return v.Value
}

func (p *parser) boolean(n *yaml.Node, key string) bool {
	v := valueOf(n, key)
	if v == nil || v.ShortTag() == "!!null" {
		return false
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
		p.fail(v.Line, fmt.Sprintf("%s: must be true or false, found %q", key, v.Value))
		return false
	}
	return v.Value == "true"
}

func (p *parser) list(n *yaml.Node, key string) []*yaml.Node {
	v := valueOf(n, key)
	if v == nil || v.ShortTag() == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(v.Line, fmt.Sprintf("%s: must be a list", key))
		return nil
	}
	return v.Content
}

func valueOf(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

func scalarOf(n *yaml.Node, key string) string {
	v := valueOf(n, key)
	if v == nil || v.Kind != yaml.ScalarNode {
		return ""
	}
	return v.Value
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
