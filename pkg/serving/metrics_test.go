package serving

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"
)

// The flags default to secure serving: a deployment that does not say
// otherwise does not expose metrics and reports to anyone who can reach
// the pod.
func TestBindMetricsFlags(t *testing.T) {
	type got struct {
		Secure  bool
		CertDir string
	}
	for _, tc := range []struct {
		args []string
		want got
	}{
		{args: nil, want: got{Secure: true}},
		{args: []string{"--metrics-secure=false"}, want: got{Secure: false}},
		{args: []string{"--metrics-cert-dir=/metrics-certs"}, want: got{Secure: true, CertDir: "/metrics-certs"}},
	} {
		name := strings.Join(tc.args, " ")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var g got
			BindMetricsFlags(fs, &g.Secure, &g.CertDir)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetricsOptions(t *testing.T) {
	withCert := t.TempDir()
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(withCert, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyOnly := t.TempDir()
	if err := os.WriteFile(filepath.Join(keyOnly, "tls.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := map[string]http.Handler{"/reports/": http.NotFoundHandler()}
	type summary struct {
		Secure     bool
		Filtered   bool // the authentication and authorisation filter
		CertDir    string
		MinTLS     uint16
		NextProtos []string
		Extra      int
	}
	for _, tc := range []struct {
		name    string
		secure  bool
		certDir string
		want    summary
		wantErr string
	}{
		{name: "plain HTTP", want: summary{Extra: 1}},
		{name: "secure, self-signed", secure: true,
			want: summary{Secure: true, Filtered: true, MinTLS: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, Extra: 1}},
		{name: "secure, mounted certificate", secure: true, certDir: withCert,
			want: summary{Secure: true, Filtered: true, CertDir: withCert, MinTLS: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, Extra: 1}},
		{name: "certificate directory without a certificate", secure: true, certDir: keyOnly, wantErr: "tls.crt"},
		{name: "certificate directory without TLS", certDir: withCert, wantErr: "without TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := MetricsOptions(":8080", tc.secure, tc.certDir, extra)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.BindAddress != ":8080" {
				t.Errorf("bind address %q", o.BindAddress)
			}
			c := &tls.Config{}
			for _, f := range o.TLSOpts {
				f(c)
			}
			got := summary{Secure: o.SecureServing, CertDir: o.CertDir, MinTLS: c.MinVersion, NextProtos: c.NextProtos, Extra: len(o.ExtraHandlers),
				Filtered: o.FilterProvider != nil &&
					reflect.ValueOf(o.FilterProvider).Pointer() == reflect.ValueOf(quietFilter).Pointer()}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// A bearer token the API server rejects makes the filter log an error on
// every request; quietFilter lets one through per interval. The fake API
// server rejects every token, as it would a made-up one.
func TestQuietFilter_RejectedTokensLogOnce(t *testing.T) {
	var reviews int
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		reviews++
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview",`+
			`"status":{"authenticated":false,"error":"invalid bearer token"}}`)
	}))
	defer api.Close()
	var errorLines []string
	log := funcr.New(func(prefix, args string) { errorLines = append(errorLines, args) }, funcr.Options{})
	filter, err := quietFilter(&rest.Config{Host: api.URL, QPS: 1000, Burst: 1000}, api.Client())
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	h, err := filter(log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		// A token per request: the authenticator caches its answers.
		req.Header.Set("Authorization", fmt.Sprintf("Bearer made-up-%d", i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			t.Fatalf("request %d with a rejected token got %d", i, rec.Code)
		}
	}
	if served != 0 || reviews != 20 {
		t.Errorf("handler served %d requests, API server reviewed %d tokens; want 0 and 20", served, reviews)
	}
	if len(errorLines) != 1 {
		t.Errorf("%d error lines for 20 rejected tokens, want 1:\n%s", len(errorLines), strings.Join(errorLines, "\n"))
	}
}

func TestLimitErrors(t *testing.T) {
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) }, funcr.Options{Verbosity: 1})
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	log := limitErrors(base, 10*time.Second, func() time.Time { return now })
	named := log.WithName("metrics").WithValues("k", "v")
	log.Error(errors.New("one"), "failed")
	named.Error(errors.New("two"), "failed") // the same limit: left out
	log.Error(errors.New("three"), "failed") // left out
	log.Info("info is not limited")
	now = now.Add(10 * time.Second)
	named.Error(errors.New("four"), "failed")
	want := []string{
		` "msg"="failed" "error"="one"`,
		` "level"=0 "msg"="info is not limited"`,
		`metrics "msg"="failed" "error"="four" "k"="v" "leftOut"=2`,
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	if got := limitErrors(logr.Discard(), time.Second, time.Now); got.GetSink() != nil {
		t.Errorf("a discarding logger got a sink")
	}
}
