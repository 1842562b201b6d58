package registry

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func pullSecret(name, config string) corev1.Secret {
	return corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(config)}}
}

func TestKeychain_MatchesAsTheKubeletDoes(t *testing.T) {
	kc, err := NewKeychain([]corev1.Secret{
		pullSecret("hub", `{"auths":{"https://index.docker.io/v1/":{"auth":"`+b64("hubuser:hubpass")+`"}}}`),
		pullSecret("acr", `{"auths":{
			"*.azurecr.io":{"username":"glob","password":"p1"},
			"k8scc01covidacr.azurecr.io/team":{"username":"team","password":"p2"},
			"registry.example.ca:5000":{"identitytoken":"tok"}}}`),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "legacy"}, Type: corev1.SecretTypeDockercfg,
			Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"quay.io":{"auth":"` + b64("q:w") + `"}}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		image string
		want  authn.AuthConfig
	}{
		{"python:3.12", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"docker.io/jupyter/base:1", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"k8scc01covidacr.azurecr.io/other/app:1", authn.AuthConfig{Username: "glob", Password: "p1"}},
		{"k8scc01covidacr.azurecr.io/team/app:1", authn.AuthConfig{Username: "team", Password: "p2"}},
		{"k8scc01covidacr.azurecr.io/teamster/app:1", authn.AuthConfig{Username: "glob", Password: "p1"}},
		{"a.b.azurecr.io/app:1", authn.AuthConfig{}}, // a glob label matches one label
		{"registry.example.ca:5000/app:1", authn.AuthConfig{IdentityToken: "tok"}},
		{"registry.example.ca/app:1", authn.AuthConfig{}}, // other port
		{"quay.io/x/y:1", authn.AuthConfig{Username: "q", Password: "w"}},
		{"ghcr.io/x/y:1", authn.AuthConfig{}},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			ref, err := name.ParseReference(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			a, err := kc.Resolve(ref.Context())
			if err != nil {
				t.Fatal(err)
			}
			got := authn.AuthConfig{}
			if a != authn.Anonymous {
				c, err := a.Authorization()
				if err != nil {
					t.Fatal(err)
				}
				got = *c
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewKeychain_ErrorsNameTheSecretNeverTheCredential(t *testing.T) {
	const secret = "s3cr3t-value"
	tests := []struct {
		name   string
		secret corev1.Secret
		want   string
	}{
		{"not JSON", pullSecret("a", `{"auths":{"r":{"auth":"`+secret), "Secret team-a/a: .dockerconfigjson is not a Docker config file: truncated JSON"},
		{"syntax", pullSecret("a", `{"auths":{"r":{"auth":`+secret+`}}}`), "Secret team-a/a: .dockerconfigjson is not a Docker config file: malformed JSON at byte"},
		{"no auths", pullSecret("a", `{"credsStore":"x"}`), `Secret team-a/a: .dockerconfigjson has no "auths"`},
		{"wrong type", pullSecret("a", `{"auths":{"r":{"auth":5}}}`), "Secret team-a/a: .dockerconfigjson is not a Docker config file: a JSON number where string belongs"},
		{"auth not base64", pullSecret("a", `{"auths":{"r":{"auth":"`+secret+`!"}}}`), `Secret team-a/a: registry "r": auth is not base64`},
		{"auth without colon", pullSecret("a", `{"auths":{"r":{"auth":"`+b64(secret)+`"}}}`), `Secret team-a/a: registry "r": auth is not base64 of user:password`},
		{"no credentials", pullSecret("a", `{"auths":{"r":{"email":"x@y"}}}`), `Secret team-a/a: registry "r": no credentials`},
		{"bad URL", pullSecret("a", `{"auths":{"https://":{"auth":"`+b64("u:"+secret)+`"}}}`), `Secret team-a/a: registry "https://": not a registry URL`},
		{"not a pull secret", corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tls"}, Type: corev1.SecretTypeTLS},
			"Secret team-a/tls: type kubernetes.io/tls has neither .dockerconfigjson nor .dockercfg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeychain([]corev1.Secret{tc.secret})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error quotes the credential: %v", err)
			}
		})
	}
}

func FuzzParseDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"`+b64("u:p")+`"}}}`), false)
	f.Add([]byte(`{"*.azurecr.io/team":{"username":"u","password":"p"}}`), true)
	f.Add([]byte(`{"auths":{"r:5000":{"identitytoken":"t"}}}`), false)
	f.Fuzz(func(t *testing.T, data []byte, legacy bool) {
		es, err := parseDockerConfig("Secret ns/s", data, legacy)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Secret ns/s: ") {
				t.Fatalf("error does not name the secret: %v", err)
			}
			return
		}
		kc := &Keychain{entries: es}
		for _, e := range es {
			if e.host == "" || e.auth == (authn.AuthConfig{}) {
				t.Fatalf("entry without host or credentials: %+v", e)
			}
			if reg, err := name.NewRegistry(strings.ReplaceAll(e.host, "*", "x")); err == nil {
				if _, err := kc.Resolve(reg); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
