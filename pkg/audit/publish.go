package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// publish writes what a pass found: each constraint's status, the
// violations metric, then the reports.
func (a *Auditor) publish(ctx context.Context, p *pass, start time.Time) {
	a.metrics.violations.Reset()
	stamp := start.UTC().Format(time.RFC3339)
	for _, key := range slices.Sorted(maps.Keys(p.constraints)) {
		c := p.constraints[key]
		a.metrics.violations.WithLabelValues(c.obj.GetKind(), c.obj.GetName(), c.action).Set(float64(c.violations.total))
		if err := a.writeStatus(ctx, c, stamp); err != nil {
			p.problem("status of %s: %v", key, err)
			a.log.Error(err, "writing audit status", "kind", c.obj.GetKind(), "name", c.obj.GetName())
		}
	}
	if a.o.Reports == ReportNone {
		return
	}
	if err := a.writeReports(ctx, p, metav1.Timestamp{Seconds: start.Unix()}); err != nil {
		if err == errNoReports {
			if !a.reportsOff.Swap(true) {
				a.log.Info("PolicyReports not written: their CRDs are not installed (constraint status is still written)")
			}
			return
		}
		p.problem("reports: %v", err)
		a.log.Error(err, "writing PolicyReports")
		return
	}
	if a.reportsOff.Swap(false) {
		a.log.Info("PolicyReports written again: their CRDs are installed")
	}
}

// writeStatus merge-patches only the audit's fields of a constraint's
// status; status.byPod, which the webhook writes, is left alone.
func (a *Auditor) writeStatus(ctx context.Context, c *constraintAcc, stamp string) error {
	violations := c.violations.sorted()
	if violations == nil {
		violations = []Violation{} // an empty list, not a deleted field
	}
	patch, err := json.Marshal(map[string]interface{}{"status": map[string]interface{}{
		"auditTimestamp":  stamp,
		"totalViolations": c.violations.total,
		"violations":      violations,
	}})
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(c.obj.GroupVersionKind())
	obj.SetName(c.obj.GetName())
	err = a.writer.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	return client.IgnoreNotFound(err) // deleted during the pass
}

// writeReports creates or updates one PolicyReport per namespace with
// findings (every audited namespace with ReportAll) and the
// ClusterPolicyReport, and deletes the audit's reports that no longer
// have anything to say.
func (a *Auditor) writeReports(ctx context.Context, p *pass, ts metav1.Timestamp) error {
	for _, kind := range []string{"PolicyReport", "ClusterPolicyReport"} {
		if _, err := a.mapper.RESTMapping(policyreport.GroupVersion.WithKind(kind).GroupKind(), policyreport.GroupVersion.Version); err != nil {
			if meta.IsNoMatchError(err) {
				return errNoReports
			}
			return err
		}
	}
	metaFor := func(kind string) templateMeta { return metaOf(a.engine.Template(kind)) }
	withPass := a.o.Reports == ReportAll
	for _, ns := range slices.Sorted(maps.Keys(p.reports)) {
		if ns == "" {
			continue
		}
		sum, results := p.reports[ns].build(metaFor, ts, withPass)
		rep := &policyreport.PolicyReport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ReportName}}
		if err := a.upsert(ctx, rep, func() { rep.Summary, rep.Results = sum, results }); err != nil {
			return fmt.Errorf("PolicyReport %s/%s: %w", ns, ReportName, err)
		}
	}
	if err := a.deleteStale(ctx, p); err != nil {
		return err
	}
	crep := &policyreport.ClusterPolicyReport{ObjectMeta: metav1.ObjectMeta{Name: ReportName}}
	acc := p.reports[""]
	if acc == nil {
		err := a.writer.Delete(ctx, crep)
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting ClusterPolicyReport %s: %w", ReportName, err)
		}
		return nil
	}
	sum, results := acc.build(metaFor, ts, withPass)
	if err := a.upsert(ctx, crep, func() { crep.Summary, crep.Results = sum, results }); err != nil {
		return fmt.Errorf("ClusterPolicyReport %s: %w", ReportName, err)
	}
	return nil
}

// upsert creates obj, or updates the existing one, after set fills it.
func (a *Auditor) upsert(ctx context.Context, obj client.Object, set func()) error {
	key := client.ObjectKeyFromObject(obj)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		// Read from the API server: a cache would hold every PolicyReport
		// in the cluster, other tools' too.
		err := a.reader.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			obj.SetName(key.Name)
			obj.SetNamespace(key.Namespace)
			obj.SetLabels(map[string]string{LabelManagedBy: ManagedBy})
			set()
			return a.writer.Create(ctx, obj)
		}
		if err != nil {
			return err
		}
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelManagedBy] = ManagedBy
		obj.SetLabels(labels)
		set()
		return a.writer.Update(ctx, obj)
	})
}

// deleteStale deletes the audit's PolicyReports in namespaces that now
// have no findings (or are no longer audited), reading them a chunk at a
// time.
func (a *Auditor) deleteStale(ctx context.Context, p *pass) error {
	cont := ""
	for {
		list := &policyreport.PolicyReportList{}
		if err := a.reader.List(ctx, list, client.MatchingLabels{LabelManagedBy: ManagedBy},
			client.Limit(a.o.ChunkSize), client.Continue(cont)); err != nil {
			return fmt.Errorf("listing PolicyReports: %w", err)
		}
		for i := range list.Items {
			r := &list.Items[i]
			if r.Name != ReportName || p.reports[r.Namespace] != nil {
				continue
			}
			if err := a.writer.Delete(ctx, r); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting PolicyReport %s/%s: %w", r.Namespace, r.Name, err)
			}
		}
		if cont = list.Continue; cont == "" {
			return nil
		}
	}
}
