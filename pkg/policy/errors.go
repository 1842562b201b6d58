package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; the concrete errors below wrap them.
var (
	// ErrTemplate: a ConstraintTemplate cannot be used (bad structure, Rego
	// that does not parse or compile, unknown target).
	ErrTemplate = errors.New("invalid ConstraintTemplate")
	// ErrConstraint: a constraint cannot be used (unknown kind, bad
	// metadata, bad match block, parameters that break the schema).
	ErrConstraint = errors.New("invalid constraint")
	// ErrSchema: a constraint's spec does not validate against its CRD
	// schema. It is what gator's "invalid: true" tests expect.
	ErrSchema = errors.New("constraint does not match its schema")
	// ErrData: an object cannot be added to the inventory.
	ErrData = errors.New("invalid referential data")
	// ErrReview: an object cannot be reviewed.
	ErrReview = errors.New("cannot review object")
)

// TemplateError explains why a template cannot be used, pointing at the
// file, line and field when they are known.
type TemplateError struct {
	Template string // metadata.name
	File     string
	Line     int
	Col      int
	Field    string // e.g. spec.targets[0].rego
	Msg      string
	Err      error // underlying error, if any
}

func (e *TemplateError) Error() string {
	var b strings.Builder
	writePos(&b, e.File, e.Line, e.Col)
	fmt.Fprintf(&b, "ConstraintTemplate %q", e.Template)
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Unwrap returns ErrTemplate and the underlying error.
func (e *TemplateError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrTemplate, e.Err}
	}
	return []error{ErrTemplate}
}

// FieldProblem is one reason a constraint is invalid.
type FieldProblem struct {
	Field string // dotted path, e.g. spec.parameters.labels[0]
	Line  int    // in the constraint's file; 0 when unknown
	Msg   string
}

// ConstraintError explains why a constraint cannot be used.
type ConstraintError struct {
	Kind     string
	Name     string
	File     string
	Line     int
	Problems []FieldProblem
	// Schema is set when the spec breaks the constraint's CRD schema (types,
	// enums, patterns, enforcement actions), as opposed to structural
	// problems such as unknown fields or a missing template.
	Schema bool
	Err    error
}

func (e *ConstraintError) Error() string {
	var b strings.Builder
	line := e.Line
	if len(e.Problems) > 0 && e.Problems[0].Line > 0 {
		line = e.Problems[0].Line
	}
	writePos(&b, e.File, line, 0)
	fmt.Fprintf(&b, "constraint %s %q: ", e.Kind, e.Name)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Field != "" {
			fmt.Fprintf(&b, "%s: ", p.Field)
		}
		b.WriteString(p.Msg)
	}
	if len(e.Problems) == 0 && e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrConstraint, ErrSchema when the schema is broken, and the
// underlying error.
func (e *ConstraintError) Unwrap() []error {
	errs := []error{ErrConstraint}
	if e.Schema {
		errs = append(errs, ErrSchema)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func writePos(b *strings.Builder, file string, line, col int) {
	if file == "" {
		return
	}
	b.WriteString(file)
	if line > 0 {
		fmt.Fprintf(b, ":%d", line)
		if col > 0 {
			fmt.Fprintf(b, ":%d", col)
		}
	}
	b.WriteString(": ")
}
