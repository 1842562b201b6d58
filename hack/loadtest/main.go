// Command loadtest measures the webhook as the platform runs it, on the
// local control plane (hack/controlplane):
//
//  1. direct: realistic pod AdmissionReviews (every Pod fixture of the
//     policy library and an Argo/KFP pipeline pod) posted over HTTPS to a
//     webhook process at concurrency 1, 8 and 32, with the platform profile
//     loaded; reviews/s, latency percentiles and the webhook's CPU seconds
//     per review (from /proc), against a baseline run of the same webhook
//     with no policies;
//  2. apiserver: pods created through kube-apiserver per second, without
//     and then with the webhook registered, in rounds that alternate the
//     two within one run, and their ratio (the median round's); with the
//     CPU per pod of the machine, the control plane and the webhook (also
//     while unregistered, when it only syncs the pods);
//  3. mutation: a GPU and Vault pipeline pod's mutation AdmissionReview
//     posted to /v1/mutate (direct), and the latency of creating such pods
//     through kube-apiserver one at a time, without and then with the
//     mutating webhook registered (the validating webhook is registered in
//     both), and their ratio.
//  4. Gatekeeper (with -gatekeeper, as make bench runs it): OPA
//     Gatekeeper's validating webhook, built from its module sources by
//     hack/gatekeeper/build.sh, on a control plane of its own with the same
//     profile, namespaces, reviews and pods: first each review's answer
//     against ours (the image gate's lines aside; the first differences
//     are printed whole), then the direct load and the pod creation
//     rounds, with their ratios to ours from the same run. The targets were set against Gatekeeper on
//     this machine class, whose speed drifts from one run to the next.
//
// `make bench` runs it; docs/performance.md records the results.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/kustomize"
	"github.com/statcan/daaas-guard/pkg/localenv"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

type options struct {
	duration    time.Duration
	levels      []int
	pods        int
	podRounds   int
	podWorkers  int
	latencyPods int
	webhookBin  string
	webhookArgs []string
	controlBins string
	profile     string
	pprofDir    string
	gatekeeper  string
}

func main() {
	var o options
	var levels string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "duration of each direct load level")
	flag.StringVar(&levels, "concurrency", "1,8,32", "concurrency levels of the direct load")
	flag.IntVar(&o.pods, "pods", 300, "pods created through the API server per phase")
	flag.IntVar(&o.podRounds, "pod-rounds", 5, "rounds of pod creation, each without and then with the webhook")
	flag.IntVar(&o.podWorkers, "pod-workers", 16, "concurrent pod creations")
	flag.IntVar(&o.latencyPods, "latency-pods", 100, "GPU+Vault pipeline pods created one at a time per mutation phase")
	flag.StringVar(&o.webhookBin, "webhook", "bin/webhook", "webhook binary")
	var webhookArgs string
	flag.StringVar(&webhookArgs, "webhook-args", "", "more flags for the webhook, space-separated (e.g. --network-procs=0)")
	flag.StringVar(&o.controlBins, "controlplane", "hack/controlplane/bin", "kube-apiserver and etcd")
	flag.StringVar(&o.profile, "profile", "policies/profiles/daaas", "policy profile to load")
	flag.StringVar(&o.gatekeeper, "gatekeeper", "", "directory with OPA Gatekeeper's binary and CRDs (hack/gatekeeper/build.sh) to measure it the same way (empty: not measured)")
	flag.StringVar(&o.pprofDir, "pprof", "", "directory for CPU profiles of the webhook at concurrency 8 and while pods are created with it (empty: none)")
	flag.Parse()
	o.webhookArgs = strings.Fields(webhookArgs)
	for _, l := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil || n < 1 {
			fail(fmt.Errorf("bad concurrency %q", l))
		}
		o.levels = append(o.levels, n)
	}
	if o.podRounds < 1 || o.pods < 1 {
		fail(errors.New("-pods and -pod-rounds must be at least 1"))
	}
	crlog.SetLogger(logr.Discard())
	if err := run(o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(1)
}

