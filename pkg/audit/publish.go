package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// gaugeValue is one series of the violations gauge.
type gaugeValue struct {
	kind, name, action string
	value              float64
}

// publish writes what a pass found: each constraint's status, the
// violations metric, then the reports.
func (a *Auditor) publish(ctx context.Context, p *pass, start time.Time) {
	a.metrics.violations.Reset()
	stamp := start.UTC().Format(time.RFC3339)
	published := make(map[string]gaugeValue, len(p.constraints))
	for _, key := range slices.Sorted(maps.Keys(p.constraints)) {
		c := p.constraints[key]
		if len(c.unlisted) > 0 {
			// The count lacks the unlisted kinds' objects and would read
			// as fewer violations than there are, or none. The status and
			// gauge of the last pass stay, with its auditTimestamp, until
			// a pass lists every kind the constraint applies to.
			if g, ok := a.published[key]; ok {
				a.metrics.violations.WithLabelValues(g.kind, g.name, g.action).Set(g.value)
				published[key] = g
			}
			p.problem("status of %s kept from an earlier pass: %v not listed", key, c.unlisted)
			a.log.Info("constraint status not updated: kinds it applies to could not be listed",
				"kind", c.obj.GetKind(), "name", c.obj.GetName(), "unlisted", fmt.Sprint(c.unlisted))
			continue
		}
		g := gaugeValue{kind: c.obj.GetKind(), name: c.obj.GetName(), action: c.action, value: float64(c.violations.total)}
		a.metrics.violations.WithLabelValues(g.kind, g.name, g.action).Set(g.value)
		published[key] = g
		if err := a.writeStatus(ctx, c, stamp); err != nil {
			p.problem("status of %s: %v", key, err)
			a.log.Error(err, "writing audit status", "kind", c.obj.GetKind(), "name", c.obj.GetName())
		}
	}
	a.published = published
	if a.o.Reports == ReportNone {
		return
	}
	if err := a.writeReports(ctx, p, metav1.Timestamp{Seconds: start.Unix()}); err != nil {
		if errors.Is(err, errNoReports) {
			if !a.reportsOff.Swap(true) {
				a.log.Info("PolicyReports not written: their CRDs are not installed (constraint status is still written)")
			}
			return
		}
		// One problem per report that failed, not one joined line.
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			p.problem("reports: %v", e)
		}
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
// have anything to say. A report that fails to be written does not stop
// the others; the errors are returned together.
//
// When some kinds could not be listed, the pass knows nothing of their
// objects, yet a namespace's report holds the findings on every kind.
// An existing report that may hold findings on an unlisted kind is then
// neither rewritten nor deleted (see mayHoldUnlisted): dropping those
// findings would make it read as compliant. It keeps what the last pass
// that could write it found, the kinds that were listed included,
// which is stale but not falsely clean.
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
	var errs []error
	for _, ns := range slices.Sorted(maps.Keys(p.reports)) {
		if ns == "" {
			continue
		}
		sum, results := p.reports[ns].build(metaFor, ts, withPass)
		rep := &policyreport.PolicyReport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ReportName}}
		keep := func() bool { return mayHoldUnlisted(p.unlisted, true, rep.Summary, rep.Results) }
		if err := a.upsert(ctx, rep, keep, func() { rep.Summary, rep.Results = sum, results }); err != nil {
			// A namespace that refuses writes (one being deleted refuses
			// creates) must not hold up the other reports. Its report is
			// not stale either: the namespace still has findings.
			errs = append(errs, fmt.Errorf("PolicyReport %s/%s: %w", ns, ReportName, err))
		}
	}
	if err := a.deleteStale(ctx, p); err != nil {
		errs = append(errs, err)
	}
	crep := &policyreport.ClusterPolicyReport{ObjectMeta: metav1.ObjectMeta{Name: ReportName}}
	acc := p.reports[""]
	if acc == nil {
		if err := a.deleteClusterReport(ctx, p, crep); err != nil {
			errs = append(errs, fmt.Errorf("deleting ClusterPolicyReport %s: %w", ReportName, err))
		}
		return errors.Join(errs...)
	}
	sum, results := acc.build(metaFor, ts, withPass)
	keep := func() bool { return mayHoldUnlisted(p.unlisted, false, crep.Summary, crep.Results) }
	if err := a.upsert(ctx, crep, keep, func() { crep.Summary, crep.Results = sum, results }); err != nil {
		errs = append(errs, fmt.Errorf("ClusterPolicyReport %s: %w", ReportName, err))
	}
	return errors.Join(errs...)
}

// deleteClusterReport deletes the ClusterPolicyReport when no
// cluster-scoped object has findings, unless it may hold findings on an
// unlisted kind.
func (a *Auditor) deleteClusterReport(ctx context.Context, p *pass, crep *policyreport.ClusterPolicyReport) error {
	if len(p.unlisted) > 0 {
		err := a.reader.Get(ctx, client.ObjectKeyFromObject(crep), crep)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if mayHoldUnlisted(p.unlisted, false, crep.Summary, crep.Results) {
			return nil
		}
	}
	return client.IgnoreNotFound(a.writer.Delete(ctx, crep))
}

// mayHoldUnlisted reports whether an existing report (a namespace's, or
// the cluster's when namespaced is false) may hold findings on objects of
// an unlisted kind: a result names one, or the report lists fewer results
// than its summary counts and so may hold such findings beyond the cap.
// Findings are filed in the report of the reviewed object's own scope, so
// only unlisted kinds of that scope count; a group that discovery failed
// for may serve kinds of either.
func mayHoldUnlisted(unlisted []auditKind, namespaced bool, sum policyreport.Summary, results []policyreport.PolicyReportResult) bool {
	var kinds []auditKind
	for _, k := range unlisted {
		if k.namespaced == namespaced || k.wholeGroup() {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return false
	}
	if sum.Fail+sum.Warn > len(results) {
		return true
	}
	for _, r := range results {
		for _, ref := range r.Resources {
			gk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind).GroupKind()
			if slices.ContainsFunc(kinds, func(k auditKind) bool { return k.covers(gk) }) {
				return true
			}
		}
	}
	return false
}

// upsert creates obj, or updates the existing one after set fills it.
// When keep, given the existing object, says so, it is left as it is.
func (a *Auditor) upsert(ctx context.Context, obj client.Object, keep func() bool, set func()) error {
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
		if keep != nil && keep() {
			return nil
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
// time, except those that may hold findings on an unlisted kind. A
// report that fails to be deleted does not stop the others.
func (a *Auditor) deleteStale(ctx context.Context, p *pass) error {
	var errs []error
	cont := ""
	for {
		list := &policyreport.PolicyReportList{}
		if err := a.reader.List(ctx, list, client.MatchingLabels{LabelManagedBy: ManagedBy},
			client.Limit(a.o.ChunkSize), client.Continue(cont)); err != nil {
			return errors.Join(append(errs, fmt.Errorf("listing PolicyReports: %w", err))...)
		}
		for i := range list.Items {
			r := &list.Items[i]
			if r.Name != ReportName || p.reports[r.Namespace] != nil || mayHoldUnlisted(p.unlisted, true, r.Summary, r.Results) {
				continue
			}
			if err := a.writer.Delete(ctx, r); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting PolicyReport %s/%s: %w", r.Namespace, r.Name, err))
			}
		}
		if cont = list.Continue; cont == "" {
			return errors.Join(errs...)
		}
	}
}
