package audit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// staticDiscovery serves a fixed list of resources.
type staticDiscovery []*metav1.APIResourceList

func (d staticDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) { return d, nil }

// fakeAuditor is an auditor over a fake cluster with two constraints: no
// privileged Pods, and ConfigMaps and Namespaces labelled tier=ok when
// they carry the label.
func fakeAuditor(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) (*Auditor, client.Client) {
	t.Helper()
	ctx := context.Background()
	e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointAudit))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"privileged-containers", "metadata-restrictions"} {
		addPSPTemplate(t, e, dir)
	}
	priv := constraint("PSPPrivilegedContainer", "no-privileged", kinds([]interface{}{""}, []interface{}{"Pod"}))
	tier := constraint("MetadataRestrictions", "tier", kinds([]interface{}{""}, []interface{}{"ConfigMap", "Namespace"}))
	tier.Object["spec"].(map[string]interface{})["parameters"] = map[string]interface{}{
		"labels": []interface{}{map[string]interface{}{"key": "tier", "allowedValues": []interface{}{"ok"}}},
	}
	for _, c := range []*unstructured.Unstructured{priv, tier} {
		if err := e.AddConstraint(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, c.DeepCopy())
	}

	s := testScheme()
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(priv, tier).
		WithInterceptorFuncs(funcs).Build()
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{policyreport.GroupVersion})
	mapper.Add(policyreport.GroupVersion.WithKind("PolicyReport"), meta.RESTScopeNamespace)
	mapper.Add(policyreport.GroupVersion.WithKind("ClusterPolicyReport"), meta.RESTScopeRoot)
	a := &Auditor{
		o:      Options{Namespace: "daaas-guard"}.withDefaults(),
		engine: e, exemptions: &admission.Exemptions{Own: "daaas-guard"},
		expansion: func() *expansion.Set { return nil },
		reader:    c, writer: c, mapper: mapper,
		discovery: staticDiscovery{{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: []string{"list"}},
			{Name: "configmaps", Kind: "ConfigMap", Namespaced: true, Verbs: []string{"list"}},
			{Name: "namespaces", Kind: "Namespace", Verbs: []string{"list"}},
		}}},
		metrics: newMetrics(prometheus.NewRegistry()), log: logr.Discard(),
	}
	return a, c
}

func ns(name, tier string) *corev1.Namespace {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if tier != "" {
		n.Labels = map[string]string{"tier": tier}
	}
	return n
}

func badConfigMap(ns, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"tier": "bad"}}}
}

func runAt(t *testing.T, a *Auditor, at time.Time) *Summary {
	t.Helper()
	a.o.now = func() time.Time { return at }
	s, err := a.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func constraintStatus(t *testing.T, c client.Client, kind, name string) map[string]interface{} {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Kind: kind})
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, u); err != nil {
		t.Fatal(err)
	}
	s, _, _ := unstructured.NestedMap(u.Object, "status")
	return s
}

// reportsByNamespace reads the audit's PolicyReports: summary and the
// names of the resources of their results.
func reportsByNamespace(t *testing.T, c client.Client) map[string][]string {
	t.Helper()
	list := &policyreport.PolicyReportList{}
	if err := c.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range list.Items {
		out[r.Namespace] = []string{}
		for _, res := range r.Results {
			out[r.Namespace] = append(out[r.Namespace], res.Resources[0].Kind+"/"+res.Resources[0].Name)
		}
	}
	return out
}

func hasProblem(s *Summary, sub string) bool {
	for _, p := range s.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}

