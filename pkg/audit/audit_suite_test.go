package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/statcan/daaas-guard/internal/testenv"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// The cluster tests run the audit against a real kube-apiserver and etcd
// (built by hack/controlplane/build.sh), as the scanner's service account
// with the RBAC of manifests/base/audit.yaml. No webhook runs: the tests
// create the constraint CRDs as the webhook would.

var testCfg *rest.Config

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// wg-policy's CRDs: the platform installs them (Policy Reporter,
	// Kyverno); the suite does not ship them.
	return testenv.Main(m, &testCfg, filepath.Join("test", "e2e", "testdata", "crds"))
}

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, policyreport.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

func cluster(t *testing.T) client.Client {
	t.Helper()
	if testCfg == nil {
		t.Skip("no control plane (hack/controlplane/build.sh builds it)")
	}
	c, err := client.New(testCfg, client.Options{Scheme: testScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	rbacOnce sync.Once
	rbacErr  error
)

// asScanner returns the control plane's config acting as the scanner,
// with the audit's RBAC.
func asScanner(t *testing.T, c client.Client) *rest.Config {
	t.Helper()
	rbacOnce.Do(func() {
		rbacErr = testenv.CreateFile(context.Background(), c, filepath.Join("manifests", "base", "audit.yaml"))
	})
	if rbacErr != nil {
		t.Fatal(rbacErr)
	}
	return testenv.AsScanner(testCfg)
}

// startAudit runs a manager with the audit, as the scanner, until the
// test ends.
func startAudit(t *testing.T, c client.Client, o Options) (*Auditor, *prometheus.Registry) {
	t.Helper()
	mgr, err := ctrl.NewManager(asScanner(t, c), ctrl.Options{
		Scheme:     testScheme(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:     zap.New(zap.UseDevMode(true), zap.WriteTo(testWriter{t})),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o.Metrics = reg
	o.Log = mgr.GetLogger().WithName("audit")
	a, err := Setup(mgr, o)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr, 30*time.Second)
	return a, reg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// installTemplate creates a library template and, as the webhook would,
// its constraint CRD, and waits until the CRD is served.
func installTemplate(t *testing.T, c client.Client, path string) {
	t.Helper()
	ctx := context.Background()
	docs, err := manifest.ReadFile(path, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := docs[0].Object
	tmpl, err := policy.NewTemplate(u, docs[0])
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddTemplate(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	crd, err := e.CRD(ctx, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CRD "+crd.Name+" established", func() string {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, got); err != nil {
			return err.Error()
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return ""
			}
		}
		return "not established"
	})
}

func privilegedPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.example/app:1",
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}},
	}
}

func constraintObj(kind, name, action string, match map[string]interface{}, params map[string]interface{}) *unstructured.Unstructured {
	spec := map[string]interface{}{"match": match}
	if action != "" {
		spec["enforcementAction"] = action
	}
	if params != nil {
		spec["parameters"] = params
	}
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": kind,
		"metadata": map[string]interface{}{"name": name}, "spec": spec,
	}}
}

func status(t *testing.T, c client.Client, kind, name string) map[string]interface{} {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("constraints.gatekeeper.sh/v1beta1")
	u.SetKind(kind)
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, u); err != nil {
		t.Fatal(err)
	}
	s, _, _ := unstructured.NestedMap(u.Object, "status")
	return s
}

