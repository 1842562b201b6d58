package imagegate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// errWaiting is what Attach's function reports until the informers have
// delivered what exists at start.
var errWaiting = errors.New("waiting for the ImagePolicy and ImageExceptions")

// Attach keeps the gate's policy and exceptions in step with the cluster:
// on every change to an ImagePolicy or ImageException it recompiles them
// from the cache, so edits apply without a restart. An invalid exception
// is logged and skipped (the CRD schema rejects most mistakes before
// that). An invalid policy is logged and reported in its status
// (status.error, observedGeneration, written through status when not
// nil); once a policy has been applied, the previous one stays in force.
//
// The returned function reports nil once both informers have synced and
// a policy is in force: the stored one, or the defaults when there is
// none. While the stored policy cannot be compiled and nothing has been
// applied yet (a replica starting), it names the ImagePolicy and the
// error, and the webhook stays not ready (see syncer).
func (g *Gate) Attach(ctx context.Context, c cache.Cache, status client.StatusClient) (func() error, error) {
	s := &syncer{g: g, c: c, status: status}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.reload(ctx) },
		UpdateFunc: func(any, any) { s.reload(ctx) },
		DeleteFunc: func(any) { s.reload(ctx) },
	}
	for _, obj := range []client.Object{&v1alpha1.ImagePolicy{}, &v1alpha1.ImageException{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("%T informer: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(handler)
		if err != nil {
			return nil, fmt.Errorf("%T informer: %w", obj, err)
		}
		s.synced = append(s.synced, reg.HasSynced)
	}
	return s.loaded, nil
}

// syncer loads the ImagePolicy and ImageExceptions into a gate.
//
// A replica that starts while the stored ImagePolicy cannot be compiled
// has no previous policy of its own; falling back to the defaults would
// let it admit what its peers, holding the last valid policy, deny
// (unscanned images in Deny namespaces only warn by default). It stays not
// ready instead: a rollout then stops with the running replicas serving,
// and the validator refuses to review while not ready, so nothing is
// judged by a policy nobody chose. Judging with the strictest settings
// would instead deny nearly every pipeline image while pretending to be
// ready. Deleting the ImagePolicy (the defaults, chosen explicitly) or
// fixing it makes the replica ready.
type syncer struct {
	g      *Gate
	c      client.Reader
	status client.StatusClient
	synced []func() bool

	// mu serialises reloads: both informers call reload, and a slow one
	// must not apply an older read over a newer one.
	mu sync.Mutex
	// applied is set once a policy, or the absence of one, is in force;
	// guarded by mu.
	applied bool
	// invalid is why the stored policy is not in force while nothing has
	// been applied; read by readiness without mu.
	invalid atomic.Pointer[error]
}

// loaded is nil when the informers have synced and a policy is in force.
func (s *syncer) loaded() error {
	for _, synced := range s.synced {
		if !synced() {
			return errWaiting
		}
	}
	if err := s.invalid.Load(); err != nil {
		return *err
	}
	return nil
}

// setApplied records that a policy, or the defaults, is in force.
func (s *syncer) setApplied() {
	s.applied = true
	s.invalid.Store(nil)
}

// setInvalid records why the stored policy is not in force, unless an
// earlier one already is.
func (s *syncer) setInvalid(err error) {
	if !s.applied {
		err = fmt.Errorf("ImagePolicy %q cannot be applied: %w", v1alpha1.ImagePolicyName, err)
		s.invalid.Store(&err)
	}
}

func (s *syncer) reload(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.g.cfg.Log
	pol := &v1alpha1.ImagePolicy{}
	switch err := s.c.Get(ctx, client.ObjectKey{Name: v1alpha1.ImagePolicyName}, pol); {
	case client.IgnoreNotFound(err) != nil:
		log.Error(err, "reading the ImagePolicy")
		s.setInvalid(err)
	case err != nil:
		s.g.SetPolicy(nil)
		s.setApplied()
	default:
		p, err := CompilePolicy(&pol.Spec)
		want := v1alpha1.ImagePolicyStatus{ObservedGeneration: pol.Generation}
		if err != nil {
			log.Error(err, "ImagePolicy is invalid; not applied", "name", pol.Name, "generation", pol.Generation)
			// Every replica writes the same text, whatever it holds, or
			// they would overwrite each other's status forever.
			want.Error = "not applied (running replicas keep the previous policy, starting ones stay not ready): " + err.Error()
			s.setInvalid(err)
		} else {
			s.g.SetPolicy(p)
			s.setApplied()
		}
		if s.status != nil && pol.Status != want {
			pol.Status = want
			// The update event comes back here and finds the status current.
			if err := s.status.Status().Update(ctx, pol); err != nil {
				log.Error(err, "writing the ImagePolicy's status")
			}
		}
	}
	list := &v1alpha1.ImageExceptionList{}
	if err := s.c.List(ctx, list); err != nil {
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
	s.g.SetExceptions(exs)
}
