package policies

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/target"
)

// TestContainerLimits_AgreesWithApimachinery checks ContainerLimits' verdict
// on each limit against resource.ParseQuantity and Quantity.Cmp, which decide
// what Kubernetes stores: hand-picked edge cases (signs, empty parts, rounding
// below a nano-unit, values beyond 2^64 nano-units, the binary cap) and
// random quantities, against several maximums.
func TestContainerLimits_AgreesWithApimachinery(t *testing.T) {
	limits := []string{
		"0", "-0", "+", "-", ".", "Ki", "e5", "e-9", "e-10", "+.e-26", "0.e-26", "1.e-26", "Ti", "Pi", "-Ei", "+1", "+500m", "-1", "-500m", "-0.0",
		"16", "+16", "16.", "16.000000000", "16000000000n", "16000000001n", "16000000000.1n",
		"15.9999999999999999999999", "16.0000000000000000000001", "0.1n", "1e-30",
		"1.6e1", "1.6E+1", "160e-1", "17E-0", "1E", "1e", "1e+", "1.5.5", "1 ", " 2",
		"64Gi", "65536Mi", "67108864Ki", "68719476736", "68719476736000000000n",
		"68719476736000000001n", "68719476735999999999n", "64.0000000000000000000001Gi",
		"63.9999999999999999999999Gi", "0.0625Ti", "0.06250000000000000000001Ti",
		"1e30", "99999999999999999999", "9223372036854775807", "9223372036854775808",
		"7.99Ei", "8Ei", "9Ei", "8192Pi", "1e1000", "1e-1000", "0.000000000000000000000000000001Ei",
		"0.00000000000000000000000000000000000001Ei", "00000000000000000000000016",
		"1e-100000", "1e100000", "1e4294967296", "1e99999999999999999999",
		"two", "8GB", "1Mi1", "0x10", "1ki", "1KI", "∞",
	}
	maximums := []string{"16", "64Gi", "0", "1n", "0.5n", "8Ei", "9223372036854775807", "1e20", "1.5Ki", "0.000000000000000000001Ei", "1234567890.0987654321Mi", "+7.5Pi", "3Ti"}

	rng := rand.New(rand.NewPCG(1, 2))
	suffixes := []string{"", "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e", "E"}
	digits := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		return b.String()
	}
	for range 300 {
		s := []string{"", "", "", "+", "-"}[rng.IntN(5)] + digits(rng.IntN(25))
		if rng.IntN(2) == 0 {
			s += "." + digits(rng.IntN(25))
		}
		suf := suffixes[rng.IntN(len(suffixes))]
		if suf == "e" || suf == "E" {
			suf += []string{"", "+", "-"}[rng.IntN(3)] + digits(1+rng.IntN(2))
		}
		limits = append(limits, s+suf)
	}

	tmpl := loadTemplate(t, filepath.Join("general", "container-limits", "template.yaml"))
	for _, max := range maximums {
		t.Run("maximum="+max, func(t *testing.T) {
			maxQ := resource.MustParse(max)
			e, err := policy.New()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := e.AddTemplate(ctx, tmpl); err != nil {
				t.Fatal(err)
			}
			constraint := &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": "constraints.gatekeeper.sh/v1beta1",
				"kind":       "ContainerLimits",
				"metadata":   map[string]interface{}{"name": "max"},
				"spec":       map[string]interface{}{"parameters": map[string]interface{}{"cpu": max}},
			}}
			if err := e.AddConstraint(ctx, constraint, nil); err != nil {
				t.Fatal(err)
			}
			var containers []interface{}
			want := map[string]string{}
			for i, l := range limits {
				name := fmt.Sprintf("c%d", i)
				containers = append(containers, map[string]interface{}{
					"name": name, "image": "app:1",
					"resources": map[string]interface{}{"limits": map[string]interface{}{"cpu": l, "memory": "1"}},
				})
				// The JSON decoder trims spaces before ParseQuantity.
				q, err := resource.ParseQuantity(strings.TrimSpace(l))
				switch {
				case err != nil || wrapsExponent(l):
					want[name] = "invalid"
				case q.Sign() < 0:
					want[name] = "negative"
				case q.IsZero():
					want[name] = "zero" // no limit to the kubelet
				case q.Cmp(maxQ) > 0:
					want[name] = "over"
				}
			}
			pod := &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]interface{}{"name": "p", "namespace": "ns"},
				"spec":     map[string]interface{}{"containers": containers},
			}}
			resp, err := e.Review(ctx, &target.Object{Object: pod, Source: match.SourceOriginal}, policy.AtEnforcementPoint(policy.EnforcementPointGator))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range resp.Results {
				c, _ := r.Details["container"].(string)
				switch {
				case strings.Contains(r.Message, "not a valid Kubernetes quantity"):
					got[c] = "invalid"
				case strings.Contains(r.Message, "negative"):
					got[c] = "negative"
				case strings.Contains(r.Message, "above the maximum"):
					got[c] = "over"
				case strings.Contains(r.Message, "treats as no limit"):
					got[c] = "zero"
				default:
					t.Errorf("unexpected violation: %s", r.Message)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				for c := range want {
					if want[c] != got[c] {
						var i int
						fmt.Sscanf(c, "c%d", &i)
						t.Errorf("limit %q: want %q, got %q", limits[i], want[c], got[c])
					}
				}
				for c := range got {
					if _, ok := want[c]; !ok {
						var i int
						fmt.Sscanf(c, "c%d", &i)
						t.Errorf("limit %q: want no violation, got %q", limits[i], got[c])
					}
				}
			}
		})
	}
}

var exponentPattern = regexp.MustCompile(`\.?([0-9]*)[eE]([+-]?[0-9]+)$`)

// wrapsExponent reports an exponent that Kubernetes would keep only modulo
// 2^32 (it stores the scale as int32): the template reports those as invalid
// rather than compare a value other than the one written.
func wrapsExponent(s string) bool {
	m := exponentPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return false
	}
	var exp int64
	if _, err := fmt.Sscan(m[2], &exp); err != nil {
		return true
	}
	frac := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		frac = len(m[1])
	}
	return exp > 2147483647 || exp < int64(frac)-2147483647
}

func loadTemplate(t *testing.T, path string) *policy.Template {
	t.Helper()
	docs, err := manifest.ReadFile(path, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := policy.NewTemplate(docs[0].Object, docs[0])
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}