func run(o options) error {
	ctx := context.Background()
	fmt.Printf("machine: %d CPUs (%s), %s\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	cp, err := startControlPlane(ctx, o, "manifests/base/crds", "daaas-guard")
	if err != nil {
		return err
	}
	defer cp.stop()
	cfg, cl, kubeconfig, work, caPEM := cp.cfg, cp.cl, cp.kubeconfig, cp.work, cp.caPEM

	// The direct load posts its reviews round-robin, each again after
	// every 223 requests, which the review cache would answer from
	// memory: it measures evaluation, with the cache off.
	wh, err := startWebhook(o.webhookBin, kubeconfig, work, o.pprofDir != "", append([]string{"--review-cache=0"}, o.webhookArgs...)...)
	if err != nil {
		return err
	}
	defer func() { wh.stop() }()

	reviews, err := admissionReviews(o.profile)
	if err != nil {
		return err
	}
	if err := prepareReviewNamespaces(ctx, cl, o.profile, reviews); err != nil {
		return err
	}
	fmt.Printf("admission reviews: %d distinct pods (policy fixtures and a pipeline pod)\n\n", len(reviews))

	fmt.Println("## Direct load: AdmissionReviews posted to the webhook over HTTPS")
	base := wh.load(webhook.ValidatePath, reviews, 8, o.duration)
	fmt.Printf("baseline, no policies loaded:  %s\n", base)

	n, err := applyProfile(ctx, cl, o.profile, "daaas-guard")
	if err != nil {
		return err
	}
	if err := wh.waitReady(2 * time.Minute); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the last constraints settle
	fmt.Printf("profile loaded: %s\n", n)
	our := ours{baseline: base}
	if o.gatekeeper != "" {
		if our.decisions, err = wh.decide(reviews); err != nil {
			return err
		}
	}
	var results []loadResult
	for _, c := range o.levels {
		wait := func() {}
		if c == 8 {
			wait = wh.cpuProfile(o.pprofDir, "direct-c8", o.duration-time.Second)
		}
		bounds := []string{"0.005", "0.01", "0.02", "0.05", "+Inf"}
		before := map[string]float64{}
		for _, b := range bounds {
			before[b] = wh.handled(b)
		}
		r := wh.load(webhook.ValidatePath, reviews, c, o.duration)
		wait()
		results = append(results, r)
		fmt.Printf("profile, concurrency %-3d %s\n", c, r)
		// Where the latency is: the webhook's own account of the same
		// reviews, from its histogram (the client's figures add the
		// request's way over TLS and the client's own scheduling).
		if all := wh.handled("+Inf") - before["+Inf"]; all > 0 {
			fmt.Printf("    in the webhook's handler:")
			for _, b := range bounds[:len(bounds)-1] {
				ms, _ := strconv.ParseFloat(b, 64)
				fmt.Printf("  %.1f%% within %gms", 100*(wh.handled(b)-before[b])/all, 1000*ms)
			}
			fmt.Println()
		}
	}
	if rss := peakRSS(wh.cmd.Process.Pid); rss > 0 {
		fmt.Printf("webhook peak resident memory: %d MiB\n", rss>>20)
	}
	for _, r := range results {
		if r.concurrency == 8 && base.cpuPerReview > 0 {
			fmt.Printf("CPU per review with the profile / without: %.2fx\n", r.cpuPerReview.Seconds()/base.cpuPerReview.Seconds())
		}
	}

	fmt.Println("\n## Through the API server: pods created per second")
	fmt.Println("### every review evaluated (--review-cache=0)")
	if our.podRatio, err = podRounds(ctx, o, cfg, cl, wh, caPEM, "cache-off"); err != nil {
		return err
	}
	// The same with the webhook as it runs by default: the pods differ in
	// their names only, which no template of the profile reads, so most
	// reviews are answered by the review cache, as a Deployment's or a
	// Job's replicas would be.
	// Unregistered first: the configuration would send the new
	// process's own writes (its constraint CRDs) to the stopped one.
	if err := unregisterWebhook(ctx, cl, vwc); err != nil {
		return err
	}
	wh.stop()
	next, err := startWebhook(o.webhookBin, kubeconfig, work, o.pprofDir != "", o.webhookArgs...)
	if err != nil {
		return err
	}
	wh = next
	if err := wh.waitReady(2 * time.Minute); err != nil {
		return err
	}
	fmt.Println("### the webhook as it runs by default (review cache on)")
	if _, err := podRounds(ctx, o, cfg, cl, wh, caPEM, "cache-on"); err != nil {
		return err
	}
	hits, misses := wh.counter(`daaas_guard_engine_review_cache_total{result="hit"}`), wh.counter(`daaas_guard_engine_review_cache_total{result="miss"}`)
	fmt.Printf("review cache: %.0f reviews answered from it, %.0f evaluated\n", hits, misses)

	if err := mutation(ctx, o, cfg, cl, wh, caPEM); err != nil {
		return err
	}
	if o.gatekeeper == "" {
		return nil
	}
	// One control plane and one webhook at a time on the machine.
	our.direct = results
	wh.stop()
	cp.stop()
	return gatekeeper(ctx, o, o.gatekeeper, reviews, our)
}

// controlPlane is a local kube-apiserver and etcd with what a webhook
// under test needs: a kubeconfig and a serving certificate in work, and
// its namespace.
type controlPlane struct {
	env              *envtest.Environment
	cfg              *rest.Config
	cl               client.Client
	work, kubeconfig string
	caPEM            []byte
}

func startControlPlane(ctx context.Context, o options, crds, namespace string) (_ *controlPlane, err error) {
	cp := &controlPlane{}
	if cp.work, err = os.MkdirTemp("", "daaas-guard-loadtest-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cp.stop()
		}
	}()
	cp.env = &envtest.Environment{BinaryAssetsDirectory: o.controlBins, CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	if cp.cfg, err = cp.env.Start(); err != nil {
		cp.env = nil
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	if cp.cl, err = client.New(cp.cfg, client.Options{Scheme: webhook.Scheme()}); err != nil {
		return nil, err
	}
	cp.kubeconfig = filepath.Join(cp.work, "kubeconfig")
	if err = os.WriteFile(cp.kubeconfig, cp.env.KubeConfig, 0o600); err != nil {
		return nil, err
	}
	if cp.caPEM, err = localenv.WriteServingCert(cp.work); err != nil {
		return nil, err
	}
	if err = cp.cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	return cp, nil
}

// stop stops the control plane (once) and removes its files.
func (cp *controlPlane) stop() {
	if cp.env != nil {
		_ = cp.env.Stop()
		cp.env = nil
	}
	_ = os.RemoveAll(cp.work)
}

// mutation measures the mutating webhook on a GPU+Vault pipeline pod:
// directly, then through the API server.
// vwc is the validating webhook's configuration.
const vwc = "manifests/base/validatingwebhookconfiguration.yaml"

// podRounds creates pods through the API server in rounds, each without
// the validating webhook and then with wh registered, and prints each
// round's rates and ratio and the median round's ratio.
func podRounds(ctx context.Context, o options, cfg *rest.Config, cl client.Client, wh *webhookProcess, caPEM []byte, label string) (median float64, err error) {
	// Rounds alternate the two phases, so that a change in the machine's
	// speed during the run (a shared machine drifts from one minute to the
	// next) weighs on both alike; the ratio reported is the median
	// round's. The machine's busy CPU time per pod created says where a
	// slowdown comes from; the webhook's own share is measured separately.
	var without, with podResult
	var busyWithout, busyWith, webhookCPU, webhookIdleCPU time.Duration
	// The API server's and etcd's CPU in each mode: what calling the
	// webhook costs the API server shows here.
	var apiWithout, apiWith, etcdWithout, etcdWith time.Duration
	var ratios []float64
	for round := 1; round <= o.podRounds; round++ {
		if err := unregisterWebhook(ctx, cl, vwc); err != nil {
			return 0, err
		}
		busy0, idle0 := machineBusy(), cpuTime(wh.cmd.Process.Pid)
		api0, etcd0 := controlPlaneCPU()
		wo, err := createPods(ctx, cfg, fmt.Sprintf("%s-without-%d", label, round), o.pods, o.podWorkers)
		if err != nil {
			return 0, err
		}
		busyWithout += machineBusy() - busy0
		api1, etcd1 := controlPlaneCPU()
		apiWithout, etcdWithout = apiWithout+api1-api0, etcdWithout+etcd1-etcd0
		if err := registerWebhook(ctx, cl, vwc, wh.port, caPEM); err != nil {
			return 0, err
		}
		wait := func() {}
		if round == 1 {
			// The profile covers the start of the phase; raise -pods so
			// that the phase outlasts it.
			wait = wh.cpuProfile(o.pprofDir, "pods-with-webhook-"+label, 2*time.Second)
		}
		busy0, cpu0 := machineBusy(), cpuTime(wh.cmd.Process.Pid)
		api0, etcd0 = controlPlaneCPU()
		// Up to here, with the wait for the API server to pick the
		// webhook up, so that watch events still in flight count.
		webhookIdleCPU += cpu0 - idle0
		wi, err := createPods(ctx, cfg, fmt.Sprintf("%s-with-%d", label, round), o.pods, o.podWorkers)
		if err != nil {
			return 0, err
		}
		busyWith += machineBusy() - busy0
		webhookCPU += cpuTime(wh.cmd.Process.Pid) - cpu0
		api1, etcd1 = controlPlaneCPU()
		apiWith, etcdWith = apiWith+api1-api0, etcdWith+etcd1-etcd0
		wait()
		without, with = without.add(wo), with.add(wi)
		ratio := wi.rate() / wo.rate()
		ratios = append(ratios, ratio)
		fmt.Printf("round %d: without the webhook %s\n         with it           %s  (%.0f%%)\n", round, wo, wi, 100*ratio)
	}
	sort.Float64s(ratios)
	fmt.Printf("without webhook: %s\n", without)
	fmt.Printf("with webhook:    %s\n", with)
	fmt.Printf("pod creation with the webhook / without: %.0f%% (median of %d rounds, %.0f%%-%.0f%%; all rounds together %.0f%%)\n",
		100*ratios[len(ratios)/2], len(ratios), 100*ratios[0], 100*ratios[len(ratios)-1], 100*with.rate()/without.rate())
	if without.created > 0 && with.created > 0 {
		fmt.Printf("machine CPU per pod created: %s without the webhook, %s with it, of which the webhook process %s\n",
			perPod(busyWithout, without.created), perPod(busyWith, with.created), perPod(webhookCPU, with.created))
		// Unregistered, the webhook still syncs the pods created (the
		// profile syncs Pods): what that costs it per pod.
		fmt.Printf("webhook CPU per pod created while not registered (syncing the pods only): %s\n", perPod(webhookIdleCPU, without.created))
		fmt.Printf("kube-apiserver CPU per pod created: %s without the webhook, %s with it; etcd %s and %s\n",
			perPod(apiWithout, without.created), perPod(apiWith, with.created), perPod(etcdWithout, without.created), perPod(etcdWith, with.created))
	}
	return ratios[len(ratios)/2], nil
}

func mutation(ctx context.Context, o options, cfg *rest.Config, cl client.Client, wh *webhookProcess, caPEM []byte) error {
	const ns = "bob-jones"
	tmpl, err := podFixture("policies/profiles/daaas/workloads/mutation/pipeline.yaml")
	if err != nil {
		return err
	}
	raw, err := tmpl.MarshalJSON()
	if err != nil {
		return err
	}
	review, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "loadtest-mutate", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Name:     tmpl.GetName(), Namespace: ns, Operation: admissionv1.Create,
			UserInfo: authUser("system:serviceaccount:kubeflow:argo"), Object: runtimeRaw(raw),
		},
	})
	if err != nil {
		return err
	}
	fmt.Println("\n## Mutation: a GPU+Vault pipeline pod (tolerations, init-only Vault agent)")
	for _, c := range []int{1, 8} {
		r := wh.load(webhook.MutatePath, [][]byte{review}, c, o.duration/2)
		fmt.Printf("direct to /v1/mutate, concurrency %-2d %s\n", c, r)
	}
	if err := prepareNamespaces(ctx, cl, o.profile, ns); err != nil {
		return err
	}
	without, err := createLatency(ctx, cfg, tmpl, "plain", o.latencyPods, false)
	if err != nil {
		return err
	}
	fmt.Printf("created through the API server, without the mutating webhook: %s\n", without)
	if err := registerWebhook(ctx, cl, "manifests/base/mutatingwebhookconfiguration.yaml", wh.port, caPEM); err != nil {
		return err
	}
	with, err := createLatency(ctx, cfg, tmpl, "mutated", o.latencyPods, true)
	if err != nil {
		return err
	}
	fmt.Printf("created through the API server, with the mutating webhook:    %s\n", with)
	fmt.Printf("pod creation latency with the mutating webhook / without: p50 %.2fx, mean %.2fx\n",
		float64(with.p50)/float64(without.p50), float64(with.mean)/float64(without.mean))
	return nil
}

