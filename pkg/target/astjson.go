package target

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxJSONDepth bounds nesting; Kubernetes objects are far shallower.
const maxJSONDepth = 10000

// ParseJSON parses one JSON value straight into a Rego value. Reviews are
// converted once per admission request and this is most of the cost, so it
// skips the map[string]interface{} that json.Unmarshal followed by
// ast.InterfaceToValue would build.
//
// It gives the values that path gives: numbers go through float64 (so
// 1.50 is 1.5 and 1e3 is 1000), a repeated key keeps its last value, and
// invalid UTF-8 is replaced with U+FFFD.
func ParseJSON(data []byte) (ast.Value, error) {
	return (&jsonParser{data: data}).parse(nil)
}

// ParseDataJSON parses an object as the API server sends it into the Rego
// value that syncing it gives in data.inventory: the constraint
// framework's JSON round trip of the object decoded as unstructured.
// That is ParseJSON's value but for one number: unstructured decoding
// keeps integers as int64, so an integer written -0 is stored as 0.
func ParseDataJSON(data []byte) (ast.Value, error) {
	return (&jsonParser{data: data, intZero: true}).parse(nil)
}

// ParseJSONDeferring is ParseJSON leaving out the value at path (object
// keys from the top): that value is checked as JSON and returned raw, to be
// parsed if it is ever read. A pod's metadata.managedFields is nearly half
// of it as the API server sends it, and no policy reads it.
func ParseJSONDeferring(data []byte, path ...string) (ast.Value, []byte, error) {
	p := &jsonParser{data: data}
	v, err := p.parse(path)
	return v, p.deferred, err
}

// ParseDataJSONDropping is ParseDataJSON leaving out the value at path,
// where "*" stands for every element of an array (a list's items).
func ParseDataJSONDropping(data []byte, path ...string) (ast.Value, error) {
	return (&jsonParser{data: data, intZero: true}).parse(path)
}

type jsonParser struct {
	data []byte
	pos  int
	// deferred is the raw JSON of the value at the deferred path
	// (ParseJSONDeferring), nil when there is none.
	deferred []byte
	// intZero reads the integer -0 as 0 (ParseDataJSON).
	intZero bool
	// slab hands out terms in chunks: a pod is some hundreds of values, and
	// one allocation per chunk instead of per term is most of the saving.
	slab []ast.Term
}

// parse reads the one JSON value that is all of p.data, deferring the
// value at path.
func (p *jsonParser) parse(path []string) (ast.Value, error) {
	p.space()
	v, err := p.valueOn(0, path)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.errorf("unexpected data after the JSON value")
	}
	return v.Value, nil
}

// term wraps v in a term from the slab.
func (p *jsonParser) term(v ast.Value) *ast.Term {
	if len(p.slab) == 0 {
		p.slab = make([]ast.Term, 64)
	}
	t := &p.slab[0]
	p.slab = p.slab[1:]
	t.Value = v
	return t
}

func (p *jsonParser) errorf(format string, args ...interface{}) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*ast.Term, error) { return p.valueOn(depth, nil) }

// valueOn reads a value; when it is an object, the value at path below it
// is deferred.
func (p *jsonParser) valueOn(depth int, path []string) (*ast.Term, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("nested too deeply")
	}
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		v, err := p.object(depth, path)
		if err != nil {
			return nil, err
		}
		return p.term(v), nil
	case c == '[':
		if len(path) == 0 || path[0] != "*" {
			path = nil
		}
		v, err := p.array(depth, path)
		if err != nil {
			return nil, err
		}
		return p.term(v), nil
	case c == '"':
		return p.strTerm()
	case c == 't':
		return p.literal("true", ast.InternedTerm(true))
	case c == 'f':
		return p.literal("false", ast.InternedTerm(false))
	case c == 'n':
		return p.literal("null", ast.InternedNullTerm)
	case c == '-' || (c >= '0' && c <= '9'):
		v, err := p.number()
		if err != nil {
			return nil, err
		}
		return p.term(v), nil
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *jsonParser) literal(word string, v *ast.Term) (*ast.Term, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, p.errorf("invalid literal")
	}
	p.pos += len(word)
	return v, nil
}

func (p *jsonParser) object(depth int, path []string) (ast.Value, error) {
	p.pos++ // {
	items := make([][2]*ast.Term, 0, 8)
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return ast.NewObject(), nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected a string key")
		}
		key, err := p.strTerm()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.pos++
		p.space()
		var below []string
		deferHere := false
		if len(path) > 0 && key.Value.Compare(ast.String(path[0])) == 0 {
			// A repeated key keeps its last value, deferred or not.
			p.deferred = nil
			deferHere, below = len(path) == 1, path[1:]
		}
		if deferHere {
			start := p.pos
			if err := p.skip(depth + 1); err != nil {
				return nil, err
			}
			p.deferred = p.data[start:p.pos]
		} else {
			v, err := p.valueOn(depth+1, below)
			if err != nil {
				return nil, err
			}
			items = append(items, [2]*ast.Term{key, v})
		}
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			obj := ast.NewObjectWithCapacity(len(items))
			for _, it := range items {
				obj.Insert(it[0], it[1]) // a repeated key keeps its last value
			}
			return obj, nil
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

