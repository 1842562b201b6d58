package serving

import (
	"crypto/tls"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
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
					reflect.ValueOf(o.FilterProvider).Pointer() == reflect.ValueOf(filters.WithAuthenticationAndAuthorization).Pointer()}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}