type latencyResult struct {
	n                   int
	p50, p90, p99, mean time.Duration
}

func (r latencyResult) String() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  mean %s  (%d pods, one at a time)", ms(r.p50), ms(r.p90), ms(r.p99), ms(r.mean), r.n)
}

// createLatency creates n copies of tmpl one after the other and reports
// the latency of each creation; every pod must come back mutated (or not).
func createLatency(ctx context.Context, cfg *rest.Config, tmpl *unstructured.Unstructured, phase string, n int, mutated bool) (latencyResult, error) {
	cl, err := client.New(cfg, client.Options{Scheme: webhook.Scheme()})
	if err != nil {
		return latencyResult{}, err
	}
	var lat []time.Duration
	var total time.Duration
	for i := 0; i < n; i++ {
		p := &corev1.Pod{}
		if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(tmpl.Object, p); err != nil {
			return latencyResult{}, err
		}
		p.Name = fmt.Sprintf("latency-%s-%d", phase, i)
		start := time.Now()
		if err := cl.Create(ctx, p); err != nil {
			return latencyResult{}, fmt.Errorf("creating %s: %w", p.Name, err)
		}
		d := time.Since(start)
		lat = append(lat, d)
		total += d
		injected := len(p.Spec.InitContainers) > 0 && p.Spec.InitContainers[len(p.Spec.InitContainers)-1].Name == "vault-agent-init"
		if injected != mutated {
			return latencyResult{}, fmt.Errorf("pod %s: Vault agent injected: %v, want %v", p.Name, injected, mutated)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return latencyResult{n: n, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), mean: total / time.Duration(n)}, nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i > 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}

type webhookProcess struct {
	cmd     *exec.Cmd
	port    int
	health  string
	pprof   string // address of /debug/pprof, when profiling
	metrics string // address of /metrics
	client  *http.Client
}

// cpuProfile starts a CPU profile of the webhook for d and returns a
// function that waits for it and writes it to dir/name.pprof. Without
// -pprof it does nothing.
func (w *webhookProcess) cpuProfile(dir, name string, d time.Duration) (wait func()) {
	if w.pprof == "" || dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", w.pprof, max(1, int(d.Seconds())))
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintf(os.Stderr, "profile %s: %v\n", name, err)
			return
		}
		defer resp.Body.Close()
		path := filepath.Join(dir, name+".pprof")
		f, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "profile %s: %v\n", name, err)
			return
		}
		fmt.Printf("(CPU profile of the webhook: %s)\n", path)
	}()
	return func() { <-done }
}

