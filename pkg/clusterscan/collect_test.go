package clusterscan

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Jobs and pods reach the collector's cache through separate watches: a
// failed Job can be seen before the status of its pod that says why. The
// collector waits a little for it, and records the failure without it
// once the Job failed long enough ago.
func TestCollector_FailedJobWaitsForItsPodsStatus(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		failedAgo   time.Duration
		podStatus   bool
		wait        bool
		wantMessage string
	}{
		{"pod status not seen yet", time.Second, false, true, ""},
		{"pod status seen", time.Second, true, false, "container kube-bench exited with code 1 (Error)"},
		{"pod status never came", time.Minute, false, false, "Job daaas-guard-scans/kube-bench-a failed: BackoffLimitExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := metav1.NewTime(time.Now().Add(-tc.failedAgo))
			job := &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "kube-bench-a", Namespace: DefaultNamespace, UID: "job-uid",
					Labels:      map[string]string{LabelManagedBy: ManagedBy, LabelTool: ToolKubeBench, LabelRun: "run-1"},
					Annotations: map[string]string{AnnotationNode: "node-a"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: containerKubeBench, Image: "kube-bench:test"}}}}},
				Status: batchv1.JobStatus{Failed: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed,
					Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: failed}}},
			}
			controller := true
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-bench-a-x1", Namespace: DefaultNamespace,
				Labels:          map[string]string{batchv1.JobNameLabel: job.Name},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: &controller}}}}
			if tc.podStatus {
				pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerKubeBench,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}
			}
			c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(job, pod).
				WithStatusSubresource(&v1alpha1.NodeBenchmark{}).Build()
			col := &collector{o: Options{}.withDefaults(), client: c, jobs: c, tracker: newTracker(),
				metrics: newMetrics(prometheus.NewRegistry()), log: logr.Discard()}
			res, err := col.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(job)})
			if err != nil {
				t.Fatal(err)
			}
			nb := &v1alpha1.NodeBenchmark{}
			getErr := c.Get(ctx, types.NamespacedName{Name: "node-a"}, nb)
			if tc.wait {
				if res.RequeueAfter == 0 || getErr == nil {
					t.Errorf("recorded at once (requeue %v, NodeBenchmark %v); want a wait for the pod's status", res.RequeueAfter, getErr)
				}
				return
			}
			if getErr != nil {
				t.Fatalf("no NodeBenchmark: %v", getErr)
			}
			cond := scanned(nb.Status.Conditions)
			if cond == nil || cond.Reason != v1alpha1.InfraScanReasonJobFailed || !strings.Contains(cond.Message, tc.wantMessage) {
				t.Errorf("condition %+v, want reason %s and a message with %q", cond, v1alpha1.InfraScanReasonJobFailed, tc.wantMessage)
			}
		})
	}
}
