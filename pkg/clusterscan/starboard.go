package clusterscan

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/kubebench"
	"github.com/statcan/daaas-guard/pkg/kubehunter"
)

// Starboard's report kinds (aquasecurity.github.io/v1alpha1, both
// cluster-scoped). They are read as unstructured objects and their report
// decoded by pkg/kubebench and pkg/kubehunter, so the scanner does not
// depend on Starboard's module.
var (
	CISKubeBenchReportGVK = schema.GroupVersionKind{Group: "aquasecurity.github.io", Version: "v1alpha1", Kind: "CISKubeBenchReport"}
	KubeHunterReportGVK   = schema.GroupVersionKind{Group: "aquasecurity.github.io", Version: "v1alpha1", Kind: "KubeHunterReport"}
)

// Starboard labels a CISKubeBenchReport with the node it describes
// (starboard pkg/starboard/constants.go); the report is also named after
// the node.
const (
	starboardLabelKind = "starboard.resource.kind"
	starboardLabelName = "starboard.resource.name"
)

// starboardReader summarises Starboard's reports. A report replaces a
// summary only when it is newer: the scanner's own Jobs and Starboard can
// run side by side.
type starboardReader struct {
	o       Options
	client  client.Client
	nodes   client.Reader
	metrics *metrics
	log     logr.Logger
}

func newUnstructured(gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}

// reportJSON returns the report member of a Starboard object, as JSON.
func reportJSON(u *unstructured.Unstructured) ([]byte, error) {
	r, ok := u.Object["report"]
	if !ok {
		return []byte("null"), nil
	}
	return json.Marshal(r)
}

// benchReconciler handles CISKubeBenchReports.
type benchReconciler struct{ *starboardReader }

func (r benchReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	u := newUnstructured(CISKubeBenchReportGVK)
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		// A deleted report leaves the summary: the node was benchmarked.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	node := u.GetName()
	if u.GetLabels()[starboardLabelKind] == "Node" && u.GetLabels()[starboardLabelName] != "" {
		node = u.GetLabels()[starboardLabelName]
	}
	uid, err := r.nodeUID(ctx, node)
	if err != nil {
		return reconcile.Result{}, err
	}
	data, err := reportJSON(u)
	if err != nil {
		return reconcile.Result{}, err
	}
	o := outcome{origin: v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceCISKubeBenchReport, Name: u.GetName(), ScanTime: u.GetCreationTimestamp()}}
	var summary *v1alpha1.BenchmarkSummary
	sr, err := kubebench.ParseStarboard(data)
	if err != nil {
		o.reason, o.message = v1alpha1.InfraScanReasonInvalidReport, fmt.Sprintf("CISKubeBenchReport %s: %v", u.GetName(), err)
	} else {
		o.origin.Scanner, o.origin.ScanTime = sr.Scanner, metav1.NewTime(sr.UpdateTimestamp)
		s := kubebench.Summarize(sr.Report, kubebench.Limits{MaxFailures: r.o.MaxFailures})
		summary = &s
	}
	result := "applied"
	err = updateNodeBenchmark(ctx, r.client, node, uid, func(nb *v1alpha1.NodeBenchmark) {
		if !applies(nb.Status.Origin, o) {
			result = "stale"
			return
		}
		applyBenchmark(nb, o, summary)
		nb.Status.RunID = ""
	})
	if err != nil {
		return reconcile.Result{}, err
	}
	if o.reason != "" && result == "applied" {
		result = o.reason
		r.log.Info("CISKubeBenchReport cannot be read", "name", u.GetName(), "error", o.message)
	}
	r.metrics.reports.WithLabelValues(CISKubeBenchReportGVK.Kind, result).Inc()
	return reconcile.Result{}, nil
}

// hunterReconciler handles KubeHunterReports.
type hunterReconciler struct{ *starboardReader }

func (r hunterReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	u := newUnstructured(KubeHunterReportGVK)
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	data, err := reportJSON(u)
	if err != nil {
		return reconcile.Result{}, err
	}
	o := outcome{origin: v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceKubeHunterReport, Name: u.GetName(), ScanTime: u.GetCreationTimestamp()}}
	var summary *v1alpha1.PenetrationTestSummary
	sr, err := kubehunter.ParseStarboard(data)
	if err != nil {
		o.reason, o.message = v1alpha1.InfraScanReasonInvalidReport, fmt.Sprintf("KubeHunterReport %s: %v", u.GetName(), err)
	} else {
		o.origin.Scanner, o.origin.ScanTime = sr.Scanner, metav1.NewTime(sr.UpdateTimestamp)
		s := kubehunter.Summarize(sr.Report, kubehunter.Limits{MaxFindings: r.o.MaxFindings})
		summary = &s
	}
	result := "applied"
	err = updatePenetrationTest(ctx, r.client, func(pt *v1alpha1.PenetrationTest) {
		if !applies(pt.Status.Origin, o) {
			result = "stale"
			return
		}
		applyPenetrationTest(pt, o, summary)
	})
	if err != nil {
		return reconcile.Result{}, err
	}
	if o.reason != "" && result == "applied" {
		result = o.reason
		r.log.Info("KubeHunterReport cannot be read", "name", u.GetName(), "error", o.message)
	}
	r.metrics.reports.WithLabelValues(KubeHunterReportGVK.Kind, result).Inc()
	return reconcile.Result{}, nil
}

// applies decides whether a Starboard outcome may change a summary whose
// current origin is cur: a valid report when it is newer than cur (or the
// same report again); a broken report only when Starboard is the source.
func applies(cur *v1alpha1.InfraScanOrigin, o outcome) bool {
	if cur == nil {
		return true
	}
	if o.reason != "" {
		return cur.Source == o.origin.Source
	}
	return (cur.Source == o.origin.Source && cur.Name == o.origin.Name) || cur.ScanTime.Before(&o.origin.ScanTime)
}

// nodeUID returns the UID of the node, or "" when it does not exist (the
// summary then has no owner to be collected with).
func (r *starboardReader) nodeUID(ctx context.Context, name string) (types.UID, error) {
	n := &metav1.PartialObjectMetadata{}
	n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	err := r.nodes.Get(ctx, types.NamespacedName{Name: name}, n)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading node %s: %w", name, err)
	}
	return n.UID, nil
}