func startWebhook(bin, kubeconfig, certDir string, pprof bool, extra ...string) (*webhookProcess, error) {
	port, err := localenv.FreePort()
	if err != nil {
		return nil, err
	}
	hp, err := localenv.FreePort()
	if err != nil {
		return nil, err
	}
	mp, err := localenv.FreePort()
	if err != nil {
		return nil, err
	}
	w := &webhookProcess{port: port, health: fmt.Sprintf("127.0.0.1:%d", hp), metrics: fmt.Sprintf("127.0.0.1:%d", mp)}
	args := append([]string{"--namespace=daaas-guard", "--pod-name=loadtest-0",
		"--disable-cert-rotation", "--cert-dir=" + certDir, fmt.Sprintf("--port=%d", port),
		// Plain-HTTP metrics: the load test reads them without a token.
		"--health-addr=" + w.health, "--metrics-addr=" + w.metrics, "--metrics-secure=false", "--zap-log-level=error",
		// No Service sends it reviews after the signal: stop at once.
		"--shutdown-delay=0"}, extra...)
	if pprof {
		pp, err := localenv.FreePort()
		if err != nil {
			return nil, err
		}
		w.pprof = fmt.Sprintf("127.0.0.1:%d", pp)
		args = append(args, "--pprof-addr="+w.pprof)
	}
	w.cmd = exec.Command(bin, args...)
	w.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	w.cmd.Stdout, w.cmd.Stderr = os.Stderr, os.Stderr
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	w.client = newLoadClient()
	if err := w.waitReady(time.Minute); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// newLoadClient is the direct load's HTTPS client: a connection per
// client goroutine, kept.
func newLoadClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // loopback test server with a throwaway CA
			MaxIdleConnsPerHost: 64,
		},
	}
}

