package scan

import (
	"context"
	"slices"
	"strings"
	"time"

	sbv1alpha1 "github.com/aquasecurity/starboard/pkg/apis/aquasecurity/v1alpha1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// Kinds discovered or ingested when their CRDs exist.
var (
	WorkflowGVK            = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Workflow"}
	PipelineRunGVK         = schema.GroupVersionKind{Group: "tekton.dev", Version: "v1", Kind: "PipelineRun"}
	VulnerabilityReportGVK = sbv1alpha1.SchemeGroupVersion.WithKind("VulnerabilityReport")
)

// Reloader is an Engine whose database can be swapped when rebuilt.
type Reloader interface {
	Reload() (bool, error)
}

// SetupOptions say what the scheduler watches besides pods and ImageScans.
type SetupOptions struct {
	// Workloads discovers images from Argo Workflows and Tekton
	// PipelineRuns once their CRDs exist.
	Workloads bool
	// Starboard ingests Starboard VulnerabilityReports once their CRD
	// exists (the scheme must hold starboard's types).
	Starboard bool
	// CRDCheckInterval is how often missing CRDs are looked for (default 1m).
	CRDCheckInterval time.Duration
	// DBCheckInterval is how often the vulnerability database is checked
	// for a rebuild (default 1m; needs an Engine that is a Reloader).
	DBCheckInterval time.Duration
	// SkipNameValidation allows a second scheduler in one process (tests).
	SkipNameValidation bool
}

// SetupWithManager adds the scan workers and the controllers feeding them
// to mgr.
func (s *Scheduler) SetupWithManager(mgr manager.Manager, o SetupOptions) error {
	copts := controller.Options{MaxConcurrentReconciles: 4, SkipNameValidation: &o.SkipNameValidation}
	if err := ctrl.NewControllerManagedBy(mgr).Named("scan-pods").
		For(&corev1.Pod{}, builder.WithPredicates(imagesChanged)).
		WithOptions(copts).
		Complete(reconcile.Func(s.ReconcilePod)); err != nil {
		return err
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("scan-imagescans").
		For(&v1alpha1.ImageScan{}).
		WithOptions(copts).
		Complete(reconcile.Func(s.ReconcileImageScan)); err != nil {
		return err
	}
	if err := mgr.Add(s); err != nil {
		return err
	}
	if r, ok := s.cfg.Engine.(Reloader); ok {
		if err := mgr.Add(&dbWatcher{s: s, r: r, every: DBCheckEvery(o.DBCheckInterval)}); err != nil {
			return err
		}
	}
	if s.cfg.Retention > 0 || s.cfg.StubRetention > 0 || s.cfg.Reports != nil {
		sw := &sweeper{s: s, every: s.cfg.SweepInterval}
		if o.Workloads {
			sw.kinds = []schema.GroupVersionKind{WorkflowGVK, PipelineRunGVK}
		}
		if err := mgr.Add(sw); err != nil {
			return err
		}
	}
	var optional []optionalWatch
	if o.Workloads {
		for _, gvk := range []schema.GroupVersionKind{WorkflowGVK, PipelineRunGVK} {
			optional = append(optional, optionalWatch{gvk: gvk, setup: func() error {
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(gvk)
				return ctrl.NewControllerManagedBy(mgr).Named("scan-"+strings.ToLower(gvk.Kind)+"s").
					For(u, builder.WithPredicates(workloadChanged)).
					WithOptions(copts).
					Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
						// From the cache, as TrimWorkload left it.
						obj := &unstructured.Unstructured{}
						obj.SetGroupVersionKind(gvk)
						if err := s.cfg.Client.Get(ctx, req.NamespacedName, obj); err != nil {
							return reconcile.Result{}, client.IgnoreNotFound(err)
						}
						return reconcile.Result{}, s.ObserveWorkload(ctx, obj)
					}))
			}})
		}
	}
	if o.Starboard {
		optional = append(optional, optionalWatch{gvk: VulnerabilityReportGVK, setup: func() error {
			// Metadata only: see ReconcileVulnerabilityReport.
			return ctrl.NewControllerManagedBy(mgr).Named("scan-starboard").
				For(&sbv1alpha1.VulnerabilityReport{}, builder.OnlyMetadata).
				WithOptions(copts).
				Complete(reconcile.Func(s.ReconcileVulnerabilityReport))
		}})
	}
	if len(optional) > 0 {
		return mgr.Add(&crdWaiter{mapper: mgr.GetRESTMapper(), watches: optional, every: cmpOr(o.CRDCheckInterval, time.Minute), log: s.log})
	}
	return nil
}

