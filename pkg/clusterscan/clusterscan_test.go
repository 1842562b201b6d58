package clusterscan

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func fixture(t *testing.T, path ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(path...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kube-bench logs to stderr, which shares the pod log with its report.
const glogLines = "I0701 10:00:00.000000   1 util.go:293] Kubernetes REST API Reported version: &{1 37  v1.37.2}\n" +
	"W0701 10:00:00.100000   1 util.go:110] unable to find the programs for component \"kubelet\"\n"

// jobs lists a test's Jobs of tool.
func jobs(t *testing.T, c client.Client, ns, tool string) []batchv1.Job {
	t.Helper()
	l := &batchv1.JobList{}
	if err := c.List(context.Background(), l, client.InNamespace(ns), client.MatchingLabels{LabelTool: tool}); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func podName(job *batchv1.Job) string { return job.Name + "-x7k2p" }

// finishJob does what the Job controller and kubelet would: creates the
// Job's pod, stops it, and marks the Job complete or failed.
func finishJob(t *testing.T, c client.Client, job *batchv1.Job, succeeded bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: podName(job), Namespace: job.Namespace,
			Labels:          map[string]string{LabelManagedBy: ManagedBy, batchv1.JobNameLabel: job.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: job.Spec.Template.Spec.Containers[0].Name, Image: job.Spec.Template.Spec.Containers[0].Image}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	exit := int32(0)
	pod.Status.Phase = corev1.PodSucceeded
	if !succeeded {
		pod.Status.Phase, exit = corev1.PodFailed, 1
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image, ImageID: "sha256:0123",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: map[bool]string{true: "Completed", false: "Error"}[succeeded],
			Message: map[bool]string{true: "", false: "unable to detect running programs for component \"kubelet\""}[succeeded], StartedAt: now, FinishedAt: now}},
	}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	start := metav1.NewTime(now.Add(-time.Second))
	job.Status.StartTime = &start
	if succeeded {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
		}
	}
	if err := c.Status().Update(ctx, job); err != nil {
		t.Fatalf("marking Job %s finished: %v", job.Name, err)
	}
	return pod
}

func scanned(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, v1alpha1.InfraScanConditionScanned)
}

