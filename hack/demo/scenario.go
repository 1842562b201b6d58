package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/webhook"
)

// output marks what a step printed; colours only on a terminal.
type output struct {
	bold, dim, green, red, off string
	n                          int
}

func newOutput() *output {
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return &output{bold: "\033[1m", dim: "\033[2m", green: "\033[32m", red: "\033[31m", off: "\033[0m"}
	}
	return &output{}
}

func (o *output) step(title string) {
	o.n++
	fmt.Printf("\n%s%d. %s%s\n", o.bold, o.n, title, o.off)
}

func (o *output) say(f string, a ...any) {
	fmt.Printf("%s   %s%s\n", o.dim, fmt.Sprintf(f, a...), o.off)
}

// quote prints text indented, as the API server or a tool returned it.
func (o *output) quote(text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Printf("     %s\n", line)
	}
}

func (o *output) ok(f string, a ...any) {
	fmt.Printf("   %s✓ %s%s\n", o.green, fmt.Sprintf(f, a...), o.off)
}

// errUnexpected stops the demo after a step did not behave as expected.
var errUnexpected = errors.New("a step did not behave as expected")

func (o *output) fail(f string, a ...any) error {
	fmt.Printf("   %s✗ %s%s\n", o.red, fmt.Sprintf(f, a...), o.off)
	return errUnexpected
}

// runDemo plays the scenario and cleans up every process it started, also
// on Ctrl-C.
func runDemo(o options) (err error) {
	ctx, cancel := signalContext()
	defer cancel()
	out := newOutput()
	began := time.Now()
	// Logs and kubeconfigs stay in out/demo after the run, for a look.
	work, err := filepath.Abs(filepath.Join(o.out, "demo"))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}

	fmt.Printf("%sdaaas-guard demo%s: the suite on a local kube-apiserver and etcd, as a cluster runs it.\n", out.bold, out.off)
	out.say("Every step goes through the real API server, which calls our webhook over TLS; each outcome is checked.")

	out.step("The platform's policy library passes its own test suites (guardctl test, offline)")
	text, code, err := runGuardctl(o, "test", "policies/")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	out.quote(strings.Join(lines[max(0, len(lines)-2):], "\n"))
	if code != 0 {
		out.quote(text)
		return out.fail("guardctl test exited %d", code)
	}
	out.ok("every suite passes")

	out.step("Start the local control plane and the suite")
	s, err := start(ctx, o, work, out.say)
	defer func() {
		if stopErr := s.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if err == nil {
			fmt.Printf("\n%sAll steps behaved as expected%s (%s); every process the demo started is stopped.\n",
				out.bold, out.off, time.Since(began).Round(time.Second))
		}
	}()
	if err != nil {
		return err
	}
	out.ok("the webhook enforces the platform profile")

	profile := filepath.Join(o.root, "policies", "profiles", "daaas", "workloads")
	steps := []func(context.Context, *output, *stack, string) error{
		stepCompliantNotebook,
		stepPrivilegedNotebook,
		stepGPUPipeline,
		stepVaultPipeline,
		stepImageGate,
		stepAudit,
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		if err := step(ctx, out, s, profile); err != nil {
			return err
		}
	}
	return stepReport(ctx, out, s, o)
}

func stepCompliantNotebook(ctx context.Context, out *output, s *stack, workloads string) error {
	out.step("A data scientist's Jupyter notebook pod is admitted")
	pod, err := readObject(filepath.Join(workloads, "admitted", "notebook.yaml"), "Pod")
	if err != nil {
		return err
	}
	out.say("alice.smith@statcan.gc.ca creates pod %s/%s (the Kubeflow notebook fixture)", pod.GetNamespace(), pod.GetName())
	warnings := &warningCollector{}
	c, err := withWarnings(s, warnings)
	if err != nil {
		return err
	}
	if err := c.Create(ctx, pod); err != nil {
		out.quote(err.Error())
		return out.fail("the compliant notebook was denied")
	}
	if len(warnings.list) > 0 {
		out.say("admitted with advice (warn constraints):")
		out.quote(strings.Join(warnings.list, "\n"))
	}
	out.ok("admitted")
	return nil
}

func stepPrivilegedNotebook(ctx context.Context, out *output, s *stack, workloads string) error {
	out.step("A privileged notebook pod is denied, with messages the data scientist can act on")
	pod, err := readObject(filepath.Join(workloads, "denied", "notebook-privileged.yaml"), "Pod")
	if err != nil {
		return err
	}
	pod.SetName("analysis-privileged")
	err = s.alice.Create(ctx, pod)
	if err == nil {
		return out.fail("the privileged notebook was admitted")
	}
	out.quote(err.Error())
	if !strings.Contains(err.Error(), "runs privileged") {
		return out.fail("the denial does not name the privileged container")
	}
	out.ok("denied by the API server on the webhook's answer")
	return nil
}

// warningCollector keeps the warnings the API server returns.
type warningCollector struct{ list []string }

func (w *warningCollector) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.list = append(w.list, text)
}

// withWarnings is alice's client, collecting the warnings it receives.
func withWarnings(s *stack, w *warningCollector) (client.Client, error) {
	cfg := rest.CopyConfig(s.aliceConfig)
	cfg.WarningHandlerWithContext = w
	return client.New(cfg, client.Options{Scheme: webhook.Scheme()})
}
