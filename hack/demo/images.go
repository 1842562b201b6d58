package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/localenv"
	"github.com/statcan/daaas-guard/pkg/scan/scantest"
)

// images is the demo's stand-in for the platform registry and Trivy's
// database: a one-advisory offline DB and a registry on loopback serving
// an image with the vulnerable package (pkg/scan/scantest builds both).
type images struct {
	dbDir    string
	reg      *scantest.Registry
	repo     string // registry/repository
	digest   string
	imageRef string // repo@digest
}

// prepareImages builds the DB under work and pushes the vulnerable image.
func prepareImages(work string) (*images, error) {
	im := &images{dbDir: filepath.Join(work, "trivy-db")}
	if err := scantest.BuildDB(im.dbDir, time.Now().Add(-time.Hour).Truncate(time.Second), scantest.DefaultAdvisories); err != nil {
		return nil, err
	}
	img, err := scantest.VulnerableImage()
	if err != nil {
		return nil, err
	}
	im.reg = scantest.NewRegistry()
	if im.digest, err = im.reg.Push("daaas/etl:2026.11", img); err != nil {
		im.reg.Close()
		return nil, err
	}
	im.repo = im.reg.Host + "/daaas/etl"
	im.imageRef = im.repo + "@" + im.digest
	return im, nil
}

func (im *images) close() {
	if im != nil && im.reg != nil {
		im.reg.Close()
	}
}

const demoException = "etl-busybox-sec-1234"

