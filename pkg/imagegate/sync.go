package imagegate

import (
	"context"
	"errors"
	"fmt"
	"sort"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Attach keeps the gate's policy and exceptions in step with the cluster:
// on every change to an ImagePolicy or ImageException it recompiles them
// from the cache, so edits apply without a restart. An invalid policy is
// logged and the previous one stays in force; an invalid exception is
// logged and skipped (the CRD schema rejects most mistakes before that).
// The policy's status says whether it was applied (status.error,
// observedGeneration), written through status when not nil.
// The returned function reports whether both informers have synced.
func (g *Gate) Attach(ctx context.Context, c cache.Cache, status client.StatusClient) (func() bool, error) {
	reload := func() { g.reload(ctx, c, status) }
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { reload() },
		UpdateFunc: func(any, any) { reload() },
		DeleteFunc: func(any) { reload() },
	}
	var synced []func() bool
	for _, obj := range []client.Object{&v1alpha1.ImagePolicy{}, &v1alpha1.ImageException{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("%T informer: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(handler)
		if err != nil {
			return nil, fmt.Errorf("%T informer: %w", obj, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return func() bool { return synced[0]() && synced[1]() }, nil
}

func (g *Gate) reload(ctx context.Context, c client.Reader, status client.StatusClient) {
	log := g.cfg.Log
	pol := &v1alpha1.ImagePolicy{}
	switch err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.ImagePolicyName}, pol); {
	case client.IgnoreNotFound(err) != nil:
		log.Error(err, "reading the ImagePolicy")
	case err != nil:
		g.SetPolicy(nil)
	default:
		p, err := CompilePolicy(&pol.Spec)
		want := v1alpha1.ImagePolicyStatus{ObservedGeneration: pol.Generation}
		if err != nil {
			log.Error(err, "ImagePolicy default is invalid; keeping the previous policy")
			want.Error = "not applied, the previous policy stays in force: " + err.Error()
		} else {
			g.SetPolicy(p)
		}
		if status != nil && pol.Status != want {
			pol.Status = want
			// The update event comes back here and finds the status current.
			if err := status.Status().Update(ctx, pol); err != nil {
				log.Error(err, "writing the ImagePolicy's status")
			}
		}
	}
	list := &v1alpha1.ImageExceptionList{}
	if err := c.List(ctx, list); err != nil {
		log.Error(err, "listing ImageExceptions")
		return
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var exs []*Exception
	var errs []error
	for i := range list.Items {
		e, err := CompileException(&list.Items[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		exs = append(exs, e)
	}
	if err := errors.Join(errs...); err != nil {
		log.Error(err, "skipping invalid ImageExceptions")
	}
	g.SetExceptions(exs)
}
