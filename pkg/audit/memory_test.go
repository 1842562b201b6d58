package audit

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/evidence"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// pagedPods serves n privileged pods across namespaces, a page at a time
// as the API server does (limit and continue), making each page on demand
// so that the test itself holds no more than a page. It records the
// largest page asked for and the live heap at two points of the listing.
type pagedPods struct {
	client.Reader
	n, namespaces int
	maxLimit      int64
	pages         int
	heapAt        map[int]uint64 // page -> live heap after GC, before the page is made
}

func (p *pagedPods) List(_ context.Context, obj client.ObjectList, opts ...client.ListOption) error {
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	if lo.Limit > p.maxLimit {
		p.maxLimit = lo.Limit
	}
	if _, ok := p.heapAt[p.pages]; ok {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		p.heapAt[p.pages] = ms.HeapAlloc
	}
	p.pages++
	start := 0
	if lo.Continue != "" {
		start, _ = strconv.Atoi(lo.Continue)
	}
	end := min(start+int(lo.Limit), p.n)
	list := obj.(*unstructured.UnstructuredList)
	for i := start; i < end; i++ {
		list.Items = append(list.Items, unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]interface{}{
				"namespace": fmt.Sprintf("ns-%03d", i%p.namespaces), "name": fmt.Sprintf("pod-%06d", i),
				"uid": fmt.Sprintf("uid-%06d", i), "labels": map[string]interface{}{"app": "web", "tier": "backend"},
			},
			"spec": map[string]interface{}{"containers": []interface{}{map[string]interface{}{
				"name": "main", "image": "registry.example/app:1.0",
				"securityContext": map[string]interface{}{"privileged": true},
				"env":             []interface{}{map[string]interface{}{"name": "PADDING", "value": fmt.Sprintf("%01000d", i)}},
			}}},
		}})
	}
	if end < p.n {
		list.SetContinue(strconv.Itoa(end))
	}
	return nil
}

// privilegedEngine is an audit engine with the library's privileged
// containers template and a constraint on Pods.
func privilegedEngine(t testing.TB) (*policy.Engine, *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointAudit))
	if err != nil {
		t.Fatal(err)
	}
	addPSPTemplate(t, e, "privileged-containers")
	c := constraint("PSPPrivilegedContainer", "no-privileged", kinds([]interface{}{""}, []interface{}{"Pod"}))
	if err := e.AddConstraint(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	return e, c
}

// Report modes decide which namespaces get a report and whether passes
// are counted; constraint totals do not depend on them.
func TestReview_ReportModes(t *testing.T) {
	e, c := privilegedEngine(t)
	pod := func(ns, name string, privileged bool) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]interface{}{"namespace": ns, "name": name},
			"spec": map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "main", "image": "app:1",
				"securityContext": map[string]interface{}{"privileged": privileged}}}}}}
	}
	objs := []*unstructured.Unstructured{pod("a", "p1", true), pod("a", "p2", false), pod("b", "p3", false)}
	tests := []struct {
		mode ReportMode
		want map[string][3]int // namespace -> fail, warn, pass
	}{
		{ReportFailures, map[string][3]int{"a": {1, 0, 1}}},
		{ReportAll, map[string][3]int{"a": {1, 0, 1}, "b": {0, 0, 1}}},
		{ReportNone, map[string][3]int{}},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode), func(t *testing.T) {
			a := &Auditor{o: Options{Namespace: "daaas-guard", Reports: tc.mode}.withDefaults(), engine: e}
			p := &pass{constraints: map[string]*constraintAcc{}, reports: map[string]*reportAcc{}}
			p.constraints[constraintKey(c.GetKind(), c.GetName())] = &constraintAcc{obj: c, violations: newCapped(20, compareViolations)}
			for _, o := range objs {
				if err := a.review(context.Background(), p, o, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string][3]int{}
			for ns, r := range p.reports {
				got[ns] = [3]int{r.fail, r.warn, r.pass}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
			if total := p.constraints[constraintKey(c.GetKind(), c.GetName())].violations.total; total != 1 {
				t.Errorf("constraint total = %d, want 1", total)
			}
		})
	}
}

