package clusterscan

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Setup adds the scans' controllers to mgr, whose scheme must hold
// guard.statcan.gc.ca/v1alpha1 and the built-in kinds. Jobs and their pods
// are watched in o.Namespace only, through a cache of their own, so the
// scanner needs no cluster-wide access to Jobs, pods or logs. Starboard's
// reports are read when o.Starboard is set and their CRDs exist now.
func Setup(mgr manager.Manager, o Options) error {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return fmt.Errorf("cluster scans: %w", err)
	}
	for _, obj := range []client.Object{&v1alpha1.NodeBenchmark{}, &batchv1.Job{}, &corev1.Pod{}} {
		if _, _, err := mgr.GetScheme().ObjectKinds(obj); err != nil {
			return fmt.Errorf("cluster scans: the manager's scheme lacks %T: %w", obj, err)
		}
	}
	log := o.Log
	reg := o.Metrics
	if reg == nil {
		reg = crmetrics.Registry
	}
	m := newMetrics(reg)

	sel, err := labels.ValidatedSelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	if err != nil {
		return err
	}
	jobCache, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultNamespaces:    map[string]cache.Config{o.Namespace: {}},
		DefaultLabelSelector: sel,
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(jobCache); err != nil {
		return err
	}
	logs := o.Logs
	if logs == nil {
		cs, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return err
		}
		logs = APILogs{Client: cs}
	}
	tr := newTracker()

	col := &collector{o: o, client: mgr.GetClient(), jobs: jobCache, logs: logs, tracker: tr, metrics: m, log: log.WithName("jobs")}
	if err := ctrl.NewControllerManagedBy(mgr).Named("clusterscan-jobs").
		WatchesRawSource(source.Kind(jobCache, &batchv1.Job{}, &handler.TypedEnqueueRequestForObject[*batchv1.Job]{})).
		// Pods are watched so that a Job whose pod appears in the cache
		// after the Job finished is read again.
		WatchesRawSource(source.Kind(jobCache, &corev1.Pod{}, handler.TypedEnqueueRequestsFromMapFunc(podToJob))).
		Complete(col); err != nil {
		return err
	}

	bench := &benchScheduler{o: o, client: mgr.GetClient(), nodes: mgr.GetAPIReader(), jobs: jobCache, tracker: tr, metrics: m, log: log.WithName("kube-bench")}
	if err := ctrl.NewControllerManagedBy(mgr).Named("clusterbenchmark").
		For(&v1alpha1.ClusterBenchmark{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.NodeBenchmark{}, handler.EnqueueRequestsFromMapFunc(toCluster)).
		WatchesRawSource(source.Kind(jobCache, &batchv1.Job{}, handler.TypedEnqueueRequestsFromMapFunc(jobOf[*batchv1.Job](ToolKubeBench)))).
		WatchesRawSource(kick()).
		Complete(bench); err != nil {
		return err
	}
	hunter := &hunterScheduler{o: o, client: mgr.GetClient(), jobs: jobCache, tracker: tr, metrics: m, log: log.WithName("kube-hunter")}
	if err := ctrl.NewControllerManagedBy(mgr).Named("penetrationtest").
		For(&v1alpha1.PenetrationTest{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Kind(jobCache, &batchv1.Job{}, handler.TypedEnqueueRequestsFromMapFunc(jobOf[*batchv1.Job](ToolKubeHunter)))).
		WatchesRawSource(kick()).
		Complete(hunter); err != nil {
		return err
	}

	if !o.Starboard {
		return nil
	}
	sr := &starboardReader{o: o, client: mgr.GetClient(), nodes: mgr.GetAPIReader(), metrics: m, log: log.WithName("starboard")}
	for _, k := range []struct {
		name string
		gvk  schema.GroupVersionKind
		r    reconcile.Reconciler
	}{
		{"ciskubebenchreports", CISKubeBenchReportGVK, benchReconciler{sr}},
		{"kubehunterreports", KubeHunterReportGVK, hunterReconciler{sr}},
	} {
		if _, err := mgr.GetRESTMapper().RESTMapping(k.gvk.GroupKind(), k.gvk.Version); err != nil {
			if meta.IsNoMatchError(err) {
				log.Info("Starboard reports not read: their CRD is not installed", "kind", k.gvk.Kind)
				continue
			}
			return err
		}
		if err := ctrl.NewControllerManagedBy(mgr).Named(k.name).For(newUnstructured(k.gvk)).Complete(k.r); err != nil {
			return err
		}
		log.Info("reading Starboard reports", "kind", k.gvk.Kind)
	}
	return nil
}

// toCluster maps any object to the one ClusterBenchmark or PenetrationTest.
func toCluster(context.Context, client.Object) []reconcile.Request {
	return []reconcile.Request{clusterKey}
}

// jobOf maps a Job of tool to the one summary object.
func jobOf[T client.Object](tool string) func(context.Context, T) []reconcile.Request {
	return func(_ context.Context, j T) []reconcile.Request {
		if j.GetLabels()[LabelTool] != tool {
			return nil
		}
		return []reconcile.Request{clusterKey}
	}
}

// podToJob maps a pod to the Job that owns it.
func podToJob(_ context.Context, p *corev1.Pod) []reconcile.Request {
	if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "Job" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}}}
	}
	return nil
}

// kick reconciles once at start, so that the first run is scheduled (and
// the object created) without waiting for an event.
func kick() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(clusterKey)
		return nil
	})
}
