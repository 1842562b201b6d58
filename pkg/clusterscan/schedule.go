package clusterscan

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// benchScheduler owns the ClusterBenchmark: it starts a kube-bench run
// every Interval, creates the run's Jobs node by node while fewer than
// MaxConcurrentJobs run, marks the run complete when every node has an
// outcome, and sums the NodeBenchmarks.
type benchScheduler struct {
	o       Options
	client  client.Client // writes; reads our summaries from the cache
	nodes   client.Reader // uncached: nodes are listed only while a run needs them
	jobs    client.Reader // the Job namespace's cache
	tracker *tracker
	metrics *metrics
	log     logr.Logger
}

var clusterKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: ClusterObjectName}}

// Reconcile handles the one ClusterBenchmark.
func (s *benchScheduler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	cb := &v1alpha1.ClusterBenchmark{}
	err := s.client.Get(ctx, clusterKey.NamespacedName, cb)
	if apierrors.IsNotFound(err) {
		cb = &v1alpha1.ClusterBenchmark{ObjectMeta: metav1.ObjectMeta{Name: ClusterObjectName, Labels: map[string]string{LabelManagedBy: ManagedBy}}}
		if err := s.client.Create(ctx, cb); err != nil {
			return reconcile.Result{}, fmt.Errorf("creating ClusterBenchmark %s: %w", ClusterObjectName, err)
		}
	} else if err != nil {
		return reconcile.Result{}, err
	}
	now := s.o.now()
	st := cb.Status.DeepCopy()

	benches := &v1alpha1.NodeBenchmarkList{}
	if err := s.client.List(ctx, benches); err != nil {
		return reconcile.Result{}, err
	}
	aggregate(st, benches.Items, s.o.MaxCommonFailures)

	active, err := s.activeJobs(ctx, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	var requeue time.Duration
	if interval := s.o.KubeBench.Interval; interval > 0 {
		sch := &st.Schedule
		if sch.LastScheduleTime == nil || !now.Before(sch.LastScheduleTime.Add(interval)) {
			// A new run is written before any of its Jobs is created: a
			// stale cache then fails the write (conflict) instead of
			// starting a second run.
			t := metav1.NewTime(now)
			sch.RunID, sch.LastScheduleTime, sch.LastCompletionTime = runID(now), &t, nil
			sch.ActiveJobs = int32(len(active))
			setClusterCondition(st, cb.Generation)
			cb.Status = *st
			if err := s.client.Status().Update(ctx, cb); err != nil {
				return reconcile.Result{}, fmt.Errorf("starting a kube-bench run: %w", err)
			}
			s.log.Info("kube-bench run started", "run", sch.RunID)
			// Let the cache see the new run before creating its Jobs.
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		if sch.LastCompletionTime == nil {
			complete, err := s.advance(ctx, sch.RunID, benches.Items, active, now)
			if err != nil {
				return reconcile.Result{}, err
			}
			if complete {
				t := metav1.NewTime(now)
				sch.LastCompletionTime = &t
				s.log.Info("kube-bench run complete", "run", sch.RunID)
			}
		}
		requeue = max(sch.LastScheduleTime.Add(interval).Sub(now), time.Second)
	}
	st.Schedule.ActiveJobs = int32(len(active))
	setClusterCondition(st, cb.Generation)

	if !equality.Semantic.DeepEqual(&cb.Status, st) {
		cb.Status = *st
		if err := s.client.Status().Update(ctx, cb); err != nil {
			return reconcile.Result{}, fmt.Errorf("updating ClusterBenchmark %s: %w", ClusterObjectName, err)
		}
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// activeJobs returns the kube-bench Jobs not yet collected, by name, with
// their node: those in the cache and those just created that it does not
// show yet. A finished Job counts until the collector has written its
// NodeBenchmark and deleted it; otherwise a stale NodeBenchmark cache would
// make its node look pending and get it a second Job.
func (s *benchScheduler) activeJobs(ctx context.Context, now time.Time) (map[string]string, error) {
	jobs := &batchv1.JobList{}
	if err := s.jobs.List(ctx, jobs, client.InNamespace(s.o.Namespace), client.MatchingLabels{LabelManagedBy: ManagedBy, LabelTool: ToolKubeBench}); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	active := map[string]string{}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		seen[j.Name] = true
		if j.DeletionTimestamp == nil {
			active[j.Name] = j.Annotations[AnnotationNode]
		}
	}
	for name, node := range s.tracker.unseen(seen, now) {
		if node != hunterKey {
			active[name] = node
		}
	}
	return active, nil
}

// advance creates Jobs for the run's pending nodes while slots are free.
// It reports the run complete when no node is pending and none of the
// run's Jobs is active.
func (s *benchScheduler) advance(ctx context.Context, run string, benches []v1alpha1.NodeBenchmark, active map[string]string, now time.Time) (bool, error) {
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := s.nodes.List(ctx, nodes, client.MatchingLabelsSelector{Selector: s.o.KubeBench.Nodes}); err != nil {
		return false, fmt.Errorf("listing nodes: %w", err)
	}
	attempted := map[string]bool{}
	for _, nb := range benches {
		if nb.Status.RunID == run {
			attempted[nb.Name] = true
		}
	}
	busy := map[string]bool{}
	runActive := 0
	for name, node := range active {
		busy[node] = true
		if strings.HasSuffix(name, "-"+run) {
			runActive++
		}
	}
	var pending []metav1.PartialObjectMetadata
	for _, n := range nodes.Items {
		if !attempted[n.Name] && !busy[n.Name] && !s.tracker.attemptedIn(n.Name, run) {
			pending = append(pending, n)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Name < pending[j].Name })
	slots := s.o.MaxConcurrentJobs - len(active)
	for i := 0; i < len(pending) && i < slots; i++ {
		n := pending[i]
		job := benchJob(s.o, n.Name, n.UID, run)
		err := s.client.Create(ctx, job)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating kube-bench Job for node %s: %w", n.Name, err)
		}
		s.tracker.launch(job.Name, n.Name, now)
		active[job.Name] = n.Name
		runActive++
		if err == nil {
			s.metrics.jobsCreated.WithLabelValues(ToolKubeBench).Inc()
			s.log.V(1).Info("kube-bench Job created", "job", job.Name, "node", n.Name)
		}
	}
	return len(pending) == 0 && runActive == 0, nil
}

// aggregate sums the NodeBenchmarks into st.
func aggregate(st *v1alpha1.ClusterBenchmarkStatus, benches []v1alpha1.NodeBenchmark, maxCommon int) {
	st.Nodes, st.NodesFailing, st.NodesInError = 0, 0, 0
	st.Totals = v1alpha1.BenchmarkTotals{}
	type count struct {
		text  string
		nodes int32
	}
	common := map[string]*count{}
	for _, nb := range benches {
		if c := meta.FindStatusCondition(nb.Status.Conditions, v1alpha1.InfraScanConditionScanned); c != nil && c.Status == metav1.ConditionFalse {
			st.NodesInError++
		}
		sum := nb.Status.Summary
		if sum == nil {
			continue
		}
		st.Nodes++
		if sum.Totals.Fail > 0 {
			st.NodesFailing++
		}
		st.Totals.Pass += sum.Totals.Pass
		st.Totals.Fail += sum.Totals.Fail
		st.Totals.Warn += sum.Totals.Warn
		st.Totals.Info += sum.Totals.Info
		for _, f := range sum.Failures {
			if common[f.ID] == nil {
				common[f.ID] = &count{text: f.Text}
			}
			common[f.ID].nodes++
		}
	}
	var list []v1alpha1.CommonFailure
	for id, c := range common {
		list = append(list, v1alpha1.CommonFailure{ID: id, Text: c.text, Nodes: c.nodes})
	}
	slices.SortFunc(list, func(a, b v1alpha1.CommonFailure) int {
		if a.Nodes != b.Nodes {
			return int(b.Nodes - a.Nodes)
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(list) > maxCommon {
		list = list[:maxCommon]
	}
	st.CommonFailures = list
}

func setClusterCondition(st *v1alpha1.ClusterBenchmarkStatus, generation int64) {
	c := metav1.Condition{Type: v1alpha1.InfraScanConditionScanned, ObservedGeneration: generation}
	switch {
	case st.NodesInError > 0:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.InfraScanReasonIncomplete
		c.Message = fmt.Sprintf("the last scan of %d node(s) failed; see their NodeBenchmarks", st.NodesInError)
	case st.Nodes == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.InfraScanReasonRunning, "no node benchmarked yet"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.InfraScanReasonSucceeded
		c.Message = fmt.Sprintf("%d node(s) benchmarked, %d with failing checks", st.Nodes, st.NodesFailing)
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// hunterScheduler owns the PenetrationTest's schedule: one kube-hunter Job
// every Interval. The collector records the outcome.
type hunterScheduler struct {
	o       Options
	client  client.Client
	jobs    client.Reader
	tracker *tracker
	metrics *metrics
	log     logr.Logger
}

// Reconcile handles the one PenetrationTest.
func (s *hunterScheduler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	interval := s.o.KubeHunter.Interval
	if interval <= 0 {
		return reconcile.Result{}, nil
	}
	jobs := &batchv1.JobList{}
	if err := s.jobs.List(ctx, jobs, client.InNamespace(s.o.Namespace), client.MatchingLabels{LabelManagedBy: ManagedBy, LabelTool: ToolKubeHunter}); err != nil {
		return reconcile.Result{}, err
	}
	now := s.o.now()
	seen := map[string]bool{}
	active := 0
	for i := range jobs.Items {
		seen[jobs.Items[i].Name] = true
		if jobs.Items[i].DeletionTimestamp == nil { // finished counts until read, as for kube-bench
			active++
		}
	}
	for _, node := range s.tracker.unseen(seen, now) {
		if node == hunterKey {
			active++
		}
	}
	var create *batchv1.Job
	var requeue time.Duration
	err := updatePenetrationTest(ctx, s.client, func(pt *v1alpha1.PenetrationTest) {
		sch := &pt.Status.Schedule
		if sch.LastScheduleTime == nil || !now.Before(sch.LastScheduleTime.Add(interval)) {
			t := metav1.NewTime(now)
			sch.RunID, sch.LastScheduleTime, sch.LastCompletionTime = runID(now), &t, nil
		}
		// One kube-hunter at a time: a run still going when the next is due
		// delays it.
		if sch.LastCompletionTime == nil && active == 0 && !s.tracker.attemptedIn(hunterKey, sch.RunID) {
			create = hunterJob(s.o, sch.RunID)
			active = 1
		}
		sch.ActiveJobs = int32(active)
		requeue = max(sch.LastScheduleTime.Add(interval).Sub(now), time.Second)
	})
	if err != nil {
		return reconcile.Result{}, err
	}
	if create != nil {
		err := s.client.Create(ctx, create)
		switch {
		case err == nil:
			s.tracker.launch(create.Name, hunterKey, now)
			s.metrics.jobsCreated.WithLabelValues(ToolKubeHunter).Inc()
			s.log.Info("kube-hunter Job created", "job", create.Name)
		case !apierrors.IsAlreadyExists(err):
			return reconcile.Result{}, fmt.Errorf("creating kube-hunter Job: %w", err)
		}
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}