func (w *webhookProcess) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + w.health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the webhook did not become ready")
}

// counter reads a series of the webhook's /metrics (0 when missing).
func (w *webhookProcess) counter(series string) float64 {
	return w.sum(func(name string) bool { return name == series })
}

// sum adds up the webhook's /metrics series whose name and labels match.
func (w *webhookProcess) sum(match func(series string) bool) float64 {
	resp, err := http.Get("http://" + w.metrics + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	total := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") || !match(line[:i]) {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			total += f
		}
	}
	return total
}

// handled counts the pod reviews the webhook's request-duration histogram
// has within bound ("+Inf": all of them), whatever their decision: the
// time in its handler, waiting for an evaluation slot included, but not
// reading and writing the request over TLS.
func (w *webhookProcess) handled(bound string) float64 {
	return w.sum(func(series string) bool {
		return strings.HasPrefix(series, "daaas_guard_admission_request_duration_seconds_bucket{") &&
			strings.Contains(series, `kind="Pod"`) && strings.Contains(series, `le="`+bound+`"`)
	})
}

func (w *webhookProcess) stop() {
	if w.cmd.Process != nil {
		_ = w.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = w.cmd.Process.Kill()
		}
	}
}

// machineBusy is the CPU time all processors have spent busy (not idle or
// waiting for I/O), from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		busy += n
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(busy) * time.Second / ticks
}

