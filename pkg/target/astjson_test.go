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

// withDeferred puts a deferred value back where ParseJSONDeferring took it
// from, in a copy of v.
func withDeferred(v ast.Value, deferred []byte, path []string) (ast.Value, error) {
	if deferred == nil {
		return v, nil
	}
	return Deferred{Path: path, Raw: deferred}.Into(v)
}

func TestParseJSONDeferring(t *testing.T) {
	path := []string{"metadata", "managedFields"}
	for _, tc := range []struct {
		in, want, deferred string
	}{
		{`{"metadata":{"name":"a","managedFields":[{"f:x":{}}]},"spec":1}`, `{"metadata":{"name":"a"},"spec":1}`, `[{"f:x":{}}]`},
		{`{"metadata":{"name":"a"}}`, `{"metadata":{"name":"a"}}`, ``},
		// Only the path from the top is deferred.
		{`{"spec":{"metadata":{"managedFields":1}}}`, `{"spec":{"metadata":{"managedFields":1}}}`, ``},
		// A repeated key keeps its last value.
		{`{"metadata":{"managedFields":1,"managedFields":"two"}}`, `{"metadata":{}}`, `"two"`},
		{`{"metadata":{"managedFields":1},"metadata":{"name":"b"}}`, `{"metadata":{"name":"b"}}`, ``},
		{`{"metadata":{"managedFields":1},"metadata":3}`, `{"metadata":3}`, ``},
		{`{"metadata":{"managedFields": "\u00e9\n" }}`, `{"metadata":{}}`, `"\u00e9\n"`},
		{`{"metadata":{"managedFields":{"k:{\"name\":\"x\"}":"\/\b\f\r\t\\\ud83d\ude00"}}}`, `{"metadata":{}}`, `{"k:{\"name\":\"x\"}":"\/\b\f\r\t\\\ud83d\ude00"}`},
		{`[1]`, `[1]`, ``},
	} {
		got, deferred, err := ParseJSONDeferring([]byte(tc.in), path...)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		want, _ := ParseJSON([]byte(tc.want))
		if ast.Compare(got, want) != 0 || string(deferred) != tc.deferred {
			t.Errorf("%s:\n got  %v, deferred %q\n want %v, deferred %q", tc.in, got, deferred, want, tc.deferred)
		}
	}
	// The deferred value is checked as ParseJSON would check it.
	for _, in := range []string{
		`{"metadata":{"managedFields":[1,]}}`, `{"metadata":{"managedFields":01}}`, `{"metadata":{"managedFields":"\q"}}`,
		`{"metadata":{"managedFields":{"a" 1}}}`, `{"metadata":{"managedFields":tru}}`, "{\"metadata\":{\"managedFields\":\"\x01\"}}",
		`{"metadata":{"managedFields":"\ud800\u12"}}`, `{"metadata":{"managedFields":1e400}}`, `{"metadata":{"managedFields":[`,
		`{"metadata":{"managedFields":"\u12G4"}}`, `{"metadata":{"managedFields":"\`, `{"metadata":{"managedFields":"abc`,
	} {
		if _, _, err := ParseJSONDeferring([]byte(in), path...); err == nil {
			t.Errorf("%s accepted", in)
		}
		if _, err := ParseJSON([]byte(in)); err == nil {
			t.Errorf("%s accepted by ParseJSON", in)
		}
	}
}

func FuzzParseJSONDeferring(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"a","managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{"f:containers":{"k:{\"name\":\"x\"}":{".":{}}}}}}]},"spec":{}}`,
		`{"metadata":{"managedFields":1,"managedFields":[2.50,-0,"\ud83d\ude00"]}}`,
		`{"object":{"metadata":{"managedFields":[]}},"type":"ADDED"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, path := range [][]string{{"metadata", "managedFields"}, {"object", "metadata", "managedFields"}} {
			full, fullErr := ParseJSON(data)
			got, deferred, err := ParseJSONDeferring(data, path...)
			if (err != nil) != (fullErr != nil) {
				t.Fatalf("%q: error %v, ParseJSON's %v", data, err, fullErr)
			}
			if err != nil {
				continue
			}
			back, err := withDeferred(got, deferred, path)
			if err != nil {
				t.Fatalf("%q: deferred %q: %v", data, deferred, err)
			}
			if ast.Compare(back, full) != 0 {
				t.Fatalf("%q:\n got  %v with %q\n want %v", data, got, deferred, full)
			}
			// Dropping gives what deferring does, without the value.
			dataFull, _ := ParseDataJSON(data)
			dropped, err := ParseDataJSONDropping(data, path...)
			if err != nil {
				t.Fatalf("%q: dropping: %v", data, err)
			}
			if back, _ := withDeferred(dropped, deferred, path); ast.Compare(back, dataFull) != 0 {
				t.Fatalf("%q: dropping gives %v", data, dropped)
			}
		}
	})
}

func TestParseDataJSONDropping_EveryItem(t *testing.T) {
	in := `{"items":[{"metadata":{"name":"a","managedFields":[1]}},{"metadata":{"name":"b"}},3,{"metadata":{"managedFields":{}}}],"metadata":{"managedFields":2}}`
	want := `{"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}},3,{"metadata":{}}],"metadata":{"managedFields":2}}`
	got, err := ParseDataJSONDropping([]byte(in), "items", "*", "metadata", "managedFields")
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := ParseJSON([]byte(want)); ast.Compare(got, w) != 0 {
		t.Errorf("got  %v\nwant %v", got, w)
	}
	if _, err := ParseDataJSONDropping([]byte(`{"items":[{"metadata":{"managedFields":[1,]}}]}`), "items", "*", "metadata", "managedFields"); err == nil {
		t.Error("a dropped value is not checked")
	}
}