func TestScans_RunJobsOneNodeAtATimeAndKeepSummaries(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := DefaultNamespace
	cleanup(t, c, &v1alpha1.NodeBenchmark{}, &v1alpha1.ClusterBenchmark{}, &v1alpha1.PenetrationTest{}, &corev1.Node{})
	for _, n := range []struct{ name, bench string }{{"node-a", ""}, {"node-b", ""}, {"gpu-node-excluded", "skip"}} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
		if n.bench != "" {
			node.Labels = map[string]string{"bench": n.bench}
		}
		if err := c.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	skip, err := labels.Parse("bench!=skip")
	if err != nil {
		t.Fatal(err)
	}
	logs := &fakeLogs{}
	clk := &clock{now: time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)}
	startScanner(t, Options{
		KubeBench:         KubeBenchOptions{Interval: 24 * time.Hour, Nodes: skip, Args: []string{"--benchmark=cis-1.10"}},
		KubeHunter:        KubeHunterOptions{Interval: 24 * time.Hour, Quick: true},
		MaxConcurrentJobs: 1,
		Logs:              logs,
		now:               clk.Now,
	})
	report := fixture(t, "..", "kubebench", "testdata", "kube-bench-master.json")

	// One kube-bench Job at a time: node-a's first (nodes go in name order).
	var jobA batchv1.Job
	eventually(t, "a kube-bench Job for node-a", func() string {
		js := jobs(t, c, ns, ToolKubeBench)
		if len(js) != 1 || js[0].Annotations[AnnotationNode] != "node-a" {
			return fmt.Sprintf("%d Jobs", len(js))
		}
		jobA = js[0]
		return ""
	})
	if got := jobA.Spec.Template.Spec.Containers[0].Args; strings.Join(got, " ") != "run --json --benchmark=cis-1.10" {
		t.Errorf("kube-bench args %q", got)
	}
	if jobA.Spec.Template.Spec.NodeName != "node-a" || !jobA.Spec.Template.Spec.HostPID {
		t.Errorf("the Job does not run on node-a in its PID namespace: %+v", jobA.Spec.Template.Spec)
	}
	time.Sleep(500 * time.Millisecond) // a second Job would appear now
	if n := len(jobs(t, c, ns, ToolKubeBench)); n != 1 {
		t.Fatalf("%d kube-bench Jobs run at once, the limit is 1", n)
	}

	logs.set(ns, podName(&jobA), "kube-bench", append([]byte(glogLines), report...))
	finishJob(t, c, &jobA, true)
	eventually(t, "node-a's summary", func() string {
		nb := &v1alpha1.NodeBenchmark{}
		if err := c.Get(ctx, types.NamespacedName{Name: "node-a"}, nb); err != nil {
			return err.Error()
		}
		if nb.Status.Summary == nil {
			return "no summary"
		}
		return ""
	})
	nbA := &v1alpha1.NodeBenchmark{}
	if err := c.Get(ctx, types.NamespacedName{Name: "node-a"}, nbA); err != nil {
		t.Fatal(err)
	}
	s := nbA.Status.Summary
	if s.Benchmark != "cis-1.10" || s.Totals.Fail == 0 || len(s.Failures) == 0 || nbA.Status.Origin.Source != v1alpha1.InfraScanSourceJob || nbA.Status.Origin.Name != jobA.Name {
		t.Errorf("node-a: %+v, origin %+v", s, nbA.Status.Origin)
	}
	if c := scanned(nbA.Status.Conditions); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("node-a Scanned condition %+v", c)
	}
	if size := objectSize(t, nbA); size > 16<<10 {
		t.Errorf("NodeBenchmark is %d bytes", size)
	}
	eventually(t, "node-a's Job deleted", func() string {
		err := c.Get(ctx, client.ObjectKeyFromObject(&jobA), &batchv1.Job{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("Get: %v", err)
	})

	// node-b's Job writes something that is not a kube-bench report.
	var jobB batchv1.Job
	eventually(t, "a kube-bench Job for node-b", func() string {
		js := jobs(t, c, ns, ToolKubeBench)
		if len(js) != 1 || js[0].Annotations[AnnotationNode] != "node-b" {
			return fmt.Sprintf("%d Jobs", len(js))
		}
		jobB = js[0]
		return ""
	})
	logs.set(ns, podName(&jobB), "kube-bench", []byte(glogLines+`{"Controls":[{"id":"4","version":"cis-1.10","text":"Worker Node","node_type":"node","tests":[],"total_pass":0,"total_fail":0,"total_warn":0,"total_info":0}],"Totals":{"total_pass":1,"total_fail":0,"total_warn":0,"total_info":0}}`+"\n"))
	finishJob(t, c, &jobB, true)
	eventually(t, "node-b's failed scan", func() string {
		nb := &v1alpha1.NodeBenchmark{}
		if err := c.Get(ctx, types.NamespacedName{Name: "node-b"}, nb); err != nil {
			return err.Error()
		}
		cond := scanned(nb.Status.Conditions)
		if cond == nil || cond.Reason != v1alpha1.InfraScanReasonInvalidOutput {
			return fmt.Sprintf("condition %+v", cond)
		}
		if !strings.Contains(cond.Message, "Totals.total_pass: is 1 but the controls hold 0 PASS") || nb.Status.Summary != nil {
			return fmt.Sprintf("message %q, summary %+v", cond.Message, nb.Status.Summary)
		}
		return ""
	})

	// The excluded node gets no Job; the run is complete and summed.
	eventually(t, "the cluster summary", func() string {
		cb := &v1alpha1.ClusterBenchmark{}
		if err := c.Get(ctx, types.NamespacedName{Name: ClusterObjectName}, cb); err != nil {
			return err.Error()
		}
		st := cb.Status
		if st.Schedule.LastCompletionTime == nil || st.Nodes != 1 || st.NodesInError != 1 || st.Totals != s.Totals || st.Schedule.ActiveJobs != 0 {
			return fmt.Sprintf("%+v", st)
		}
		if cond := scanned(st.Conditions); cond == nil || cond.Reason != v1alpha1.InfraScanReasonIncomplete {
			return fmt.Sprintf("condition %+v", cond)
		}
		if len(st.CommonFailures) == 0 || st.CommonFailures[0].Nodes != 1 {
			return fmt.Sprintf("common failures %+v", st.CommonFailures)
		}
		return ""
	})
	if n := len(jobs(t, c, ns, ToolKubeBench)); n != 0 {
		t.Errorf("%d kube-bench Jobs left", n)
	}

	// kube-hunter: one Job; its evidence never reaches the summary.
	var hunter batchv1.Job
	eventually(t, "a kube-hunter Job", func() string {
		js := jobs(t, c, ns, ToolKubeHunter)
		if len(js) != 1 {
			return fmt.Sprintf("%d Jobs", len(js))
		}
		hunter = js[0]
		return ""
	})
	if got := hunter.Spec.Template.Spec.Containers[0].Args; strings.Join(got, " ") != "--pod --report json --log none --quick" {
		t.Errorf("kube-hunter args %q", got)
	}
	logs.set(ns, podName(&hunter), "kube-hunter", fixture(t, "..", "kubehunter", "testdata", "kube-hunter-pod.json"))
	finishJob(t, c, &hunter, true)
	pt := &v1alpha1.PenetrationTest{}
	eventually(t, "the penetration test summary", func() string {
		if err := c.Get(ctx, types.NamespacedName{Name: ClusterObjectName}, pt); err != nil {
			return err.Error()
		}
		if pt.Status.Summary == nil || pt.Status.Schedule.LastCompletionTime == nil {
			return fmt.Sprintf("%+v", pt.Status)
		}
		return ""
	})
	if got := pt.Status.Summary.Counts; got != (v1alpha1.PenetrationSeverityCounts{High: 1, Medium: 2, Low: 1}) {
		t.Errorf("counts %+v", got)
	}
	if data, _ := json.Marshal(pt); strings.Contains(string(data), "eyJhbGci") {
		t.Errorf("the PenetrationTest holds the token kube-hunter found: %s", data)
	}

	// A day later the next run starts. node-a's Job fails: its summary is
	// kept, and the condition says why.
	clk.add(24 * time.Hour)
	touch(t, c, "node-a") // wake the scheduler, whose timer runs on real time
	var jobA2 batchv1.Job
	eventually(t, "the second run's Job for node-a", func() string {
		js := jobs(t, c, ns, ToolKubeBench)
		if len(js) != 1 || js[0].Annotations[AnnotationNode] != "node-a" || js[0].Name == jobA.Name {
			return fmt.Sprintf("%d Jobs", len(js))
		}
		jobA2 = js[0]
		return ""
	})
	finishJob(t, c, &jobA2, false)
	eventually(t, "node-a's failed second scan", func() string {
		nb := &v1alpha1.NodeBenchmark{}
		if err := c.Get(ctx, types.NamespacedName{Name: "node-a"}, nb); err != nil {
			return err.Error()
		}
		cond := scanned(nb.Status.Conditions)
		if cond == nil || cond.Reason != v1alpha1.InfraScanReasonJobFailed {
			return fmt.Sprintf("condition %+v", cond)
		}
		for _, want := range []string{jobA2.Name, "BackoffLimitExceeded", "exited with code 1", `component "kubelet"`} {
			if !strings.Contains(cond.Message, want) {
				return fmt.Sprintf("message %q lacks %q", cond.Message, want)
			}
		}
		if nb.Status.Summary == nil || nb.Status.Origin.Name != jobA.Name || nb.Status.RunID != jobA2.Labels[LabelRun] {
			return fmt.Sprintf("summary %v, origin %+v, run %q", nb.Status.Summary != nil, nb.Status.Origin, nb.Status.RunID)
		}
		return ""
	})
}

// touch changes a NodeBenchmark's labels, an event the ClusterBenchmark
// reconciler watches.
func touch(t *testing.T, c client.Client, name string) {
	t.Helper()
	nb := &v1alpha1.NodeBenchmark{}
	if err := c.Get(context.Background(), types.NamespacedName{Name: name}, nb); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(nb.DeepCopy())
	nb.Labels["touched"] = time.Now().Format("150405.000000")
	if err := c.Patch(context.Background(), nb, patch); err != nil {
		t.Fatal(err)
	}
}

func objectSize(t *testing.T, o client.Object) int {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return len(data)
}

func TestScans_ReadStarboardReports(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	cleanup(t, c, &v1alpha1.NodeBenchmark{}, &v1alpha1.PenetrationTest{}, &v1alpha1.ClusterBenchmark{},
		starboardList(CISKubeBenchReportGVK), starboardList(KubeHunterReportGVK))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "starboard-node"}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, node) })
	startScanner(t, Options{Starboard: true, Logs: &fakeLogs{}})

	bench := starboardObject(t, fixture(t, "..", "kubebench", "testdata", "starboard-ciskubebenchreport.json"))
	if err := c.Create(ctx, bench); err != nil {
		t.Fatal(err)
	}
	nb := &v1alpha1.NodeBenchmark{}
	eventually(t, "the node's summary from Starboard", func() string {
		if err := c.Get(ctx, types.NamespacedName{Name: "starboard-node"}, nb); err != nil {
			return err.Error()
		}
		if nb.Status.Summary == nil {
			return "no summary"
		}
		return ""
	})
	if o := nb.Status.Origin; o.Source != v1alpha1.InfraScanSourceCISKubeBenchReport || o.Scanner != "kube-bench v0.10.4" {
		t.Errorf("origin %+v", o)
	}
	if len(nb.OwnerReferences) != 1 || nb.OwnerReferences[0].UID != node.UID {
		t.Errorf("the NodeBenchmark is not owned by its Node: %+v", nb.OwnerReferences)
	}

	// A report that does not add up is reported, and the summary kept.
	if err := c.Get(ctx, client.ObjectKeyFromObject(bench), bench); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(bench.Object, int64(999), "report", "summary", "failCount"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, bench); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken report's condition", func() string {
		if err := c.Get(ctx, types.NamespacedName{Name: "starboard-node"}, nb); err != nil {
			return err.Error()
		}
		cond := scanned(nb.Status.Conditions)
		if cond == nil || cond.Reason != v1alpha1.InfraScanReasonInvalidReport || !strings.Contains(cond.Message, "report.summary: counts") {
			return fmt.Sprintf("condition %+v", cond)
		}
		if nb.Status.Summary == nil {
			return "the summary was dropped"
		}
		return ""
	})

	hunter := starboardObject(t, fixture(t, "..", "kubehunter", "testdata", "starboard-kubehunterreport.json"))
	if err := c.Create(ctx, hunter); err != nil {
		t.Fatal(err)
	}
	pt := &v1alpha1.PenetrationTest{}
	eventually(t, "the penetration test from Starboard", func() string {
		if err := c.Get(ctx, types.NamespacedName{Name: ClusterObjectName}, pt); err != nil {
			return err.Error()
		}
		if pt.Status.Summary == nil {
			return "no summary"
		}
		return ""
	})
	if pt.Status.Origin.Source != v1alpha1.InfraScanSourceKubeHunterReport || pt.Status.Summary.Counts.High != 1 {
		t.Errorf("penetration test %+v", pt.Status)
	}
}

func starboardList(gvk schema.GroupVersionKind) client.Object { return newUnstructured(gvk) }

func starboardObject(t *testing.T, data []byte) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}
