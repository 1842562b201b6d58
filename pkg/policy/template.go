package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/open-policy-agent/frameworks/constraint/pkg/apis"
	regoschema "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/opa/v1/ast"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"

	"github.com/statcan/daaas-guard/pkg/target"
)

// TemplateGroup is the API group of ConstraintTemplates.
const TemplateGroup = "templates.gatekeeper.sh"

// ConstraintGroup is the API group of constraints.
const ConstraintGroup = "constraints.gatekeeper.sh"

// Source locates fields in the file an object was read from; see
// manifest.Document. Objects read from a cluster have none.
type Source interface {
	Pos() string
	LineOf(path ...interface{}) int
	ContentLine(path ...interface{}) int
}

// fileOf extracts the file name from a Source's "file:line" position.
func fileOf(s Source) string {
	if s == nil {
		return ""
	}
	p := s.Pos()
	if i := strings.LastIndex(p, ":"); i > 0 {
		if _, err := strconv.Atoi(p[i+1:]); err == nil {
			return p[:i]
		}
	}
	return p
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := apis.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("registering ConstraintTemplate types: %v", err))
	}
	return s
}()

// Template is a ConstraintTemplate decoded from any served version
// (v1, v1beta1, v1alpha1) with that version's defaults applied.
type Template struct {
	Name        string
	Kind        string // the constraint kind it defines
	Labels      map[string]string
	Annotations map[string]string
	// Warnings are problems that do not stop the template from working,
	// such as unknown fields that a cluster would drop.
	Warnings []string

	core   *templates.ConstraintTemplate
	source Source
	rego   *regoschema.Source
	// regoPath and libPaths locate the Rego in the source document.
	regoPath []interface{}
	libPaths [][]interface{}
}

// IsTemplate reports whether u is a ConstraintTemplate.
func IsTemplate(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Group == TemplateGroup && gvk.Kind == "ConstraintTemplate"
}

// IsConstraint reports whether u is a constraint.
func IsConstraint(u *unstructured.Unstructured) bool {
	return u.GroupVersionKind().Group == ConstraintGroup
}

// Core returns the framework's form of the template.
func (t *Template) Core() *templates.ConstraintTemplate { return t.core }

// Operations returns the admission operations the template applies to;
// empty means all.
func (t *Template) Operations() []string {
	var ops []string
	if len(t.core.Spec.Targets) == 1 {
		for _, op := range t.core.Spec.Targets[0].Operations {
			ops = append(ops, string(op))
		}
	}
	return ops
}

// NewTemplate decodes and checks a ConstraintTemplate. The Rego is parsed
// here, so syntax errors come back with the file line they are on; compile
// errors are found when the template is added to an engine.
func NewTemplate(u *unstructured.Unstructured, src Source) (*Template, error) {
	name := u.GetName()
	terr := func(field string, path []interface{}, format string, args ...interface{}) *TemplateError {
		e := &TemplateError{Template: name, File: fileOf(src), Field: field, Msg: fmt.Sprintf(format, args...)}
		if src != nil {
			e.Line = src.LineOf(path...)
		}
		return e
	}
	if !IsTemplate(u) {
		return nil, terr("kind", []interface{}{"kind"}, "expected a %s ConstraintTemplate, found %s %s", TemplateGroup, u.GetAPIVersion(), u.GetKind())
	}
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, terr("", nil, "cannot encode: %v", err)
	}
	obj, err := scheme.New(u.GroupVersionKind())
	if err != nil {
		return nil, terr("apiVersion", []interface{}{"apiVersion"}, "version %q is not served; use templates.gatekeeper.sh/v1, v1beta1 or v1alpha1", u.GroupVersionKind().Version)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(raw, obj)
	if err != nil {
		return nil, terr("", nil, "%s", cleanJSONError(err))
	}
	versioned, ok := obj.(interface {
		ToVersionless() (*templates.ConstraintTemplate, error)
	})
	if !ok {
		return nil, terr("apiVersion", []interface{}{"apiVersion"}, "version %q cannot be converted", u.GroupVersionKind().Version)
	}
	core, err := versioned.ToVersionless()
	if err != nil {
		return nil, terr("", nil, "cannot convert: %v", err)
	}
	t := &Template{
		Name:        name,
		Kind:        core.Spec.CRD.Spec.Names.Kind,
		Labels:      u.GetLabels(),
		Annotations: u.GetAnnotations(),
		core:        core,
		source:      src,
	}
	for _, se := range strictErrs {
		t.Warnings = append(t.Warnings, se.Error())
	}
	if err := t.check(u, terr); err != nil {
		return nil, err
	}
	return t, nil
}