// A pass that cannot list a kind must not publish a clean result for the
// constraints on that kind: their status stays as the last full pass
// wrote it, and reports that hold findings on that kind are neither
// rewritten nor deleted. What the kinds that were listed show is still
// published where nothing of the unlisted kind would be lost.
func TestRunOnce_UnlistedKindKeepsStatusAndReports(t *testing.T) {
	ctx := context.Background()
	failConfigMaps := false
	funcs := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if u, ok := list.(*unstructured.UnstructuredList); ok && failConfigMaps && u.GetKind() == "ConfigMapList" {
			return apierrors.NewResourceExpired("the continue token has expired")
		}
		return c.List(ctx, list, opts...)
	}}
	a, c := fakeAuditor(t, funcs,
		ns("team-a", ""), ns("team-b", ""), ns("team-c", ""), ns("team-d", ""), ns("team-e", ""), ns("team-z", "bad"),
		privilegedPod("team-a", "web"), badConfigMap("team-a", "settings"),
		privilegedPod("team-b", "job"),
		badConfigMap("team-c", "settings"),
		privilegedPod("team-d", "x"),
	)
	first := time.Unix(1700000000, 0)
	if s := runAt(t, a, first); len(s.Problems) > 0 {
		t.Fatalf("first pass problems: %v", s.Problems)
	}
	tierBefore := constraintStatus(t, c, "MetadataRestrictions", "tier")
	if tierBefore["totalViolations"] != int64(3) {
		t.Fatalf("tier after the first pass: %v, want 3 violations", tierBefore)
	}
	teamA := &policyreport.PolicyReport{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: ReportName}, teamA); err != nil {
		t.Fatal(err)
	}

	// The cluster changes: team-b's pod is fixed, team-d and team-e get
	// privileged pods. Then ConfigMaps cannot be listed.
	if err := c.Delete(ctx, privilegedPod("team-b", "job")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{privilegedPod("team-d", "y"), privilegedPod("team-e", "z")} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	failConfigMaps = true
	second := first.Add(time.Hour)
	s := runAt(t, a, second)
	if !hasProblem(s, "status of MetadataRestrictions/tier kept") {
		t.Errorf("problems = %q, want one saying tier's status was kept", s.Problems)
	}

	if diff := cmp.Diff(tierBefore, constraintStatus(t, c, "MetadataRestrictions", "tier")); diff != "" {
		t.Errorf("tier's status changed on a pass that could not list ConfigMaps (-before +after):\n%s", diff)
	}
	priv := constraintStatus(t, c, "PSPPrivilegedContainer", "no-privileged")
	if priv["totalViolations"] != int64(4) || priv["auditTimestamp"] != second.UTC().Format(time.RFC3339) {
		t.Errorf("no-privileged: total %v at %v, want 4 at the second pass", priv["totalViolations"], priv["auditTimestamp"])
	}
	if got := testutil.ToFloat64(a.metrics.violations.WithLabelValues("MetadataRestrictions", "tier", "deny")); got != 3 {
		t.Errorf("tier's violations gauge = %v, want the last full count, 3", got)
	}
	if got := testutil.ToFloat64(a.metrics.lastRun); got != float64(first.Unix()) {
		t.Errorf("last complete pass = %v after a partial one, want the first pass's end, %v", got, first.Unix())
	}

	want := map[string][]string{
		"team-a": {"ConfigMap/settings", "Pod/web"}, // holds a ConfigMap finding: left as it was
		"team-c": {"ConfigMap/settings"},            // only ConfigMap findings: not deleted
		"team-d": {"Pod/x", "Pod/y"},                // Pods only: updated
		"team-e": {"Pod/z"},                         // created
		// team-b held only a Pod finding, now fixed: deleted.
	}
	if diff := cmp.Diff(want, reportsByNamespace(t, c)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	after := &policyreport.PolicyReport{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: ReportName}, after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != teamA.ResourceVersion {
		t.Errorf("team-a's report was rewritten: %+v", after.Results)
	}
	// Namespaces were listed: the cluster report follows them.
	crep := &policyreport.ClusterPolicyReport{}
	if err := c.Get(ctx, client.ObjectKey{Name: ReportName}, crep); err != nil {
		t.Fatal(err)
	}
	if crep.Summary.Fail != 1 || len(crep.Results) != 1 || crep.Results[0].Resources[0].Name != "team-z" {
		t.Errorf("cluster report: %+v", crep)
	}

	// Once ConfigMaps list again, everything follows the cluster.
	failConfigMaps = false
	if s := runAt(t, a, second.Add(time.Hour)); len(s.Problems) > 0 {
		t.Fatalf("third pass problems: %v", s.Problems)
	}
	if got := constraintStatus(t, c, "MetadataRestrictions", "tier")["auditTimestamp"]; got != second.Add(time.Hour).UTC().Format(time.RFC3339) {
		t.Errorf("tier's auditTimestamp after a full pass = %v", got)
	}
	want["team-a"] = []string{"ConfigMap/settings", "Pod/web"}
	if diff := cmp.Diff(want, reportsByNamespace(t, c)); diff != "" {
		t.Errorf("reports after a full pass (-want +got):\n%s", diff)
	}
}

// discoveryFunc serves what its function returns.
type discoveryFunc func() ([]*metav1.APIResourceList, error)

func (d discoveryFunc) ServerPreferredResources() ([]*metav1.APIResourceList, error) { return d() }

// A group version that discovery fails for (an aggregated API server
// down) does not make its kinds absent: the constraints that may apply to
// them keep their status and the reports with findings on them stay, as
// for a kind that could not be listed, and the pass names the group.
func TestRunOnce_UndiscoveredGroupKeepsStatusAndReports(t *testing.T) {
	ctx := context.Background()
	widget := &unstructured.Unstructured{}
	widget.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
	widget.SetNamespace("team-a")
	widget.SetName("w")
	widget.SetLabels(map[string]string{"tier": "bad"})
	a, c := fakeAuditor(t, interceptor.Funcs{}, ns("team-a", ""), ns("team-b", ""), widget, privilegedPod("team-b", "job"))
	widgets := constraint("MetadataRestrictions", "widgets", kinds([]interface{}{"example.com"}, []interface{}{"Widget"}))
	widgets.Object["spec"].(map[string]interface{})["parameters"] = map[string]interface{}{
		"labels": []interface{}{map[string]interface{}{"key": "tier", "allowedValues": []interface{}{"ok"}}},
	}
	if err := a.engine.AddConstraint(ctx, widgets, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, widgets.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	core := a.discovery.(staticDiscovery)
	widgetsGroup := &metav1.APIResourceList{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
		{Name: "widgets", Kind: "Widget", Namespaced: true, Verbs: []string{"list"}},
	}}
	failing := false
	a.discovery = discoveryFunc(func() ([]*metav1.APIResourceList, error) {
		if failing {
			return core, &discovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
				{Group: "example.com", Version: "v1"}: apierrors.NewServiceUnavailable("the server is currently unable to handle the request"),
			}}
		}
		return append(slices.Clone(core), widgetsGroup), nil
	})

	first := time.Unix(1700000000, 0)
	if s := runAt(t, a, first); len(s.Problems) > 0 {
		t.Fatalf("first pass problems: %v", s.Problems)
	}
	before := constraintStatus(t, c, "MetadataRestrictions", "widgets")
	if before["totalViolations"] != int64(1) {
		t.Fatalf("widgets after the first pass: %v, want 1 violation", before)
	}
	if diff := cmp.Diff(map[string][]string{"team-a": {"Widget/w"}, "team-b": {"Pod/job"}}, reportsByNamespace(t, c)); diff != "" {
		t.Fatalf("reports after the first pass (-want +got):\n%s", diff)
	}

	// team-b's pod is fixed; then the Widgets' API server goes down.
	if err := c.Delete(ctx, privilegedPod("team-b", "job")); err != nil {
		t.Fatal(err)
	}
	failing = true
	second := first.Add(time.Hour)
	s := runAt(t, a, second)
	for _, sub := range []string{"discovery of example.com/v1: the server is currently unable", "status of MetadataRestrictions/widgets kept"} {
		if !hasProblem(s, sub) {
			t.Errorf("problems = %q, want one saying %q", s.Problems, sub)
		}
	}
	if diff := cmp.Diff(before, constraintStatus(t, c, "MetadataRestrictions", "widgets")); diff != "" {
		t.Errorf("widgets' status changed on a pass that could not discover its group (-before +after):\n%s", diff)
	}
	if got := constraintStatus(t, c, "PSPPrivilegedContainer", "no-privileged"); got["totalViolations"] != int64(0) ||
		got["auditTimestamp"] != second.UTC().Format(time.RFC3339) {
		t.Errorf("no-privileged: %v, want 0 violations at the second pass", got)
	}
	if got := testutil.ToFloat64(a.metrics.lastRun); got != float64(first.Unix()) {
		t.Errorf("last complete pass = %v after a partial one, want the first pass's end, %v", got, first.Unix())
	}
	// team-a's Widget finding stays; team-b's report held only a Pod
	// finding, now fixed: deleted.
	if diff := cmp.Diff(map[string][]string{"team-a": {"Widget/w"}}, reportsByNamespace(t, c)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

// A discovery error that does not say which groups failed leaves no way
// to tell missing kinds from absent ones: the pass publishes nothing.
func TestRunOnce_UnknownDiscoveryErrorPublishesNothing(t *testing.T) {
	a, c := fakeAuditor(t, interceptor.Funcs{}, ns("team-a", ""), privilegedPod("team-a", "web"))
	core := a.discovery.(staticDiscovery)
	a.discovery = discoveryFunc(func() ([]*metav1.APIResourceList, error) { return core, errors.New("connection reset") })
	if s, err := a.RunOnce(context.Background()); err == nil {
		t.Fatalf("RunOnce = %+v, want an error", s)
	}
	if got := constraintStatus(t, c, "PSPPrivilegedContainer", "no-privileged"); got != nil {
		t.Errorf("no-privileged status written: %v", got)
	}
}

// A namespace whose report cannot be written does not stop the other
// reports, the stale ones' deletion or the ClusterPolicyReport, and its
// own existing report is not taken for stale.
func TestRunOnce_FailedReportDoesNotStopOthers(t *testing.T) {
	ctx := context.Background()
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*policyreport.PolicyReport); ok && obj.GetNamespace() == "team-a" {
				return apierrors.NewForbidden(schema.GroupResource{Group: policyreport.GroupVersion.Group, Resource: "policyreports"},
					ReportName, errors.New("namespace team-a is being terminated"))
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*policyreport.PolicyReport); ok && obj.GetNamespace() == "team-b" {
				return apierrors.NewInternalError(errors.New("etcd timeout"))
			}
			return c.Update(ctx, obj, opts...)
		},
	}
	managed := map[string]string{LabelManagedBy: ManagedBy}
	old := func(ns string) *policyreport.PolicyReport {
		return &policyreport.PolicyReport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ReportName, Labels: managed},
			Summary: policyreport.Summary{Fail: 1},
			Results: []policyreport.PolicyReportResult{{Source: Source, Policy: "PSPPrivilegedContainer", Rule: "no-privileged",
				Result: policyreport.ResultFail, Resources: []corev1.ObjectReference{ref("Pod", ns, "old")}}}}
	}
	a, c := fakeAuditor(t, funcs,
		ns("team-a", ""), ns("team-b", ""), ns("team-d", ""), ns("team-old", ""), ns("team-z", "bad"),
		privilegedPod("team-a", "web"), privilegedPod("team-b", "job"), privilegedPod("team-d", "x"),
		old("team-b"), old("team-old"),
	)
	s := runAt(t, a, time.Unix(1700000000, 0))
	for _, sub := range []string{"PolicyReport team-a/" + ReportName, "PolicyReport team-b/" + ReportName} {
		if !hasProblem(s, sub) {
			t.Errorf("problems = %q, want one naming %s", s.Problems, sub)
		}
	}
	want := map[string][]string{
		"team-b": {"Pod/old"}, // its update failed: kept, not deleted
		"team-d": {"Pod/x"},   // written after team-a and team-b failed
		// team-old had nothing left to report: deleted.
	}
	if diff := cmp.Diff(want, reportsByNamespace(t, c)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	crep := &policyreport.ClusterPolicyReport{}
	if err := c.Get(ctx, client.ObjectKey{Name: ReportName}, crep); err != nil {
		t.Errorf("cluster report: %v", err)
	}
	if got := constraintStatus(t, c, "PSPPrivilegedContainer", "no-privileged")["totalViolations"]; got != int64(3) {
		t.Errorf("no-privileged totalViolations = %v, want 3", got)
	}
}

