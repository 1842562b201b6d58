package clusterscan

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/kubebench"
	"github.com/statcan/daaas-guard/pkg/kubehunter"
)

// logRetryWindow is how long after a Job finished its pod log may stay
// unreadable before the scan is recorded as failed.
const logRetryWindow = 2 * time.Minute

// podStatusWindow is how long after a Job failed its pod's last status is
// waited for: Jobs and pods reach the cache through separate watches, so
// the Job's failure can arrive before the status that says why.
const podStatusWindow = 10 * time.Second

// collector reads finished Jobs: the tool's report from the pod log, into
// the summary objects; then it deletes the Job. A Job is deleted only once
// its outcome is written, so a failed write loses nothing.
type collector struct {
	o       Options
	client  client.Client // writes, and reads our summaries
	jobs    client.Reader // the Job namespace's cache
	logs    LogSource
	tracker *tracker
	metrics *metrics
	log     logr.Logger
}

// Reconcile handles one Job.
func (c *collector) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	job := &batchv1.Job{}
	if err := c.jobs.Get(ctx, req.NamespacedName, job); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if job.DeletionTimestamp != nil || job.Labels[LabelManagedBy] != ManagedBy {
		return reconcile.Result{}, nil
	}
	finished, succeeded, why := jobFinished(job)
	if !finished {
		return reconcile.Result{}, nil
	}
	tool, run := job.Labels[LabelTool], job.Labels[LabelRun]
	log := c.log.WithValues("job", job.Name, "tool", tool, "run", run)
	o := outcome{run: run, origin: v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceJob, Name: job.Name,
		Scanner: tool, Image: image(job), ScanTime: finishTime(job)}}

	pod, err := c.pod(ctx, job, succeeded)
	if err != nil {
		return reconcile.Result{}, err
	}
	var report []byte
	switch {
	case !succeeded && podFailure(pod) == "" && time.Since(o.origin.ScanTime.Time) < podStatusWindow:
		return reconcile.Result{RequeueAfter: podStatusWindow / 10}, nil
	case !succeeded:
		o.reason = v1alpha1.InfraScanReasonJobFailed
		o.message = fmt.Sprintf("Job %s/%s failed", job.Namespace, job.Name)
		if why != "" {
			o.message += ": " + why
		}
		if f := podFailure(pod); f != "" {
			o.message += "; " + f
		}
	case pod == nil:
		o.reason, o.message = v1alpha1.InfraScanReasonLogsUnreadable, fmt.Sprintf("Job %s/%s succeeded but none of its pods is left to read", job.Namespace, job.Name)
	default:
		data, err := c.logs.Logs(ctx, pod.Namespace, pod.Name, container(tool), c.o.MaxLogBytes)
		if err != nil {
			// The kubelet may be restarting: try again for a while before
			// giving the run up for this node.
			if since := time.Since(o.origin.ScanTime.Time); since < logRetryWindow {
				log.Info("pod log not readable yet; retrying", "pod", pod.Name, "error", err.Error())
				return reconcile.Result{RequeueAfter: logRetryWindow / 10}, nil
			}
			o.reason, o.message = v1alpha1.InfraScanReasonLogsUnreadable, err.Error()
			break
		}
		if report, err = reportLine(data); err != nil {
			o.reason, o.message = v1alpha1.InfraScanReasonInvalidOutput, fmt.Sprintf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
	}

	switch tool {
	case ToolKubeBench:
		node := job.Annotations[AnnotationNode]
		if node == "" {
			log.Info("kube-bench Job without its node annotation; deleting it", "annotation", AnnotationNode)
			return reconcile.Result{}, c.delete(ctx, job)
		}
		var summary *v1alpha1.BenchmarkSummary
		if o.reason == "" {
			if r, err := kubebench.Parse(report); err != nil {
				o.reason, o.message = v1alpha1.InfraScanReasonInvalidOutput, fmt.Sprintf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
			} else {
				s := kubebench.Summarize(r, kubebench.Limits{MaxFailures: c.o.MaxFailures})
				summary = &s
			}
		}
		err = updateNodeBenchmark(ctx, c.client, node, types.UID(job.Annotations[AnnotationNodeUID]), func(nb *v1alpha1.NodeBenchmark) {
			applyBenchmark(nb, o, summary)
		})
		if err == nil {
			c.tracker.done(job.Name, node, run)
		}
	case ToolKubeHunter:
		var summary *v1alpha1.PenetrationTestSummary
		if o.reason == "" {
			if r, err := kubehunter.Parse(report); err != nil {
				o.reason, o.message = v1alpha1.InfraScanReasonInvalidOutput, fmt.Sprintf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
			} else {
				s := kubehunter.Summarize(r, kubehunter.Limits{MaxFindings: c.o.MaxFindings})
				summary = &s
			}
		}
		now := metav1.NewTime(c.o.now())
		err = updatePenetrationTest(ctx, c.client, func(pt *v1alpha1.PenetrationTest) {
			applyPenetrationTest(pt, o, summary)
			if pt.Status.Schedule.RunID == run {
				pt.Status.Schedule.LastCompletionTime = &now
				pt.Status.Schedule.ActiveJobs = 0
			}
		})
		if err == nil {
			c.tracker.done(job.Name, hunterKey, run)
		}
	default:
		log.Info("Job of an unknown tool; deleting it", "label", LabelTool)
		return reconcile.Result{}, c.delete(ctx, job)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	result := "succeeded"
	if o.reason != "" {
		result = o.reason
		log.Info("scan failed", "reason", o.reason, "message", o.message)
	} else {
		log.Info("scan read")
	}
	c.metrics.jobsFinished.WithLabelValues(tool, result).Inc()
	return reconcile.Result{}, c.delete(ctx, job)
}

func (c *collector) delete(ctx context.Context, job *batchv1.Job) error {
	err := c.client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))
	return client.IgnoreNotFound(err)
}

// pod picks the Job's pod to read: a succeeded one when the Job succeeded,
// else the newest.
func (c *collector) pod(ctx context.Context, job *batchv1.Job, succeeded bool) (*corev1.Pod, error) {
	pods := &corev1.PodList{}
	if err := c.jobs.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{batchv1.JobNameLabel: job.Name}); err != nil {
		return nil, fmt.Errorf("listing the pods of Job %s: %w", job.Name, err)
	}
	var pick *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if !metav1.IsControlledBy(p, job) {
			continue
		}
		if succeeded && p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		if pick == nil || p.CreationTimestamp.After(pick.CreationTimestamp.Time) {
			pick = p
		}
	}
	return pick, nil
}

func container(tool string) string {
	if tool == ToolKubeHunter {
		return containerKubeHunter
	}
	return containerKubeBench
}

func image(job *batchv1.Job) string {
	if cs := job.Spec.Template.Spec.Containers; len(cs) > 0 {
		return cs[0].Image
	}
	return ""
}

func finishTime(job *batchv1.Job) metav1.Time {
	if job.Status.CompletionTime != nil {
		return *job.Status.CompletionTime
	}
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime
		}
	}
	return job.CreationTimestamp
}