// TestAudit_PreExistingObjects: objects that violate constraints created
// after them are found by the audit, reported in constraint status
// (capped, sorted, true total, byPod untouched, the same on every pass)
// and in PolicyReports per namespace and a ClusterPolicyReport, which
// follow the cluster when an object is fixed.
func TestAudit_PreExistingObjects(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()

	// The cluster before any constraint exists.
	for _, ns := range []*corev1.Namespace{
		// The suite's own namespace object is not audited either.
		{ObjectMeta: metav1.ObjectMeta{Name: "daaas-guard", Labels: map[string]string{"finance.statcan.gc.ca/workload-id": "TBD"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "team-x"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "team-c", Labels: map[string]string{"finance.statcan.gc.ca/workload-id": "TBD"}}},
	} {
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*corev1.Pod{
		privilegedPod("team-a", "web-2"), privilegedPod("team-a", "web-0"), privilegedPod("team-a", "web-1"),
		privilegedPod("team-b", "job"),
		privilegedPod("daaas-guard", "own"), // the suite's namespace is never audited
		privilegedPod("team-x", "excluded"), // excluded from audit by the Config
	} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	fine := privilegedPod("team-a", "fine")
	fine.Spec.Containers[0].SecurityContext = nil
	if err := c.Create(ctx, fine); err != nil {
		t.Fatal(err)
	}

	cfg := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "config.gatekeeper.sh/v1alpha1", "kind": "Config",
		"metadata": map[string]interface{}{"name": "config", "namespace": "daaas-guard"},
		"spec": map[string]interface{}{"match": []interface{}{
			map[string]interface{}{"excludedNamespaces": []interface{}{"team-x*"}, "processes": []interface{}{"audit"}},
			map[string]interface{}{"excludedNamespaces": []interface{}{"team-a"}, "processes": []interface{}{"webhook"}},
		}},
	}}
	if err := c.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	// Then the policies.
	installTemplate(t, c, filepath.Join("..", "..", "policies", "pod-security-policy", "privileged-containers", "template.yaml"))
	installTemplate(t, c, filepath.Join("..", "..", "policies", "pod-security-policy", "metadata-restrictions", "template.yaml"))
	pods := map[string]interface{}{"kinds": []interface{}{map[string]interface{}{"apiGroups": []interface{}{""}, "kinds": []interface{}{"Pod"}}}}
	nss := map[string]interface{}{"kinds": []interface{}{map[string]interface{}{"apiGroups": []interface{}{""}, "kinds": []interface{}{"Namespace"}}}}
	priv := constraintObj("PSPPrivilegedContainer", "no-privileged", "", pods, nil)
	meta := constraintObj("MetadataRestrictions", "workload-id", "warn", nss, map[string]interface{}{
		"labels": []interface{}{map[string]interface{}{"key": "finance.statcan.gc.ca/workload-id", "allowedRegex": "[0-9]{5,7}"}},
	})
	for _, o := range []*unstructured.Unstructured{priv, meta} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// What the webhook records in status; the audit must keep it.
	byPod := []interface{}{map[string]interface{}{"id": "webhook-0", "enforced": true, "observedGeneration": int64(1)}}
	if err := unstructured.SetNestedSlice(priv.Object, byPod, "status", "byPod"); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(ctx, priv); err != nil {
		t.Fatal(err)
	}

	a, reg := startAudit(t, c, Options{Namespace: "daaas-guard", Interval: time.Hour, MaxViolations: 2, ChunkSize: 2})
	eventually(t, "first audit pass", func() string {
		if a.Last() == nil {
			return "no pass yet"
		}
		return ""
	})
	if p := a.Last().Problems; len(p) > 0 {
		t.Errorf("first pass problems: %v", p)
	}

	const privMsg = `container "main" runs privileged; remove securityContext.privileged`
	wantViolations := []interface{}{
		map[string]interface{}{"group": "", "version": "v1", "kind": "Pod", "namespace": "team-a", "name": "web-0",
			"message": privMsg, "enforcementAction": "deny"},
		map[string]interface{}{"group": "", "version": "v1", "kind": "Pod", "namespace": "team-a", "name": "web-1",
			"message": privMsg, "enforcementAction": "deny"},
	}
	first := status(t, c, "PSPPrivilegedContainer", "no-privileged")
	if got := first["totalViolations"]; got != int64(4) {
		t.Errorf("totalViolations = %v, want 4 (3 in team-a, 1 in team-b, none in daaas-guard or team-x)", got)
	}
	if diff := cmp.Diff(wantViolations, first["violations"]); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(byPod, first["byPod"]); diff != "" {
		t.Errorf("byPod was changed (-want +got):\n%s", diff)
	}
	if first["auditTimestamp"] == nil {
		t.Error("no auditTimestamp")
	}
	ms := status(t, c, "MetadataRestrictions", "workload-id")
	if ms["totalViolations"] != int64(1) {
		t.Errorf("workload-id totalViolations = %v, want 1 (namespace team-c)", ms["totalViolations"])
	}

	// A second pass over the same cluster publishes the same.
	if _, err := a.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	second := status(t, c, "PSPPrivilegedContainer", "no-privileged")
	delete(first, "auditTimestamp")
	delete(second, "auditTimestamp")
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second pass differs (-first +second):\n%s", diff)
	}

	// PolicyReports: one per namespace with findings, failures only.
	rep := &policyreport.PolicyReport{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: ReportName}, rep); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(policyreport.Summary{Fail: 3}, rep.Summary); diff != "" {
		t.Errorf("team-a summary (-want +got):\n%s", diff)
	}
	var names []string
	for _, r := range rep.Results {
		if r.Policy != "PSPPrivilegedContainer" || r.Rule != "no-privileged" || r.Result != policyreport.ResultFail ||
			r.Severity != policyreport.SeverityCritical || r.Source != Source || r.Category != "ITSG-33 AC-6,CM-7,SC-39" ||
			r.Timestamp.Seconds == 0 || len(r.Resources) != 1 {
			t.Errorf("team-a result: %+v", r)
			continue
		}
		names = append(names, r.Resources[0].Name)
	}
	if diff := cmp.Diff([]string{"web-0", "web-1", "web-2"}, names); diff != "" {
		t.Errorf("team-a results (-want +got):\n%s", diff)
	}
	if rep.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("labels = %v", rep.Labels)
	}
	for _, ns := range []string{"daaas-guard", "team-x"} {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ReportName}, &policyreport.PolicyReport{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("report in %s: %v, want none", ns, err)
		}
	}
	crep := &policyreport.ClusterPolicyReport{}
	if err := c.Get(ctx, client.ObjectKey{Name: ReportName}, crep); err != nil {
		t.Fatal(err)
	}
	if len(crep.Results) != 1 || crep.Results[0].Result != policyreport.ResultWarn || crep.Results[0].Resources[0].Name != "team-c" ||
		crep.Summary != (policyreport.Summary{Warn: 1}) {
		t.Errorf("cluster report: summary %+v, results %+v", crep.Summary, crep.Results)
	}

	// Fixing team-b's pod and team-c's label removes their reports.
	if err := c.Delete(ctx, privilegedPod("team-b", "job"), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	nsC := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: "team-c"}, nsC); err != nil {
		t.Fatal(err)
	}
	nsC.Labels["finance.statcan.gc.ca/workload-id"] = "100425"
	if err := c.Update(ctx, nsC); err != nil {
		t.Fatal(err)
	}
	eventually(t, "team-b's pod gone", func() string {
		err := c.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "job"}, &corev1.Pod{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprint(err)
	})
	if _, err := a.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: ReportName}, &policyreport.PolicyReport{}); !apierrors.IsNotFound(err) {
		t.Errorf("team-b report after the fix: %v, want it deleted", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: ReportName}, &policyreport.ClusterPolicyReport{}); !apierrors.IsNotFound(err) {
		t.Errorf("cluster report after the fix: %v, want it deleted", err)
	}
	if got := status(t, c, "PSPPrivilegedContainer", "no-privileged")["totalViolations"]; got != int64(3) {
		t.Errorf("totalViolations after the fix = %v, want 3", got)
	}
	if got := testutil.ToFloat64(a.metrics.violations.WithLabelValues("PSPPrivilegedContainer", "no-privileged", "deny")); got != 3 {
		t.Errorf("violations metric = %v, want 3", got)
	}
	if n, err := testutil.GatherAndCount(reg, "daaas_guard_audit_duration_seconds"); err != nil || n != 1 {
		t.Errorf("duration histogram: %d series, %v", n, err)
	}
}
