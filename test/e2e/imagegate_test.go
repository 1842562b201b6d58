package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/scantest"
)

// The image gate on the real API server: the webhook (in-process, as its
// ServiceAccount) judges pipeline pods on verdicts the real scanner wrote,
// read from its informer. Unscanned digests denied in a Deny namespace are
// queued through an ImageScan stub the webhook creates and the scanner
// picks up.
func TestImageGate(t *testing.T) {
	env := startScanner(t)
	c := shared
	ctx := context.Background()
	user, warns := c.userClient(t)
	const strict, relaxed = "gate-strict", "gate-relaxed"
	namespace(t, env.client, strict, map[string]string{"gate-e2e": "deny"})
	namespace(t, env.client, relaxed, nil)
	policy := &v1alpha1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.ImagePolicyName},
		Spec: v1alpha1.ImagePolicySpec{
			Unscanned: []v1alpha1.UnscannedRule{{Mode: v1alpha1.UnscannedDeny,
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"gate-e2e": "deny"}}}},
			RetryAfter: &metav1.Duration{Duration: 30 * time.Second},
		}}
	if err := env.client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.client.Delete(ctx, policy) })

	// A package of its own makes these digests the test's alone.
	marker := scantest.APK{Name: "gate-e2e", Version: "1.0.0-r0"}
	vulnRef, vulnDigest := env.push(t, "gate/etl:vulnerable", scantest.APK{Name: scantest.Package, Version: scantest.VulnerableVersion}, marker)
	fixedRef, fixedDigest := env.push(t, "gate/etl:fixed", scantest.APK{Name: scantest.Package, Version: scantest.FixedVersion}, marker)
	repo := strings.TrimSuffix(vulnRef, ":vulnerable")
	vulnPinned, fixedPinned := repo+"@"+vulnDigest, repo+"@"+fixedDigest
	step := map[string]string{"workflows.argoproj.io/workflow": "etl-run"}
	outer := t // what subtests create lives until the whole test ends
	n := 0
	create := func(ns, image string) error {
		n++
		p := scanPod(ns, "step-"+strconv.Itoa(n), step, image)
		err := user.Create(ctx, p)
		if err == nil {
			outer.Cleanup(func() { _ = env.client.Delete(ctx, p) })
		}
		return err
	}
	// retry creates until the API server's answer satisfies ok (the gate
	// sees new verdicts and exceptions through informers, a moment later).
	retry := func(what string, ok func(error) bool, ns, image string) error {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := create(ns, image)
			if ok(err) {
				return err
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last answer %v", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	names := func(err error, parts ...string) bool {
		for _, p := range parts {
			if err == nil || !strings.Contains(err.Error(), p) {
				return false
			}
		}
		return true
	}

	t.Run("an unscanned digest is denied in a Deny namespace and its scan requested", func(t *testing.T) {
		err := create(strict, vulnPinned)
		if !names(err, "[image-vulnerabilities] image "+vulnPinned+" has not been scanned", "a scan has been requested: retry in 30s") {
			t.Fatalf("got %v", err)
		}
		if is := env.waitScan(t, vulnDigest); !is.Status.Scanned() {
			t.Fatalf("the requested scan failed: %+v", is.Status)
		}
	})
	t.Run("the vulnerable image is denied naming the CVE and its fix", func(t *testing.T) {
		err := retry("denial naming the CVE", func(err error) bool { return names(err, scantest.CVE) }, strict, vulnPinned)
		want := "[image-vulnerabilities] image " + vulnPinned + ": " + scantest.CVE + " (" + scantest.Package + " fixed in " +
			scantest.FixedVersion + "); ask for an ImageException or use a fixed image"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q\nwant it to contain %q", err, want)
		}
	})
	t.Run("an exception admits it with a warning and records the use", func(t *testing.T) {
		ex := &v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: "gate-e2e-busybox"},
			Spec: v1alpha1.ImageExceptionSpec{CVEIDs: []string{scantest.CVE}, Images: []string{strings.SplitN(repo, "/", 2)[0] + "/gate/*"},
				Namespaces: []string{"gate-*"}, Expires: metav1.NewTime(time.Now().Add(time.Hour)), Reason: "e2e"}}
		if err := env.client.Create(ctx, ex); err != nil {
			t.Fatal(err)
		}
		outer.Cleanup(func() { _ = env.client.Delete(ctx, ex) })
		warns.take()
		retry("admission under the exception", func(err error) bool { return err == nil }, strict, vulnPinned)
		got := strings.Join(warns.take(), "\n")
		if !strings.Contains(got, "admitted under ImageException gate-e2e-busybox") {
			t.Errorf("warnings %q do not report the exception", got)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			cur := &v1alpha1.ImageException{}
			if err := env.client.Get(ctx, client.ObjectKeyFromObject(ex), cur); err != nil {
				t.Fatal(err)
			}
			if cur.Status.MatchedAdmissions >= 1 && cur.Status.LastUsed != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("exception status after 30s: %+v", cur.Status)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	t.Run("an expired exception is ignored and named", func(t *testing.T) {
		ex := &v1alpha1.ImageException{}
		if err := env.client.Get(ctx, client.ObjectKey{Name: "gate-e2e-busybox"}, ex); err != nil {
			t.Fatal(err)
		}
		ex.Spec.Expires = metav1.NewTime(time.Now().Add(-time.Minute))
		if err := env.client.Update(ctx, ex); err != nil {
			t.Fatal(err)
		}
		retry("denial despite the expired exception", func(err error) bool {
			return names(err, scantest.CVE, "expired ImageException gate-e2e-busybox ignored")
		}, strict, vulnPinned)
	})
	t.Run("the fixed digest is admitted once scanned", func(t *testing.T) {
		if err := create(strict, fixedPinned); !names(err, "has not been scanned") {
			t.Fatalf("got %v, want the unscanned denial", err)
		}
		env.waitScan(t, fixedDigest)
		warns.take()
		retry("admission of the fixed digest", func(err error) bool { return err == nil }, strict, fixedPinned)
		if w := warns.take(); len(w) != 0 {
			t.Errorf("unexpected warnings %q", w)
		}
	})
	t.Run("an unscanned image is warned about where the default applies", func(t *testing.T) {
		warns.take()
		if err := create(relaxed, fixedRef+"-never-pushed"); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(warns.take(), "\n"); !strings.Contains(got, "has not been scanned yet; it is admitted") {
			t.Errorf("warnings %q", got)
		}
	})
	t.Run("an unscanned tag in a Deny namespace asks for a digest", func(t *testing.T) {
		if err := create(strict, fixedRef+"-never-pushed"); !names(err, "pin it by digest", "then retry in 30s") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("scanRegistries limits the registries a denial asks the scanner to pull from", func(t *testing.T) {
		host := strings.SplitN(repo, "/", 2)[0]
		ref, digest := env.push(t, "gate/listed:1", scantest.APK{Name: scantest.Package, Version: scantest.FixedVersion},
			scantest.APK{Name: "gate-e2e-listed", Version: "1.0.0-r0"})
		pinned := strings.TrimSuffix(ref, ":1") + "@" + digest
		stub, err := v1alpha1.ImageScanName(digest)
		if err != nil {
			t.Fatal(err)
		}
		setRegistries := func(registries ...string) {
			t.Helper()
			cur := &v1alpha1.ImagePolicy{}
			if err := env.client.Get(ctx, client.ObjectKeyFromObject(policy), cur); err != nil {
				t.Fatal(err)
			}
			cur.Spec.ScanRegistries = registries
			if err := env.client.Update(ctx, cur); err != nil {
				t.Fatal(err)
			}
		}
		// Neither is the test registry: it has a port.
		setRegistries("registry.example.ca", strings.Split(host, ":")[0])
		outer.Cleanup(func() { setRegistries() })
		// The gate applies the policy a moment later; judged by the previous
		// one, the pinned image would have its scan requested. A tag gets
		// none either way.
		retry("the gate applying scanRegistries", func(err error) bool {
			return names(err, "its registry is not one the scanner pulls from")
		}, strict, fixedRef+"-never-pushed")
		if err := create(strict, pinned); !names(err, "image "+pinned+" has not been scanned", "its registry is not one the scanner pulls from") {
			t.Fatalf("got %v, want the denial naming the unlisted registry", err)
		}
		// The writer creates a requested stub at once: none after a while
		// means none was requested.
		time.Sleep(2 * time.Second)
		if err := env.client.Get(ctx, client.ObjectKey{Name: stub}, &v1alpha1.ImageScan{}); !apierrors.IsNotFound(err) {
			t.Fatalf("ImageScan %s for an image outside scanRegistries: %v, want none", stub, err)
		}
		setRegistries("registry.example.ca", host)
		retry("denial requesting the scan", func(err error) bool { return names(err, "a scan has been requested") }, strict, pinned)
		if is := env.waitScan(t, digest); !is.Status.Scanned() {
			t.Fatalf("the requested scan failed: %+v", is.Status)
		}
	})
	t.Run("an invalid policy is refused naming the field and the previous one stays", func(t *testing.T) {
		cur := &v1alpha1.ImagePolicy{}
		if err := env.client.Get(ctx, client.ObjectKeyFromObject(policy), cur); err != nil {
			t.Fatal(err)
		}
		if cur.Status.Error != "" {
			t.Fatalf("the valid policy's status: %+v", cur.Status)
		}
		cur.Spec.Unscanned = append(cur.Spec.Unscanned, v1alpha1.UnscannedRule{Mode: v1alpha1.UnscannedAllow,
			NamespaceSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "gate-e2e", Operator: metav1.LabelSelectorOpIn}}}})
		err := env.client.Update(ctx, cur)
		if !names(err, `admission webhook "imagepolicy.guard.statcan.gc.ca" denied the request`,
			`ImagePolicy "default": spec.unscanned[1].namespaceSelector: values: `) {
			t.Fatalf("update with In and no values: %v", err)
		}
		if err := create(strict, fixedRef+"-never-pushed"); !names(err, "pin it by digest") {
			t.Errorf("the previous policy is not in force: %v", err)
		}
	})
}
