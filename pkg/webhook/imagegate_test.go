package webhook

import (
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/imagegate"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
)

// pendingScans has no verdict for any image and n ImageScans waiting.
type pendingScans int

func (pendingScans) Lookup(string) (*verdict.Verdict, error) { return nil, nil }
func (n pendingScans) Unscanned() int                        { return int(n) }

// TestMaxUnscannedImages_ReachesTheGate checks that Config.MaxUnscannedImages
// is the cap the image gate applies, and that 0 is the gate's default.
func TestMaxUnscannedImages_ReachesTheGate(t *testing.T) {
	const image = "registry.example.ca/team/etl@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	for _, tc := range []struct {
		name      string
		max       int
		pending   int
		wantQueue bool // the denial says the queue is full
	}{
		{name: "below the configured cap", max: 5, pending: 4},
		{name: "at the configured cap", max: 5, pending: 5, wantQueue: true},
		{name: "0 is the default cap", max: 0, pending: imagegate.DefaultMaxUnscanned - 1},
		{name: "at the default cap", max: 0, pending: imagegate.DefaultMaxUnscanned, wantQueue: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newImageGate(Config{MaxUnscannedImages: tc.max, Log: logr.Discard()}, pendingScans(tc.pending), &imagegate.Writer{}, nil)
			p, err := imagegate.CompilePolicy(&v1alpha1.ImagePolicySpec{DefaultUnscanned: v1alpha1.UnscannedDeny})
			if err != nil {
				t.Fatal(err)
			}
			g.SetPolicy(p)
			res := g.Review(imagegate.Subject{Namespace: "alice", Containers: []images.Container{{Name: "main", Image: image}}})
			if len(res.Denies) != 1 {
				t.Fatalf("denies %q, want one", res.Denies)
			}
			if got := strings.Contains(res.Denies[0], "the scan queue is full"); got != tc.wantQueue {
				t.Errorf("denial %q; want the queue full: %v", res.Denies[0], tc.wantQueue)
			}
		})
	}
}

// TestSetup_NegativeMaxUnscannedImages refuses to start, naming the flag.
func TestSetup_NegativeMaxUnscannedImages(t *testing.T) {
	cfg := Config{Namespace: "daaas-guard", MetricsAddr: "0", MaxUnscannedImages: -1, Log: logr.Discard()}
	// Setup refuses before reading the cluster: none is needed.
	mgr, err := NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Setup(mgr, cfg)
	if err == nil || !strings.Contains(err.Error(), "--max-unscanned-images is -1") {
		t.Fatalf("Setup: %v, want an error naming --max-unscanned-images", err)
	}
}