type templateErrFunc func(field string, path []interface{}, format string, args ...interface{}) *TemplateError

// check validates what the framework would reject later with less precise
// messages, and parses the Rego.
func (t *Template) check(u *unstructured.Unstructured, terr templateErrFunc) error {
	switch {
	case t.Name == "":
		return terr("metadata.name", []interface{}{"metadata"}, "is required")
	case t.Kind == "":
		return terr("spec.crd.spec.names.kind", []interface{}{"spec", "crd"}, "is required")
	case t.Name != strings.ToLower(t.Kind):
		return terr("metadata.name", []interface{}{"metadata", "name"},
			"must be the lowercase of spec.crd.spec.names.kind (%q), found %q", strings.ToLower(t.Kind), t.Name)
	case len(t.core.Spec.Targets) != 1:
		return terr("spec.targets", []interface{}{"spec", "targets"}, "must declare exactly one target, found %d", len(t.core.Spec.Targets))
	case t.core.Spec.Targets[0].Target != target.Name:
		return terr("spec.targets[0].target", []interface{}{"spec", "targets", 0, "target"},
			"unknown target %q; only %q is supported", t.core.Spec.Targets[0].Target, target.Name)
	}
	for i, op := range t.core.Spec.Targets[0].Operations {
		switch op {
		case "*", "CREATE", "UPDATE", "DELETE", "CONNECT":
		default:
			return terr(fmt.Sprintf("spec.targets[0].operations[%d]", i), []interface{}{"spec", "targets", 0, "operations", i},
				"unknown operation %q; use *, CREATE, UPDATE, DELETE or CONNECT", op)
		}
	}
	if err := t.locateRego(u); err != nil {
		return terr("spec.targets[0]", []interface{}{"spec", "targets", 0}, "%v", err)
	}
	return t.parseRego()
}

// locateRego finds the Rego source the framework will run and where it is
// in the document: the legacy spec.targets[0].rego field wins over a Rego
// entry in code[], as in the framework's conversion.
func (t *Template) locateRego(u *unstructured.Unstructured) error {
	tgt := t.core.Spec.Targets[0]
	for _, code := range tgt.Code {
		if code.Engine != regoschema.Name {
			continue
		}
		src, err := regoschema.GetSource(code)
		if err != nil {
			return fmt.Errorf("the Rego code: %w", err)
		}
		t.rego = src
	}
	if t.rego == nil {
		var engines []string
		for _, code := range tgt.Code {
			engines = append(engines, code.Engine)
		}
		if len(engines) > 0 {
			return fmt.Errorf("has no Rego code (found %s); only Rego templates are supported", strings.Join(engines, ", "))
		}
		return errors.New("has no Rego code: set rego or code[{engine: Rego}]")
	}
	base := []interface{}{"spec", "targets", 0}
	targets, _, _ := unstructured.NestedSlice(u.Object, "spec", "targets")
	if len(targets) > 0 {
		if m, ok := targets[0].(map[string]interface{}); ok {
			if r, _ := m["rego"].(string); r != "" {
				t.regoPath = append(append([]interface{}{}, base...), "rego")
				for i := range t.rego.Libs {
					t.libPaths = append(t.libPaths, append(append([]interface{}{}, base...), "libs", i))
				}
				return nil
			}
			codes, _ := m["code"].([]interface{})
			for ci, c := range codes {
				cm, _ := c.(map[string]interface{})
				if cm["engine"] == regoschema.Name {
					p := append(append([]interface{}{}, base...), "code", ci, "source")
					t.regoPath = append(append([]interface{}{}, p...), "rego")
					for i := range t.rego.Libs {
						t.libPaths = append(t.libPaths, append(append([]interface{}{}, p...), "libs", i))
					}
				}
			}
		}
	}
	return nil
}

func (t *Template) regoVersion() ast.RegoVersion {
	if t.rego.Version == "v1" {
		return ast.RegoV1
	}
	return ast.RegoV0
}

