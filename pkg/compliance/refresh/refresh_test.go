package refresh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/evidence"
)

var t0 = time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)

func setup(t *testing.T, schedule string, sources []evidence.ClusterSource) (*Reconciler, client.Client, *time.Time) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := guardv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cr := &guardv1alpha1.ComplianceReport{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster", Generation: 1},
		Spec:       guardv1alpha1.ComplianceReportSpec{Schedule: schedule, ClusterName: "aaw-prod"},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(cr).WithStatusSubresource(cr).Build()
	now := t0
	r := &Reconciler{Client: c, Reader: c, O: Options{Sources: sources, Log: logr.Discard(), Now: func() time.Time { return now }}}
	return r, c, &now
}

var req = ctrl.Request{NamespacedName: types.NamespacedName{Name: "cluster"}}

func get(t *testing.T, c client.Client) *guardv1alpha1.ComplianceReport {
	t.Helper()
	cr := &guardv1alpha1.ComplianceReport{}
	if err := c.Get(context.Background(), req.NamespacedName, cr); err != nil {
		t.Fatal(err)
	}
	return cr
}

// A report is assessed at once, then again at each scheduled time, not
// before.
func TestReconcile_RefreshesOnSchedule(t *testing.T) {
	r, c, now := setup(t, "0 */6 * * *", []evidence.ClusterSource{})
	ctx := context.Background()
	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	cr := get(t, c)
	if cr.Status.GeneratedAt == nil || !cr.Status.GeneratedAt.Time.Equal(t0) || cr.Status.Cluster != "aaw-prod" || cr.Status.Summary.Controls == 0 {
		t.Fatalf("status after the first refresh: %+v", cr.Status)
	}
	if cond := meta.FindStatusCondition(cr.Status.Conditions, "Ready"); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition %+v", cond)
	}
	if want := 90 * time.Minute; res.RequeueAfter != want { // 10:30 → 12:00
		t.Errorf("RequeueAfter %v, want %v", res.RequeueAfter, want)
	}

	*now = t0.Add(time.Hour) // 11:30: not due
	if res, err = r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c).Status.GeneratedAt.Time; !got.Equal(t0) {
		t.Errorf("refreshed before its time: %v", got)
	}
	if want := 30 * time.Minute; res.RequeueAfter != want {
		t.Errorf("RequeueAfter %v, want %v", res.RequeueAfter, want)
	}

	*now = t0.Add(90 * time.Minute) // 12:00: due
	if _, err = r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c).Status.GeneratedAt.Time; !got.Equal(*now) {
		t.Errorf("not refreshed at 12:00: %v", got)
	}
}

// A schedule that is not cron syntax is reported in the status, naming the
// field, and the last assessment is kept.
func TestReconcile_InvalidSchedule(t *testing.T) {
	r, c, _ := setup(t, "every six hours", []evidence.ClusterSource{})
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	cond := meta.FindStatusCondition(get(t, c).Status.Conditions, "Ready")
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "InvalidSchedule" ||
		!strings.Contains(cond.Message, `spec.schedule "every six hours"`) {
		t.Errorf("Ready condition %+v", cond)
	}
}

// Evidence that cannot be read fails the refresh visibly and is retried.
func TestReconcile_EvidenceUnreadable(t *testing.T) {
	broken := evidence.ClusterSource{Name: "pods", Read: func(context.Context, client.Reader, *evidence.Inputs) error {
		return errors.New("connection refused")
	}}
	r, c, _ := setup(t, "", []evidence.ClusterSource{broken})
	if _, err := r.Reconcile(context.Background(), req); err == nil {
		t.Fatal("no error: the refresh would not be retried")
	}
	cond := meta.FindStatusCondition(get(t, c).Status.Conditions, "Ready")
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "EvidenceUnreadable" || !strings.Contains(cond.Message, "connection refused") {
		t.Errorf("Ready condition %+v", cond)
	}
}