// TestAuditKind_ChunkedAndBoundedMemory audits 6000 violating pods (about
// 2 KB each, 12 MB in all) in pages of 100: every list call asks for one
// page, every violation is counted, and the live heap after the last page
// is within a few MB of the heap after the first pages: the pass holds a
// page and the capped results, not the cluster.
func TestAuditKind_ChunkedAndBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reviews 6000 objects")
	}
	ctx := context.Background()
	e, c := privilegedEngine(t)

	const n, chunk, namespaces = 6000, 100, 30
	reader := &pagedPods{n: n, namespaces: namespaces, heapAt: map[int]uint64{5: 0, n/chunk - 1: 0}}
	a := &Auditor{
		o:      Options{Namespace: "daaas-guard", ChunkSize: chunk, MaxViolations: 20, MaxReportResults: 50}.withDefaults(),
		engine: e, exemptions: &admission.Exemptions{Own: "daaas-guard"},
		reader: reader, metrics: newMetrics(prometheus.NewRegistry()), log: logr.Discard(),
	}
	p := &pass{constraints: map[string]*constraintAcc{}, reports: map[string]*reportAcc{}}
	p.constraints[constraintKey("PSPPrivilegedContainer", "no-privileged")] = &constraintAcc{obj: c, action: "deny",
		violations: newCapped(a.o.MaxViolations, compareViolations)}
	k := auditKind{gvk: schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, resource: "pods", namespaced: true, named: true}
	if err := a.auditKind(ctx, p, k, map[string]*corev1.Namespace{}, nil); err != nil {
		t.Fatal(err)
	}

	if reader.maxLimit != chunk || reader.pages != n/chunk {
		t.Errorf("list calls: %d with limit up to %d; want %d of %d", reader.pages, reader.maxLimit, n/chunk, chunk)
	}
	acc := p.constraints[constraintKey("PSPPrivilegedContainer", "no-privileged")]
	if p.summary.Objects != n || acc.violations.total != n || len(acc.violations.sorted()) != 20 {
		t.Errorf("objects %d, violations %d, kept %d; want %d, %d, 20", p.summary.Objects, acc.violations.total, len(acc.violations.sorted()), n, n)
	}
	if len(p.reports) != namespaces || p.reports["ns-000"].fail != n/namespaces || len(p.reports["ns-000"].findings.sorted()) != 50 {
		t.Errorf("reports: %d namespaces, ns-000 fail %d", len(p.reports), p.reports["ns-000"].fail)
	}
	early, late := reader.heapAt[5], reader.heapAt[n/chunk-1]
	growth := int64(late) - int64(early)
	t.Logf("live heap after 5 pages %.1f MB, after %d pages %.1f MB (growth %.1f MB; the pods themselves are about %.0f MB)",
		float64(early)/1e6, n/chunk-1, float64(late)/1e6, float64(growth)/1e6, float64(n)*2e3/1e6)
	// Keeping the objects would add about 12 MB (more as Go values); the
	// capped results (20 + 30*50 findings) are well under 2 MB.
	if growth > 4e6 {
		t.Errorf("live heap grew by %.1f MB over the listing: memory is not bounded by the page size", float64(growth)/1e6)
	}
}

// The reports are what pkg/evidence reads as audit evidence: each result
// is tied to its template (by the policy, the constraint kind), so it
// bears on the template's controls, with the resource as its subject.
func TestReports_ReadAsAuditEvidence(t *testing.T) {
	e, c := privilegedEngine(t)
	a := &Auditor{o: Options{Namespace: "daaas-guard"}.withDefaults(), engine: e}
	p := &pass{constraints: map[string]*constraintAcc{}, reports: map[string]*reportAcc{}}
	p.constraints[constraintKey(c.GetKind(), c.GetName())] = &constraintAcc{obj: c, violations: newCapped(20, compareViolations)}
	pod := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]interface{}{"namespace": "team-a", "name": "web"},
		"spec": map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "main", "image": "app:1",
			"securityContext": map[string]interface{}{"privileged": true}}}}}}
	if err := a.review(context.Background(), p, pod, nil, nil); err != nil {
		t.Fatal(err)
	}
	sum, results := p.reports["team-a"].build(func(kind string) templateMeta { return metaOf(e.Template(kind)) }, metav1.Timestamp{Seconds: 1700000000}, false)
	rep := &policyreport.PolicyReport{Summary: sum, Results: results}
	got, latest := evidence.AuditEvidence([]evidence.Report{{Report: rep, Origin: "cluster"}}, e.Templates())
	if latest == nil || latest.Unix() != 1700000000 {
		t.Errorf("latest = %v", latest)
	}
	if len(got) != 2 { // the result and the audit-run piece
		t.Fatalf("evidence: %+v", got)
	}
	ev := got[0]
	if ev.Source != compliance.SourceAudit || ev.ID != "PSPPrivilegedContainer" || ev.Result != compliance.ResultFail ||
		ev.Severity != compliance.ParseSeverity("critical") || ev.Labels[evidence.AnnotationControls] != "AC-6,CM-7,SC-39" ||
		len(ev.Subjects) != 1 || ev.Subjects[0].Name != "web" || ev.Subjects[0].Namespace != "team-a" {
		t.Errorf("evidence: %+v", ev)
	}
}