// parseRego parses the entry point and the libraries with the Rego version
// the template declares, and checks the entry point defines violation.
func (t *Template) parseRego() error {
	opts := ast.ParserOptions{RegoVersion: t.regoVersion()}
	switch t.rego.Version {
	case "", "v0", "v1":
	default:
		return t.regoError(t.regoFieldName(), t.regoPath, 0, 0, fmt.Sprintf("unknown Rego version %q; use v0 or v1", t.rego.Version), nil)
	}
	mod, err := ast.ParseModuleWithOpts("template", t.rego.Rego, opts)
	if err != nil {
		return t.astError(err, "template")
	}
	if mod == nil {
		return t.regoError(t.regoFieldName(), t.regoPath, 0, 0, "is empty", nil)
	}
	hasViolation := false
	for _, r := range mod.Rules {
		if r.Head.Name.String() == "violation" || (len(r.Head.Reference) > 0 && r.Head.Reference[0].String() == "violation") {
			hasViolation = true
		}
	}
	if !hasViolation {
		return t.regoError(t.regoFieldName(), t.regoPath, mod.Package.Location.Row, 0,
			"must define the rule violation[{\"msg\": ...}]", nil)
	}
	for i, lib := range t.rego.Libs {
		if _, err := ast.ParseModuleWithOpts(libFile(i), lib, opts); err != nil {
			return t.astError(err, libFile(i))
		}
	}
	return nil
}

func libFile(i int) string { return fmt.Sprintf("lib%d", i) }

func (t *Template) regoFieldName() string { return pathString(t.regoPath) }

// astError turns OPA parse or compile errors into a TemplateError that
// points at the first error's line in the template file.
func (t *Template) astError(err error, file string) error {
	var errs ast.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		return t.located(errs[0].Location, errs[0].Code, errs[0].Message, len(errs), err, file)
	}
	return t.regoError(t.regoFieldName(), t.regoPath, 0, 0, err.Error(), err)
}

func (t *Template) located(loc *ast.Location, code, msg string, n int, err error, file string) error {
	field, path := t.regoFieldName(), t.regoPath
	if loc != nil && loc.File != "" {
		file = loc.File
	}
	if strings.HasPrefix(file, "lib") {
		if i, convErr := strconv.Atoi(strings.TrimPrefix(file, "lib")); convErr == nil && i < len(t.libPaths) {
			field, path = pathString(t.libPaths[i]), t.libPaths[i]
		}
	}
	row, col := 0, 0
	if loc != nil {
		row, col = loc.Row, loc.Col
	}
	text := fmt.Sprintf("%s: %s", code, msg)
	if n > 1 {
		text += fmt.Sprintf(" (and %d more)", n-1)
	}
	return t.regoError(field, path, row, col, text, err)
}

// regoError builds a TemplateError at Rego row/col inside the field at path.
func (t *Template) regoError(field string, path []interface{}, row, col int, msg string, err error) error {
	e := &TemplateError{Template: t.Name, File: fileOf(t.source), Field: field, Msg: msg, Err: err}
	if t.source != nil {
		if start := t.source.ContentLine(path...); start > 0 && row > 0 {
			e.Line = start + row - 1
		} else {
			e.Line = t.source.LineOf(path...)
		}
	}
	// The Rego position follows the field name, as a compiler would print
	// it: spec.targets[0].rego:12:5.
	if row > 0 {
		e.Field = fmt.Sprintf("%s:%d", e.Field, row)
		if col > 0 {
			e.Field = fmt.Sprintf("%s:%d", e.Field, col)
		}
	}
	return e
}

// compileErrorLine matches one error in the framework's compile errors:
// "template:12: rego_type_error: undefined function foo" or
// `libs["lib_0"]:3: ...`.
var compileErrorLine = regexp.MustCompile(`(template|libs\["lib_(\d+)"\]):(\d+): (rego_[a-z_]+): ([^\n]+)`)

// compileError converts the framework's AddTemplate error into a
// TemplateError, keeping the Rego location when the message has one.
func (t *Template) compileError(err error) error {
	ms := compileErrorLine.FindAllStringSubmatch(err.Error(), -1)
	if len(ms) == 0 {
		return &TemplateError{Template: t.Name, File: fileOf(t.source), Msg: err.Error(), Err: err,
			Line: lineOf(t.source, "spec")}
	}
	m := ms[0]
	file := "template"
	if m[2] != "" {
		file = "lib" + m[2]
	}
	row, _ := strconv.Atoi(m[3])
	return t.located(&ast.Location{File: file, Row: row}, m[4], strings.TrimSpace(m[5]), len(ms), err, file)
}

func lineOf(s Source, path ...interface{}) int {
	if s == nil {
		return 0
	}
	return s.LineOf(path...)
}

// pathString renders a field path as spec.targets[0].rego.
func pathString(path []interface{}) string {
	var b strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

func cleanJSONError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return msg
}
