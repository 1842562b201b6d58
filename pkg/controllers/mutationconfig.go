package controllers

import (
	"context"
	"sync/atomic"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/mutate"
)

// MutationConfigSetter receives each new mutation configuration.
type MutationConfigSetter interface {
	SetConfig(*mutate.Config)
}

// MutationConfigReconciler applies the MutationConfig named "default" to
// the mutating handler, replacing its configuration as a whole, so a
// change applies to the next pod without a restart. An invalid spec (one
// that slipped past admission, for example while the webhook was down)
// is not applied: the last valid configuration stays, and the status says
// why.
type MutationConfigReconciler struct {
	Client  client.Client
	Handler MutationConfigSetter
	Log     logr.Logger
	loaded  atomic.Bool
}

// Loaded reports whether the configuration present at start-up (or its
// absence) has been read.
func (r *MutationConfigReconciler) Loaded() bool { return r.loaded.Load() }

// SetupWithManager registers the controller. It reconciles once at start
// whether or not the MutationConfig exists, so that readiness can wait for
// the configuration.
func (r *MutationConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &v1alpha1.MutationConfig{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MutationConfigName}}}
	onlyDefault := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == v1alpha1.MutationConfigName })
	return ctrl.NewControllerManagedBy(mgr).
		Named("mutationconfig").
		For(&v1alpha1.MutationConfig{}, builder.WithPredicates(onlyDefault)).
		WatchesRawSource(source.Channel(start, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// Reconcile applies the MutationConfig, or the defaults when there is none.
func (r *MutationConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := &v1alpha1.MutationConfig{}
	err := r.Client.Get(ctx, req.NamespacedName, obj)
	if apierrors.IsNotFound(err) {
		r.Handler.SetConfig(mutate.DefaultConfig())
		r.loaded.Store(true)
		r.Log.Info("no MutationConfig: mutating with the defaults")
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	cond := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Applied",
		Message: "the mutating webhook applies this configuration", ObservedGeneration: obj.Generation}
	cfg, err := mutate.NewConfig(&obj.Spec)
	if err != nil {
		cond.Status, cond.Reason = metav1.ConditionFalse, "Invalid"
		cond.Message = "not applied, the last valid configuration stays: " + err.Error()
		r.Log.Error(err, "MutationConfig is invalid; keeping the last valid configuration", "name", obj.Name)
	} else {
		r.Handler.SetConfig(cfg)
		r.Log.Info("MutationConfig applied", "name", obj.Name, "generation", obj.Generation)
	}
	r.loaded.Store(true)
	if old := meta.FindStatusCondition(obj.Status.Conditions, "Ready"); old != nil && obj.Status.ObservedGeneration == obj.Generation &&
		old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message && old.ObservedGeneration == cond.ObservedGeneration {
		return ctrl.Result{}, nil // status already says so; writing it again would only trigger another reconcile
	}
	before := obj.DeepCopy()
	meta.SetStatusCondition(&obj.Status.Conditions, cond)
	obj.Status.ObservedGeneration = obj.Generation
	if err := r.Client.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}
