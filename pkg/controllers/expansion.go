package controllers

import (
	"context"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	expansionv1alpha1 "github.com/statcan/daaas-guard/api/expansion/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/expansion"
)

// ExpansionReconciler keeps the set of ExpansionTemplates current. Any
// change rebuilds the whole set (there are a handful), so that cycles
// between templates are judged on all of them together.
type ExpansionReconciler struct {
	Client client.Client
	Log    logr.Logger
	set    atomic.Pointer[expansion.Set]
}

// Set returns the current templates; never nil.
func (r *ExpansionReconciler) Set() *expansion.Set {
	if s := r.set.Load(); s != nil {
		return s
	}
	return expansion.NewSet()
}

// SetupWithManager registers the controller.
func (r *ExpansionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("expansiontemplates").
		For(&expansionv1alpha1.ExpansionTemplate{}).
		Complete(r)
}

// Reconcile rebuilds the set from every ExpansionTemplate.
func (r *ExpansionReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	list := &expansionv1alpha1.ExpansionTemplateList{}
	if err := r.Client.List(ctx, list); err != nil {
		return ctrl.Result{}, err
	}
	var ts []*expansion.Template
	for i := range list.Items {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&list.Items[i])
		if err != nil {
			return ctrl.Result{}, err
		}
		t, err := expansion.FromObject(&unstructured.Unstructured{Object: m})
		if err != nil {
			r.Log.Info("ExpansionTemplate cannot be used", "name", list.Items[i].Name, "error", err.Error())
			continue
		}
		ts = append(ts, t)
	}
	set := expansion.NewSet(ts...)
	for _, name := range set.Excluded {
		r.Log.Info("ExpansionTemplate left out: it forms a cycle with others", "name", name)
	}
	r.set.Store(set)
	return ctrl.Result{}, nil
}
