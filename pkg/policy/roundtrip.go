package policy

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// roundTripValue converts JSON-compatible data (an unstructured object's
// content) to the Rego value the constraint framework's AddData stores:
// it marshals data to JSON, unmarshals it into interface{} (every number
// a float64) and converts that with ast.InterfaceToValue, which prints a
// float64 in the shortest 'g' form, so 1000000 is stored as 1e+06, as
// under Gatekeeper. ok is false for anything this does not reproduce
// exactly (types other than those JSON decoding gives, invalid UTF-8,
// which marshalling replaces, NaN and infinities, which it refuses).
func roundTripValue(x interface{}) (ast.Value, bool) {
	switch v := x.(type) {
	case nil:
		return ast.Null{}, true
	case bool:
		return ast.Boolean(v), true
	case string:
		if !utf8.ValidString(v) {
			return nil, false
		}
		return ast.String(v), true
	case int64:
		return floatValue(float64(v))
	case int:
		return floatValue(float64(v))
	case int32:
		return floatValue(float64(v))
	case float64:
		return floatValue(v)
	case map[string]interface{}:
		obj := ast.NewObjectWithCapacity(len(v))
		for k, e := range v {
			if !utf8.ValidString(k) {
				return nil, false
			}
			ev, ok := roundTripValue(e)
			if !ok {
				return nil, false
			}
			obj.Insert(ast.StringTerm(k), ast.NewTerm(ev))
		}
		return obj, true
	case []interface{}:
		terms := make([]*ast.Term, len(v))
		for i, e := range v {
			ev, ok := roundTripValue(e)
			if !ok {
				return nil, false
			}
			terms[i] = ast.NewTerm(ev)
		}
		return ast.NewArray(terms...), true
	}
	return nil, false
}

func floatValue(f float64) (ast.Value, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	return ast.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
}
