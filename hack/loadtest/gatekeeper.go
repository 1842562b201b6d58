package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/imagegate"
	"github.com/statcan/daaas-guard/pkg/localenv"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

// ours is what the run measured of our webhook, for the comparison with
// Gatekeeper.
type ours struct {
	decisions []decision
	direct    []loadResult
	baseline  loadResult // no policies loaded
	podRatio  float64    // median round, every review evaluated
}

// decision is a webhook's answer to one review, as the API server would
// act on it.
type decision struct {
	allowed  bool
	code     int32
	message  string   // the denial's lines, sorted
	warnings []string // sorted
}

// same says whether two answers deny with the same messages, or both
// admit, and warn alike. An admission's message is informational (each
// webhook words its namespace exemptions its own way).
func (d decision) same(o decision) bool {
	if d.allowed != o.allowed || strings.Join(d.warnings, "\n") != strings.Join(o.warnings, "\n") {
		return false
	}
	return d.allowed || d.message == o.message
}

// decide posts every review once and keeps the answers.
func (w *webhookProcess) decide(reviews [][]byte) ([]decision, error) {
	url := fmt.Sprintf("https://127.0.0.1:%d%s", w.port, webhook.ValidatePath)
	out := make([]decision, len(reviews))
	for i, body := range reviews {
		resp, err := w.client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		var r admissionv1.AdmissionReview
		if err := json.Unmarshal(b, &r); err != nil || r.Response == nil {
			return nil, fmt.Errorf("review %d: status %d, no AdmissionReview response: %.200s", i, resp.StatusCode, b)
		}
		d := decision{allowed: r.Response.Allowed, code: 200}
		if s := r.Response.Result; s != nil {
			if s.Code != 0 {
				d.code = s.Code
			}
			d.message = strings.Join(constraintLines(strings.Split(s.Message, "\n")), "\n")
			// Denied by the image gate alone: the constraints admitted it.
			if !d.allowed && d.message == "" && strings.HasPrefix(s.Message, imagegate.Source) {
				d.allowed = true
			}
		}
		d.warnings = constraintLines(r.Response.Warnings)
		out[i] = d
	}
	return out, nil
}

// gatekeeper runs OPA Gatekeeper's validating webhook (built by
// hack/gatekeeper/build.sh into dir) on the same profile, reviews and pods,
// on a control plane of its own, and prints its figures and their ratios
// to ours from this run: the targets were set against Gatekeeper on this
// machine class, and this machine's speed drifts between runs.
func gatekeeper(ctx context.Context, o options, dir string, reviews [][]byte, our ours) error {
	bin, crds := filepath.Join(dir, "gatekeeper"), filepath.Join(dir, "crds")
	// The manager has no version flag; hack/gatekeeper/go.mod pins it.
	fmt.Println("\n## OPA Gatekeeper (hack/gatekeeper: v3.23.1) on the same profile, reviews and pods")
	cp, err := startControlPlane(ctx, o, crds, "gatekeeper-system")
	if err != nil {
		return err
	}
	defer cp.stop()
	cfg, cl, kubeconfig, work, caPEM := cp.cfg, cp.cl, cp.kubeconfig, cp.work, cp.caPEM
	if err := prepareReviewNamespaces(ctx, cl, o.profile, reviews); err != nil {
		return err
	}
	gk, err := startGatekeeper(bin, kubeconfig, work)
	if err != nil {
		return err
	}
	defer func() { gk.stop() }()
	n, err := applyProfile(ctx, cl, o.profile, "gatekeeper-system")
	if err != nil {
		return err
	}
	// Started again so that its readiness covers the profile: Gatekeeper
	// is ready once everything present at its start is loaded.
	gk.stop()
	if gk, err = startGatekeeper(bin, kubeconfig, work); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	fmt.Printf("profile loaded: %s\n", n)

	theirs, err := gk.decide(reviews)
	if err != nil {
		return err
	}
	agree, errs := 0, 0
	for i := range theirs {
		if theirs[i].code >= 500 {
			errs++
		}
		if i < len(our.decisions) && theirs[i].same(our.decisions[i]) {
			agree++
		} else if i < len(our.decisions) && i-agree < 3 {
			// The first few, whole, to say where they part.
			fmt.Printf("    review %d differs:\n      daaas-guard allowed=%v %q\n        warnings %q\n      Gatekeeper allowed=%v %q\n        warnings %q\n", i,
				our.decisions[i].allowed, our.decisions[i].message, our.decisions[i].warnings, theirs[i].allowed, theirs[i].message, theirs[i].warnings)
		}
	}
	fmt.Printf("decisions: the same denials and warnings as daaas-guard for %d of %d reviews; %d errors\n", agree, len(theirs), errs)

	fmt.Println("### Direct load (Gatekeeper's defaults)")
	for _, c := range o.levels {
		r := gk.load(webhook.ValidatePath, reviews, c, o.duration)
		fmt.Printf("profile, concurrency %-3d %s\n", c, r)
		for _, m := range our.direct {
			if m.concurrency != c || m.reviews == 0 || r.reviews == 0 {
				continue
			}
			fmt.Printf("    Gatekeeper / daaas-guard: CPU per review %.1fx, reviews/s %.2fx, p50 %.1fx, p99 %.1fx\n",
				r.cpuPerReview.Seconds()/m.cpuPerReview.Seconds(), rate(r)/rate(m), r.p50.Seconds()/m.p50.Seconds(), r.p99.Seconds()/m.p99.Seconds())
		}
		if c == 8 && our.baseline.cpuPerReview > 0 {
			fmt.Printf("    CPU per review / daaas-guard's with no policies: %.1fx\n", r.cpuPerReview.Seconds()/our.baseline.cpuPerReview.Seconds())
		}
	}
	if rss := peakRSS(gk.cmd.Process.Pid); rss > 0 {
		fmt.Printf("Gatekeeper peak resident memory: %d MiB\n", rss>>20)
	}

	fmt.Println("### Through the API server: pods created per second")
	ratio, err := podRounds(ctx, o, cfg, cl, gk, caPEM, "gatekeeper")
	if err != nil {
		return err
	}
	if our.podRatio > 0 {
		fmt.Printf("pod creation with the webhook / without, median round: daaas-guard %.0f%% (every review evaluated), Gatekeeper %.0f%%\n", 100*our.podRatio, 100*ratio)
	}
	return nil
}

