package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/localenv"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// legacyNotebook is a notebook pod that ran before the suite was
// installed, so admission never saw it; the audit finds it.
const legacyNotebook = "legacy-analysis-0"

// auditInterval is short for the demo; a cluster audits every few minutes.
const auditInterval = 15 * time.Second

// createLegacyNotebook creates, before the webhook exists, the profile's
// notebook that runs as root.
func createLegacyNotebook(ctx context.Context, c client.Client, workloads string) error {
	pod, err := readObject(filepath.Join(workloads, "denied", "notebook-runs-as-root.yaml"), "Pod")
	if err != nil {
		return err
	}
	pod.SetName(legacyNotebook)
	return c.Create(ctx, pod)
}

// startScanner runs the scanner under its service account: the audit and
// image scans over the demo's offline vulnerability database; no
// kube-bench or kube-hunter Jobs (there are no nodes to run them on).
func startScanner(ctx context.Context, env *localenv.Env, o options, dbDir string) (*localenv.Process, error) {
	kubeconfig, err := env.ServiceAccountKubeconfig(ctx, localenv.Namespace, "daaas-guard-scanner")
	if err != nil {
		return nil, err
	}
	health, err := localenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := env.StartProcess("scanner", filepath.Join(o.bin, "scanner"), kubeconfig, health,
		"--namespace="+localenv.Namespace, "--leader-elect=false", "--health-addr="+health, "--metrics-addr=0",
		"--audit-interval="+auditInterval.String(), "--kube-bench-interval=0", "--kube-hunter-interval=0",
		"--db-dir="+dbDir)
	if err != nil {
		return nil, err
	}
	return p, p.WaitReady(ctx, time.Minute)
}

var policyReportGVK = schema.GroupVersionKind{Group: "wgpolicyk8s.io", Version: "v1alpha2", Kind: "PolicyReport"}

func stepAudit(ctx context.Context, out *output, s *stack, _ string) error {
	out.step("The audit finds a notebook that was running before the suite was installed")
	out.say("pod alice/%s runs as root; admission never saw it. The scanner's audit reviews what exists:", legacyNotebook)
	var report *policyreport.PolicyReport
	err := localenv.WaitFor(ctx, 2*time.Minute, func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(policyReportGVK)
		if err := s.env.Client.Get(ctx, client.ObjectKey{Namespace: "alice", Name: "daaas-guard-audit"}, u); err != nil {
			return err
		}
		r, err := policyreport.FromUnstructured(u)
		if err != nil {
			return localenv.Permanent(err)
		}
		report = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the audit's PolicyReport alice/daaas-guard-audit: %w", err)
	}
	var lines []string
	var first *policyreport.PolicyReportResult
	for i, r := range report.Results {
		for _, res := range r.Resources {
			if res.Name == legacyNotebook && r.Result == policyreport.ResultFail {
				lines = append(lines, fmt.Sprintf("%s %s/%s (%s): %s", r.Result, r.Policy, r.Rule, r.Severity, r.Message))
				if first == nil {
					first = &report.Results[i]
				}
			}
		}
	}
	out.say("PolicyReport alice/daaas-guard-audit (wg-policy, as Policy Reporter shows it): %d failures, %d warnings in the namespace; against the pod:",
		report.Summary.Fail, report.Summary.Warn)
	out.quote(strings.Join(lines, "\n"))
	if first == nil {
		return out.fail("the audit reported nothing against %s", legacyNotebook)
	}
	c := &unstructured.Unstructured{}
	c.SetGroupVersionKind(schema.GroupVersionKind{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Kind: first.Policy})
	if err := s.env.Client.Get(ctx, client.ObjectKey{Name: first.Rule}, c); err != nil {
		return err
	}
	total, _, _ := unstructured.NestedInt64(c.Object, "status", "totalViolations")
	at, _, _ := unstructured.NestedString(c.Object, "status", "auditTimestamp")
	out.say("constraint %s %s, status: totalViolations %d, auditTimestamp %s", first.Policy, first.Rule, total, at)
	if total == 0 {
		return out.fail("constraint %s %s has no audit violations in its status", first.Policy, first.Rule)
	}
	out.ok("found by the audit, in the constraints' status and a PolicyReport")
	return nil
}
