package strictjson

import (
	"errors"
	"strings"
	"testing"

	"encoding/json/jsontext"
)

type doc struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Items []struct {
		On bool `json:"on"`
	} `json:"items"`
}

func TestUnmarshal_LocatesEachKindOfProblem(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown member", `{"name":"a","extra":1}`, "extra: unknown field"},
		{"nested unknown member", `{"items":[{"on":true},{"off":true}]}`, "items[1].off: unknown field"},
		{"case differs", `{"Name":"a"}`, "Name: unknown field"},
		{"wrong type", `{"count":"3"}`, "count: must be an integer, found a string"},
		{"fraction", `{"count":1.5}`, "count: must be an integer, found a number"},
		{"bool expected", `{"items":[{"on":"yes"}]}`, "items[0].on: must be a boolean, found a string"},
		{"array expected", `{"items":{}}`, "items: must be an array, found an object"},
		{"duplicate", `{"name":"a","name":"b"}`, "name: invalid JSON at byte 12: duplicate object member name"},
		{"syntax", `{"name":}`, "invalid JSON at byte 8"},
		{"trailing", `{} {}`, "invalid JSON at byte 3"},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", "invalid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			err := Unmarshal([]byte(tc.in), &d)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if got := err.Error(); !strings.Contains(got, tc.want) {
				t.Errorf("error %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestPath(t *testing.T) {
	for in, want := range map[string]string{"": "", "/a": "a", "/a/0/b": "a[0].b", "/0": "[0]", "/a/-1": "a.-1", "/a~1b/2": "a/b[2]"} {
		if got := Path(jsontext.Pointer(in)); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKind(t *testing.T) {
	for in, want := range map[string]byte{"": 0, " \n": 0, " {": '{', "[": '[', "-1": '0', "7": '0', `"s"`: '"', "null": 'n', "x": 'x'} {
		if got := Kind([]byte(in)); got != want {
			t.Errorf("Kind(%q) = %q, want %q", in, got, want)
		}
	}
}
