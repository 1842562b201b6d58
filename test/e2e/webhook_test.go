package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

func zapLevel() zapcore.Level {
	if os.Getenv("E2E_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.WarnLevel
}

// warnings collects the warnings the API server passes back.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// userClient acts as a data scientist would: a client whose warnings are
// recorded.
func (c *cluster) userClient(t *testing.T) (client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(c.cfg)
	cfg.WarningHandler = w
	cl, err := client.New(cfg, client.Options{Scheme: webhook.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl, w
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	docs, err := manifest.ReadFile(filepath.Join(repoRoot(t), path), manifest.Options{KeepLists: true})
	if err != nil {
		t.Fatal(err)
	}
	return docs[0].Object
}

func namespace(t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func pod(ns, name string, privileged bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr(false),
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           "k8scc01covidacr.azurecr.io/jupyterlab-cpu:v1",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr(privileged)},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// scrape reads the metrics endpoint at addr.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// seriesValue finds one series in a scrape; ok is false when it is absent
// (a labelled series appears only once something set it).
func seriesValue(t *testing.T, body, series string) (v float64, ok bool) {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if s, found := strings.CutPrefix(line, series+" "); found {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

// counterValue reads one series from the metrics endpoint at addr, which
// must expose it.
func counterValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	v, ok := seriesValue(t, scrape(t, addr), series)
	if !ok {
		t.Fatalf("/metrics lacks %s", series)
	}
	return v
}

// apply creates an object, replacing one left by an earlier run.
func apply(t *testing.T, c client.Client, u *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	u = u.DeepCopy()
	err := c.Create(ctx, u)
	if apierrors.IsAlreadyExists(err) {
		old := u.DeepCopy()
		if err = c.Get(ctx, client.ObjectKeyFromObject(u), old); err == nil {
			u.SetResourceVersion(old.GetResourceVersion())
			err = c.Update(ctx, u)
		}
	}
	if err != nil {
		t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func constraintFor(kind, name, action string, namespaces ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       kind,
		"metadata":   map[string]interface{}{"name": name},
		"spec": map[string]interface{}{
			"enforcementAction": action,
			"match": map[string]interface{}{
				"kinds": []interface{}{map[string]interface{}{"apiGroups": []interface{}{""}, "kinds": []interface{}{"Pod"}}},
			},
		},
	}}
	if len(namespaces) > 0 {
		var ns []interface{}
		for _, n := range namespaces {
			ns = append(ns, n)
		}
		_ = unstructured.SetNestedSlice(u.Object, ns, "spec", "match", "namespaces")
	}
	return u
}

// TestWebhook drives the webhook through the real API server. The steps
// share the cluster and run in order; the last one stops the webhook.
func TestWebhook(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	user, warns := c.userClient(t)

	namespace(t, c.client, "alice", map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"})
	namespace(t, c.client, "bob", nil)
	namespace(t, c.client, "carol", nil)

	apply(t, c.client, readObject(t, "policies/pod-security-policy/privileged-containers/template.yaml"))

	t.Run("constraint created while running is enforced within 2s of its creation", func(t *testing.T) {
		deny := constraintFor("PSPPrivilegedContainer", "no-privileged", "deny", "alice")
		// The template's CRD must be served before constraints can be created.
		eventually(t, 10*time.Second, func() error { return c.client.Create(ctx, deny.DeepCopy()) })
		created := time.Now()
		eventually(t, 2*time.Second, func() error {
			err := user.Create(ctx, pod("alice", fmt.Sprintf("probe-%d", time.Now().UnixNano()), true))
			if err == nil {
				return fmt.Errorf("privileged pod admitted %v after the constraint was created", time.Since(created))
			}
			return nil
		})
	})

	t.Run("a violating pod is denied with the constraint's message", func(t *testing.T) {
		err := user.Create(ctx, pod("alice", "root-shell", true))
		if err == nil {
			t.Fatal("privileged pod admitted")
		}
		for _, want := range []string{`admission webhook "validation.guard.statcan.gc.ca" denied the request`,
			`[no-privileged] container "main" runs privileged`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})

	t.Run("a compliant pod is admitted", func(t *testing.T) {
		if err := user.Create(ctx, pod("alice", "notebook", false)); err != nil {
			t.Fatalf("compliant pod denied: %v", err)
		}
	})

	t.Run("replicas no template tells apart are answered from the review cache; a change is evaluated", func(t *testing.T) {
		hits := func() float64 {
			return counterValue(t, c.metrics, `daaas_guard_engine_review_cache_total{result="hit"}`)
		}
		before := hits()
		for i := 0; i < 3; i++ {
			err := user.Create(ctx, pod("alice", fmt.Sprintf("replica-%d", i), true))
			if err == nil || !strings.Contains(err.Error(), `[no-privileged] container "main" runs privileged`) {
				t.Fatalf("replica %d: got %v, want the constraint's denial", i, err)
			}
		}
		// The pods above differ from root-shell in their names (and the
		// uid and creation time the API server gives them), which the
		// template does not read.
		if got := hits() - before; got < 3 {
			t.Errorf("%v of 3 replicas answered from the review cache", got)
		}
		if err := user.Create(ctx, pod("alice", "replica-fixed", false)); err != nil {
			t.Fatalf("the replica without privileges was denied: %v", err)
		}
	})

	t.Run("warn returns a warning and admits", func(t *testing.T) {
		apply(t, c.client, constraintFor("PSPPrivilegedContainer", "warn-bob", "warn", "bob"))
		warns.take()
		eventually(t, 2*time.Second, func() error {
			name := fmt.Sprintf("warned-%d", time.Now().UnixNano())
			if err := user.Create(ctx, pod("bob", name, true)); err != nil {
				return fmt.Errorf("warn constraint denied: %v", err)
			}
			for _, w := range warns.take() {
				if strings.Contains(w, `[warn-bob] container "main" runs privileged`) {
					return nil
				}
			}
			return fmt.Errorf("no warning yet")
		})
	})

	t.Run("dryrun admits", func(t *testing.T) {
		apply(t, c.client, constraintFor("PSPPrivilegedContainer", "dryrun-carol", "dryrun", "carol"))
		time.Sleep(500 * time.Millisecond)
		warns.take()
		if err := user.Create(ctx, pod("carol", "dry", true)); err != nil {
			t.Fatalf("dryrun constraint denied: %v", err)
		}
		if w := warns.take(); len(w) != 0 {
			t.Errorf("dryrun produced warnings: %v", w)
		}
	})

	t.Run("constraint status shows it is enforced", func(t *testing.T) {
		eventually(t, 5*time.Second, func() error {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(constraintFor("PSPPrivilegedContainer", "x", "deny").GroupVersionKind())
			if err := c.client.Get(ctx, client.ObjectKey{Name: "no-privileged"}, u); err != nil {
				return err
			}
			byPod, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
			for _, p := range byPod {
				m := p.(map[string]interface{})
				if m["id"] == "e2e-0" && m["enforced"] == true {
					return nil
				}
			}
			return fmt.Errorf("status.byPod = %v", byPod)
		})
	})

	t.Run("a template with a Rego error gets an error status and the webhook keeps serving", func(t *testing.T) {
		bad := readObject(t, "policies/pod-security-policy/privileged-containers/template.yaml")
		bad.SetName("pspbroken")
		_ = unstructured.SetNestedField(bad.Object, "PSPBroken", "spec", "crd", "spec", "names", "kind")
		code, _, _ := unstructured.NestedSlice(bad.Object, "spec", "targets")
		target := code[0].(map[string]interface{})
		src := target["code"].([]interface{})[0].(map[string]interface{})["source"].(map[string]interface{})
		src["rego"] = strings.Replace(src["rego"].(string), "package pspprivilegedcontainer", "package pspbroken", 1)
		src["rego"] = strings.Replace(src["rego"].(string), "c.securityContext.privileged == true", "undefined_function(c)", 1)
		_ = unstructured.SetNestedSlice(bad.Object, code, "spec", "targets")
		const loadErrors = `daaas_guard_load_errors_total{resource="template"}`
		before, _ := seriesValue(t, scrape(t, c.metrics), loadErrors) // absent until the first error
		apply(t, c.client, bad)
		eventually(t, 5*time.Second, func() error {
			u := readObject(t, "policies/pod-security-policy/privileged-containers/template.yaml")
			if err := c.client.Get(ctx, client.ObjectKey{Name: "pspbroken"}, u); err != nil {
				return err
			}
			byPod, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
			for _, p := range byPod {
				errs, _, _ := unstructured.NestedSlice(p.(map[string]interface{}), "errors")
				for _, e := range errs {
					m := e.(map[string]interface{})
					if strings.Contains(fmt.Sprint(m["message"]), "undefined_function") &&
						strings.HasPrefix(fmt.Sprint(m["location"]), "spec.targets[0].code[0].source.rego:") {
						return nil
					}
				}
			}
			return fmt.Errorf("status = %v", u.Object["status"])
		})
		// The error is counted before the status is written.
		if after, _ := seriesValue(t, scrape(t, c.metrics), loadErrors); after <= before {
			t.Errorf("%s went from %v to %v", loadErrors, before, after)
		}
		if err := user.Create(ctx, pod("alice", "still-denied", true)); err == nil {
			t.Error("after a broken template, privileged pods are admitted")
		}
		if err := user.Create(ctx, pod("alice", "still-admitted", false)); err != nil {
			t.Errorf("after a broken template, compliant pods are denied: %v", err)
		}
	})

	t.Run("exempt namespaces are skipped and the exemption cannot be self-granted", func(t *testing.T) {
		apply(t, c.client, constraintFor("PSPPrivilegedContainer", "everywhere", "deny"))
		time.Sleep(300 * time.Millisecond)
		if err := user.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "exempt-monitoring", Labels: map[string]string{"admission.gatekeeper.sh/ignore": "node-agents"}}}); err != nil {
			t.Fatalf("an allowed namespace could not carry the ignore label: %v", err)
		}
		if err := user.Create(ctx, pod("exempt-monitoring", "node-agent", true)); err != nil {
			t.Errorf("pod in an exempt namespace was reviewed: %v", err)
		}
		err := user.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "sneaky", Labels: map[string]string{"admission.gatekeeper.sh/ignore": "please"}}})
		if err == nil || !strings.Contains(err.Error(), "may not carry the label admission.gatekeeper.sh/ignore") {
			t.Errorf("a namespace granted itself the exemption: %v", err)
		}
		namespace(t, user, "dave", nil)
		ns := &corev1.Namespace{}
		if err := user.Get(ctx, client.ObjectKey{Name: "dave"}, ns); err != nil {
			t.Fatal(err)
		}
		ns.Labels = map[string]string{"admission.gatekeeper.sh/ignore": "later"}
		if err := user.Update(ctx, ns); err == nil {
			t.Error("an existing namespace granted itself the exemption by relabelling")
		}
		// The webhook's own namespace is never reviewed.
		if err := c.client.Create(ctx, pod(guardNamespace, "self", true)); err != nil {
			t.Errorf("pod in the webhook's namespace was reviewed: %v", err)
		}
	})

	t.Run("metrics are exposed", func(t *testing.T) {
		// A constraint the engine cannot load (a scoped action without its
		// scopedEnforcementActions, which the CRD schema lets through) is
		// counted as an error and a load error.
		const constraintErrors = `daaas_guard_load_errors_total{resource="constraint"}`
		before, _ := seriesValue(t, scrape(t, c.metrics), constraintErrors)
		broken := constraintFor("PSPPrivilegedContainer", "scoped-without-actions", "scoped", "alice")
		apply(t, c.client, broken)
		defer func() {
			if err := c.client.Delete(ctx, broken); err != nil {
				t.Error(err)
			}
		}()
		eventually(t, 5*time.Second, func() error {
			body := scrape(t, c.metrics)
			if v, _ := seriesValue(t, body, `daaas_guard_constraints{status="error"}`); v < 1 {
				return fmt.Errorf(`daaas_guard_constraints{status="error"} is %v`, v)
			}
			if v, _ := seriesValue(t, body, constraintErrors); v <= before {
				return fmt.Errorf("%s went from %v to %v", constraintErrors, before, v)
			}
			return nil
		})

		body := scrape(t, c.metrics)
		for _, series := range []string{
			`daaas_guard_admission_requests_total{decision="deny",kind="Pod",operation="CREATE"}`,
			// The latency buckets run from 1 ms to 10 s.
			`daaas_guard_admission_request_duration_seconds_bucket{decision="allow",kind="Pod",operation="CREATE",le="0.001"}`,
			`daaas_guard_admission_request_duration_seconds_bucket{decision="allow",kind="Pod",operation="CREATE",le="10"}`,
			`daaas_guard_violations_total{action="deny",constraint="no-privileged",constraint_kind="PSPPrivilegedContainer"}`,
			`daaas_guard_violations_total{action="warn",constraint="warn-bob",constraint_kind="PSPPrivilegedContainer"}`,
			`daaas_guard_violations_total{action="dryrun",constraint="dryrun-carol",constraint_kind="PSPPrivilegedContainer"}`,
			`daaas_guard_constraint_templates{status="loaded"} 1`,
			`daaas_guard_constraint_templates{status="error"} 1`,
			`daaas_guard_load_errors_total{resource="template"}`,
			`daaas_guard_constraints{status="enforced"}`,
			`daaas_guard_admission_in_flight_requests`,
			`daaas_guard_admission_slot_wait_seconds_bucket{le="0"}`,
			`daaas_guard_engine_evaluation_seconds_bucket`,
			`daaas_guard_engine_constraint_evaluations_total{evaluator="vm"}`,
			`daaas_guard_engine_review_cache_total{result="hit"}`,
		} {
			if !strings.Contains(body, series) {
				t.Errorf("/metrics lacks %s", series)
			}
		}
		// The admitted pods above are counted in the 10 s bucket, and each
		// denial by no-privileged (at least root-shell, the three replicas
		// and still-denied) as a deny violation.
		if v, _ := seriesValue(t, body, `daaas_guard_admission_request_duration_seconds_bucket{decision="allow",kind="Pod",operation="CREATE",le="10"}`); v < 1 {
			t.Errorf("10 s bucket of admitted pods: %v", v)
		}
		if v, _ := seriesValue(t, body, `daaas_guard_violations_total{action="deny",constraint="no-privileged",constraint_kind="PSPPrivilegedContainer"}`); v < 5 {
			t.Errorf("no-privileged denials counted: %v, want at least 5", v)
		}
	})

	t.Run("synced data follows the cluster: objects created, changed and deleted, and a page-spanning list", func(t *testing.T) {
		namespace(t, c.client, "dave", nil)
		// Enough pods before the sync starts for the informer's first list
		// to come in several pages (it asks for 500 at a time).
		for i := 0; i < 520; i++ {
			p := pod("dave", fmt.Sprintf("existing-%03d", i), false)
			p.Labels = map[string]string{"app": fmt.Sprintf("app-%03d", i)}
			if err := user.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		// A referential template reading both synced kinds: a pod whose
		// app label another pod of its namespace already has is denied, and
		// every pod is denied while the namespace's "gate" claim says
		// closed.
		apply(t, c.client, &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "templates.gatekeeper.sh/v1",
			"kind":       "ConstraintTemplate",
			"metadata":   map[string]interface{}{"name": "e2esynceddata"},
			"spec": map[string]interface{}{
				"crd": map[string]interface{}{"spec": map[string]interface{}{"names": map[string]interface{}{"kind": "E2ESyncedData"}}},
				"targets": []interface{}{map[string]interface{}{
					"target": "admission.k8s.gatekeeper.sh",
					"rego": `package e2esynceddata

violation[{"msg": msg}] {
  obj := input.review.object
  other := data.inventory.namespace[obj.metadata.namespace].v1.Pod[name]
  name != obj.metadata.name
  other.metadata.labels.app == obj.metadata.labels.app
  msg := sprintf("pod %v already has app %v", [name, obj.metadata.labels.app])
}

violation[{"msg": msg}] {
  gate := data.inventory.namespace[input.review.object.metadata.namespace].v1.PersistentVolumeClaim.gate
  gate.metadata.annotations.state == "closed"
  not gate.metadata.managedFields
  msg := sprintf("the gate is closed (%v, %v)", [gate.spec.resources.requests.storage, gate.spec.accessModes[0]])
}
`,
				}},
			},
		}})
		eventually(t, 10*time.Second, func() error {
			return c.client.Create(ctx, constraintFor("E2ESyncedData", "synced-data", "deny", "dave"))
		})
		syncCfg := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "config.gatekeeper.sh/v1alpha1", "kind": "Config",
			"metadata": map[string]interface{}{"name": "config", "namespace": "daaas-guard"},
			"spec": map[string]interface{}{"sync": map[string]interface{}{"syncOnly": []interface{}{
				map[string]interface{}{"group": "", "version": "v1", "kind": "Pod"},
				map[string]interface{}{"group": "", "version": "v1", "kind": "PersistentVolumeClaim"},
			}}},
		}}
		apply(t, c.client, syncCfg)
		defer func() { _ = c.client.Delete(ctx, syncCfg) }()

		labelled := func(name, app string) *corev1.Pod {
			p := pod("dave", name, false)
			p.Labels = map[string]string{"app": app}
			return p
		}
		denied := func(p *corev1.Pod, want string) func() error {
			return func() error {
				err := user.Create(ctx, p.DeepCopy(), client.DryRunAll)
				if err == nil {
					return fmt.Errorf("pod %s admitted", p.Name)
				}
				if !strings.Contains(err.Error(), want) {
					return fmt.Errorf("pod %s denied for another reason: %v", p.Name, err)
				}
				return nil
			}
		}
		admitted := func(p *corev1.Pod) func() error {
			return func() error { return user.Create(ctx, p.DeepCopy(), client.DryRunAll) }
		}
		// From the first list: the first and the last page.
		eventually(t, 10*time.Second, denied(labelled("dup-first", "app-000"), "pod existing-000 already has app app-000"))
		eventually(t, 2*time.Second, denied(labelled("dup-last", "app-519"), "pod existing-519 already has app app-519"))
		// The synced objects are counted by kind.
		eventually(t, 5*time.Second, func() error {
			resp, err := http.Get("http://" + c.metrics + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			const series = `daaas_guard_synced_objects{group="",kind="Pod",process="webhook",version="v1"} `
			for _, line := range strings.Split(string(body), "\n") {
				if n, ok := strings.CutPrefix(line, series); ok {
					if v, err := strconv.ParseFloat(n, 64); err != nil || v < 520 {
						return fmt.Errorf("%s", line)
					}
					return nil
				}
			}
			return fmt.Errorf("/metrics lacks %s", series)
		})
		// From the watch: a pod created now, then deleted.
		if err := user.Create(ctx, labelled("newcomer", "fresh")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, denied(labelled("dup-new", "fresh"), "pod newcomer already has app fresh"))
		if err := c.client.Delete(ctx, labelled("newcomer", "fresh")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, admitted(labelled("dup-new", "fresh")))

		// A claim created, changed, deleted: numbers keep their Gatekeeper
		// form and managedFields never reach the data.
		gate := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "gate", Namespace: "dave", Annotations: map[string]string{"state": "closed"}},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("3Gi")}},
			},
		}
		if err := c.client.Create(ctx, gate); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, denied(labelled("gated", "gated"), "the gate is closed (3Gi, ReadWriteOnce)"))
		setGate := func(state string) {
			t.Helper()
			if err := c.client.Get(ctx, client.ObjectKeyFromObject(gate), gate); err != nil {
				t.Fatal(err)
			}
			gate.Annotations["state"] = state
			if err := c.client.Update(ctx, gate); err != nil {
				t.Fatal(err)
			}
		}
		setGate("open")
		eventually(t, 2*time.Second, admitted(labelled("gated", "gated")))
		setGate("closed")
		eventually(t, 2*time.Second, denied(labelled("gated", "gated"), "the gate is closed"))
		// The API server's protection finalizer holds a deleted claim until
		// a controller lets it go; there is no controller here.
		if err := c.client.Delete(ctx, gate); err != nil {
			t.Fatal(err)
		}
		if err := c.client.Get(ctx, client.ObjectKeyFromObject(gate), gate); err != nil {
			t.Fatal(err)
		}
		gate.Finalizers = nil
		if err := c.client.Update(ctx, gate); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, admitted(labelled("gated", "gated")))

		// Syncing stopped: the kind's objects leave data.inventory.
		if err := c.client.Delete(ctx, syncCfg); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, admitted(labelled("dup-first", "app-000")))
		// Leave the cluster's policies as they were for the steps after
		// this one (the metrics step counts templates).
		if err := c.client.Delete(ctx, constraintFor("E2ESyncedData", "synced-data", "deny")); err != nil {
			t.Fatal(err)
		}
		tmpl := &unstructured.Unstructured{}
		tmpl.SetGroupVersionKind(schema.GroupVersionKind{Group: "templates.gatekeeper.sh", Version: "v1", Kind: "ConstraintTemplate"})
		tmpl.SetName("e2esynceddata")
		if err := c.client.Delete(ctx, tmpl); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() error {
			if err := c.client.Get(ctx, client.ObjectKeyFromObject(tmpl), tmpl); !apierrors.IsNotFound(err) {
				return fmt.Errorf("template still there (%v)", err)
			}
			return nil
		})
	})

	t.Run("a Deployment is denied for the Pods it would create", func(t *testing.T) {
		docs, err := manifest.ReadFile(filepath.Join(repoRoot(t), "policies", "expansion", "workloads.yaml"), manifest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			apply(t, c.client, d.Object)
		}
		deploy := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "alice"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       pod("alice", "", true).Spec,
				},
			},
		}
		eventually(t, 5*time.Second, func() error {
			err := user.Create(ctx, deploy.DeepCopy())
			if err == nil {
				_ = user.Delete(ctx, deploy.DeepCopy())
				return fmt.Errorf("a Deployment of privileged pods was admitted")
			}
			if !strings.Contains(err.Error(), `[Implied by expand-deployments] container "main" runs privileged`) {
				return fmt.Errorf("unexpected denial: %v", err)
			}
			return nil
		})
		deploy.Spec.Template.Spec = pod("alice", "", false).Spec
		if err := user.Create(ctx, deploy); err != nil {
			t.Errorf("a compliant Deployment was denied: %v", err)
		}
	})

	t.Run("deleting a template with a live constraint removes its CRD and constraint and stops enforcement", func(t *testing.T) {
		namespace(t, c.client, "erin", nil)
		// Denies labelled Pods and PriorityClasses: the PriorityClass also
		// shows that cluster-scoped objects are reviewed, by the webhook
		// entry that fails open, while the webhook answers.
		tmpl := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "templates.gatekeeper.sh/v1",
			"kind":       "ConstraintTemplate",
			"metadata":   map[string]interface{}{"name": "e2edoomed"},
			"spec": map[string]interface{}{
				"crd": map[string]interface{}{"spec": map[string]interface{}{"names": map[string]interface{}{"kind": "E2EDoomed"}}},
				"targets": []interface{}{map[string]interface{}{
					"target": "admission.k8s.gatekeeper.sh",
					"rego": `package e2edoomed

violation[{"msg": msg}] {
  input.review.object.metadata.labels["e2e-doomed"] == "true"
  msg := sprintf("%v %v is doomed", [input.review.kind.kind, input.review.object.metadata.name])
}
`,
				}},
			},
		}}
		apply(t, c.client, tmpl)
		constraint := constraintFor("E2EDoomed", "doomed", "deny")
		_ = unstructured.SetNestedSlice(constraint.Object, []interface{}{
			map[string]interface{}{"apiGroups": []interface{}{""}, "kinds": []interface{}{"Pod"}},
			map[string]interface{}{"apiGroups": []interface{}{"scheduling.k8s.io"}, "kinds": []interface{}{"PriorityClass"}},
		}, "spec", "match", "kinds")
		eventually(t, 10*time.Second, func() error { return c.client.Create(ctx, constraint.DeepCopy()) })

		doomedPod := pod("erin", "doomed", false)
		doomedPod.Labels = map[string]string{"e2e-doomed": "true"}
		doomedClass := &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-doomed", Labels: map[string]string{"e2e-doomed": "true"}},
			Value:      1000,
		}
		// Dry runs: the webhook reviews them (sideEffects: None) and
		// nothing is left to clean up.
		denied := func(obj client.Object, webhook, msg string) func() error {
			return func() error {
				err := user.Create(ctx, obj.DeepCopyObject().(client.Object), client.DryRunAll)
				if err == nil {
					return fmt.Errorf("%s admitted", obj.GetName())
				}
				if !strings.Contains(err.Error(), `admission webhook "`+webhook+`" denied the request`) || !strings.Contains(err.Error(), msg) {
					return fmt.Errorf("%s denied otherwise: %v", obj.GetName(), err)
				}
				return nil
			}
		}
		eventually(t, 5*time.Second, denied(doomedPod, "validation.guard.statcan.gc.ca", "[doomed] Pod doomed is doomed"))
		eventually(t, 5*time.Second, denied(doomedClass, "cluster.validation.guard.statcan.gc.ca", "[doomed] PriorityClass e2e-doomed is doomed"))

		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.client.Get(ctx, client.ObjectKey{Name: "e2edoomed.constraints.gatekeeper.sh"}, crd); err != nil {
			t.Fatal(err)
		}
		// The garbage collector's fallback, should no replica be running
		// when the template goes (envtest runs no garbage collector, so
		// what follows is the controller's own doing).
		if refs := crd.OwnerReferences; len(refs) != 1 || refs[0].Kind != "ConstraintTemplate" || refs[0].Name != "e2edoomed" {
			t.Errorf("CRD owner references %+v, want the template", refs)
		}

		if err := c.client.Delete(ctx, tmpl); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, func() error {
			if err := c.client.Get(ctx, client.ObjectKeyFromObject(crd), crd); !apierrors.IsNotFound(err) {
				return fmt.Errorf("constraint CRD still there (%v)", err)
			}
			// With its CRD gone the kind is not served: not found either way.
			err := c.client.Get(ctx, client.ObjectKey{Name: "doomed"}, constraint.DeepCopy())
			if !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
				return fmt.Errorf("constraint still there (%v)", err)
			}
			if err := user.Create(ctx, doomedPod.DeepCopy(), client.DryRunAll); err != nil {
				return fmt.Errorf("pod still denied: %v", err)
			}
			if err := user.Create(ctx, doomedClass.DeepCopy(), client.DryRunAll); err != nil {
				return fmt.Errorf("PriorityClass still denied: %v", err)
			}
			return nil
		})
	})

	t.Run("with the webhook stopped, namespaced objects fail closed and cluster-scoped ones open", func(t *testing.T) {
		c.stopWebhook(t)
		// In a user namespace, every kind is rejected, and so is a
		// Namespace that is not a system one (its labels are what
		// namespace-based policies read).
		for _, obj := range []client.Object{
			pod("alice", "while-down", false),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "while-down", Namespace: "alice"}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-while-down"}},
		} {
			err := user.Create(ctx, obj)
			if err == nil || !strings.Contains(err.Error(), `failed calling webhook "validation.guard.statcan.gc.ca"`) {
				t.Errorf("with the webhook down, creating %T returned %v; want a webhook call failure", obj, err)
			}
		}
		// System namespaces are excluded, so the cluster can recover.
		if err := c.client.Create(ctx, pod("kube-system", "recovery", false)); err != nil {
			t.Errorf("kube-system is blocked while the webhook is down: %v", err)
		}
		// The namespaceSelector does not apply to other cluster-scoped
		// objects: only their entry's failurePolicy Ignore keeps them
		// (RBAC, scheduling, nodes, CRDs) from being blocked.
		for _, obj := range []client.Object{
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-while-down"}},
			&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "e2e-while-down"}, Value: 1000},
		} {
			if err := user.Create(ctx, obj); err != nil {
				t.Errorf("with the webhook down, creating %T was blocked: %v", obj, err)
				continue
			}
			if err := c.client.Delete(ctx, obj); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("certificates are generated and the CA bundle injected", func(t *testing.T) {
		// The first webhook is stopped; this one manages its own certificates.
		if err := c.client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "daaas-guard-webhook-cert", Namespace: guardNamespace}}); err != nil {
			t.Fatal(err)
		}
		// This server cannot be started twice in one process (its
		// certificate rotator's controller name is global), so its ports
		// come from below the ephemeral range, where no other test's
		// connection or port-0 listener can take them first.
		port, err := fixedFreePort()
		if err != nil {
			t.Fatal(err)
		}
		health, _ := fixedFreePort()
		_, p, _ := strings.Cut(port, ":")
		portNum := 0
		fmt.Sscan(p, &portNum)
		certDir := t.TempDir()
		wcfg := webhook.Config{
			Namespace: guardNamespace, PodID: "e2e-rotating", ServiceAccount: guardSA,
			Host: "127.0.0.1", Port: portNum, CertDir: certDir,
			ServiceName: "daaas-guard-webhook", CertSecret: "daaas-guard-webhook-cert", WebhookConfigName: "daaas-guard-validating",
			MutatingWebhookConfigName: "daaas-guard-mutating", HealthAddr: health, MetricsAddr: "0", ShutdownGrace: 2 * time.Second,
			Metrics: prometheus.NewRegistry(), SecondInstance: true, // the first instance's series and controllers are registered already
			Log: zap.New(zap.Level(zapLevel())),
		}
		// In a pod the kubelet projects the Secret into the cert directory;
		// here a goroutine does it.
		mountCtx, unmount := context.WithCancel(ctx)
		defer unmount()
		go func() {
			for mountCtx.Err() == nil {
				s := &corev1.Secret{}
				if err := c.client.Get(mountCtx, client.ObjectKey{Namespace: guardNamespace, Name: "daaas-guard-webhook-cert"}, s); err == nil && len(s.Data["tls.crt"]) > 0 {
					_ = os.WriteFile(filepath.Join(certDir, "tls.key"), s.Data["tls.key"], 0o600)
					_ = os.WriteFile(filepath.Join(certDir, "tls.crt"), s.Data["tls.crt"], 0o600)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		if err := c.startWebhook(wcfg); err != nil {
			t.Fatal(err)
		}
		c.stopped = false
		defer c.stopWebhook(t)
		secret := &corev1.Secret{}
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: guardNamespace, Name: "daaas-guard-webhook-cert"}, secret); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"ca.crt", "ca.key", "tls.crt", "tls.key"} {
			if len(secret.Data[key]) == 0 {
				t.Errorf("secret lacks %s", key)
			}
		}
		// The webhook serves with the generated certificate.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(secret.Data["ca.crt"])
		conn, err := tls.Dial("tcp", port, &tls.Config{RootCAs: pool, ServerName: "daaas-guard-webhook.daaas-guard.svc", MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("TLS handshake with the generated certificate: %v", err)
		}
		if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("TLS version %x below 1.2", v)
		}
		// HTTP/2 is off unless --enable-http2.
		if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Errorf("negotiated protocol %q, want http/1.1", p)
		}
		conn.Close()
		// Ready means enforcing: the first review this replica answers is
		// judged by the constraints present when it started (no-privileged
		// was created long before it).
		privileged := pod("alice", "after-restart", true)
		privileged.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"} // as the API server sends it
		raw, err := json.Marshal(privileged)
		if err != nil {
			t.Fatal(err)
		}
		review, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "after-restart", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "alice", Name: "after-restart",
				Operation: admissionv1.Create, UserInfo: authenticationv1.UserInfo{Username: "alice@statcan.gc.ca"},
				Object: runtime.RawExtension{Raw: raw}},
		})
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, ServerName: "daaas-guard-webhook.daaas-guard.svc", MinVersion: tls.VersionTLS12}}}
		resp, err := hc.Post("https://"+port+webhook.ValidatePath, "application/json", bytes.NewReader(review))
		if err != nil {
			t.Fatalf("posting a review to the restarted replica: %v", err)
		}
		answer := admissionv1.AdmissionReview{}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		switch {
		case err != nil:
			t.Fatalf("reading the restarted replica's answer: %v", err)
		case answer.Response == nil || answer.Response.Allowed || answer.Response.Result == nil ||
			!strings.Contains(answer.Response.Result.Message, `[no-privileged] container "main" runs privileged`):
			t.Errorf("restarted replica's first answer to a privileged pod: %+v; want a denial by no-privileged", answer.Response)
		}
		eventually(t, 10*time.Second, func() error {
			vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := c.client.Get(ctx, client.ObjectKey{Name: "daaas-guard-validating"}, vwc); err != nil {
				return err
			}
			for _, w := range vwc.Webhooks {
				if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
					return fmt.Errorf("webhook %s has another CA bundle", w.Name)
				}
			}
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := c.client.Get(ctx, client.ObjectKey{Name: "daaas-guard-mutating"}, mwc); err != nil {
				return err
			}
			for _, w := range mwc.Webhooks {
				if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
					return fmt.Errorf("mutating webhook %s has another CA bundle", w.Name)
				}
			}
			return nil
		})
	})
}
