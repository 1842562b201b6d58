package imagegate

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// TestWriter_FailedUsageWritesAreRetried: exception use whose status write
// fails (the API server unavailable) is written by the next flush, with the
// use counted meanwhile; the use of a deleted exception is dropped.
func TestWriter_FailedUsageWritesAreRetried(t *testing.T) {
	ctx := context.Background()
	scheme, ex := usageFixture(t)
	failures := 1
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ex).WithStatusSubresource(ex).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if failures > 0 {
					failures--
					return apierrors.NewServiceUnavailable("etcd is away")
				}
				return c.Status().Update(ctx, obj, opts...)
			},
		}).Build()
	w := &Writer{Client: c, Log: logr.Discard()}
	matched := func() int64 {
		t.Helper()
		cur := &v1alpha1.ImageException{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ex), cur); err != nil {
			t.Fatal(err)
		}
		return cur.Status.MatchedAdmissions
	}

	w.Used("busybox")
	w.Used("busybox")
	w.Used("deleted")
	if kept := w.flush(ctx); !cmp.Equal(kept, map[string]int64{"busybox": 2}) {
		t.Errorf("first flush kept %v, want busybox's 2 (its write failed) and not the deleted exception's", kept)
	}
	if n := matched(); n != 0 {
		t.Fatalf("matchedAdmissions %d after the failed write", n)
	}
	w.Used("busybox")
	if kept := w.flush(ctx); kept != nil {
		t.Errorf("second flush kept %v", kept)
	}
	if n := matched(); n != 3 {
		t.Errorf("matchedAdmissions %d after the second flush, want 3 (2 kept, 1 new)", n)
	}
	if kept := w.flush(ctx); kept != nil || matched() != 3 {
		t.Errorf("a third flush with nothing new kept %v and left matchedAdmissions %d, want 3", kept, matched())
	}
}

// TestWriter_StopWritesKeptUsage: the flush on stopping writes the use a
// failed flush kept.
func TestWriter_StopWritesKeptUsage(t *testing.T) {
	scheme, ex := usageFixture(t)
	failed := make(chan struct{})
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ex).WithStatusSubresource(ex).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				select {
				case <-failed:
					return c.Status().Update(ctx, obj, opts...)
				default:
					close(failed) // only the first write fails
					return apierrors.NewTimeoutError("the API server is slow", 1)
				}
			},
		}).Build()
	// Whether a tick's flush or the one on stopping writes the kept use,
	// it is written once: Start flushes in one goroutine.
	w := &Writer{Client: c, Log: logr.Discard(), Interval: time.Millisecond}
	w.Used("busybox")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Start(ctx) }()
	<-failed
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cur := &v1alpha1.ImageException{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ex), cur); err != nil {
		t.Fatal(err)
	}
	if cur.Status.MatchedAdmissions != 1 {
		t.Errorf("matchedAdmissions %d after stopping, want 1", cur.Status.MatchedAdmissions)
	}
}

// usageFixture is a scheme with our types and an ImageException whose use
// the tests count.
func usageFixture(t *testing.T) (*runtime.Scheme, *v1alpha1.ImageException) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme, &v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: "busybox"}, Spec: v1alpha1.ImageExceptionSpec{
		CVEIDs: []string{"CVE-2026-0001"}, Images: []string{"registry.example.ca/*"},
		Expires: metav1.NewTime(now.Add(time.Hour)), Reason: "fix ships next sprint"}}
}
