package audit

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/target"
)

// BenchmarkAuditPods audits 1000 violating pods in pages of 100. The
// baseline lists the same pages and only reviews each pod with the
// engine; the audit adds what a pass does around the reviews (exclusions,
// expansion, capped status and report results), so the ratio is the
// audit's own cost.
func BenchmarkAuditPods(b *testing.B) {
	e, c := privilegedEngine(b)
	ctx := context.Background()
	const n, chunk = 1000, 100
	k := auditKind{gvk: schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, resource: "pods", namespaced: true, named: true}

	b.Run("review-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			reader := &pagedPods{n: n, namespaces: 30}
			cont := ""
			for {
				list := &unstructured.UnstructuredList{}
				if err := reader.List(ctx, list, client.Limit(chunk), client.Continue(cont)); err != nil {
					b.Fatal(err)
				}
				for i := range list.Items {
					if _, err := e.Review(ctx, &target.Object{Object: &list.Items[i], Source: match.SourceOriginal},
						policy.AtEnforcementPoint(policy.EnforcementPointAudit)); err != nil {
						b.Fatal(err)
					}
				}
				if cont = list.GetContinue(); cont == "" {
					break
				}
			}
		}
	})
	b.Run("audit", func(b *testing.B) {
		b.ReportAllocs()
		a := &Auditor{
			o:      Options{Namespace: "daaas-guard", ChunkSize: chunk}.withDefaults(),
			engine: e, exemptions: &admission.Exemptions{Own: "daaas-guard"},
			metrics: newMetrics(prometheus.NewRegistry()), log: logr.Discard(),
		}
		for b.Loop() {
			a.reader = &pagedPods{n: n, namespaces: 30}
			p := &pass{constraints: map[string]*constraintAcc{}, reports: map[string]*reportAcc{}}
			p.constraints[constraintKey(c.GetKind(), c.GetName())] = &constraintAcc{obj: c, violations: newCapped(a.o.MaxViolations, compareViolations)}
			if err := a.auditKind(ctx, p, k, map[string]*corev1.Namespace{}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