func stepImageGate(ctx context.Context, out *output, s *stack, workloads string) error {
	out.step("A pipeline step on a vulnerable image is denied citing the CVE, then admitted after an exception")
	im := s.images
	// The loopback registry stands in for the platform registry: the
	// profile's registry constraints must accept it.
	if err := allowRegistry(ctx, s.env.Client, im.reg.Host); err != nil {
		return err
	}
	name, err := v1alpha1.ImageScanName(im.digest)
	if err != nil {
		return err
	}
	// CI asks for a scan of what it pushed, as the webhook does when it
	// denies an unscanned digest: an ImageScan with only a spec.
	stub := &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ImageScanSpec{Digest: im.digest, Repository: im.repo}}
	if err := s.env.Client.Create(ctx, stub); err != nil {
		return err
	}
	out.say("the demo's loopback registry %s stands in for the platform registry (added to the profile's registry constraints)", im.reg.Host)
	out.say("CI pushes %s and asks the scanner for a verdict (ImageScan %s); the scanner runs Trivy in-process over an offline DB", im.imageRef, name)
	is := &v1alpha1.ImageScan{}
	if err := localenv.WaitFor(ctx, time.Minute, func() error {
		if err := s.env.Client.Get(ctx, client.ObjectKey{Name: name}, is); err != nil {
			return err
		}
		if !is.Status.Scanned() {
			return fmt.Errorf("ImageScan %s not scanned yet (error: %q)", name, is.Status.Error)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, v := range is.Status.FixableCriticalHigh {
		out.say("verdict: %s %s in %s %s, fixed in %s", v.Severity, v.ID, v.Package, v.InstalledVersion, v.FixedVersion)
	}

	pod, err := gpuStep(workloads) // the KFP step, in the GPU profile
	if err != nil {
		return err
	}
	pod.Name = "etl-pipeline-q8w2d-system-container-impl-1"
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "main" {
			pod.Spec.Containers[i].Image = im.imageRef
		}
	}
	out.say("Argo creates KFP step %s/%s with main container image %s", pod.Namespace, pod.Name, im.imageRef)
	var denial error
	if err := localenv.WaitFor(ctx, 30*time.Second, func() error {
		denial = s.env.Client.Create(ctx, pod.DeepCopy(), client.DryRunAll)
		if denial == nil || !strings.Contains(denial.Error(), "[image-vulnerabilities]") {
			return fmt.Errorf("not yet denied on the verdict: %v", denial)
		}
		if strings.Contains(denial.Error(), "allowed registr") {
			return fmt.Errorf("the registry constraints do not accept %s yet: %v", im.reg.Host, denial)
		}
		return nil
	}); err != nil {
		return out.fail("the step on the vulnerable image was not denied: %v", err)
	}
	out.quote(denial.Error())
	if !strings.Contains(denial.Error(), scantest.CVE+" ("+scantest.Package+" fixed in "+scantest.FixedVersion+")") {
		return out.fail("the denial does not cite %s and its fix", scantest.CVE)
	}
	out.ok("denied, citing %s and the fixed version", scantest.CVE)

	ex := &v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: demoException},
		Spec: v1alpha1.ImageExceptionSpec{CVEIDs: []string{scantest.CVE}, Images: []string{im.repo}, Namespaces: []string{pod.Namespace},
			Expires: metav1.NewTime(time.Now().Add(14 * 24 * time.Hour).Truncate(time.Second)),
			Reason:  "SEC-1234: the fixed base image ships next sprint; approved by the ITSO"}}
	if err := s.env.Client.Create(ctx, ex); err != nil {
		return err
	}
	out.say("the security team accepts the risk for two weeks: ImageException %s (cveIDs [%s], images [%s], namespaces [%s], reason %q)",
		ex.Name, scantest.CVE, im.repo, pod.Namespace, ex.Spec.Reason)
	warnings := &warningCollector{}
	admin, err := adminWithWarnings(s, warnings)
	if err != nil {
		return err
	}
	if err := localenv.WaitFor(ctx, 30*time.Second, func() error {
		warnings.list = nil
		return admin.Create(ctx, pod.DeepCopy())
	}); err != nil {
		return out.fail("the step was not admitted under the exception: %v", err)
	}
	var used []string
	for _, w := range warnings.list {
		if strings.Contains(w, "[image-vulnerabilities]") && strings.Contains(w, "ImageException") {
			used = append(used, w)
		}
	}
	out.quote(strings.Join(used, "\n"))
	if len(used) == 0 {
		return out.fail("the admission did not report the exception")
	}
	if err := localenv.WaitFor(ctx, 30*time.Second, func() error {
		if err := s.env.Client.Get(ctx, client.ObjectKeyFromObject(ex), ex); err != nil {
			return err
		}
		if ex.Status.MatchedAdmissions == 0 {
			return errors.New("no use recorded yet")
		}
		return nil
	}); err != nil {
		return err
	}
	out.say("ImageException %s status: matchedAdmissions %d, lastUsed %s", ex.Name, ex.Status.MatchedAdmissions, ex.Status.LastUsed.UTC().Format(time.RFC3339))
	out.ok("admitted under the exception, and its use recorded")
	return nil
}

// allowRegistry adds host to the profile's registry constraints (the
// allowed images, and the pipeline images' provenance).
func allowRegistry(ctx context.Context, c client.Client, host string) error {
	for _, k := range []struct{ kind, name, param string }{
		{"ContainerAllowedImages", "images-from-platform-registry", "repos"},
		{"PipelineImageProvenance", "pipeline-images-from-acr-by-digest", "registries"},
	} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Kind: k.kind})
		if err := c.Get(ctx, client.ObjectKey{Name: k.name}, u); err != nil {
			return err
		}
		list, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "parameters", k.param)
		if err := unstructured.SetNestedStringSlice(u.Object, append(list, host), "spec", "parameters", k.param); err != nil {
			return err
		}
		if err := c.Update(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// adminWithWarnings is the admin client (standing in for Argo's
// controller), collecting warnings.
func adminWithWarnings(s *stack, w *warningCollector) (client.Client, error) {
	cfg := rest.CopyConfig(s.env.Config)
	cfg.WarningHandlerWithContext = w
	return client.New(cfg, client.Options{Scheme: s.env.Client.Scheme()})
}
