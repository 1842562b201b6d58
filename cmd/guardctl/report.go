package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/compliance/render"
	"github.com/statcan/daaas-guard/pkg/evidence"
)

// reportOptions are guardctl report's flags.
type reportOptions struct {
	files           map[evidence.Kind]*[]string
	fromCluster     bool
	kubeconfig      string
	context         string
	webhookSelector string
	catalog         string
	mapping         string
	previous        []string
	format          string
	output          string
	clusterName     string
	generatedAt     string
	failOn          string
	evidence        evidence.Options
}

func newReportCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &reportOptions{files: map[evidence.Kind]*[]string{}, evidence: evidence.DefaultOptions(time.Time{})}
	cmd := &cobra.Command{
		Use:   "report [--from-files PATH]... [--kubeconfig FILE] [--format json|markdown|html|oscal] [--output FILE]",
		Short: "Report ITSG-33 compliance from cluster evidence",
		Long: `Maps evidence to ITSG-33 controls and reports each control as satisfied,
partially satisfied, not satisfied or not assessed, with the evidence behind
it. Evidence comes from files, from a cluster, or both:

  constraint templates and constraints   what admission enforces
  wg-policy PolicyReports                what the audit found
  webhook configurations                 failurePolicy, timeout, exemptions
  Trivy JSON reports (+ DB metadata)     image-scan verdicts and coverage
  the scanner's ImageScans (cluster)     image-scan verdicts and coverage
  kube-bench and kube-hunter JSON        CIS checks and penetration tests
  the scanner's NodeBenchmarks and       the same, from its summaries (failing
  PenetrationTest (cluster)              checks and findings listed up to a cap)

--from-files recognises each file by its content (directories are read
recursively; a kustomization is rendered); the flags per kind insist on
their kind. With --kubeconfig (or --from-cluster) the templates,
constraints, webhook configurations, PolicyReports, ImageScans, pods'
images, NodeBenchmarks, the ClusterBenchmark and the PenetrationTest are
read from the cluster, and the nodes' names: a node without a current
NodeBenchmark is a finding. The credentials need get and list on them (a
kind not installed or not permitted is left out with a warning).
A NodeBenchmark or PenetrationTest older than --max-benchmark-age or
--max-pentest-age (by when the tool ran) is reported as stale in place of
what it says.

Formats: json (the full report; give earlier ones to --previous for the
trend), markdown, html (one self-contained page for auditors) and oscal
(OSCAL assessment results). The catalogue of controls and the mapping from
evidence to controls are YAML files shipped with guardctl; --catalog and
--mapping replace them.

Exit status: 0 when the report is written, 1 when --fail-on is given and a
control is at or below that status, 2 when input is unusable.`,
		Example: `  guardctl report --from-files policies/profiles/daaas --from-files audit/ --format html --output out/report.html
  guardctl report --kubeconfig ~/.kube/config --kube-bench kube-bench.json --format markdown
  guardctl report --from-files evidence/ --previous last-week.json --format json --output this-week.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := runReport(cmd, o, stdout, stderr); err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return &exitError{code: 2, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	for _, k := range []struct {
		kind  evidence.Kind
		flag  string
		usage string
	}{
		{evidence.KindAuto, "from-files", "file or directory of evidence of any kind, recognised by content (repeatable)"},
		{evidence.KindPolicies, "policies", "ConstraintTemplates and constraints: files, directories or kustomizations (repeatable)"},
		{evidence.KindPolicyReports, "policy-reports", "wg-policy PolicyReports and ClusterPolicyReports, YAML or JSON (repeatable)"},
		{evidence.KindWebhooks, "webhook-configs", "Validating- and MutatingWebhookConfigurations (repeatable)"},
		{evidence.KindTrivy, "trivy", "Trivy JSON image reports (repeatable)"},
		{evidence.KindTrivyDB, "trivy-db", "the metadata.json of the Trivy DB the scans used"},
		{evidence.KindKubeBench, "kube-bench", "kube-bench --json output (repeatable)"},
		{evidence.KindKubeHunter, "kube-hunter", "kube-hunter --report json output (repeatable)"},
	} {
		list := &[]string{}
		o.files[k.kind] = list
		f.StringArrayVar(list, k.flag, nil, k.usage)
	}
	f.BoolVar(&o.fromCluster, "from-cluster", false, "read evidence from the cluster of the current kubeconfig context")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to read evidence from (implies --from-cluster)")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use")
	f.StringVar(&o.webhookSelector, "webhook-selector", "app.kubernetes.io/part-of=daaas-guard", "label selector of the cluster's webhook configurations to assess")
	f.StringVar(&o.catalog, "catalog", "", "control catalogue (YAML, kind ControlCatalog) replacing the shipped one")
	f.StringVar(&o.mapping, "mapping", "", "evidence-to-control mapping (YAML, kind ControlMapping) replacing the shipped one")
	f.StringArrayVar(&o.previous, "previous", nil, "earlier JSON report, for the trend (repeatable)")
	f.StringVar(&o.format, "format", render.JSON, "output format: "+strings.Join(render.Formats, ", "))
	f.StringVar(&o.output, "output", "", "file to write (default: standard output)")
	f.StringVar(&o.clusterName, "cluster-name", "", "cluster name in the report (default: the kubeconfig context's cluster)")
	f.StringVar(&o.failOn, "fail-on", "", "exit 1 when a control is at or below this status: not-satisfied or partially-satisfied")
	f.StringVar(&o.evidence.WebhookTLSMinVersion, "webhook-tls-min-version", o.evidence.WebhookTLSMinVersion, "lowest TLS version the admission webhook serves (daaas-guard's webhook: 1.2); empty leaves TLS out")
	f.StringSliceVar(&o.evidence.SystemNamespaces, "system-namespace", o.evidence.SystemNamespaces, "namespaces that may be exempt from admission without a finding")
	f.DurationVar(&o.evidence.MaxScanAge, "max-scan-age", o.evidence.MaxScanAge, "image scans older than this are reported as stale (0: never)")
	f.DurationVar(&o.evidence.MaxDBAge, "max-db-age", o.evidence.MaxDBAge, "a vulnerability DB older than this is reported as stale (0: never)")
	f.DurationVar(&o.evidence.MaxBenchmarkAge, "max-benchmark-age", o.evidence.MaxBenchmarkAge, "a NodeBenchmark whose kube-bench scan ran longer ago than this is reported as stale and assesses nothing (0: never; three of the scanner's default --kube-bench-interval)")
	f.DurationVar(&o.evidence.MaxPenTestAge, "max-pentest-age", o.evidence.MaxPenTestAge, "a PenetrationTest whose kube-hunter run ran longer ago than this is reported as stale and assesses nothing (0: never; three of the scanner's default --kube-hunter-interval)")
	f.StringVar(&o.generatedAt, "generated-at", "", "report time, RFC 3339 (default: now); for reproducible reports")
	return cmd
}

func runReport(cmd *cobra.Command, o *reportOptions, stdout, stderr io.Writer) error {
	if err := render.CheckFormat(o.format); err != nil {
		return err
	}
	switch o.failOn {
	case "", string(compliance.StatusNotSatisfied), string(compliance.StatusPartially):
	default:
		return fmt.Errorf("--fail-on: %q is not not-satisfied or partially-satisfied", o.failOn)
	}
	now := time.Now()
	if o.generatedAt != "" {
		t, err := time.Parse(time.RFC3339, o.generatedAt)
		if err != nil {
			return fmt.Errorf("--generated-at: %v", err)
		}
		now = t
	}
	o.evidence.Now = now
	model, err := compliance.LoadModel(o.catalog, o.mapping)
	if err != nil {
		return err
	}
	var previous []*compliance.Report
	for _, p := range o.previous {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		r, err := compliance.ReadReport(p, data)
		if err != nil {
			return err
		}
		previous = append(previous, r)
	}

	in := evidence.NewInputs()
	given := false
	for _, kind := range []evidence.Kind{evidence.KindAuto, evidence.KindPolicies, evidence.KindPolicyReports, evidence.KindWebhooks,
		evidence.KindTrivy, evidence.KindTrivyDB, evidence.KindKubeBench, evidence.KindKubeHunter} {
		paths := *o.files[kind]
		if len(paths) == 0 {
			continue
		}
		given = true
		got, err := evidence.ReadFiles(paths, kind)
		if err != nil {
			return err
		}
		if err := in.Merge(got); err != nil {
			return err
		}
	}
	cluster := o.clusterName
	if o.fromCluster || o.kubeconfig != "" || o.context != "" {
		given = true
		sel, err := labels.Parse(o.webhookSelector)
		if err != nil {
			return fmt.Errorf("--webhook-selector: %v", err)
		}
		c, name, err := evidence.NewClient(o.kubeconfig, o.context)
		if err != nil {
			return err
		}
		got, err := evidence.ReadCluster(cmd.Context(), c, evidence.DefaultClusterSources(evidence.ClusterOptions{WebhookSelector: sel}))
		if err != nil {
			return err
		}
		if err := in.Merge(got); err != nil {
			return err
		}
		if cluster == "" {
			cluster = name
		}
	}
	if !given {
		return errors.New("no evidence given: use --from-files, the flags per kind, or --kubeconfig (see guardctl report --help)")
	}
	if cluster == "" {
		cluster = "unnamed"
	}
	in.SortInputs()
	ev, sources, warnings := in.Evidence(o.evidence)
	report := compliance.Build(model, ev, compliance.Meta{
		GeneratedAt: now, Cluster: cluster, Generator: "guardctl " + version, Sources: sources, Warnings: warnings,
	}, previous...)

	var buf bytes.Buffer
	if err := render.Write(&buf, o.format, report); err != nil {
		return err
	}
	for _, w := range report.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if o.output == "" {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return err
		}
	} else {
		if dir := filepath.Dir(o.output); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(o.output, buf.Bytes(), 0o644); err != nil {
			return err
		}
		s := report.Summary.ByStatus
		fmt.Fprintf(stderr, "wrote %s (%s): %d controls, %d satisfied, %d partially satisfied, %d not satisfied, %d not assessed\n",
			o.output, o.format, report.Summary.Controls, s.Satisfied, s.Partially, s.NotSatisfied, s.NotAssessed)
	}
	if o.failOn != "" {
		for _, c := range report.Controls {
			if c.Status == compliance.StatusNotSatisfied || (o.failOn == string(compliance.StatusPartially) && c.Status == compliance.StatusPartially) {
				return &exitError{code: 1, err: fmt.Errorf("control %s is %s (--fail-on %s)", c.ID, c.Status.Label(), o.failOn)}
			}
		}
	}
	return nil
}