func perPod(d time.Duration, pods int) time.Duration {
	return (d / time.Duration(pods)).Round(10 * time.Microsecond)
}

// controlPlaneCPU is the CPU time of the kube-apiserver and etcd this
// process started (envtest runs them as its children), from /proc.
func controlPlaneCPU() (apiserver, etcd time.Duration) {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndex(s, ")")
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+2:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		switch s[open+1 : end] {
		case "kube-apiserver":
			apiserver += cpuTime(pid)
		case "etcd":
			etcd += cpuTime(pid)
		}
	}
	return apiserver, etcd
}

// cpuTime is the process's user and system CPU time, from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// peakRSS is a process's peak resident memory (VmHWM), 0 when unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

type loadResult struct {
	concurrency  int
	reviews      int
	errors       int
	elapsed      time.Duration
	p50, p90     time.Duration
	p99, max     time.Duration
	cpuPerReview time.Duration
}

func (r loadResult) String() string {
	return fmt.Sprintf("%6.0f reviews/s  p50 %6s  p90 %6s  p99 %6s  max %6s  CPU/review %6s  (%d reviews, %d errors)",
		float64(r.reviews)/r.elapsed.Seconds(), ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max), ms(r.cpuPerReview), r.reviews, r.errors)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// load posts the reviews to path round-robin from concurrency workers for
