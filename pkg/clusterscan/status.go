package clusterscan

import (
	"context"
	"fmt"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// maxMessage bounds a condition message: errors from a parser list at most
// ten problems, but a message is for people, not a second copy of the log.
const maxMessage = 2048

// outcome is the result of one scan: a summary, or why there is none.
type outcome struct {
	origin v1alpha1.InfraScanOrigin
	run    string
	// reason and message when the scan failed; empty reason is success.
	reason, message string
}

func (o outcome) condition(generation int64, success string) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.InfraScanConditionScanned, ObservedGeneration: generation,
		Status: metav1.ConditionTrue, Reason: v1alpha1.InfraScanReasonSucceeded, Message: success}
	if o.reason != "" {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, o.reason, o.message
	}
	c.Message = truncate(c.Message, maxMessage)
	return c
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// nodeOwner makes a NodeBenchmark go with its Node (garbage collection),
// when the Node's UID is known.
func nodeOwner(node string, uid types.UID) []metav1.OwnerReference {
	if uid == "" {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: uid}}
}

// updateNodeBenchmark creates the node's NodeBenchmark if needed and
// applies mutate to its status; nothing is written when mutate changes
// nothing. A conflict is returned, so the caller's reconcile is retried.
func updateNodeBenchmark(ctx context.Context, c client.Client, node string, uid types.UID, mutate func(*v1alpha1.NodeBenchmark)) error {
	nb := &v1alpha1.NodeBenchmark{}
	err := c.Get(ctx, types.NamespacedName{Name: node}, nb)
	if apierrors.IsNotFound(err) {
		nb = &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: node, OwnerReferences: nodeOwner(node, uid),
			Labels: map[string]string{LabelManagedBy: ManagedBy}}}
		if err := c.Create(ctx, nb); err != nil {
			return fmt.Errorf("creating NodeBenchmark %s: %w", node, err)
		}
	} else if err != nil {
		return err
	}
	before := nb.Status.DeepCopy()
	mutate(nb)
	if equality.Semantic.DeepEqual(before, &nb.Status) {
		return nil
	}
	if err := c.Status().Update(ctx, nb); err != nil {
		return fmt.Errorf("updating NodeBenchmark %s: %w", node, err)
	}
	return nil
}

// updatePenetrationTest is updateNodeBenchmark for the PenetrationTest.
func updatePenetrationTest(ctx context.Context, c client.Client, mutate func(*v1alpha1.PenetrationTest)) error {
	pt := &v1alpha1.PenetrationTest{}
	err := c.Get(ctx, types.NamespacedName{Name: ClusterObjectName}, pt)
	if apierrors.IsNotFound(err) {
		pt = &v1alpha1.PenetrationTest{ObjectMeta: metav1.ObjectMeta{Name: ClusterObjectName, Labels: map[string]string{LabelManagedBy: ManagedBy}}}
		if err := c.Create(ctx, pt); err != nil {
			return fmt.Errorf("creating PenetrationTest %s: %w", ClusterObjectName, err)
		}
	} else if err != nil {
		return err
	}
	before := pt.Status.DeepCopy()
	mutate(pt)
	if equality.Semantic.DeepEqual(before, &pt.Status) {
		return nil
	}
	if err := c.Status().Update(ctx, pt); err != nil {
		return fmt.Errorf("updating PenetrationTest %s: %w", ClusterObjectName, err)
	}
	return nil
}

// applyBenchmark records a kube-bench outcome: a summary replaces the
// previous one; a failure keeps it and says why in the condition.
func applyBenchmark(nb *v1alpha1.NodeBenchmark, o outcome, summary *v1alpha1.BenchmarkSummary) {
	if o.reason == "" {
		origin := o.origin
		nb.Status.Origin = &origin
		nb.Status.Summary = summary
	}
	nb.Status.RunID = o.run
	meta.SetStatusCondition(&nb.Status.Conditions, o.condition(nb.Generation, benchMessage(summary)))
}

func benchMessage(s *v1alpha1.BenchmarkSummary) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%s: %d pass, %d fail, %d warn, %d info", s.Benchmark, s.Totals.Pass, s.Totals.Fail, s.Totals.Warn, s.Totals.Info)
}

// applyPenetrationTest records a kube-hunter outcome like applyBenchmark.
func applyPenetrationTest(pt *v1alpha1.PenetrationTest, o outcome, summary *v1alpha1.PenetrationTestSummary) {
	msg := ""
	if o.reason == "" {
		origin := o.origin
		pt.Status.Origin = &origin
		pt.Status.Summary = summary
		c := summary.Counts
		msg = fmt.Sprintf("%d high, %d medium, %d low, %d unknown", c.High, c.Medium, c.Low, c.Unknown)
	}
	meta.SetStatusCondition(&pt.Status.Conditions, o.condition(pt.Generation, msg))
}

// podFailure describes why a pod's container stopped, from its status;
// never from its log, which may hold a report full of evidence.
func podFailure(pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			s := fmt.Sprintf("container %s exited with code %d", cs.Name, t.ExitCode)
			if t.Reason != "" {
				s += " (" + t.Reason + ")"
			}
			if t.Message != "" {
				s += ": " + truncate(t.Message, 512)
			}
			return s
		}
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return fmt.Sprintf("container %s waiting: %s", cs.Name, w.Reason)
		}
	}
	if pod.Status.Reason != "" {
		return "pod " + pod.Status.Reason + ": " + pod.Status.Message
	}
	return ""
}
