package controllers

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/inventory"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
)

// ConfigReconciler reads Gatekeeper's Config (named "config" in the
// webhook's namespace): spec.sync.syncOnly decides which kinds are kept in
// data.inventory by informers, and spec.match excludes namespaces from the
// webhook and from syncing.
type ConfigReconciler struct {
	Client client.Client
	// Mapper, RESTConfig and HTTPClient reach the synced kinds; by
	// default the manager's.
	Mapper     meta.RESTMapper
	RESTConfig *rest.Config
	HTTPClient *http.Client
	Engine     *policy.Engine
	Exemptions *admission.Exemptions
	Tracker    *Tracker
	Namespace  string
	// Process is the Config process whose excluded namespaces go to
	// Exemptions: webhook (the default) or audit.
	Process string
	Log     logr.Logger

	mu     sync.Mutex
	synced map[schema.GroupVersionKind]*syncedKind
	noSync []match.Glob
}

type syncedKind struct {
	informer toolscache.SharedIndexInformer
	stop     context.CancelFunc
	// mu orders the informer's handlers against stopping: once stopped,
	// a notification still in flight changes data.inventory no more.
	mu      sync.Mutex
	stopped bool
}

// SetupWithManager registers the controller for the one Config object.
func (r *ConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.synced = map[schema.GroupVersionKind]*syncedKind{}
	if r.Mapper == nil {
		r.Mapper = mgr.GetRESTMapper()
	}
	if r.RESTConfig == nil {
		r.RESTConfig = mgr.GetConfig()
	}
	if r.HTTPClient == nil {
		r.HTTPClient = mgr.GetHTTPClient()
	}
	onlyOurs := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == configv1alpha1.ConfigName
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("config").
		For(&configv1alpha1.Config{}, builder.WithPredicates(onlyOurs)).
		Complete(r)
}

