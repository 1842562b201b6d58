// Command guardctl is the command line for policy authors and auditors:
// it runs gator-format policy test suites, evaluates manifests offline
// against a policy library, and shows what the mutating webhook does to
// pods.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/output"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/suite"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error // printed when not nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "guardctl: %v\n", ee.err)
		}
		return ee.code
	}
	// Flag and argument errors: the input is unusable.
	fmt.Fprintf(stderr, "guardctl: %v\n", err)
	return 2
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "guardctl",
		Short:         "Test and evaluate Gatekeeper policies offline; report ITSG-33 compliance",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newTestCmd(stdout, stderr), newEvalCmd(stdin, stdout), newBenchCmd(stdin, stdout),
		newMutateCmd(stdin, stdout, stderr), newReportCmd(stdout, stderr), newVersionCmd(stdout))
	return root
}

func newTestCmd(stdout, stderr io.Writer) *cobra.Command {
	var opts suite.Options
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test PATH...",
		Short: "Run gator-format policy test suites",
		Long: `Runs every test suite (test.gatekeeper.sh/v1alpha1 Suite) found under the
paths, directories recursively, with the verdicts gator verify gives.

Exit status: 0 when every case passes, 1 when an assertion fails, 2 when
input is unusable (unreadable or malformed files, a template that does not
compile, a constraint that breaks its schema, no suite found).`,
		Example: `  guardctl test policies/
  guardctl test policies/ --run 'privileged//disallowed'
  guardctl test -o junit policies/ > report.xml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.CheckFormat(format); err != nil {
				return &exitError{code: 2, err: err}
			}
			runner, err := suite.NewRunner(opts)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			rep, err := runner.Run(cmd.Context(), args)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if format != "text" {
				for _, s := range rep.Suites {
					for _, w := range s.Warnings {
						fmt.Fprintf(stderr, "warning: %s\n", w)
					}
				}
			}
			if err := writeSuiteReport(stdout, format, rep, verbose); err != nil {
				return &exitError{code: 2, err: err}
			}
			if code := rep.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "output", "o", "text", "output format: text, json, junit or tap")
	f.StringVarP(&opts.Run, "run", "r", "", `run only tests and cases whose names match: "REGEX" or "TEST//CASE"`)
	f.IntVar(&opts.Parallel, "parallel", 0, "suites to run at once (default: one per CPU)")
	f.BoolVar(&opts.Strict, "strict", false, "treat unknown fields in suites as errors")
	f.BoolVar(&opts.Trace, "trace", false, "record Rego evaluation traces (JSON output)")
	f.BoolVarP(&verbose, "verbose", "v", false, "list passing cases too")
	return cmd
}

func writeSuiteReport(w io.Writer, format string, rep *suite.Report, verbose bool) error {
	switch format {
	case "json":
		return output.SuiteJSON(w, rep)
	case "junit":
		return output.WriteJUnit(w, "guardctl test", output.SuiteCases(rep))
	case "tap":
		return output.WriteTAP(w, output.SuiteCases(rep))
	default:
		return output.SuiteText(w, rep, verbose)
	}
}

func newEvalCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var policyDirs, dataFiles []string
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "eval -p POLICYDIR [--data FILE...] FILE...|-",
		Short: "Evaluate manifests against a policy library",
		Long: `Reviews Kubernetes manifests (multi-document YAML, JSON, v1 Lists, kustomize
output on standard input with "-") against the ConstraintTemplates and
constraints found under the policy paths. The manifests and the --data files
are also the referential data (data.inventory) that policies can look up.

Exit status: 0 when nothing is denied, 1 when an object is denied, 2 when
input is unusable.`,
		Example: `  guardctl eval -p policies/ deploy/
  kustomize build overlays/prod | guardctl eval -p policies/ -
  guardctl eval -p policies/ --data namespaces.yaml -o json pod.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.CheckFormat(format); err != nil {
				return &exitError{code: 2, err: err}
			}
			if len(policyDirs) == 0 {
				return &exitError{code: 2, err: errors.New("name the policies with -p POLICYDIR")}
			}
			ctx := cmd.Context()
			engine, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointGator))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			pols, err := eval.LoadPolicies(ctx, engine, policyDirs)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			data, objs, err := readInputs(dataFiles, args, stdin)
			if err != nil {
				return err
			}
			reviewed, err := eval.Review(ctx, engine, pols, data, objs)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			rep := &eval.Report{Policies: pols, Objects: reviewed}
			var werr error
			switch format {
			case "json":
				werr = output.EvalJSON(stdout, rep)
			case "junit":
				werr = output.WriteJUnit(stdout, "guardctl eval", output.EvalCases(rep))
			case "tap":
				werr = output.WriteTAP(stdout, output.EvalCases(rep))
			default:
				werr = output.EvalText(stdout, rep, verbose)
			}
			if werr != nil {
				return &exitError{code: 2, err: werr}
			}
			if code := rep.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&policyDirs, "policy", "p", nil, "file or directory with ConstraintTemplates and constraints (repeatable)")
	f.StringArrayVar(&dataFiles, "data", nil, "file or directory of objects to add to data.inventory (repeatable)")
	f.StringVarP(&format, "output", "o", "text", "output format: text, json, junit or tap")
	f.BoolVarP(&verbose, "verbose", "v", false, "list objects without violations too")
	return cmd
}

func newBenchCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var policyDirs, dataFiles []string
	var iterations int
	cmd := &cobra.Command{
		Use:   "bench -p POLICYDIR [--data FILE...] FILE...|-",
		Short: "Show what each template costs per admission review",
		Long: `Reviews the objects as admission requests, once per template with only that
template's constraints loaded, and prints each template's cost per review,
slowest first (the fastest of 5 timed rounds), after subtracting the cost of
a review that does no policy work (decoding, starting the evaluator).
Use it to find the templates that make reviews slow.`,
		Example: `  guardctl bench -p policies/profiles/daaas --data cluster.yaml pipeline-pod.yaml`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(policyDirs) == 0 {
				return &exitError{code: 2, err: errors.New("name the policies with -p POLICYDIR")}
			}
			set, err := eval.ReadPolicies(policyDirs)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			data, objs, err := readInputs(dataFiles, args, stdin)
			if err != nil {
				return err
			}
			costs, baseline, err := eval.Costs(cmd.Context(), set, data, objs, iterations)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return output.CostText(stdout, costs, baseline, len(objs))
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&policyDirs, "policy", "p", nil, "file or directory with ConstraintTemplates and constraints (repeatable)")
	f.StringArrayVar(&dataFiles, "data", nil, "file or directory of objects to add to data.inventory (repeatable)")
	f.IntVar(&iterations, "iterations", 20, "reviews of each object per template and round")
	return cmd
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the policy engine's versions",
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(stdout, "guardctl %s\n", version)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, m := range bi.Deps {
					switch m.Path {
					case "github.com/open-policy-agent/opa", "github.com/open-policy-agent/frameworks/constraint":
						fmt.Fprintf(stdout, "%s %s\n", m.Path, m.Version)
					}
				}
			}
			return nil
		},
	}
}

// readInputs reads the referential data files and the objects to review;
// either failing is unusable input (exit 2).
func readInputs(dataFiles, objFiles []string, stdin io.Reader) (data, objs []*manifest.Document, err error) {
	if data, err = eval.ReadManifests(dataFiles, stdin); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	if objs, err = eval.ReadManifests(objFiles, stdin); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return data, objs, nil
}
