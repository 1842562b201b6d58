package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestEphemeralContainers checks that a debug container added to a running
// pod (kubectl debug: an UPDATE of the pods/ephemeralcontainers
// subresource) reaches the webhook and is reviewed by a pod-security
// template, through the real API server.
func TestEphemeralContainers(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	const ns = "debugging"
	namespace(t, c.client, ns, nil)
	// TestWebhook loads the same template; apply replaces it.
	apply(t, c.client, readObject(t, "policies/pod-security-policy/privileged-containers/template.yaml"))
	deny := constraintFor("PSPPrivilegedContainer", "no-privileged-debug", "deny", ns)
	eventually(t, 10*time.Second, func() error { return c.client.Create(ctx, deny.DeepCopy()) })
	t.Cleanup(func() { _ = c.client.Delete(ctx, deny) })
	user, _ := c.userClient(t)
	eventually(t, 5*time.Second, func() error {
		probe := pod(ns, fmt.Sprintf("probe-%d", time.Now().UnixNano()), true)
		if err := user.Create(ctx, probe); err == nil {
			return fmt.Errorf("constraint not enforced yet: privileged pod %s admitted", probe.Name)
		}
		return nil
	})

	if err := user.Create(ctx, pod(ns, "notebook", false)); err != nil {
		t.Fatalf("compliant pod denied: %v", err)
	}
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pods := cs.CoreV1().Pods(ns)
	// debug adds an ephemeral container the way kubectl debug does: read the
	// pod, append the container, write the subresource.
	debug := func(name string, privileged bool) error {
		p, err := pods.Get(ctx, "notebook", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
			TargetContainerName: "main",
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name:            name,
				Image:           "k8scc01covidacr.azurecr.io/tools:1",
				Stdin:           true,
				TTY:             true,
				SecurityContext: &corev1.SecurityContext{Privileged: ptr(privileged)},
			},
		})
		_, err = pods.UpdateEphemeralContainers(ctx, "notebook", p, metav1.UpdateOptions{})
		return err
	}

	t.Run("a privileged debug container is denied with the constraint's message", func(t *testing.T) {
		err := debug("root-shell", true)
		if err == nil {
			t.Fatal("privileged ephemeral container admitted")
		}
		for _, want := range []string{`admission webhook "validation.guard.statcan.gc.ca" denied the request`,
			`[no-privileged-debug] container "root-shell" runs privileged; remove securityContext.privileged`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})

	t.Run("a compliant debug container is admitted", func(t *testing.T) {
		if err := debug("shell", false); err != nil {
			t.Fatalf("compliant ephemeral container denied: %v", err)
		}
		p, err := pods.Get(ctx, "notebook", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range p.Spec.EphemeralContainers {
			names = append(names, e.Name)
		}
		if len(names) != 1 || names[0] != "shell" {
			t.Errorf("ephemeral containers %v, want [shell]", names)
		}
	})
}
