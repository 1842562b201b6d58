package target

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// reference converts JSON the way the constraint framework's stock driver
// does: json.Unmarshal into interface{}, then ast.InterfaceToValue.
func reference(data []byte) (ast.Value, error) {
	var v interface{}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(v)
}

func TestParseJSON_MatchesTheStockConversion(t *testing.T) {
	for _, in := range []string{
		`{"a": 1, "b": [true, false, null], "c": {"d": "e"}}`,
		`{"n": [0, -0, 1, 123456, 1000000, 1234567, 1.50, 1e3, 2E-5, -3.25, 12345678901234567890, 1e400]}`,
		`{"s": "plain", "e": "tab\tnewline\nquote\"slash\/back\\\\", "u": "\u00e9\u4e2d\ud83d\ude00", "lone": "\ud800x"}`,
		`{"dup": 1, "dup": 2}`,
		`[]`, `{}`, `"x"`, `3`, `null`,
		` {"spaced" : [ 1 , 2 ] } `,
	} {
		want, wantErr := reference([]byte(in))
		got, err := ParseJSON([]byte(in))
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, stock error %v", in, err, wantErr)
			continue
		}
		if err == nil && ast.Compare(got, want) != 0 || err == nil && got.String() != want.String() {
			t.Errorf("%s:\n got  %v\n want %v", in, got, want)
		}
	}
}

func TestParseJSON_RejectsInvalidJSON(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"}`, `{"a":}`, `[1,]`, `01`, `1.`, `-`, `tru`, `"abc`, "\"a\x01\"", `{"a":1}x`, `"\q"`, `{1: 2}`} {
		if _, err := ParseJSON([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null,true]}`, `"\u00e9\ud800"`, `1e308`, `[{"k":{}}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseJSON(data)
		want, wantErr := reference(data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, stock error %v", data, err, wantErr)
		}
		if err == nil && got.String() != want.String() {
			t.Fatalf("%q:\n got  %v\n want %v", data, got, want)
		}
	})
}