// skip reads a value without building it, with the checks value makes.
func (p *jsonParser) skip(depth int) error {
	if depth > maxJSONDepth {
		return p.errorf("nested too deeply")
	}
	if p.pos >= len(p.data) {
		return p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{', c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.pos++
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == end {
			p.pos++
			return nil
		}
		for {
			p.space()
			if c == '{' {
				if p.pos >= len(p.data) || p.data[p.pos] != '"' {
					return p.errorf("expected a string key")
				}
				if err := p.skipString(); err != nil {
					return err
				}
				p.space()
				if p.pos >= len(p.data) || p.data[p.pos] != ':' {
					return p.errorf("expected ':'")
				}
				p.pos++
				p.space()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.space()
			if p.pos >= len(p.data) {
				return p.errorf("unexpected end of input")
			}
			switch p.data[p.pos] {
			case ',':
				p.pos++
			case end:
				p.pos++
				return nil
			default:
				return p.errorf("expected ',' or %q", end)
			}
		}
	case c == '"':
		return p.skipString()
	case c == 't':
		_, err := p.literal("true", nil)
		return err
	case c == 'f':
		_, err := p.literal("false", nil)
		return err
	case c == 'n':
		_, err := p.literal("null", nil)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	default:
		return p.errorf("unexpected character %q", c)
	}
}

// skipString reads a string without keeping it, with the checks str
// makes. (Field managers' keys are full of escaped quotes.)
func (p *jsonParser) skipString() error {
	i := p.pos + 1
	for i < len(p.data) {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			return nil
		case c < 0x20:
			p.pos = i
			return p.errorf("control character in a string")
		case c != '\\':
			i++
			continue
		}
		if i+1 >= len(p.data) {
			break
		}
		switch e := p.data[i+1]; e {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if len(p.data)-(i+2) < 4 || !isHex4(p.data[i+2:i+6]) {
				p.pos = i + 2
				return p.errorf("invalid \\u escape")
			}
			i += 6
		default:
			p.pos = i + 2
			return p.errorf("invalid escape \\%c", e)
		}
	}
	p.pos = len(p.data)
	return p.errorf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// array reads an array; with a path below "*", the value at the rest of
// the path is left out of each element.
func (p *jsonParser) array(depth int, path []string) (ast.Value, error) {
	var below []string
	if len(path) > 0 {
		below = path[1:]
	}
	p.pos++ // [
	var terms []*ast.Term
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return ast.NewArray(), nil
	}
	for {
		p.space()
		v, err := p.valueOn(depth+1, below)
		if err != nil {
			return nil, err
		}
		terms = append(terms, v)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return ast.NewArray(terms...), nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}

// strTerm reads a JSON string into a term. A string without escapes that
// Kubernetes objects repeat (field names, common values) is a shared term,
// found without converting the input's bytes first.
func (p *jsonParser) strTerm() (*ast.Term, error) {
	start := p.pos + 1
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		if c == '"' {
			if t, ok := internedJSONStrings[string(p.data[start:i])]; ok {
				p.pos = i + 1
				return t, nil
			}
			break
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	s, err := p.str()
	if err != nil {
		return nil, err
	}
	return p.term(ast.String(s)), nil
}

// str reads a JSON string. The common case, no escapes and valid UTF-8,
// is a slice conversion.
func (p *jsonParser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.data[start:p.pos]
			p.pos++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return string([]rune(string(s))), nil // replaces invalid bytes with U+FFFD
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", p.errorf("control character in a string")
		default:
			p.pos++
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) escaped(start int) (string, error) {
	buf := make([]byte, 0, p.pos-start+16)
	buf = append(buf, p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if utf8.Valid(buf) {
				return string(buf), nil
			}
			return string([]rune(string(buf))), nil
		case c < 0x20:
			return "", p.errorf("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++ // backslash
		if p.pos >= len(p.data) {
			break
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by \uDC00..\uDFFF makes one rune;
				// anything else is replaced, as encoding/json does.
				r2 := rune(-1)
				save := p.pos
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					p.pos += 2
					if v, ok := p.hex4(); ok {
						r2 = v
					} else {
						return "", p.errorf("invalid \\u escape")
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
				} else {
					p.pos = save
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(v), true
}

var errNumber = errors.New("invalid number")

// number reads a JSON number and converts it as encoding/json into
// float64 and ast.InterfaceToValue would.
func (p *jsonParser) number() (ast.Value, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if n := digits(); n == 0 || (n > 1 && p.data[intStart] == '0') {
		return nil, p.errorf("%v", errNumber)
	}
	simple := true
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		simple = false
		if digits() == 0 {
			return nil, p.errorf("%v", errNumber)
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		simple = false
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("%v", errNumber)
		}
	}
	text := string(p.data[start:p.pos])
	if p.intZero && simple && text == "-0" {
		return ast.Number("0"), nil
	}
	// Integers of up to six digits print the same after the float64 round
	// trip (from 1e6 on, the shortest form uses an exponent: "1e+06").
	if simple && p.pos-intStart <= 6 {
		return ast.Number(text), nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return nil, p.errorf("number %s out of range", text)
	}
	return ast.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}
