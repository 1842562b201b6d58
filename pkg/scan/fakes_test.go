package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// fakeEngine finds, for every image, what findings says for its digest.
type fakeEngine struct {
	mu       sync.Mutex
	db       report.DB
	findings map[string][]report.Finding // digest -> findings
	fail     map[string]error
	scans    atomic.Int64
	running  atomic.Int64
	peak     atomic.Int64
	// block, when set, holds every scan until closed.
	block chan struct{}
	order []string
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{db: report.DB{SchemaVersion: 2, UpdatedAt: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)},
		findings: map[string][]report.Finding{}, fail: map[string]error{}}
}

func (e *fakeEngine) Scan(ctx context.Context, repository, digest string, _ v1.Image) (*report.Report, error) {
	e.scans.Add(1)
	n := e.running.Add(1)
	defer e.running.Add(-1)
	for {
		p := e.peak.Load()
		if n <= p || e.peak.CompareAndSwap(p, n) {
			break
		}
	}
	e.mu.Lock()
	e.order = append(e.order, digest)
	block, err, f := e.block, e.fail[digest], e.findings[digest]
	e.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &report.Report{Repository: repository, Digest: digest, OS: "alpine 3.23.2", Findings: f}, nil
}

func (e *fakeEngine) DB() report.DB {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db
}

func (e *fakeEngine) Name() string { return "Fake v1" }

func (e *fakeEngine) setDB(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.db.UpdatedAt = t
}

// fakeRegistry resolves tags from a map and opens no image.
type fakeRegistry struct {
	mu       sync.Mutex
	tags     map[string]string // tag name -> digest
	resolves atomic.Int64
	// keychains records the credentials each Resolve and Image got for
	// the registry host "private.example.ca".
	creds []authn.AuthConfig
}

func (r *fakeRegistry) Resolve(_ context.Context, ref images.Ref, kc authn.Keychain) (string, error) {
	r.resolves.Add(1)
	r.note(kc)
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.tags[ref.TagName()]
	if !ok {
		return "", fmt.Errorf("resolving %s: MANIFEST_UNKNOWN", ref.TagName())
	}
	return d, nil
}

func (r *fakeRegistry) Image(_ context.Context, _, _ string, kc authn.Keychain) (v1.Image, error) {
	r.note(kc)
	return nil, nil
}

func (r *fakeRegistry) note(kc authn.Keychain) {
	res, err := name.NewRepository("private.example.ca/app")
	if err != nil {
		panic(err)
	}
	a, err := kc.Resolve(res)
	if err != nil {
		panic(err)
	}
	c, _ := a.Authorization()
	r.mu.Lock()
	defer r.mu.Unlock()
	if c != nil && *c != (authn.AuthConfig{}) {
		r.creds = append(r.creds, *c)
	}
}

func (r *fakeRegistry) set(tag, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tags == nil {
		r.tags = map[string]string{}
	}
	r.tags[tag] = digest
}

// mapSecrets serves secrets from a map.
type mapSecrets map[string]*corev1.Secret

func (m mapSecrets) Secret(_ context.Context, namespace, name string) (*corev1.Secret, error) {
	if s := m[namespace+"/"+name]; s != nil {
		return s, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
}

func fakeDigest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

func newFakeClient(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.ImageScan{}).
		WithObjects(objs...).Build()
}

type harness struct {
	c      client.WithWatch
	engine *fakeEngine
	reg    *fakeRegistry
	s      *Scheduler
	now    atomic.Pointer[time.Time]
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{c: newFakeClient(), engine: newFakeEngine(), reg: &fakeRegistry{}}
	start := time.Date(2026, 8, 20, 12, 0, 0, 0, time.UTC)
	h.now.Store(&start)
	cfg := Config{Client: h.c, Engine: h.engine, Registry: h.reg, Secrets: mapSecrets{}, Concurrency: 2,
		Log: testr.NewWithInterface(t, testr.Options{}), Now: func() time.Time { return *h.now.Load() }}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	return h
}

func (h *harness) start(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { _ = h.s.Start(ctx); close(h.done) }()
	t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

func (h *harness) advance(d time.Duration) {
	t := h.now.Load().Add(d)
	h.now.Store(&t)
}

// idle waits until nothing is pending, running or being written.
func (h *harness) idle(t testing.TB) { h.idleWithin(t, 10*time.Second) }

func (h *harness) idleWithin(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if h.s.Idle() {
			return
		}
		p, r := h.s.Counts()
		if time.Now().After(deadline) {
			t.Fatalf("still %d pending and %d running", p, r)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) imageScan(t testing.TB, digest string) *v1alpha1.ImageScan {
	t.Helper()
	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		t.Fatal(err)
	}
	is := &v1alpha1.ImageScan{}
	if err := h.c.Get(context.Background(), client.ObjectKey{Name: name}, is); err != nil {
		t.Fatal(err)
	}
	return is
}

func pod(ns, name string, labels map[string]string, imgs ...string) *corev1.Pod {
	p := &corev1.Pod{}
	p.Namespace, p.Name, p.Labels = ns, name, labels
	for i, img := range imgs {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return p
}
