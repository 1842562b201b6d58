package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

func v(ns, name, msg string) Violation {
	return Violation{Version: "v1", Kind: "Pod", Namespace: ns, Name: name, Message: msg, EnforcementAction: "deny"}
}

func TestCapped_KeepsFirstInOrderAndCountsAll(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		in    []Violation
		want  []Violation
		total int
	}{
		{name: "empty", max: 3},
		{name: "under the cap", max: 3,
			in:   []Violation{v("b", "x", "m"), v("a", "y", "m")},
			want: []Violation{v("a", "y", "m"), v("b", "x", "m")}, total: 2},
		{name: "over the cap keeps the first by namespace, name, message", max: 2,
			in:   []Violation{v("c", "a", "m"), v("a", "b", "z"), v("b", "a", "m"), v("a", "b", "a"), v("a", "a", "m")},
			want: []Violation{v("a", "a", "m"), v("a", "b", "a")}, total: 5},
		{name: "cap zero lists nothing but counts", max: 0,
			in: []Violation{v("a", "a", "m"), v("b", "b", "m")}, total: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCapped(tc.max, compareViolations)
			for _, x := range tc.in {
				c.add(x)
			}
			if diff := cmp.Diff(tc.want, c.sorted()); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if c.total != tc.total {
				t.Errorf("total = %d, want %d", c.total, tc.total)
			}
		})
	}
}

// The kept list does not depend on the order objects arrive in, and
// memory stays within twice the cap however many arrive.
func TestCapped_IndependentOfArrivalOrderAndBounded(t *testing.T) {
	var all []Violation
	for i := range 5000 {
		all = append(all, v(fmt.Sprintf("ns-%02d", i%37), fmt.Sprintf("pod-%04d", i), "privileged"))
	}
	var first []Violation
	for round := range 3 {
		in := append([]Violation(nil), all...)
		rand.New(rand.NewPCG(uint64(round), 7)).Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		c := newCapped(20, compareViolations)
		for _, x := range in {
			c.add(x)
			if len(c.items) >= 40 {
				t.Fatalf("buffer grew to %d items with a cap of 20", len(c.items))
			}
		}
		got := c.sorted()
		if c.total != len(all) || len(got) != 20 {
			t.Fatalf("total %d, kept %d; want %d, 20", c.total, len(got), len(all))
		}
		if round == 0 {
			first = got
			continue
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("round %d kept a different list (-first +got):\n%s", round, diff)
		}
	}
	if first[0].Namespace != "ns-00" || first[0].Name != "pod-0000" {
		t.Errorf("first kept = %s/%s, want ns-00/pod-0000", first[0].Namespace, first[0].Name)
	}
}

func TestAction_StrongestAtAuditPoint(t *testing.T) {
	tests := []struct {
		name    string
		r       policy.Result
		want    string
		wantRes policyreport.Result
	}{
		{"deny", policy.Result{Action: "deny", Actions: []string{"deny"}}, "deny", policyreport.ResultFail},
		{"warn", policy.Result{Action: "warn", Actions: []string{"warn"}}, "warn", policyreport.ResultWarn},
		{"dryrun is a failure, marked", policy.Result{Action: "dryrun", Actions: []string{"dryrun"}}, "dryrun", policyreport.ResultFail},
		{"scoped warn and deny", policy.Result{Action: "scoped", Actions: []string{"deny", "warn"}}, "deny", policyreport.ResultFail},
		{"scoped dryrun and warn", policy.Result{Action: "scoped", Actions: []string{"dryrun", "warn"}}, "warn", policyreport.ResultWarn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := action(tc.r)
			if got != tc.want {
				t.Errorf("action = %q, want %q", got, tc.want)
			}
			if res := resultOf(got); res != tc.wantRes {
				t.Errorf("result = %q, want %q", res, tc.wantRes)
			}
		})
	}
}

func ref(kind, ns, name string) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: "v1", Kind: kind, Namespace: ns, Name: name}
}