// ReconcilePod asks for verdicts on a pod's images.
func (s *Scheduler) ReconcilePod(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := s.cfg.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, s.ObservePod(ctx, pod)
}

// ReconcileVulnerabilityReport ingests a Starboard VulnerabilityReport.
// Its vulnerability list is what is ingested, and it can near a megabyte:
// a cache of every report whole would hold gigabytes on a busy platform.
// So reports are watched for their metadata only, and each is read from
// the API server (the Reader) when it changes, then let go.
func (s *Scheduler) ReconcileVulnerabilityReport(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	vr := &sbv1alpha1.VulnerabilityReport{}
	if err := s.cfg.Reader.Get(ctx, req.NamespacedName, vr); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, s.ingestStarboard(ctx, vr)
}

// ReconcileImageScan keeps the scheduler's view of an ImageScan current
// and comes back when its verdict falls due.
func (s *Scheduler) ReconcileImageScan(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	is := &v1alpha1.ImageScan{}
	if err := s.cfg.Client.Get(ctx, req.NamespacedName, is); err != nil {
		if client.IgnoreNotFound(err) == nil {
			s.Forget(strings.Replace(req.Name, "-", ":", 1))
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	after, err := s.Observe(ctx, is)
	return reconcile.Result{RequeueAfter: after}, err
}

// DBCheckEvery is how often the vulnerability database is looked at, for
// updates or, while it is missing, for its arrival: interval, or a minute.
func DBCheckEvery(interval time.Duration) time.Duration { return cmpOr(interval, time.Minute) }

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// imagesChanged passes pod creations and the updates that change an image
// or a recorded digest; status churn is ignored.
var imagesChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.Pod)
		n, ok2 := e.ObjectNew.(*corev1.Pod)
		return !ok1 || !ok2 || !slices.Equal(images.OfPod(o), images.OfPod(n))
	},
	DeleteFunc: func(event.DeleteEvent) bool { return false },
}

// workloadChanged passes Workflow and PipelineRun creations, spec changes
// and the updates that change their images. Tekton records the pipeline
// of a pipelineRef in status.pipelineSpec, after creation and through
// the status subresource, which leaves the generation as it was; Argo
// does the same with a workflowTemplateRef's status.storedWorkflowTemplateSpec.
// The cached objects are trimmed to their images (TrimWorkload), so
// comparing those costs little, and other status churn is not passed.
var workloadChanged = predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !slices.Equal(workloadImages(e.ObjectOld), workloadImages(e.ObjectNew))
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
})

// workloadImages lists the images of a Workflow or a PipelineRun, or
// none for anything else.
func workloadImages(obj client.Object) []images.Container {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	return images.OfWorkload(u.GetKind(), u.Object)
}

// TrimPod is a cache transform that keeps only what the scanner reads of a
// Pod (names, labels, images, pull secrets, recorded digests), so caching
// every pod in a large cluster costs little memory.
func TrimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	trim := func(cs []corev1.Container) []corev1.Container {
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Image: c.Image}
		}
		return out
	}
	trimStatus := func(cs []corev1.ContainerStatus) []corev1.ContainerStatus {
		out := make([]corev1.ContainerStatus, len(cs))
		for i, c := range cs {
			out[i] = corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.ImageID}
		}
		return out
	}
	eph := make([]corev1.EphemeralContainer, len(pod.Spec.EphemeralContainers))
	for i, c := range pod.Spec.EphemeralContainers {
		eph[i].Name, eph[i].Image = c.Name, c.Image
	}
	return &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, Labels: pod.Labels,
			ResourceVersion: pod.ResourceVersion, Generation: pod.Generation, DeletionTimestamp: pod.DeletionTimestamp},
		Spec: corev1.PodSpec{InitContainers: trim(pod.Spec.InitContainers), Containers: trim(pod.Spec.Containers),
			EphemeralContainers: eph, ImagePullSecrets: pod.Spec.ImagePullSecrets, ServiceAccountName: pod.Spec.ServiceAccountName},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, InitContainerStatuses: trimStatus(pod.Status.InitContainerStatuses),
			ContainerStatuses: trimStatus(pod.Status.ContainerStatuses), EphemeralContainerStatuses: trimStatus(pod.Status.EphemeralContainerStatuses)},
	}, nil
}

