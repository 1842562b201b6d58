package verdict

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func imageScan(digest, repo string, tags ...string) *v1alpha1.ImageScan {
	name, _ := v1alpha1.ImageScanName(digest)
	at := metav1.NewTime(time.Date(2026, 8, 20, 0, 0, 0, 0, time.UTC))
	return &v1alpha1.ImageScan{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.ImageScanSpec{Digest: digest, Repository: repo},
		Status: v1alpha1.ImageScanStatus{
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonScanSucceeded}},
			Source:     v1alpha1.SourceTrivy, ScannedAt: &at, DB: &v1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: at},
			Tags:            tags,
			Vulnerabilities: v1alpha1.SeverityCounts{Critical: 1},
			Fixable:         v1alpha1.SeverityCounts{Critical: 1},
			FixableCriticalHigh: []v1alpha1.FixableVulnerability{{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox",
				InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19"}},
		},
	}
}

func TestIndex_LooksUpByDigestAndByTag(t *testing.T) {
	d1, d2 := digestOf("1"), digestOf("2")
	ix := New()
	ix.Set(imageScan(d1, "index.docker.io/team/etl", "index.docker.io/team/etl:prod", "index.docker.io/team/etl:1"))
	ix.Set(imageScan(d2, "ghcr.io/x/y"))
	tests := []struct {
		image string
		want  string // digest, or "" for unscanned
	}{
		{"team/etl:prod", d1},
		{"docker.io/team/etl:1", d1},
		{"index.docker.io/team/etl:prod", d1},
		{"team/etl@" + d1, d1},
		{"team/etl:whatever@" + d1, d1}, // the digest decides
		{"other/repo@" + d2, d2},        // a digest is a digest, whichever repository
		{"team/etl:2", ""},
		{"ghcr.io/x/y:latest", ""},
		{"ghcr.io/x/y", ""},
		{"ghcr.io/x/y@" + digestOf("3"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			v, err := ix.Lookup(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if v != nil {
				got = v.Digest
			}
			if got != tc.want {
				t.Errorf("Lookup(%q) = %q, want %q", tc.image, got, tc.want)
			}
		})
	}
	// Lookups are memoised by image string; the memo holds keys, not
	// verdicts, so a later verdict is found.
	ix.Set(imageScan(d2, "index.docker.io/team/etl", "index.docker.io/team/etl:2"))
	if v, err := ix.Lookup("team/etl:2"); err != nil || v == nil || v.Digest != d2 {
		t.Errorf("Lookup after a new verdict: %v, %v", v, err)
	}
	for range 2 {
		if _, err := ix.Lookup("Not Valid"); err == nil {
			t.Error("Lookup of an invalid reference: no error")
		}
	}
}

func TestIndex_Verdict(t *testing.T) {
	d := digestOf("1")
	ix := New()
	ix.Set(imageScan(d, "r.example.ca/a", "r.example.ca/a:1"))
	v, err := ix.Lookup("r.example.ca/a:1")
	if err != nil || v == nil {
		t.Fatal(v, err)
	}
	at := time.Date(2026, 8, 20, 0, 0, 0, 0, time.UTC)
	want := &Verdict{Name: "sha256-" + d[7:], Digest: d, Repository: "r.example.ca/a", Scanned: true, Source: "Trivy",
		ScannedAt: at, DBUpdatedAt: at, Vulnerabilities: v1alpha1.SeverityCounts{Critical: 1}, Fixable: v1alpha1.SeverityCounts{Critical: 1},
		FixableCriticalHigh: []v1alpha1.FixableVulnerability{{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox",
			InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19"}}}
	if diff := cmp.Diff(want, v, cmpopts.IgnoreUnexported(Verdict{})); diff != "" {
		t.Errorf("verdict (-want +got):\n%s", diff)
	}
}

func TestIndex_FollowsTagsAndDeletions(t *testing.T) {
	d1, d2 := digestOf("1"), digestOf("2")
	ix := New()
	ix.Set(imageScan(d1, "r/a", "r/a:prod"))
	// The tag moves: the new owner is written before the old one drops it,
	// and the other way round; either way the tag ends on d2.
	ix.Set(imageScan(d2, "r/a", "r/a:prod"))
	ix.Set(imageScan(d1, "r/a"))
	if v := ix.LookupRef(ref(t, "r/a:prod")); v == nil || v.Digest != d2 {
		t.Errorf("after the move: %v", v)
	}
	ix.Set(imageScan(d1, "r/a", "r/a:next"))
	ix.Set(imageScan(d1, "r/a"))
	if v := ix.LookupRef(ref(t, "r/a:next")); v != nil {
		t.Errorf("a dropped tag still resolves to %s", v.Digest)
	}
	ix.Delete(imageScan(d2, "r/a", "r/a:prod"))
	if v := ix.LookupRef(ref(t, "r/a:prod")); v != nil {
		t.Errorf("a deleted verdict is still found: %v", v)
	}
	if n := ix.Len(); n != 1 {
		t.Errorf("%d verdicts, want 1", n)
	}
}

// Unscanned follows stubs as they are created, scanned, fail and go.
func TestIndex_Unscanned(t *testing.T) {
	d1, d2 := digestOf("1"), digestOf("2")
	stub := func(d string) *v1alpha1.ImageScan {
		is := imageScan(d, "r/a")
		is.Status = v1alpha1.ImageScanStatus{}
		return is
	}
	failed := stub(d2)
	failed.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionFalse}}
	ix := New()
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"a stub", func() { ix.Set(stub(d1)) }, 1},
		{"the same stub again", func() { ix.Set(stub(d1)) }, 1},
		{"another stub", func() { ix.Set(stub(d2)) }, 2},
		{"the first one scanned", func() { ix.Set(imageScan(d1, "r/a")) }, 1},
		{"the second one failed", func() { ix.Set(failed) }, 1},
		{"the failed one deleted", func() { ix.Delete(failed) }, 0},
		{"the failed one deleted twice", func() { ix.Delete(failed) }, 0},
		{"the scanned one deleted", func() { ix.Delete(imageScan(d1, "r/a")) }, 0},
	}
	for _, st := range steps {
		st.do()
		if got := ix.Unscanned(); got != st.want {
			t.Errorf("after %s: Unscanned() = %d, want %d", st.name, got, st.want)
		}
	}
}