// Reconcile applies the Config: exemptions, then the set of synced kinds.
func (r *ConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cfg := &configv1alpha1.Config{}
	err := r.Client.Get(ctx, req.NamespacedName, cfg)
	if apierrors.IsNotFound(err) {
		cfg = &configv1alpha1.Config{} // no Config: nothing excluded, nothing synced
	} else if err != nil {
		return ctrl.Result{}, err
	}

	process := r.process()
	var excluded, syncExcluded []match.Glob
	for _, m := range cfg.Spec.Match {
		for _, p := range m.Processes {
			for _, ns := range m.ExcludedNamespaces {
				if p == configv1alpha1.ProcessAll || p == process {
					excluded = append(excluded, match.Glob(ns))
				}
				if p == configv1alpha1.ProcessAll || p == configv1alpha1.ProcessSync {
					syncExcluded = append(syncExcluded, match.Glob(ns))
				}
			}
		}
	}
	r.Exemptions.SetConfigExcluded(excluded)
	r.Tracker.observe(configKey)

	want := map[schema.GroupVersionKind]bool{}
	for _, g := range cfg.Spec.Sync.SyncOnly {
		want[schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noSync = syncExcluded
	for gvk, s := range r.synced {
		if !want[gvk] {
			r.stop(ctx, gvk, s)
		}
	}
	var result ctrl.Result
	for gvk := range want {
		if _, running := r.synced[gvk]; running {
			continue
		}
		if err := r.start(ctx, gvk); err != nil {
			// A kind not served yet (Istio or Kubeflow installed after the
			// suite) is expected: say so once per attempt, without a stack,
			// and try again, so its objects reach data.inventory once its
			// CRD arrives.
			if meta.IsNoMatchError(err) {
				r.Log.Info("kind not served by the API server; syncing it once it is", "gvk", gvk.String(), "retry", syncRetry)
			} else {
				r.Log.Error(err, "cannot sync kind", "gvk", gvk.String())
			}
			r.Tracker.observe(dataKey(gvk)) // do not hold readiness on a kind that does not exist
			result.RequeueAfter = syncRetry
			continue
		}
	}
	return result, nil
}

// syncedObjects is the series of objects kept in data.inventory; process
// (webhook or audit) tells replicas of both apart in one registry.
func (r *ConfigReconciler) syncedObjects() *prometheus.Desc {
	return prometheus.NewDesc("daaas_guard_synced_objects",
		"Objects of each kind the Config syncs, as held by this process's informers (those in namespaces excluded from sync included).",
		[]string{"group", "version", "kind"}, prometheus.Labels{"process": r.process()})
}

// Describe and Collect report the synced objects by kind: read from the
// informers when scraped, so the count is never stale.
func (r *ConfigReconciler) Describe(ch chan<- *prometheus.Desc) { ch <- r.syncedObjects() }

func (r *ConfigReconciler) Collect(ch chan<- prometheus.Metric) {
	desc := r.syncedObjects()
	r.mu.Lock()
	defer r.mu.Unlock()
	for gvk, s := range r.synced {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue,
			float64(len(s.informer.GetStore().ListKeys())), gvk.Group, gvk.Version, gvk.Kind)
	}
}

func (r *ConfigReconciler) process() string {
	if r.Process == "" {
		return configv1alpha1.ProcessWebhook
	}
	return r.Process
}

// syncRetry is how often a Config's kinds that the API server does not
// serve are tried again.
const syncRetry = time.Minute

func (r *ConfigReconciler) excluded(namespace string) bool {
	if namespace == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.noSync {
		if g.Matches(namespace) {
			return true
		}
	}
	return false
}

// start keeps a kind in data.inventory with an informer of its own that
// parses each object once, straight into its Rego value (pkg/inventory).
func (r *ConfigReconciler) start(ctx context.Context, gvk schema.GroupVersionKind) error {
	mapping, err := r.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("informer for %s: %w", gvk, err)
	}
	lw, err := inventory.NewListerWatcher(r.RESTConfig, r.HTTPClient, mapping)
	if err != nil {
		return err
	}
	inf := toolscache.NewSharedIndexInformer(lw, &inventory.Object{}, 0, toolscache.Indexers{})
	kind := &syncedKind{informer: inf}
	// apply runs f unless syncing the kind has stopped.
	apply := func(f func()) {
		kind.mu.Lock()
		defer kind.mu.Unlock()
		if !kind.stopped {
			f()
		}
	}
	add := func(o interface{}) {
		obj, ok := o.(*inventory.Object)
		if !ok || r.excluded(obj.Namespace) {
			return
		}
		apply(func() {
			if err := r.Engine.AddDataValue(ctx, gvk, obj.Namespace, obj.Name, obj.Value); err != nil {
				r.Log.Error(err, "adding data", "gvk", gvk.String(), "namespace", obj.Namespace, "name", obj.Name)
			}
		})
	}
	handle, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, o interface{}) { add(o) },
		DeleteFunc: func(o interface{}) {
			if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if obj, ok := o.(*inventory.Object); ok {
				apply(func() { _ = r.Engine.RemoveDataFor(ctx, gvk, obj.Namespace, obj.Name) })
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching %s: %w", gvk, err)
	}
	ictx, stop := context.WithCancel(ctx)
	kind.stop = stop
	go inf.RunWithContext(ictx)
	r.synced[gvk] = kind
	go func() {
		if toolscache.WaitForCacheSync(ictx.Done(), handle.HasSynced) {
			r.Tracker.observe(dataKey(gvk))
			r.Log.V(1).Info("synced", "gvk", gvk.String())
		}
	}()
	return nil
}

// stop stops a kind's informer and removes its objects from
// data.inventory.
func (r *ConfigReconciler) stop(ctx context.Context, gvk schema.GroupVersionKind, s *syncedKind) {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, o := range s.informer.GetStore().List() {
		if obj, ok := o.(*inventory.Object); ok {
			_ = r.Engine.RemoveDataFor(ctx, gvk, obj.Namespace, obj.Name)
		}
	}
	delete(r.synced, gvk)
	r.Log.Info("stopped syncing", "gvk", gvk.String())
}
