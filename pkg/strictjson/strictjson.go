// Package strictjson decodes JSON documents from other tools strictly and
// locates every problem by path. Unknown members, duplicate names, invalid
// UTF-8, trailing data and values of the wrong type are errors: a report
// that does not have the shape we expect is not silently read as an empty
// one. Paths read like Go expressions: Controls[0].tests[2].status.
package strictjson

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"encoding/json/jsontext"
	"encoding/json/v2"
)

// Error is one problem in a document, at Path ("" for the document
// itself).
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errorf returns an *Error at path.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Unmarshal decodes data into v, rejecting members v does not declare.
// Errors are *Error.
func Unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v, json.RejectUnknownMembers(true)); err != nil {
		return convert(err)
	}
	return nil
}

// Kind is the JSON kind the first non-space byte of data starts, or 0 when
// data is blank: '{', '[', '"', 'n', 't', 'f' or '0' for a number.
func Kind(data []byte) byte {
	for _, b := range data {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[', '"', 'n', 't', 'f':
			return b
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return '0'
		default:
			return b
		}
	}
	return 0
}

func convert(err error) error {
	var serr *json.SemanticError
	if errors.As(err, &serr) {
		path := Path(serr.JSONPointer)
		switch {
		case errors.Is(serr.Err, json.ErrUnknownName):
			return &Error{Path: path, Msg: "unknown field"}
		case serr.GoType != nil:
			return &Error{Path: path, Msg: fmt.Sprintf("must be %s, found %s", describeGo(serr.GoType), describeJSON(serr))}
		case serr.Err != nil:
			return &Error{Path: path, Msg: serr.Err.Error()}
		}
		return &Error{Path: path, Msg: "invalid value"}
	}
	var xerr *jsontext.SyntacticError
	if errors.As(err, &xerr) {
		msg := fmt.Sprintf("invalid JSON at byte %d", xerr.ByteOffset)
		if xerr.Err != nil {
			msg += ": " + xerr.Err.Error()
		}
		return &Error{Path: Path(xerr.JSONPointer), Msg: msg}
	}
	return &Error{Msg: err.Error()}
}

// Path renders a JSON pointer as a path: /a/0/b becomes a[0].b. Tokens
// made only of digits are taken as array indexes.
func Path(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && tok != "" && tok[0] != '-' {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

func describeGo(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

func describeJSON(e *json.SemanticError) string {
	kind := map[jsontext.Kind]string{'n': "null", 'f': "a boolean", 't': "a boolean", '"': "a string",
		'0': "a number", '{': "an object", '}': "an object", '[': "an array", ']': "an array"}[e.JSONKind]
	if kind == "" {
		kind = "another kind of value"
	}
	if len(e.JSONValue) > 0 && len(e.JSONValue) <= 40 {
		kind += " " + string(e.JSONValue)
	}
	return kind
}

// Problems collects a parser's errors, keeping the first max and counting
// the rest, so one bad document gives a readable error of bounded size.
type Problems struct {
	List    []*Error
	Omitted int
	max     int
}

// NewProblems keeps up to max errors.
func NewProblems(max int) Problems { return Problems{max: max} }

// Add records the error at path.
func (p *Problems) Add(path, format string, args ...any) {
	if len(p.List) >= p.max {
		p.Omitted++
		return
	}
	p.List = append(p.List, Errorf(path, format, args...))
}