// ingestStarboard reads a VulnerabilityReport into an ImageScan. Reports
// that name only a tag get its current digest from the registry
// (anonymously: the report does not say which pull secrets apply).
func (s *Scheduler) ingestStarboard(ctx context.Context, vr *sbv1alpha1.VulnerabilityReport) error {
	m := s.cfg.Metrics.Ingested
	rep, err := report.FromStarboard(vr)
	if err != nil {
		m.WithLabelValues(v1alpha1.SourceStarboard, "invalid").Inc()
		s.log.Error(err, "ignoring an unreadable VulnerabilityReport")
		return nil // the report will not fix itself
	}
	if rep.Digest == "" {
		if len(rep.Tags) == 0 {
			m.WithLabelValues(v1alpha1.SourceStarboard, "invalid").Inc()
			s.log.Info("ignoring a VulnerabilityReport that names neither digest nor tag", "report", vr.Namespace+"/"+vr.Name)
			return nil
		}
		ref, err := images.Parse(rep.Tags[0])
		if err != nil {
			m.WithLabelValues(v1alpha1.SourceStarboard, "invalid").Inc()
			s.log.Error(err, "ignoring a VulnerabilityReport", "report", vr.Namespace+"/"+vr.Name)
			return nil
		}
		if rep.Digest, err = s.Resolve(ctx, ref, nil); err != nil {
			m.WithLabelValues(v1alpha1.SourceStarboard, "failed").Inc()
			return err
		}
		rep.Repository = ref.Repository
	}
	rep.Repository = normalizeRepository(rep.Repository, rep.Digest)
	wrote, err := s.Ingest(ctx, rep, v1alpha1.SourceStarboard)
	switch {
	case err != nil:
		m.WithLabelValues(v1alpha1.SourceStarboard, "failed").Inc()
	case wrote:
		m.WithLabelValues(v1alpha1.SourceStarboard, "written").Inc()
	default:
		m.WithLabelValues(v1alpha1.SourceStarboard, "superseded").Inc()
	}
	return err
}

// dbWatcher reloads the vulnerability database when it is rebuilt and
// asks for rescans of the verdicts made with the old one.
type dbWatcher struct {
	s     *Scheduler
	r     Reloader
	every time.Duration
}

func (w *dbWatcher) Start(ctx context.Context) error {
	tick(ctx, w.every, func() {
		changed, err := w.r.Reload()
		if err != nil {
			w.s.log.Error(err, "checking the vulnerability database; scans go on with the loaded one")
			return
		}
		if changed {
			if err := w.s.RescanStale(ctx); err != nil {
				w.s.log.Error(err, "asking for rescans after a database update")
			}
		}
	})
	return nil
}

// tick calls fn every interval, the first time one interval from now,
// until ctx ends.
func tick(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// RescanStale asks for rescans of every verdict made with another database
// than the loaded one.
func (s *Scheduler) RescanStale(ctx context.Context) error {
	list := &v1alpha1.ImageScanList{}
	if err := s.cfg.Client.List(ctx, list); err != nil {
		return err
	}
	n := 0
	for i := range list.Items {
		after, err := s.Observe(ctx, &list.Items[i])
		if err != nil {
			return err
		}
		if after == 0 {
			n++
		}
	}
	s.log.Info("vulnerability database updated; rescans asked for", "imageScans", len(list.Items), "stale", n)
	return nil
}

// optionalWatch is a controller for a kind that may not be installed.
type optionalWatch struct {
	gvk   schema.GroupVersionKind
	setup func() error
}

// crdWaiter starts optional controllers once their kinds are served,
// checking again every so often for CRDs installed later.
type crdWaiter struct {
	mapper  meta.RESTMapper
	watches []optionalWatch
	every   time.Duration
	log     logr.Logger
}

func (w *crdWaiter) Start(ctx context.Context) error {
	pending := slices.Clone(w.watches)
	for {
		var still []optionalWatch
		for _, ow := range pending {
			if _, err := w.mapper.RESTMapping(ow.gvk.GroupKind(), ow.gvk.Version); err != nil {
				if meta.IsNoMatchError(err) {
					still = append(still, ow)
					continue
				}
				w.log.Error(err, "looking up a kind", "kind", ow.gvk.String())
				still = append(still, ow)
				continue
			}
			if err := ow.setup(); err != nil {
				w.log.Error(err, "starting a controller", "kind", ow.gvk.String())
				still = append(still, ow)
				continue
			}
			w.log.Info("watching", "kind", ow.gvk.String())
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.every):
		}
	}
}
