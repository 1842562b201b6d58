// Package refresh keeps ComplianceReport objects current in the scanner:
// on each report's cron schedule (and when its spec changes) it reads the
// evidence from the cluster, as guardctl report --kubeconfig does, and
// writes the assessment's summary to the report's status.
package refresh

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/robfig/cron/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/evidence"
)

// DefaultSchedule is used when a report gives none (the CRD defaults it
// too).
const DefaultSchedule = "0 */6 * * *"

// Options configure the refresh.
type Options struct {
	// Model is the catalogue and mapping (default: the shipped ones).
	Model *compliance.Model
	// Evidence are the evidence settings (default: guardctl report's).
	Evidence *evidence.Options
	// Sources read the cluster (default: evidence.DefaultClusterSources).
	Sources []evidence.ClusterSource
	// Generator names the producer in the report ("daaas-guard scanner").
	Generator string
	Log       logr.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Reconciler refreshes ComplianceReports.
type Reconciler struct {
	// Client writes status; Reader reads the evidence (uncached: the
	// evidence is read a few times a day, a cache would hold it always).
	Client client.Client
	Reader client.Reader
	O      Options
}

// Setup registers the refresh with the manager; it runs on the leader only,
// as every controller does.
func Setup(mgr ctrl.Manager, o Options) error {
	r := &Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), O: o}
	return ctrl.NewControllerManagedBy(mgr).
		Named("compliancereport").
		For(&guardv1alpha1.ComplianceReport{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

func (r *Reconciler) now() time.Time {
	if r.O.Now != nil {
		return r.O.Now()
	}
	return time.Now()
}

// Reconcile refreshes one report when it is due and requeues it for its
// next scheduled time.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cr := &guardv1alpha1.ComplianceReport{}
	if err := r.Client.Get(ctx, req.NamespacedName, cr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.now()
	spec := cr.Spec.Schedule
	if spec == "" {
		spec = DefaultSchedule
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		// Nothing to retry until the spec changes.
		return ctrl.Result{}, r.fail(ctx, cr, "InvalidSchedule",
			fmt.Sprintf("ComplianceReport %s: spec.schedule %q is not a cron schedule: %v", cr.Name, spec, err))
	}
	last := cr.Status.GeneratedAt
	due := last == nil || cr.Status.ObservedGeneration != cr.Generation || !now.Before(sched.Next(last.Time))
	if !due {
		return ctrl.Result{RequeueAfter: sched.Next(last.Time).Sub(now)}, nil
	}
	report, err := r.assess(ctx, cr, now)
	if err != nil {
		if ferr := r.fail(ctx, cr, "EvidenceUnreadable", err.Error()); ferr != nil {
			return ctrl.Result{}, ferr
		}
		return ctrl.Result{}, err // retried with backoff
	}
	st := report.CRStatus()
	st.ObservedGeneration = cr.Generation
	st.Conditions = cr.Status.Conditions
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue,
		Reason: "Refreshed", Message: fmt.Sprintf("%d controls assessed from the cluster's evidence", report.Summary.Controls),
		ObservedGeneration: cr.Generation})
	cr.Status = st
	if err := r.Client.Status().Update(ctx, cr); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("ComplianceReport %s: writing status: %w", cr.Name, err)
	}
	s := report.Summary.ByStatus
	r.O.Log.Info("compliance report refreshed", "report", cr.Name, "controls", report.Summary.Controls,
		"satisfied", s.Satisfied, "partially", s.Partially, "notSatisfied", s.NotSatisfied, "notAssessed", s.NotAssessed)
	return ctrl.Result{RequeueAfter: sched.Next(now).Sub(now)}, nil
}

// assess reads the evidence and builds the report.
func (r *Reconciler) assess(ctx context.Context, cr *guardv1alpha1.ComplianceReport, now time.Time) (*compliance.Report, error) {
	sources := r.O.Sources
	if sources == nil {
		sources = evidence.DefaultClusterSources(evidence.ClusterOptions{})
	}
	in, err := evidence.ReadCluster(ctx, r.Reader, sources)
	if err != nil {
		return nil, fmt.Errorf("ComplianceReport %s: %w", cr.Name, err)
	}
	opts := evidence.DefaultOptions(now)
	if r.O.Evidence != nil {
		opts = *r.O.Evidence
		opts.Now = now
	}
	model := r.O.Model
	if model == nil {
		model = compliance.DefaultModel()
	}
	cluster := cr.Spec.ClusterName
	if cluster == "" {
		cluster = "unnamed"
	}
	generator := r.O.Generator
	if generator == "" {
		generator = "daaas-guard scanner"
	}
	ev, infos, warnings := in.Evidence(opts)
	return compliance.Build(model, ev, compliance.Meta{GeneratedAt: now, Cluster: cluster, Generator: generator,
		Sources: infos, Warnings: warnings}), nil
}

// fail records why the report could not be refreshed, keeping the last
// assessment.
func (r *Reconciler) fail(ctx context.Context, cr *guardv1alpha1.ComplianceReport, reason, msg string) error {
	r.O.Log.Info("compliance report not refreshed", "report", cr.Name, "reason", reason, "message", msg)
	meta.SetStatusCondition(&cr.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse,
		Reason: reason, Message: msg, ObservedGeneration: cr.Generation})
	if err := r.Client.Status().Update(ctx, cr); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("ComplianceReport %s: writing status: %w", cr.Name, err)
	}
	return nil
}
