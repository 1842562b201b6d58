package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/mutate"
)

func newMutateCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var configFile, namespace, format string
	cmd := &cobra.Command{
		Use:   "mutate [--config FILE] FILE...|-",
		Short: "Show pods as daaas-guard's mutating webhook would create them",
		Long: `Runs the mutating webhook's mutators (GPU tolerations, Vault agent
injection) on the Pods in the manifests, offline, and prints the manifests
with the Pods mutated (-o yaml) or each Pod's JSON patch, one operation per
line with long values shortened (-o patch). Other objects pass through
unchanged, so the output can be reviewed with guardctl eval.

Exit status: 0 when every Pod was mutated or left alone, 1 when the webhook
would refuse a Pod (the reason is printed), 2 when input is unusable.`,
		Example: `  guardctl mutate pod.yaml
  guardctl mutate -o patch --config mutationconfig.yaml pipeline-pod.yaml
  guardctl mutate pod.yaml | guardctl eval -p policies/profiles/daaas -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "yaml" && format != "patch" {
				return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: use yaml or patch", format)}
			}
			cfg, err := mutationConfig(configFile)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			docs, err := eval.ReadManifests(args, stdin)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			refused := 0
			for i, d := range docs {
				raw, err := d.Object.MarshalJSON()
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("%s: %w", d.Ref(), err)}
				}
				res := &mutate.Result{Pod: raw}
				if d.Object.GetAPIVersion() == "v1" && d.Object.GetKind() == "Pod" {
					ns := d.Object.GetNamespace()
					if ns == "" {
						ns = namespace
					}
					res, err = mutate.MutateJSON(raw, ns, cfg)
					if msg, denied := mutate.IsDenial(err); denied {
						fmt.Fprintf(stderr, "%s: refused: %s\n", d.Pos(), msg)
						refused++
						continue
					}
					if err != nil {
						return &exitError{code: 2, err: fmt.Errorf("%s: %w", d.Ref(), err)}
					}
					for _, w := range res.Warnings {
						fmt.Fprintf(stderr, "%s: warning: %s\n", d.Pos(), w)
					}
				}
				if err := writeMutated(stdout, format, i, d.Ref(), res); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			if refused > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "MutationConfig manifest (default: the built-in defaults)")
	f.StringVarP(&namespace, "namespace", "n", "default", "namespace of Pods that name none")
	f.StringVarP(&format, "output", "o", "yaml", "output format: yaml or patch")
	return cmd
}

func mutationConfig(path string) (*mutate.Config, error) {
	if path == "" {
		return mutate.DefaultConfig(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	obj := &v1alpha1.MutationConfig{}
	strict, err := sigsjson.UnmarshalStrict(raw, obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", path, errors.Join(strict...))
	}
	if obj.Kind != "MutationConfig" {
		return nil, fmt.Errorf("%s: not a MutationConfig (kind %q)", path, obj.Kind)
	}
	cfg, err := mutate.NewConfig(&obj.Spec)
	if err != nil {
		return nil, fmt.Errorf("%s: MutationConfig %q: %w", path, obj.Name, err)
	}
	return cfg, nil
}

// writeMutated prints one object: as a YAML document, or, for -o patch,
// its patch (nothing for objects left alone).
func writeMutated(w io.Writer, format string, i int, ref string, res *mutate.Result) error {
	if format == "patch" {
		if len(res.Patch) == 0 {
			return nil
		}
		fmt.Fprintf(w, "# %s: %d operations (%s)\n", ref, len(res.Patch), strings.Join(res.Mutators, ", "))
		for _, op := range res.Patch {
			v, err := json.Marshal(op.Value)
			if err != nil {
				return err
			}
			if s := string(v); len(s) > 100 {
				v = append([]byte(s[:97]), "..."...)
			}
			fmt.Fprintf(w, "%s %s %s\n", op.Op, op.Path, v)
		}
		return nil
	}
	y, err := yaml.JSONToYAML(res.Pod)
	if err != nil {
		return err
	}
	if i > 0 {
		fmt.Fprintln(w, "---")
	}
	_, err = w.Write(y)
	return err
}
