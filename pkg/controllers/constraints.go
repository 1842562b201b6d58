package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/statcan/daaas-guard/pkg/policy"
)

// ConstraintReconciler adds constraints of every kind to the engine. One
// controller serves all kinds: a watch is added for each kind when its
// template's CRD is established. Constraints are cluster-scoped, so the
// request's Namespace field carries the constraint's kind.
type ConstraintReconciler struct {
	Client  client.Client
	Engine  *policy.Engine
	Tracker *Tracker
	Metrics *Metrics
	PodID   string
	// ReadOnly loads constraints without writing status.byPod (the
	// audit's mode: the webhook reports enforcement).
	ReadOnly bool
	Log      logr.Logger

	mgr     manager.Manager
	ctrl    controller.Controller
	mu      sync.Mutex
	watched map[string]bool
}

// SetupWithManager creates the controller; watches come later, per kind.
func (r *ConstraintReconciler) SetupWithManager(mgr ctrl.Manager) error {
	c, err := controller.New("constraints", mgr, controller.Options{Reconciler: r})
	if err != nil {
		return err
	}
	r.mgr, r.ctrl, r.watched = mgr, c, map[string]bool{}
	return nil
}

// Watch starts watching a constraint kind, once.
func (r *ConstraintReconciler) Watch(ctx context.Context, kind string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watched[kind] {
		return nil
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(ConstraintGVK(kind))
	toRequest := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, o *unstructured.Unstructured) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: kind, Name: o.GetName()}}}
	})
	src := source.Kind(r.mgr.GetCache(), obj, toRequest, predicate.TypedGenerationChangedPredicate[*unstructured.Unstructured]{})
	if err := r.ctrl.Watch(src); err != nil {
		return fmt.Errorf("watching %s constraints: %w", kind, err)
	}
	r.watched[kind] = true
	r.Log.V(1).Info("watching constraints", "kind", kind)
	return nil
}

// watching reports whether constraints of the kind are watched, so that
// each of them is loaded.
func (r *ConstraintReconciler) watching(kind string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watched[kind]
}

// Reconcile adds, updates or removes one constraint.
func (r *ConstraintReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	kind, name := req.Namespace, req.Name
	key := kind + "/" + name
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ConstraintGVK(kind))
	err := r.Client.Get(ctx, types.NamespacedName{Name: name}, u)
	if apierrors.IsNotFound(err) || (err == nil && u.GetDeletionTimestamp() != nil) {
		gone := &unstructured.Unstructured{}
		gone.SetGroupVersionKind(ConstraintGVK(kind))
		gone.SetName(name)
		r.Tracker.observe(constraintKey(kind, name))
		r.Metrics.constraintGone(key)
		return ctrl.Result{}, client.IgnoreNotFound(r.Engine.RemoveConstraint(ctx, gone))
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	addErr := r.Engine.AddConstraint(ctx, u, nil)
	if addErr != nil {
		r.Log.Info("constraint cannot be enforced", "kind", kind, "name", name, "error", addErr.Error())
	}
	r.Metrics.constraintResult(key, addErr == nil)
	r.Tracker.observe(constraintKey(kind, name))
	if r.ReadOnly {
		return ctrl.Result{}, nil
	}

	entry := map[string]interface{}{
		"id":                 r.PodID,
		"observedGeneration": u.GetGeneration(),
		"enforced":           addErr == nil,
		"operations":         []interface{}{"webhook"},
	}
	if addErr != nil {
		code := "invalid_constraint"
		if errors.Is(addErr, policy.ErrSchema) {
			code = "schema_error"
		}
		entry["errors"] = []interface{}{map[string]interface{}{"code": code, "message": addErr.Error()}}
	}
	return ctrl.Result{}, updateStatus(ctx, r.Client, u, nil, entry)
}
