package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/localenv"
)

// stepReport writes the cluster's ITSG-33 compliance report to the output
// directory, as an auditor would produce it with guardctl.
func stepReport(ctx context.Context, out *output, s *stack, o options) error {
	out.step("The ITSG-33 compliance report for this cluster")
	dir, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	base := filepath.Join(dir, "compliance-report")
	for _, format := range []string{"json", "html"} {
		text, code, err := runGuardctl(o, "report", "--kubeconfig", s.env.Kubeconfig, "--cluster-name", "daaas-demo",
			"--format", format, "--output", base+"."+format)
		if err != nil {
			return err
		}
		if code != 0 {
			out.quote(text)
			return out.fail("guardctl report --format %s exited %d", format, code)
		}
	}
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return err
	}
	var r compliance.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", base+".json", err)
	}
	st := r.Summary.ByStatus
	out.say("%d controls: %d satisfied, %d partially, %d not satisfied, %d not assessed (evidence: %d pass, %d fail, %d warn)",
		r.Summary.Controls, st.Satisfied, st.Partially, st.NotSatisfied, st.NotAssessed,
		r.Summary.Evidence.Pass, r.Summary.Evidence.Fail, r.Summary.Evidence.Warn)
	var lines []string
	for _, c := range r.Controls {
		if c.Status == compliance.StatusNotAssessed {
			continue
		}
		lines = append(lines, fmt.Sprintf("%-6s %-20s %s", c.ID, c.Status, c.Title))
	}
	out.quote(strings.Join(lines, "\n"))
	for _, src := range r.Sources {
		if src.Source == compliance.SourceImageScan && src.Origin != "" {
			// RA-5 and SI-2 rest on the scanner's verdicts: say what they cover.
			out.say("image scans: %s; database %s", src.Detail, src.DBVersion)
		}
	}
	if r.Summary.Controls == 0 || st.Satisfied+st.Partially+st.NotSatisfied == 0 {
		return out.fail("the report assessed no control")
	}
	out.ok("written to %s.html (for auditors; open it in a browser) and %s.json", rel(base), rel(base))

	// The scanner keeps the summary in the cluster, on a schedule.
	cr := &guardv1alpha1.ComplianceReport{ObjectMeta: metav1.ObjectMeta{Name: "cluster"},
		Spec: guardv1alpha1.ComplianceReportSpec{ClusterName: "daaas-demo"}}
	if err := s.env.Client.Create(ctx, cr); err != nil {
		return err
	}
	err = localenv.WaitFor(ctx, time.Minute, func() error {
		if err := s.env.Client.Get(ctx, client.ObjectKeyFromObject(cr), cr); err != nil {
			return err
		}
		if cr.Status.GeneratedAt == nil {
			return fmt.Errorf("ComplianceReport %s has no assessment yet", cr.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cs := cr.Status.Summary
	out.say("ComplianceReport %s, refreshed by the scanner (schedule %q): %d satisfied, %d partially, %d not satisfied, %d not assessed",
		cr.Name, cr.Spec.Schedule, cs.Satisfied, cs.Partially, cs.NotSatisfied, cs.NotAssessed)
	out.ok("kubectl get compliancereport %s -o yaml shows it between reports", cr.Name)
	return nil
}