// d.
func (w *webhookProcess) load(path string, reviews [][]byte, concurrency int, d time.Duration) loadResult {
	url := fmt.Sprintf("https://127.0.0.1:%d%s", w.port, path)
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	cpu0 := cpuTime(w.cmd.Process.Pid)
	start := time.Now()
	stopAt := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(stopAt) {
				body := reviews[int(next.Add(1))%len(reviews)]
				t := time.Now()
				resp, err := w.client.Post(url, "application/json", bytes.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(w.cmd.Process.Pid) - cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r := loadResult{concurrency: concurrency, reviews: len(lat), errors: errs, elapsed: elapsed,
		p50: pct(0.50), p90: pct(0.90), p99: pct(0.99), max: pct(1)}
	if len(lat) > 0 {
		r.cpuPerReview = cpu / time.Duration(len(lat))
	}
	return r
}

// admissionReviews encodes a CREATE review for every Pod fixture of the
// library and the benchmark pipeline pod.
func admissionReviews(profile string) ([][]byte, error) {
	var pods []*unstructured.Unstructured
	files, err := manifest.Files([]string{"policies/general", "policies/pod-security-policy", "policies/pipelines"}, ".yaml")
	if err != nil {
		return nil, err
	}
	files = append(files, "pkg/policy/testdata/bench/pipeline_pod.yaml")
	for _, f := range files {
		if !strings.Contains(f, "samples") && !strings.HasSuffix(f, "pipeline_pod.yaml") {
			continue
		}
		docs, err := manifest.ReadFile(f, manifest.Options{})
		if err != nil {
			continue // not every sample file is an object
		}
		for _, d := range docs {
			if d.Object.GetKind() == "Pod" && d.Object.GetAPIVersion() == "v1" {
				pods = append(pods, d.Object)
			}
		}
	}
	var out [][]byte
	for i, p := range pods {
		raw, err := p.MarshalJSON()
		if err != nil {
			return nil, err
		}
		ns := p.GetNamespace()
		if ns == "" {
			ns = "alice"
		}
		review := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID:       types.UID(fmt.Sprintf("loadtest-%d", i)),
				Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Name:      p.GetName(),
				Namespace: ns,
				Operation: admissionv1.Create,
				UserInfo:  authUser("alice@statcan.gc.ca"),
				Object:    runtimeRaw(raw),
			},
		}
		b, err := json.Marshal(review)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("no pod fixtures found")
	}
	return out, nil
}

// applyProfile creates the profile's templates, waits for their
// constraint CRDs (which the webhook creates), then the constraints; the
// profile's Config goes to configNS (where the webhook reads it).
func applyProfile(ctx context.Context, cl client.Client, profile, configNS string) (string, error) {
	docs, err := kustomize.Build(profile, manifest.Options{AllowUntyped: true, KeepLists: true})
	if err != nil {
		return "", err
	}
	templates, constraints := 0, 0
	var later []*unstructured.Unstructured
	for _, d := range docs {
		switch d.Object.GetAPIVersion() {
		case "templates.gatekeeper.sh/v1":
			if err := cl.Create(ctx, d.Object); err != nil && !apierrors.IsAlreadyExists(err) {
				return "", err
			}
			templates++
		default:
			later = append(later, d.Object)
		}
	}
	for _, u := range later {
		gvk := u.GroupVersionKind()
		if gvk.Group == "config.gatekeeper.sh" && gvk.Kind == "Config" {
			u.SetNamespace(configNS)
		}
		if gvk.Group == "constraints.gatekeeper.sh" {
			if err := waitForCRD(ctx, cl, strings.ToLower(gvk.Kind)+".constraints.gatekeeper.sh"); err != nil {
				return "", err
			}
			constraints++
		}
		for {
			err := cl.Create(ctx, u.DeepCopy())
			if err == nil || apierrors.IsAlreadyExists(err) {
				break
			}
			if strings.Contains(err.Error(), "no matches for kind") && gvk.Group == "constraints.gatekeeper.sh" {
				time.Sleep(50 * time.Millisecond) // discovery has not caught up with the new CRD
				continue
			}
			return "", fmt.Errorf("creating %s %s: %w", gvk.Kind, u.GetName(), err)
		}
	}
	return fmt.Sprintf("%d templates, %d constraints", templates, constraints), nil
}

