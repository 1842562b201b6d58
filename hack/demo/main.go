// Command demo plays daaas-guard's scripted scenario on a local control
// plane (make demo), or keeps that environment running for kubectl (make up,
// make down). Each step checks its outcome; the demo exits 1 at the first
// step that does not behave as expected.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/pkg/localenv"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

type options struct {
	root, bin, out string
}

func main() {
	o := options{}
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.StringVar(&o.bin, "bin", "bin", "directory of the built binaries (make build)")
	flag.StringVar(&o.out, "out", "out", "directory for logs, kubeconfigs and reports")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: demo [flags] [run|up|serve|down]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	// envtest and client-go log through controller-runtime's logger; the
	// demo's own output is its steps.
	log.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	mode := flag.Arg(0)
	var err error
	switch mode {
	case "", "run":
		err = runDemo(o)
	case "up":
		err = up(o)
	case "serve":
		err = serve(o)
	case "down":
		err = down(o)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "demo: interrupted (%v); every process it started is stopped\n", err)
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// stack is the running environment: the control plane and our processes.
type stack struct {
	env     *localenv.Env
	webhook *localenv.Process
	scanner *localenv.Process
	images  *images
	// alice is a data scientist's client: impersonation of a user with the
	// edit role in her profile namespace, as Kubeflow grants it.
	alice       client.Client
	aliceConfig *rest.Config
	work        string
}

// start brings the environment up, printing progress through say.
func start(ctx context.Context, o options, work string, say func(string, ...any)) (*stack, error) {
	s := &stack{work: work}
	t0 := time.Now()
	env, err := localenv.Start(ctx, localenv.Options{Root: o.root, WorkDir: work,
		// Policy Reporter's CRDs, which the platform has: the audit writes
		// PolicyReports.
		CRDDirs: []string{filepath.Join(o.root, "test", "e2e", "testdata", "crds")}})
	if err != nil {
		return nil, err
	}
	s.env = env
	say("control plane (kube-apiserver, etcd) up in %s; CRDs, namespace %s, service accounts and RBAC from manifests/base installed",
		time.Since(t0).Round(100*time.Millisecond), localenv.Namespace)

	// The cluster already runs workloads when the suite arrives; the audit
	// finds what admission never saw.
	profile := filepath.Join(o.root, "policies", "profiles", "daaas")
	if err := env.ApplyClusterState(ctx, filepath.Join(profile, "workloads", "inventory.yaml"), "alice", gpuNamespace); err != nil {
		return s, err
	}
	if err := createLegacyNotebook(ctx, env.Client, filepath.Join(profile, "workloads")); err != nil {
		return s, err
	}
	say("namespaces alice and %s (Kubeflow profiles, the second GPU-enabled) with their network policies, volumes and running notebook pods, one of them running as root, as before the suite was installed", gpuNamespace)

	kubeconfig, err := env.ServiceAccountKubeconfig(ctx, localenv.Namespace, "daaas-guard-webhook")
	if err != nil {
		return s, err
	}
	port, err := localenv.FreePort()
	if err != nil {
		return s, err
	}
	health, err := localenv.FreeAddr()
	if err != nil {
		return s, err
	}
	t0 = time.Now()
	s.webhook, err = env.StartProcess("webhook", filepath.Join(o.bin, "webhook"), kubeconfig, health,
		"--namespace="+localenv.Namespace, "--pod-name=webhook-0",
		"--disable-cert-rotation", "--cert-dir="+env.CertDir, "--port="+strconv.Itoa(port),
		"--health-addr="+health, "--metrics-addr=0",
		"--shutdown-delay=0") // no Service sends it reviews after the signal: stop at once
	if err != nil {
		return s, err
	}
	if err := s.webhook.WaitReady(ctx, time.Minute); err != nil {
		return s, err
	}
	if err := env.RegisterWebhooks(ctx, port,
		filepath.Join(o.root, "manifests", "base", "validatingwebhookconfiguration.yaml"),
		filepath.Join(o.root, "manifests", "base", "mutatingwebhookconfiguration.yaml")); err != nil {
		return s, err
	}
	say("webhook running as its service account (log: %s), registered with the API server over TLS, ready in %s",
		rel(s.webhook.Log), time.Since(t0).Round(100*time.Millisecond))

	t0 = time.Now()
	counts, err := env.ApplyPolicies(ctx, profile, time.Minute)
	if err != nil {
		return s, err
	}
	if s.alice, s.aliceConfig, err = dataScientist(ctx, env, "alice", "alice.smith@statcan.gc.ca"); err != nil {
		return s, err
	}
	if err := waitEnforced(ctx, s.alice); err != nil {
		return s, err
	}
	if err := waitMutating(ctx, env.Client, filepath.Join(profile, "workloads")); err != nil {
		return s, err
	}
	say("platform profile %s applied (%s) and enforced, mutation active, in %s", rel(profile), counts, time.Since(t0).Round(100*time.Millisecond))

	if s.images, err = prepareImages(work); err != nil {
		return s, err
	}
	if s.scanner, err = startScanner(ctx, env, o, s.images.dbDir); err != nil {
		return s, err
	}
	say("scanner running as its service account (log: %s): audits existing objects every %s, scans images with Trivy over an offline test DB (%s) from a registry on %s",
		rel(s.scanner.Log), auditInterval, rel(s.images.dbDir), s.images.reg.Host)
	return s, nil
}

func (s *stack) stop() error {
	defer s.images.close()
	if s.env == nil {
		return nil
	}
	return s.env.Stop()
}

// dataScientist binds the edit role in the namespace to user and returns a
// client that acts as that user, and its configuration.
func dataScientist(ctx context.Context, env *localenv.Env, namespace, user string) (client.Client, *rest.Config, error) {
	// Kubeflow binds kubeflow-edit; without a controller manager to
	// aggregate it, the demo grants what its steps need.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "data-scientist", Namespace: namespace},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "configmaps", "persistentvolumeclaims", "services"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"argoproj.io"}, Resources: []string{"workflows"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		},
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "namespaceAdmin", Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	for _, o := range []client.Object{role, rb} {
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, nil, err
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: webhook.Scheme()})
	return c, cfg, err
}

