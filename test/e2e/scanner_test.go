package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/scantest"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
	"github.com/statcan/daaas-guard/pkg/scanner"
)

// The scanner runs in-process as its ServiceAccount with the manifests'
// RBAC, against the shared control plane, scanning images from
// go-containerregistry's registry on loopback with Trivy's real code and a
// test vulnerability database.

const scannerSA = "system:serviceaccount:daaas-guard:daaas-guard-scanner"

type scannerEnv struct {
	reg     *scantest.Registry
	client  client.Client
	index   *verdict.Index
	cancel  context.CancelFunc
	done    chan error
	widePkg string
}

var (
	scannerOnce sync.Once
	scannerRun  *scannerEnv
	scannerErr  error
)

// The extra advisories of the "wide" image: enough fixable critical CVEs
// to fill an ImageScan's list, for the size check.
const widePackage = "libwide"

func startScanner(t *testing.T) *scannerEnv {
	t.Helper()
	c := startCluster(t)
	scannerOnce.Do(func() { scannerRun, scannerErr = newScannerEnv(t, c) })
	if scannerErr != nil {
		t.Fatal(scannerErr)
	}
	return scannerRun
}

func newScannerEnv(t *testing.T, c *cluster) (*scannerEnv, error) {
	// Kinds the scanner watches when they exist: Argo Workflows, Tekton
	// PipelineRuns and Starboard VulnerabilityReports (minimal CRDs of
	// our own).
	if _, err := envtest.InstallCRDs(c.cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("testdata", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		return nil, fmt.Errorf("installing CRDs: %w", err)
	}
	dir := filepath.Join(scannerTempDir, "db")
	advisories := slices.Clone(scantest.DefaultAdvisories)
	for i := range 12 {
		advisories = append(advisories, scantest.Advisory{ID: fmt.Sprintf("CVE-2099-1%03d", i), Package: widePackage,
			FixedVersion: "2.0.0-r0", Severity: dbtypes.SeverityCritical})
	}
	if err := scantest.BuildDB(dir, time.Now().Add(-time.Hour).Truncate(time.Second), advisories); err != nil {
		return nil, err
	}
	env := &scannerEnv{reg: scantest.NewRegistry(), done: make(chan error, 1), widePkg: widePackage}
	asScanner := rest.CopyConfig(c.cfg)
	asScanner.Impersonate = rest.ImpersonationConfig{
		UserName: scannerSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + guardNamespace, "system:authenticated"},
	}
	health, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := scanner.Config{
		Namespace:      guardNamespace,
		LeaderElection: true,
		DBDir:          dir,
		ReportDir:      scannerTempDir,
		Starboard:      true,
		Workloads:      true,
		PullSecrets:    true,
		Concurrency:    2,
		HealthAddr:     health,
		MetricsAddr:    "0",
		ShutdownGrace:  5 * time.Second,
		Metrics:        prometheus.NewRegistry(),
		Log:            zap.New(zap.UseDevMode(true), zap.Level(zapLevel())),
	}
	mgr, err := scanner.NewManager(asScanner, cfg)
	if err != nil {
		return nil, err
	}
	s, err := scanner.Setup(mgr, cfg)
	if err != nil {
		return nil, err
	}
	// The webhook's side: a verdict index fed by an informer.
	env.index = verdict.New()
	if err := env.index.Attach(context.Background(), mgr.GetCache()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	go func() {
		err := mgr.Start(ctx)
		_ = s.Close()
		env.done <- err
	}()
	env.client, err = client.New(c.cfg, client.Options{Scheme: scanner.Scheme()})
	if err != nil {
		return nil, err
	}
	return env, nil
}

// scannerTempDir outlives single tests: the scanner is shared.
var scannerTempDir = func() string {
	d, err := os.MkdirTemp("", "daaas-guard-scanner-e2e-")
	if err != nil {
		panic(err)
	}
	return d
}()

// stopScanner stops the shared scanner, if started (TestMain).
func stopScanner() {
	if scannerRun != nil {
		scannerRun.cancel()
		select {
		case <-scannerRun.done:
		case <-time.After(20 * time.Second):
		}
		scannerRun.reg.Close()
	}
	_ = os.RemoveAll(scannerTempDir)
}

func readAllLimited(r io.Reader) ([]byte, error) { return io.ReadAll(io.LimitReader(r, 1<<20)) }

func (e *scannerEnv) push(t *testing.T, repoTag string, pkgs ...scantest.APK) (ref, digest string) {
	t.Helper()
	img, err := scantest.AlpineImage(pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.reg.Push(repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return e.reg.Host + "/" + repoTag, d
}

// waitScan waits for the digest's ImageScan to hold a verdict.
func (e *scannerEnv) waitScan(t *testing.T, digest string) *v1alpha1.ImageScan {
	t.Helper()
	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	is := &v1alpha1.ImageScan{}
	for {
		err := e.client.Get(context.Background(), client.ObjectKey{Name: name}, is)
		if err == nil && (is.Status.Scanned() || is.Status.Error != "") {
			return is
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verdict for %s after 60s (last error: %v, status %+v)", digest, err, is.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scanPod(ns, name string, labels map[string]string, image string, pullSecrets ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr(false),
			Containers:                   []corev1.Container{{Name: "main", Image: image}},
		},
	}
	for _, s := range pullSecrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return p
}

func TestScanner_PipelinePodImagesGetVerdicts(t *testing.T) {
	env := startScanner(t)
	ctx := context.Background()
	namespace(t, env.client, "scan-pipeline", nil)
	musl := scantest.APK{Name: "musl", Version: "1.2.5-r10"}
	vulnRef, vulnDigest := env.push(t, "team/etl:vulnerable", scantest.APK{Name: scantest.Package, Version: scantest.VulnerableVersion}, musl)
	fixedRef, fixedDigest := env.push(t, "team/etl:fixed", scantest.APK{Name: scantest.Package, Version: scantest.FixedVersion}, musl)
	step := map[string]string{"workflows.argoproj.io/workflow": "etl-run-1"}
	for name, img := range map[string]string{"step-vulnerable": vulnRef, "step-fixed": fixedRef} {
		if err := env.client.Create(ctx, scanPod("scan-pipeline", name, step, img)); err != nil {
			t.Fatal(err)
		}
	}

	is := env.waitScan(t, vulnDigest)
	st := is.Status
	wantCVE := []v1alpha1.FixableVulnerability{{ID: scantest.CVE, Severity: "CRITICAL", Package: scantest.Package,
		InstalledVersion: scantest.VulnerableVersion, FixedVersion: scantest.FixedVersion}}
	if !st.Scanned() || st.Source != v1alpha1.SourceTrivy || !slices.Equal(st.FixableCriticalHigh, wantCVE) ||
		st.Fixable.Critical != 1 || st.DB == nil || !strings.HasPrefix(st.Scanner, "Trivy v0.") {
		t.Errorf("vulnerable image's verdict: %+v", st)
	}
	ref, _ := images.Parse(vulnRef)
	if !slices.Equal(st.Tags, []string{ref.TagName()}) || is.Spec.Repository != ref.Repository {
		t.Errorf("vulnerable image: repository %q, tags %v; want %q, [%s]", is.Spec.Repository, st.Tags, ref.Repository, ref.TagName())
	}
	fixed := env.waitScan(t, fixedDigest).Status
	if !fixed.Scanned() || fixed.Vulnerabilities != (v1alpha1.SeverityCounts{}) || len(fixed.FixableCriticalHigh) != 0 {
		t.Errorf("fixed image's verdict: %+v, want clean", fixed)
	}

	// The webhook's lookup: by tag and by digest, from the informer, with
	// no call to the registry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := env.index.Lookup(vulnRef)
		if err != nil {
			t.Fatal(err)
		}
		if v != nil && v.Scanned {
			if v.Digest != vulnDigest || len(v.FixableCriticalHigh) != 1 || v.FixableCriticalHigh[0].ID != scantest.CVE {
				t.Errorf("verdict index: %+v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the verdict index did not see the ImageScan")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _ := env.index.Lookup(fixedRef); v == nil || v.Digest != fixedDigest || v.Fixable != (v1alpha1.SeverityCounts{}) {
		t.Errorf("verdict index, fixed image: %+v", v)
	}
	if v, _ := env.index.Lookup(env.reg.Host + "/team/etl:never-seen"); v != nil {
		t.Errorf("an unseen tag has a verdict: %+v", v)
	}
}

func TestScanner_EachDigestIsScannedOnce(t *testing.T) {
	env := startScanner(t)
	ctx := context.Background()
	namespace(t, env.client, "scan-once", nil)
	ref, digest := env.push(t, "team/notebook:1", scantest.APK{Name: "musl", Version: "1.2.5-r10"})
	for i := range 5 {
		if err := env.client.Create(ctx, scanPod("scan-once", fmt.Sprint("nb-", i), map[string]string{"notebook-name": "nb"}, ref)); err != nil {
			t.Fatal(err)
		}
	}
	// The same image by digest, in another namespace.
	namespace(t, env.client, "scan-once-2", nil)
	byDigest := env.reg.Host + "/team/notebook@" + digest
	if err := env.client.Create(ctx, scanPod("scan-once-2", "other", nil, byDigest)); err != nil {
		t.Fatal(err)
	}
	first := env.waitScan(t, digest)
	time.Sleep(2 * time.Second) // time for a wrongful second scan
	again := env.waitScan(t, digest)
	if !again.Status.ScannedAt.Equal(first.Status.ScannedAt) {
		t.Errorf("scanned at %v, then again at %v: want one scan", first.Status.ScannedAt, again.Status.ScannedAt)
	}
}

func TestScanner_WorkflowsAndStarboardReports(t *testing.T) {
	env := startScanner(t)
	ctx := context.Background()
	namespace(t, env.client, "scan-argo", nil)
	ref, digest := env.push(t, "team/train:1", scantest.APK{Name: scantest.Package, Version: scantest.VulnerableVersion})
	wf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
		"metadata": map[string]any{"namespace": "scan-argo", "name": "train"},
		"spec": map[string]any{"entrypoint": "main", "templates": []any{
			map[string]any{"name": "main", "container": map[string]any{"image": ref}},
		}},
	}}
	if err := env.client.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	if st := env.waitScan(t, digest).Status; st.Fixable.Critical != 1 {
		t.Errorf("workflow image's verdict: %+v", st)
	}

	// A Starboard report for an image the scanner has not seen.
	sbDigest := "sha256:" + strings.Repeat("5", 64)
	vr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "VulnerabilityReport",
		"metadata": map[string]any{"namespace": "scan-argo", "name": "pod-legacy-main"},
		"report": map[string]any{
			"updateTimestamp": "2026-08-01T00:00:00Z",
			"scanner":         map[string]any{"name": "Trivy", "vendor": "Aqua Security", "version": "0.16.0"},
			"registry":        map[string]any{"server": "k8scc01covidacr.azurecr.io"},
			"artifact":        map[string]any{"repository": "legacy/app", "tag": "2", "digest": sbDigest},
			"summary":         map[string]any{"criticalCount": 1},
			"vulnerabilities": []any{map[string]any{"vulnerabilityID": "CVE-2021-3520", "resource": "liblz4-1",
				"installedVersion": "1.8.3-1", "fixedVersion": "1.8.3-1+deb10u1", "severity": "CRITICAL", "title": "lz4", "links": []any{}}},
		},
	}}
	if err := env.client.Create(ctx, vr); err != nil {
		t.Fatal(err)
	}
	st := env.waitScan(t, sbDigest).Status
	if st.Source != v1alpha1.SourceStarboard || st.Fixable.Critical != 1 || len(st.FixableCriticalHigh) != 1 ||
		!slices.Equal(st.Tags, []string{"k8scc01covidacr.azurecr.io/legacy/app:2"}) {
		t.Errorf("ingested verdict: %+v", st)
	}
}

// A PipelineRun that references its Pipeline by name holds no image when
// created: Tekton's controller writes the resolved pipeline to
// status.pipelineSpec afterwards, through the status subresource, which
// leaves the generation as it was. That write brings the images.
func TestScanner_PipelineRunResolvedIntoStatus(t *testing.T) {
	env := startScanner(t)
	ctx := context.Background()
	namespace(t, env.client, "scan-tekton", nil)
	// An image of its own: no other test's pod or workflow has it scanned.
	ref, digest := env.push(t, "team/fit:1", scantest.APK{Name: scantest.Package, Version: scantest.VulnerableVersion},
		scantest.APK{Name: "libfit", Version: "1.0.0-r0"})
	pr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
		"metadata": map[string]any{"namespace": "scan-tekton", "name": "train"},
		"spec":     map[string]any{"pipelineRef": map[string]any{"name": "train"}},
	}}
	if err := env.client.Create(ctx, pr); err != nil {
		t.Fatal(err)
	}
	// Its creation must be seen before its status is written: otherwise
	// the cache may already hold the resolved pipeline when it is read.
	// Events are handled in order, so once a PipelineRun created after it
	// has its image scanned, it was.
	probeRef, probeDigest := env.push(t, "team/probe:1", scantest.APK{Name: "libprobe", Version: "1.0.0-r0"})
	if err := env.client.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
		"metadata": map[string]any{"namespace": "scan-tekton", "name": "probe"},
		"spec": map[string]any{"pipelineSpec": map[string]any{"tasks": []any{map[string]any{"name": "p", "taskSpec": map[string]any{
			"steps": []any{map[string]any{"name": "p", "image": probeRef}}}}}}},
	}}); err != nil {
		t.Fatal(err)
	}
	env.waitScan(t, probeDigest)
	generation := pr.GetGeneration()
	pr.Object["status"] = map[string]any{
		"conditions":      []any{map[string]any{"type": "Succeeded", "status": "Unknown", "reason": "Running"}},
		"childReferences": []any{map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "train-fit", "pipelineTaskName": "fit"}},
		"pipelineSpec": map[string]any{"tasks": []any{map[string]any{"name": "fit", "taskSpec": map[string]any{
			"steps": []any{map[string]any{"name": "train", "image": ref, "script": "python fit.py"}}}}}},
	}
	if err := env.client.Status().Update(ctx, pr); err != nil {
		t.Fatal(err)
	}
	if pr.GetGeneration() != generation {
		t.Fatalf("the status write moved the generation from %d to %d: the test needs the status subresource", generation, pr.GetGeneration())
	}
	if st := env.waitScan(t, digest).Status; st.Fixable.Critical != 1 {
		t.Errorf("resolved pipeline's image verdict: %+v", st)
	}
}