func TestReportBuild_SortedCappedWithTrueSummary(t *testing.T) {
	meta := func(kind string) templateMeta {
		if kind == "PSPPrivilegedContainer" {
			return templateMeta{severity: policyreport.SeverityCritical, category: "ITSG-33 AC-6,CM-7"}
		}
		return templateMeta{}
	}
	ts := metav1.Timestamp{Seconds: 1700000000}
	tests := []struct {
		name     string
		max      int
		withPass bool
		findings []finding
		pass     int
		wantSum  policyreport.Summary
		want     []policyreport.PolicyReportResult
	}{
		{
			name: "fail, warn and dryrun, sorted by policy, rule, resource", max: 10, pass: 4,
			findings: []finding{
				{kind: "PSPPrivilegedContainer", constraint: "no-priv", action: "dryrun", message: "privileged", ref: ref("Pod", "a", "web")},
				{kind: "MetadataRestrictions", constraint: "labels", action: "warn", message: "missing label", ref: ref("Pod", "a", "web")},
				{kind: "PSPPrivilegedContainer", constraint: "no-priv", action: "deny", message: "privileged", ref: ref("Pod", "a", "api")},
			},
			wantSum: policyreport.Summary{Fail: 2, Warn: 1},
			want: []policyreport.PolicyReportResult{
				{Source: Source, Policy: "MetadataRestrictions", Rule: "labels", Timestamp: ts, Result: "warn",
					Resources: []corev1.ObjectReference{ref("Pod", "a", "web")}, Message: "missing label",
					Properties: map[string]string{PropertyAction: "warn"}},
				{Source: Source, Policy: "PSPPrivilegedContainer", Rule: "no-priv", Category: "ITSG-33 AC-6,CM-7", Severity: "critical",
					Timestamp: ts, Result: "fail", Scored: true, Resources: []corev1.ObjectReference{ref("Pod", "a", "api")},
					Message: "privileged", Properties: map[string]string{PropertyAction: "deny"}},
				{Source: Source, Policy: "PSPPrivilegedContainer", Rule: "no-priv", Category: "ITSG-33 AC-6,CM-7", Severity: "critical",
					Timestamp: ts, Result: "fail", Scored: true, Resources: []corev1.ObjectReference{ref("Pod", "a", "web")},
					Message: "privileged", Properties: map[string]string{PropertyAction: "dryrun"}},
			},
		},
		{
			name: "capped results, summary counts all and passes", max: 1, withPass: true, pass: 7,
			findings: []finding{
				{kind: "K", constraint: "c", action: "deny", message: "m", ref: ref("Pod", "a", "b")},
				{kind: "K", constraint: "c", action: "deny", message: "m", ref: ref("Pod", "a", "a")},
			},
			wantSum: policyreport.Summary{Fail: 2, Pass: 7},
			want: []policyreport.PolicyReportResult{
				{Source: Source, Policy: "K", Rule: "c", Timestamp: ts, Result: "fail", Scored: true,
					Resources: []corev1.ObjectReference{ref("Pod", "a", "a")}, Message: "m", Properties: map[string]string{PropertyAction: "deny"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acc := newReportAcc(tc.max)
			for _, f := range tc.findings {
				acc.add(f)
			}
			acc.pass = tc.pass
			sum, got := acc.build(meta, ts, tc.withPass)
			if diff := cmp.Diff(tc.wantSum, sum); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetaOf_ReadsTemplateAnnotations(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        templateMeta
	}{
		{"none", nil, templateMeta{}},
		{"severity and controls", map[string]string{annotationSeverity: "High", annotationControls: "AC-6,CM-7"},
			templateMeta{severity: "high", category: "ITSG-33 AC-6,CM-7"}},
		{"unknown severity dropped", map[string]string{annotationSeverity: "urgent"}, templateMeta{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := metaOf(&policy.Template{Annotations: tc.annotations})
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(templateMeta{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func constraint(kind, name string, match map[string]interface{}) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": kind,
		"metadata": map[string]interface{}{"name": name},
		"spec":     map[string]interface{}{},
	}}
	if match != nil {
		u.Object["spec"] = map[string]interface{}{"match": match}
	}
	return u
}

func kinds(groups, kinds []interface{}) map[string]interface{} {
	return map[string]interface{}{"kinds": []interface{}{map[string]interface{}{"apiGroups": groups, "kinds": kinds}}}
}

func TestResolveKinds(t *testing.T) {
	resources := []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: []string{"get", "list", "watch"}},
			{Name: "pods/status", Kind: "Pod", Namespaced: true, Verbs: []string{"get", "patch"}},
			{Name: "namespaces", Kind: "Namespace", Verbs: []string{"get", "list"}},
			{Name: "secrets", Kind: "Secret", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "events", Kind: "Event", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "bindings", Kind: "Binding", Namespaced: true, Verbs: []string{"create"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Kind: "Deployment", Namespaced: true, Verbs: []string{"list"}},
		}},
		{GroupVersion: "wgpolicyk8s.io/v1alpha2", APIResources: []metav1.APIResource{
			{Name: "policyreports", Kind: "PolicyReport", Namespaced: true, Verbs: []string{"list"}},
		}},
	}
	gk := func(ks []auditKind) []string {
		var out []string
		for _, k := range ks {
			out = append(out, fmt.Sprintf("%s %s namespaced=%v named=%v", k.gvk, k.resource, k.namespaced, k.named))
		}
		return out
	}
	deployToPod := deploymentsToPods(t)
	tests := []struct {
		name        string
		constraints []*unstructured.Unstructured
		set         *expansion.Set
		want        []string
	}{
		{"named kinds only", []*unstructured.Unstructured{constraint("A", "a", kinds([]interface{}{""}, []interface{}{"Pod"}))}, nil,
			[]string{"/v1, Kind=Pod pods namespaced=true named=true"}},
		{"wildcard skips secrets, events and reports", []*unstructured.Unstructured{constraint("A", "a", nil)}, nil,
			[]string{"/v1, Kind=Namespace namespaces namespaced=false named=false", "/v1, Kind=Pod pods namespaced=true named=false",
				"apps/v1, Kind=Deployment deployments namespaced=true named=false"}},
		{"secrets when named", []*unstructured.Unstructured{constraint("A", "a", kinds([]interface{}{"*"}, []interface{}{"Secret"}))}, nil,
			[]string{"/v1, Kind=Secret secrets namespaced=true named=true"}},
		{"expansion brings the workloads", []*unstructured.Unstructured{constraint("A", "a", kinds([]interface{}{""}, []interface{}{"Pod"}))},
			expansion.NewSet(deployToPod),
			[]string{"/v1, Kind=Pod pods namespaced=true named=true", "apps/v1, Kind=Deployment deployments namespaced=true named=true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := kindsOf(tc.constraints)
			if err != nil {
				t.Fatal(err)
			}
			got := gk(resolveKinds(resources, want, tc.set))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestKindsOf_BadMatchNamesTheConstraint(t *testing.T) {
	_, err := kindsOf([]*unstructured.Unstructured{constraint("PSPPrivilegedContainer", "no-priv", map[string]interface{}{"kinds": "Pod"})})
	if err == nil || !strings.Contains(err.Error(), `PSPPrivilegedContainer "no-priv": spec.match`) {
		t.Errorf("error = %v, want one naming the constraint and spec.match", err)
	}
}

func TestOptions_Validate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"defaults", Options{Namespace: "daaas-guard"}, ""},
		{"no namespace", Options{}, "namespace"},
		{"bad mode", Options{Namespace: "x", Reports: "some"}, `reports: "some"`},
		{"negative chunk", Options{Namespace: "x", ChunkSize: -1}, "chunk size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.withDefaults().validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Without the wg-policy CRDs the audit writes no reports and says so
// once, not on every pass, and the pass is not counted as partial.
func TestPublish_NoPolicyReportCRDsLogsOnce(t *testing.T) {
	var lines []string
	log := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	a := &Auditor{o: Options{Namespace: "x"}.withDefaults(), mapper: meta.NewDefaultRESTMapper(nil),
		metrics: newMetrics(prometheus.NewRegistry()), log: log}
	for range 3 {
		p := &pass{constraints: map[string]*constraintAcc{}, reports: map[string]*reportAcc{"team-a": newReportAcc(10)}}
		a.publish(context.Background(), p, time.Unix(1700000000, 0))
		if len(p.summary.Problems) > 0 {
			t.Errorf("problems: %v", p.summary.Problems)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "PolicyReports not written") {
		t.Errorf("log lines = %q, want one saying PolicyReports are not written", lines)
	}
}

// deploymentsToPods is an ExpansionTemplate that audits Deployments' pod
// templates as Pods.
func deploymentsToPods(t *testing.T) *expansion.Template {
	t.Helper()
	et, err := expansion.FromObject(&unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "expansion.gatekeeper.sh/v1alpha1", "kind": "ExpansionTemplate",
		"metadata": map[string]interface{}{"name": "deployments"},
		"spec": map[string]interface{}{
			"applyTo":        []interface{}{map[string]interface{}{"groups": []interface{}{"apps"}, "kinds": []interface{}{"Deployment"}, "versions": []interface{}{"v1"}}},
			"templateSource": "spec.template",
			"generatedGVK":   map[string]interface{}{"kind": "Pod", "group": "", "version": "v1"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return et
}

// addPSPTemplate adds the library's pod-security-policy/<dir> template
// to e.
func addPSPTemplate(t testing.TB, e *policy.Engine, dir string) {
	t.Helper()
	docs, err := manifest.ReadFile(filepath.Join("..", "..", "policies", "pod-security-policy", dir, "template.yaml"), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := policy.NewTemplate(docs[0].Object, docs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddTemplate(context.Background(), tmpl); err != nil {
		t.Fatal(err)
	}
}
