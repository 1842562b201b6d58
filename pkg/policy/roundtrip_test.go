package policy

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/statcan/daaas-guard/pkg/manifest"
)

// frameworkValue is what the constraint framework's AddData stores for
// data: a JSON round trip, then ast.InterfaceToValue.
func frameworkValue(t *testing.T, data interface{}) (ast.Value, bool) {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		return nil, false
	}
	var cpy interface{}
	if err := json.Unmarshal(b, &cpy); err != nil {
		t.Fatal(err)
	}
	v, err := ast.InterfaceToValue(cpy)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

func checkRoundTrip(t *testing.T, name string, data interface{}) {
	t.Helper()
	got, ok := roundTripValue(data)
	want, wantOK := frameworkValue(t, data)
	switch {
	case !ok:
		// Left to the framework: always allowed, but every value that
		// JSON decoding produces must be taken.
		if wantOK && !strings.HasPrefix(name, "fallback") {
			t.Errorf("%s: not converted", name)
		}
	case !wantOK:
		t.Errorf("%s: converted, but the framework cannot marshal it", name)
	case ast.Compare(got, want) != 0 || got.String() != want.String():
		t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
	}
}

// Syncing data without the framework's JSON round trip stores exactly
// what the round trip would: every object of the policy library's
// fixtures and the values where a round trip shows (numbers as float64).
func TestRoundTripValue_MatchesTheFramework(t *testing.T) {
	for name, data := range map[string]interface{}{
		"integers":        map[string]interface{}{"a": int64(1000000), "b": int64(0), "c": int64(-7), "d": int64(math.MaxInt64), "e": int64(1) << 53, "f": int64(1)<<53 + 1, "g": 8080},
		"floats":          []interface{}{0.1, 1e21, 1e-7, -0.0, 123456789.125, 5e-324, math.MaxFloat64},
		"strings":         []interface{}{"", "<&>", "é", "\u2028", "tab\there"},
		"nested":          map[string]interface{}{"x": []interface{}{nil, true, false, map[string]interface{}{}}},
		"fallback NaN":    math.NaN(),
		"fallback UTF-8":  "\xff",
		"fallback struct": struct{ A int }{1},
	} {
		checkRoundTrip(t, name, data)
	}
	n := 0
	err := filepath.WalkDir(filepath.Join("..", "..", "policies"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		docs, err := manifest.ReadFile(path, manifest.Options{AllowUntyped: true})
		if err != nil {
			return nil // not objects (kustomizations, suites with templates inline are still objects)
		}
		for _, doc := range docs {
			checkRoundTrip(t, doc.Pos(), doc.Object.Object)
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 300 {
		t.Fatalf("only %d objects checked", n)
	}
}