// TestScanner_LargestImageScanFitsIn2KiB measures, as the API server
// returns it, an ImageScan holding the most the scanner writes: a full
// list of fixable CVEs, all tags and all pull secrets, from a real scan.
// The 2 KiB target is for the object the scanner writes; the managed
// fields the API server adds on top (about 1 KiB) are logged.
func TestScanner_LargestImageScanFitsIn2KiB(t *testing.T) {
	env := startScanner(t)
	ctx := context.Background()
	namespace(t, env.client, "statcan-das-wide-team", nil)
	img := []scantest.APK{{Name: widePackage, Version: "1.0.0-r0"}, {Name: "musl", Version: "1.2.5-r10"}}
	var digest string
	for i := range v1alpha1.MaxImageScanTags {
		var ref string
		ref, digest = env.push(t, fmt.Sprintf("statcan-das/jupyter-scipy-notebook:2026.08.%02d", i), img...)
		p := scanPod("statcan-das-wide-team", fmt.Sprint("wide-", i), map[string]string{"notebook-name": "wide"}, ref,
			"acr-pull-0", "acr-pull-1", "acr-pull-2", "acr-pull-3")
		if err := env.client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	name, _ := v1alpha1.ImageScanName(digest)
	deadline := time.Now().Add(60 * time.Second)
	for {
		is := env.waitScan(t, digest)
		if len(is.Status.Tags) == v1alpha1.MaxImageScanTags {
			if len(is.Status.FixableCriticalHigh) != v1alpha1.MaxImageScanVulnerabilities || int(is.Status.FixableNotListed) != 12-v1alpha1.MaxImageScanVulnerabilities ||
				len(is.Spec.PullSecrets) != 4 {
				t.Errorf("not the largest ImageScan: %+v", is)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tags %v after 60s", is.Status.Tags)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rc, err := rest.HTTPClientFor(shared.cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Get(strings.TrimSuffix(shared.cfg.Host, "/") + "/apis/guard.statcan.gc.ca/v1alpha1/imagescans/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := readAllLimited(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj["metadata"].(map[string]any), "managedFields")
	own, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest ImageScan: %d bytes; %d as returned with managed fields", len(own), len(body))
	if len(own) > 2048 {
		t.Errorf("the largest ImageScan is %d bytes, want at most 2048:\n%s", len(own), own)
	}
}