// waitEnforced waits until the profile denies a privileged pod (a
// server-side dry run, so nothing is left behind).
func waitEnforced(ctx context.Context, c client.Client) error {
	return localenv.WaitFor(ctx, 2*time.Minute, func() error {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "alice"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "k8scc01covidacr.azurecr.io/probe:1",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
			}}},
		}
		err := c.Create(ctx, p, client.DryRunAll)
		if err == nil {
			return errors.New("a privileged pod is still admitted")
		}
		if apierrors.IsForbidden(err) && !strings.Contains(err.Error(), "denied the request") {
			return localenv.Permanent(err)
		}
		if !strings.Contains(err.Error(), "denied the request") {
			return err
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

// readObject reads the object of the given kind from a fixture file.
func readObject(path, kind string) (*unstructured.Unstructured, error) {
	docs, err := manifest.ReadFile(path, manifest.Options{})
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.Object.GetKind() == kind {
			u := d.Object.DeepCopy()
			u.SetResourceVersion("")
			u.SetUID("")
			return u, nil
		}
	}
	return nil, fmt.Errorf("%s: no %s", path, kind)
}

// rel shortens a path for display.
func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// signalContext is cancelled by Ctrl-C or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// up starts the environment in the background (see serve) and returns
// once it is ready, printing what serve printed.
func up(o options) error {
	work, err := filepath.Abs(filepath.Join(o.out, "local"))
	if err != nil {
		return err
	}
	if pid, err := readPid(work); err == nil && syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("already up (pid %d); make down stops it", pid)
	}
	if err := os.MkdirAll(filepath.Dir(work), 0o700); err != nil {
		return err
	}
	logPath := work + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-root="+o.root, "-bin="+o.bin, "-out="+o.out, "serve")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives make and the terminal
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Printf("starting the local control plane and the suite (log: %s)\n", rel(logPath))
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			fmt.Print(string(b))
			return fmt.Errorf("the environment stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "\nup: ") {
			fmt.Print(string(b))
			return nil
		}
	}
}

// serve keeps the environment running until SIGTERM (make down) or Ctrl-C.
func serve(o options) error {
	ctx, cancel := signalContext()
	defer cancel()
	work, err := filepath.Abs(filepath.Join(o.out, "local"))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	say := func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
	s, err := start(ctx, o, work, say)
	defer func() { _ = s.stop() }()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	fmt.Printf("\nup: export KUBECONFIG=%s\n", s.env.Kubeconfig)
	fmt.Printf("    kubectl --as=alice.smith@statcan.gc.ca -n alice apply -f policies/profiles/daaas/workloads/denied/notebook-privileged.yaml\n")
	fmt.Printf("    logs in %s; make down stops everything\n", work)
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}

// down stops an environment started by up.
func down(o options) error {
	work := filepath.Join(o.out, "local")
	pid, err := readPid(work)
	if err != nil {
		return fmt.Errorf("nothing is up (%v)", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		_ = os.Remove(filepath.Join(work, "pid"))
		return fmt.Errorf("nothing is up (pid %d: %v)", pid, err)
	}
	deadline := time.Now().Add(time.Minute)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still running after a minute", pid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(work, "pid"))
	fmt.Println("down: the local control plane and the suite's processes are stopped")
	return nil
}

func readPid(work string) (int, error) {
	b, err := os.ReadFile(filepath.Join(work, "pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// runGuardctl runs guardctl and returns its combined output and exit code.
func runGuardctl(o options, args ...string) (string, int, error) {
	cmd := exec.Command(filepath.Join(o.bin, "guardctl"), args...)
	cmd.Dir = o.root
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode(), nil
	}
	return string(out), 0, err
}