func TestMayHoldUnlisted(t *testing.T) {
	configMaps := auditKind{gvk: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, namespaced: true}
	namespaces := auditKind{gvk: schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}}
	metrics := auditKind{gvk: schema.GroupVersionKind{Group: "metrics.k8s.io", Version: "v1beta1", Kind: "*"}}
	result := func(apiVersion, kind string) policyreport.PolicyReportResult {
		return policyreport.PolicyReportResult{Resources: []corev1.ObjectReference{{APIVersion: apiVersion, Kind: kind, Name: "x"}}}
	}
	tests := []struct {
		name       string
		unlisted   []auditKind
		namespaced bool
		sum        policyreport.Summary
		results    []policyreport.PolicyReportResult
		want       bool
	}{
		{name: "every kind listed", namespaced: true, sum: policyreport.Summary{Fail: 1},
			results: []policyreport.PolicyReportResult{result("v1", "ConfigMap")}},
		{name: "a result on an unlisted kind", unlisted: []auditKind{configMaps}, namespaced: true, sum: policyreport.Summary{Fail: 2},
			results: []policyreport.PolicyReportResult{result("v1", "Pod"), result("v1", "ConfigMap")}, want: true},
		{name: "same kind name in another group", unlisted: []auditKind{configMaps}, namespaced: true, sum: policyreport.Summary{Fail: 1},
			results: []policyreport.PolicyReportResult{result("example.com/v1", "ConfigMap")}},
		{name: "capped results may hide one", unlisted: []auditKind{configMaps}, namespaced: true, sum: policyreport.Summary{Fail: 1, Warn: 1},
			results: []policyreport.PolicyReportResult{result("v1", "Pod")}, want: true},
		{name: "cluster-scoped kinds do not reach namespace reports", unlisted: []auditKind{namespaces}, namespaced: true,
			sum: policyreport.Summary{Fail: 2}, results: []policyreport.PolicyReportResult{result("v1", "Pod")}},
		{name: "cluster report", unlisted: []auditKind{configMaps, namespaces}, sum: policyreport.Summary{Warn: 1},
			results: []policyreport.PolicyReportResult{result("v1", "Namespace")}, want: true},
		{name: "a result in a group discovery failed for", unlisted: []auditKind{metrics}, namespaced: true,
			sum: policyreport.Summary{Fail: 2}, results: []policyreport.PolicyReportResult{result("v1", "Pod"), result("metrics.k8s.io/v1beta1", "PodMetrics")},
			want: true},
		{name: "a group discovery failed for reaches the cluster report", unlisted: []auditKind{metrics},
			sum: policyreport.Summary{Fail: 1}, results: []policyreport.PolicyReportResult{result("metrics.k8s.io/v1beta1", "NodeMetrics")}, want: true},
		{name: "no result in a group discovery failed for", unlisted: []auditKind{metrics}, namespaced: true,
			sum: policyreport.Summary{Fail: 1}, results: []policyreport.PolicyReportResult{result("v1", "Pod")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayHoldUnlisted(tc.unlisted, tc.namespaced, tc.sum, tc.results); got != tc.want {
				t.Errorf("mayHoldUnlisted = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnlistedFor(t *testing.T) {
	k := func(group, kind string) auditKind {
		return auditKind{gvk: schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}, namespaced: true}
	}
	unlisted := []auditKind{k("", "ConfigMap"), k("", "Secret"), k("apps", "Deployment"), k("metrics.k8s.io", "*")}
	deployToPod := deploymentsToPods(t)
	tests := []struct {
		name       string
		constraint *unstructured.Unstructured
		set        *expansion.Set
		want       []schema.GroupKind
	}{
		{"named kind listed", constraint("A", "a", kinds([]interface{}{""}, []interface{}{"Pod"})), nil, nil},
		{"named kind unlisted", constraint("A", "a", kinds([]interface{}{""}, []interface{}{"ConfigMap"})), nil,
			[]schema.GroupKind{{Kind: "ConfigMap"}}},
		{"every kind, but not Secrets", constraint("A", "a", nil), nil,
			[]schema.GroupKind{{Kind: "ConfigMap"}, {Group: "apps", Kind: "Deployment"}, {Group: "metrics.k8s.io", Kind: "*"}}},
		{"a named kind may be in a group discovery failed for", constraint("A", "a", kinds([]interface{}{"*"}, []interface{}{"Pod"})), nil,
			[]schema.GroupKind{{Group: "metrics.k8s.io", Kind: "*"}}},
		{"another group", constraint("A", "a", kinds([]interface{}{"apps"}, []interface{}{"StatefulSet"})), nil, nil},
		{"an expanded kind counts for every constraint", constraint("A", "a", kinds([]interface{}{""}, []interface{}{"Pod"})),
			expansion.NewSet(deployToPod), []schema.GroupKind{{Group: "apps", Kind: "Deployment"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := constraintKinds(tc.constraint)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, unlistedFor(want, unlisted, tc.set)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a group discovery failed for that expansion applies to counts for every constraint", func(t *testing.T) {
		got := unlistedFor([]match.Kinds{{APIGroups: []string{""}, Kinds: []string{"Pod"}}}, []auditKind{k("apps", "*")}, expansion.NewSet(deployToPod))
		if diff := cmp.Diff([]schema.GroupKind{{Group: "apps", Kind: "*"}}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}
