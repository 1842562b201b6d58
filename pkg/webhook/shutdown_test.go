package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/pkg/admission"
	"github.com/statcan/daaas-guard/pkg/localenv"
	"github.com/statcan/daaas-guard/pkg/serving"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

// freePort returns a port nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// TestShutdown_KeepsServingThenDrains runs the manager NewManager builds
// through a termination: reviews keep being answered, on new connections
// too, while readiness fails during the delay; a review in flight when the
// server stops gets its whole answer; new connections are refused after.
func TestShutdown_KeepsServingThenDrains(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := localenv.WriteServingCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The delay is long: only the second signal ends it, so that nothing
	// below depends on how fast the machine is.
	drain := &serving.Drain{Delay: time.Hour, Log: logr.Discard()}
	port := freePort(t)
	healthAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg := webhook.Config{Host: "127.0.0.1", Port: port, CertDir: dir, HealthAddr: healthAddr, MetricsAddr: "0",
		ShutdownGrace: time.Minute, ShuttingDown: drain.Draining, Log: logr.Discard()}
	// Nothing here reads the cluster: an API server that is not there will
	// do.
	mgr, err := webhook.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	mgr.GetWebhookServer().Register(webhook.ValidatePath, admission.Serve(cradmission.HandlerFunc(
		func(ctx context.Context, req cradmission.Request) cradmission.Response {
			if req.UID == "slow" {
				close(entered)
				<-release
			}
			return cradmission.Allowed("")
		})))

	sigs := make(chan os.Signal, 2) // buffered: a signal nothing takes fails below instead of hanging
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(drain.Context(context.Background(), sigs)) }()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// Every request on its own connection, as from a replica the API
	// server has not talked to yet.
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := fmt.Sprintf("https://127.0.0.1:%d%s", port, webhook.ValidatePath)
	review := func(uid types.UID) (*admissionv1.AdmissionResponse, error) {
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request:  &admissionv1.AdmissionRequest{UID: uid, Operation: admissionv1.Create},
		})
		if err != nil {
			return nil, err
		}
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, fmt.Errorf("status %d: %w", resp.StatusCode, err)
		}
		return out.Response, nil
	}
	allowed := func(uid types.UID) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{UID: uid, Allowed: true, Result: &metav1.Status{Code: http.StatusOK}}
	}
	readyz := func() int {
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	refused := func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}

	eventually(t, "ready", func() bool { return readyz() == http.StatusOK })
	eventually(t, "the webhook answers", func() bool { _, err := review("first"); return err == nil })

	type answer struct {
		resp *admissionv1.AdmissionResponse
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		r, err := review("slow")
		slow <- answer{r, err}
	}()
	<-entered

	sigs <- syscall.SIGTERM
	eventually(t, "readiness fails", func() bool { return readyz() == http.StatusInternalServerError })
	got, err := review("during-delay")
	if err != nil {
		t.Fatalf("review during the shutdown delay: %v", err)
	}
	if diff := cmp.Diff(allowed("during-delay"), got); diff != "" {
		t.Errorf("review during the shutdown delay (-want +got):\n%s", diff)
	}

	sigs <- syscall.SIGTERM // ends the delay
	eventually(t, "new connections are refused", refused)
	select {
	case err := <-stopped:
		t.Fatalf("the manager stopped (%v) with a review in flight", err)
	case a := <-slow:
		t.Fatalf("the review in flight ended before its handler did: %+v", a)
	default:
	}
	close(release)
	a := <-slow
	if a.err != nil {
		t.Fatalf("review in flight during shutdown: %v", a.err)
	}
	if diff := cmp.Diff(allowed("slow"), a.resp); diff != "" {
		t.Errorf("review in flight during shutdown (-want +got):\n%s", diff)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("manager: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the manager did not stop after the review in flight ended")
	}
	if !refused() {
		t.Error("connections accepted after the manager stopped")
	}
}