// constraintLines sorts a response's lines, leaving out the image gate's:
// those are ours alone (pkg/imagegate), not the constraints'.
func constraintLines(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if !strings.HasPrefix(l, imagegate.Source) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func rate(r loadResult) float64 { return float64(r.reviews) / r.elapsed.Seconds() }

// prepareReviewNamespaces creates the namespaces the reviews and the
// created pods name, for both webhooks alike (Gatekeeper answers a review
// whose namespace it cannot find with an error): as the profile's
// inventory has them (the profile namespace "alice" among them), with
// their objects, and unlabelled where it has none.
func prepareReviewNamespaces(ctx context.Context, cl client.Client, profile string, reviews [][]byte) error {
	names := append([]string{"alice"}, reviewNamespaces(reviews)...)
	if err := prepareNamespaces(ctx, cl, profile, names...); err != nil {
		return err
	}
	for _, ns := range names {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// reviewNamespaces lists the namespaces the reviews name.
func reviewNamespaces(reviews [][]byte) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range reviews {
		var r admissionv1.AdmissionReview
		if json.Unmarshal(b, &r) != nil || r.Request == nil || r.Request.Namespace == "" || seen[r.Request.Namespace] {
			continue
		}
		seen[r.Request.Namespace] = true
		out = append(out, r.Request.Namespace)
	}
	sort.Strings(out)
	return out
}

// startGatekeeper starts Gatekeeper's webhook as its chart does (the
// webhook operation, fail-open webhook configuration aside: the load test
// registers ours, the same for both), with the constraint CRDs generated
// in the same process (the audit pod's job in a cluster) and without
// ValidatingAdmissionPolicies, so that the API server enforces nothing
// itself.
func startGatekeeper(bin, kubeconfig, certDir string) (*webhookProcess, error) {
	var ports [3]int
	for i := range ports {
		p, err := localenv.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	w := &webhookProcess{port: ports[0], health: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	w.cmd = exec.Command(bin,
		"--operation=webhook", "--operation=generate",
		"--default-create-vap-for-templates=false", "--default-create-vap-binding-for-constraints=false",
		"--host=127.0.0.1", fmt.Sprintf("--port=%d", ports[0]), "--cert-dir="+certDir, "--disable-cert-rotation",
		"--health-addr="+w.health, "--metrics-backend=prometheus", fmt.Sprintf("--prometheus-port=%d", ports[2]),
		"--exempt-namespace=gatekeeper-system", "--enable-external-data=false",
		"--debug-use-fake-pod", "--shutdown-delay=0", "--log-level=ERROR")
	w.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE=gatekeeper-system")
	w.cmd.Stdout, w.cmd.Stderr = io.Discard, io.Discard
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	w.client = newLoadClient()
	if err := w.waitReady(2 * time.Minute); err != nil {
		w.stop()
		return nil, fmt.Errorf("gatekeeper: %w", err)
	}
	return w, nil
}