func TestIndex_AttachFollowsTheInformer(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	informers := &informertest.FakeInformers{Scheme: scheme}
	ix := New()
	if ix.HasSynced() {
		t.Error("synced before attaching")
	}
	if err := ix.Attach(context.Background(), informers); err != nil {
		t.Fatal(err)
	}
	inf, err := informers.FakeInformerFor(context.Background(), &v1alpha1.ImageScan{})
	if err != nil {
		t.Fatal(err)
	}
	d := digestOf("x")
	inf.Add(imageScan(d, "r/x", "r/x:1"))
	if v := ix.LookupRef(ref(t, "r/x:1")); v == nil {
		t.Fatal("added ImageScan not found")
	}
	inf.Update(imageScan(d, "r/x", "r/x:1"), imageScan(d, "r/x", "r/x:2"))
	if v := ix.LookupRef(ref(t, "r/x:2")); v == nil {
		t.Fatal("updated ImageScan not found by its new tag")
	}
	inf.Delete(imageScan(d, "r/x", "r/x:2"))
	if v := ix.LookupRef(ref(t, "r/x@"+d)); v != nil {
		t.Fatal("deleted ImageScan still found")
	}
}

func ref(t testing.TB, image string) images.Ref {
	t.Helper()
	r, err := images.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// BenchmarkLookup measures the admission path's verdict lookup in an index
// of 1,000 verdicts, against a plain map lookup of a digest as baseline.
func BenchmarkLookup(b *testing.B) {
	ix := New()
	plain := map[string]*Verdict{}
	for i := range 1000 {
		d := digestOf(fmt.Sprint(i))
		is := imageScan(d, fmt.Sprintf("registry.example.ca/team-%d/etl", i), fmt.Sprintf("registry.example.ca/team-%d/etl:1.%d", i, i))
		ix.Set(is)
		plain[d] = FromImageScan(is)
	}
	d500 := digestOf("500")
	b.Run("map-baseline", func(b *testing.B) {
		for b.Loop() {
			if plain[d500] == nil {
				b.Fatal("not found")
			}
		}
	})
	for _, tc := range []struct{ name, image string }{
		{"digest", "registry.example.ca/team-500/etl@" + d500},
		{"tag", "registry.example.ca/team-500/etl:1.500"},
		{"unscanned", "registry.example.ca/team-500/etl:9"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ix.Lookup(tc.image); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A first sighting parses the reference (later ones hit the memo).
	b.Run("digest-first-sighting", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ix.LookupRef(ref(b, "registry.example.ca/team-500/etl@"+d500)) == nil {
				b.Fatal("not found")
			}
		}
	})
	b.Run("tag-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v, _ := ix.Lookup("registry.example.ca/team-500/etl:1.500"); v == nil {
					b.Fatal("not found")
				}
			}
		})
	})
}