func waitForCRD(ctx context.Context, cl client.Client, name string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := cl.Get(ctx, client.ObjectKey{Name: name}, crd); err == nil {
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("CRD %s was not established", name)
}

// prepareNamespaces creates the profile namespaces the pods go to, with
// the cluster state the profile's referential rules need (the inventory
// fixture's objects in those namespaces, where their kinds are served),
// in the fixture's order.
func prepareNamespaces(ctx context.Context, cl client.Client, profile string, names ...string) error {
	inv, err := eval.ReadManifests([]string{filepath.Join(profile, "workloads", "inventory.yaml")}, nil)
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, ns := range names {
		wanted[ns] = true
	}
	for _, d := range inv {
		u := d.Object
		if !wanted[u.GetNamespace()] && !(u.GetKind() == "Namespace" && wanted[u.GetName()]) {
			continue
		}
		if err := cl.Create(ctx, u.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) && !strings.Contains(err.Error(), "no matches for kind") {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// notebookPod is the profile's admitted notebook pod, named freshly.
func notebookPod(name string) (*unstructured.Unstructured, error) {
	p, err := podFixture("policies/profiles/daaas/workloads/admitted/notebook.yaml")
	if err != nil {
		return nil, err
	}
	p.SetName(name)
	return p, nil
}

// podFixture is the first Pod in a fixture file.
func podFixture(path string) (*unstructured.Unstructured, error) {
	docs, err := manifest.ReadFile(path, manifest.Options{})
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.Object.GetKind() == "Pod" {
			p := d.Object.DeepCopy()
			p.SetResourceVersion("")
			return p, nil
		}
	}
	return nil, fmt.Errorf("no Pod in %s", path)
}

type podResult struct {
	created, failed int
	elapsed         time.Duration
	firstError      string
}

func (r podResult) rate() float64 { return float64(r.created) / r.elapsed.Seconds() }

// add sums two phases' results.
func (r podResult) add(o podResult) podResult {
	r.created += o.created
	r.failed += o.failed
	r.elapsed += o.elapsed
	if r.firstError == "" {
		r.firstError = o.firstError
	}
	return r
}

func (r podResult) String() string {
	s := fmt.Sprintf("%6.1f pods/s (%d created, %d failed, %s)", r.rate(), r.created, r.failed, r.elapsed.Round(time.Millisecond))
	if r.firstError != "" {
		s += "; first failure: " + r.firstError
	}
	return s
}

func createPods(ctx context.Context, cfg *rest.Config, phase string, n, workers int) (podResult, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 1000, 1000 // measure the server, not the client's rate limiter
	cl, err := client.New(c, client.Options{Scheme: webhook.Scheme()})
	if err != nil {
		return podResult{}, err
	}
	tmpl, err := notebookPod("x")
	if err != nil {
		return podResult{}, err
	}
	var next atomic.Int64
	var created, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1)
				if k > int64(n) {
					return
				}
				p := tmpl.DeepCopy()
				p.SetName(fmt.Sprintf("bench-%s-%d", phase, k))
				if err := cl.Create(ctx, p); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	r := podResult{created: int(created.Load()), failed: int(failed.Load()), elapsed: time.Since(start)}
	if e, ok := firstErr.Load().(string); ok {
		r.firstError = e
	}
	return r, nil
}

// unregisterWebhook removes the webhook configurations in file and gives
// the API server time to notice.
func unregisterWebhook(ctx context.Context, cl client.Client, file string) error {
	docs, err := manifest.ReadFile(file, manifest.Options{})
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := cl.Delete(ctx, d.Object); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing %s %s: %w", d.Object.GetKind(), d.Object.GetName(), err)
		}
	}
	time.Sleep(2 * time.Second) // as when registering
	return nil
}

// registerWebhook registers the webhook configuration in file, pointed at
// the local webhook, and gives the API server time to pick it up.
func registerWebhook(ctx context.Context, cl client.Client, file string, port int, caPEM []byte) error {
	if err := localenv.RegisterWebhooks(ctx, cl, port, caPEM, file); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the API server picks webhook configurations up asynchronously
	return nil
}

func authUser(name string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: name, Groups: []string{"system:authenticated"}}
}

func runtimeRaw(b []byte) k8sruntime.RawExtension { return k8sruntime.RawExtension{Raw: b} }
