package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/statcan/daaas-guard/pkg/policy"
)

// FieldOwner is the field manager of everything the controllers write.
const FieldOwner = "daaas-guard"

// TemplateReconciler compiles ConstraintTemplates into the engine and
// creates, updates and deletes their constraint CRDs.
type TemplateReconciler struct {
	Client      client.Client
	Engine      *policy.Engine
	Constraints *ConstraintReconciler
	Tracker     *Tracker
	Metrics     *Metrics
	// PodID names this replica in status.byPod.
	PodID string
	// ReadOnly compiles templates and watches their constraints but writes
	// nothing: no status, no CRDs. The audit runs this way beside the
	// webhook, which owns both.
	ReadOnly bool
	Log      logr.Logger

	mu    sync.Mutex
	kinds map[string]string // template name -> constraint kind
}

// SetupWithManager registers the controller.
func (r *TemplateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.kinds = map[string]string{}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(TemplateGVK)
	return ctrl.NewControllerManagedBy(mgr).
		Named("constrainttemplates").
		For(u, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// Reconcile brings one template into the engine, or takes it out.
func (r *TemplateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := r.Log.WithValues("template", req.Name)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(TemplateGVK)
	err := r.Client.Get(ctx, req.NamespacedName, u)
	if apierrors.IsNotFound(err) || (err == nil && u.GetDeletionTimestamp() != nil) {
		return ctrl.Result{}, r.remove(ctx, req.Name, log)
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	t, err := policy.NewTemplate(u, nil)
	if err == nil {
		err = r.Engine.AddTemplate(ctx, t)
	}
	if err != nil {
		log.Info("template cannot be used", "error", err.Error())
		r.Metrics.templateResult(req.Name, false)
		r.unusable(req.Name, u.GetGeneration())
		if r.ReadOnly {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, r.writeStatus(ctx, u, false, templateErrors(err))
	}
	r.mu.Lock()
	previous := r.kinds[req.Name]
	r.kinds[req.Name] = t.Kind
	r.mu.Unlock()
	if previous != "" && previous != t.Kind {
		_ = r.Engine.RemoveTemplate(ctx, previous)
	}

	if r.ReadOnly {
		return r.watchWhenServed(ctx, req.Name, u.GetGeneration(), t.Kind, log)
	}
	crd, err := r.Engine.CRD(ctx, t)
	if err != nil {
		r.unusable(req.Name, u.GetGeneration())
		return ctrl.Result{}, r.writeStatus(ctx, u, false, templateErrors(err))
	}
	crd.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: TemplateGVK.GroupVersion().String(), Kind: TemplateGVK.Kind,
		Name: u.GetName(), UID: u.GetUID(), BlockOwnerDeletion: ptr.To(false),
	}}
	crd.ManagedFields = nil
	if err := r.Client.Patch(ctx, crd, client.Apply, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return ctrl.Result{}, fmt.Errorf("applying the CRD of %s: %w", t.Kind, err)
	}
	established, err := r.established(ctx, crd.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !established {
		// Constraints can only be watched once the API server serves the
		// kind; this is normally a matter of milliseconds.
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if err := r.Constraints.Watch(ctx, t.Kind); err != nil {
		return ctrl.Result{}, err
	}
	r.Metrics.templateResult(req.Name, true)
	r.Tracker.templateProcessed(req.Name, u.GetGeneration(), t.Kind)
	log.V(1).Info("template loaded", "kind", t.Kind)
	return ctrl.Result{}, r.writeStatus(ctx, u, true, nil)
}

// watchWhenServed is the read-only end of Reconcile: the template counts
// as loaded once compiled (readiness must not wait for a webhook that may
// be down), and its constraints are watched once the webhook's CRD is
// established; until then it is checked again every few seconds.
func (r *TemplateReconciler) watchWhenServed(ctx context.Context, name string, generation int64, kind string, log logr.Logger) (ctrl.Result, error) {
	r.Metrics.templateResult(name, true)
	r.Tracker.templateProcessed(name, generation, kind)
	established, err := r.established(ctx, strings.ToLower(kind)+".constraints.gatekeeper.sh")
	if err != nil {
		return ctrl.Result{}, err
	}
	if !established {
		log.V(1).Info("waiting for the constraint CRD", "kind", kind)
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return ctrl.Result{}, r.Constraints.Watch(ctx, kind)
}

// unusable tells the tracker that the current version of a template cannot
// be used. Its constraints are still loaded if an earlier version of it is
// in the engine with their kind watched; otherwise they never will be, and
// readiness must stop waiting for them.
func (r *TemplateReconciler) unusable(name string, generation int64) {
	r.mu.Lock()
	kind := r.kinds[name]
	r.mu.Unlock()
	if kind != "" && !r.Constraints.watching(kind) {
		kind = ""
	}
	r.Tracker.templateProcessed(name, generation, kind)
}

func (r *TemplateReconciler) established(ctx context.Context, name string) (bool, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true, nil
		}
	}
	return false, nil
}

// remove forgets a deleted template and deletes its CRD, which deletes its
// constraints. The CRD is also owned by the template, so the garbage
// collector removes it if no replica is running.
func (r *TemplateReconciler) remove(ctx context.Context, name string, log logr.Logger) error {
	r.mu.Lock()
	kind, known := r.kinds[name]
	delete(r.kinds, name)
	r.mu.Unlock()
	r.Tracker.templateRemoved(name)
	r.Metrics.templateGone(name)
	if !known {
		return nil
	}
	if err := r.Engine.RemoveTemplate(ctx, kind); err != nil {
		return err
	}
	if r.ReadOnly {
		return nil
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = strings.ToLower(kind) + ".constraints.gatekeeper.sh"
	if err := r.Client.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the CRD of %s: %w", kind, err)
	}
	log.Info("template removed", "kind", kind)
	return nil
}

// templateErrors turns an engine error into status errors with the code,
// message and Rego location, as Gatekeeper reports them.
func templateErrors(err error) []interface{} {
	code, location, msg := "ingest_error", "", err.Error()
	var te *policy.TemplateError
	if errors.As(err, &te) {
		location, msg = te.Field, te.Msg
		if strings.Contains(te.Msg, "rego_") {
			code = "rego_error"
		}
	}
	e := map[string]interface{}{"code": code, "message": msg}
	if location != "" {
		e["location"] = location
	}
	return []interface{}{e}
}

// writeStatus records this replica's view in status.byPod (one entry per
// replica, replaced in place) and status.created.
func (r *TemplateReconciler) writeStatus(ctx context.Context, u *unstructured.Unstructured, created bool, errs []interface{}) error {
	entry := map[string]interface{}{"id": r.PodID, "observedGeneration": u.GetGeneration()}
	if len(errs) > 0 {
		entry["errors"] = errs
	}
	return updateStatus(ctx, r.Client, u, func(status map[string]interface{}) {
		status["created"] = created
	}, entry)
}

// updateStatus replaces this replica's byPod entry (matched by id) and
// applies extra changes, retrying on conflicts with other replicas. It
// writes nothing when nothing changed, so status writes do not loop.
func updateStatus(ctx context.Context, c client.Client, u *unstructured.Unstructured, edit func(map[string]interface{}), entry map[string]interface{}) error {
	key := client.ObjectKeyFromObject(u)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(u.GroupVersionKind())
		if err := c.Get(ctx, key, cur); err != nil {
			return client.IgnoreNotFound(err)
		}
		status, _, _ := unstructured.NestedMap(cur.Object, "status")
		if status == nil {
			status = map[string]interface{}{}
		}
		before := runtime.DeepCopyJSONValue(status)
		if edit != nil {
			edit(status)
		}
		byPod, _, _ := unstructured.NestedSlice(status, "byPod")
		replaced := false
		for i, p := range byPod {
			if m, ok := p.(map[string]interface{}); ok && m["id"] == entry["id"] {
				byPod[i], replaced = entry, true
			}
		}
		if !replaced {
			byPod = append(byPod, entry)
		}
		status["byPod"] = byPod
		if reflect.DeepEqual(before, status) {
			return nil
		}
		cur.Object["status"] = status
		return c.Status().Update(ctx, cur)
	})
}

func isNoMatch(err error) bool { return meta.IsNoMatchError(err) }
