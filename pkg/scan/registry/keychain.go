// Package registry talks to container registries for the scanner: it
// builds credentials from a pod's image pull secrets, resolves tags to
// digests and opens images for scanning, with go-containerregistry. It
// never logs or returns credentials.
package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// dockerAuth is one registry's entry in a Docker config file.
type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
	Email         string `json:"email,omitempty"`
}

// entry is a credential and the registry and path prefix it applies to.
type entry struct {
	host string // host[:port], possibly with "*." globs in its labels
	path string // repository path prefix, possibly empty
	auth authn.AuthConfig
}

// Keychain hands out credentials from image pull secrets, matching
// registries as the kubelet does: by host (globs allowed in a label, as in
// *.azurecr.io), then by the longest repository path prefix.
type Keychain struct {
	entries []entry
}

var _ authn.Keychain = (*Keychain)(nil)

// parseDockerConfig reads the content of a kubernetes.io/dockerconfigjson
// (.dockerconfigjson, {"auths": {...}}) or kubernetes.io/dockercfg
// (.dockercfg, {...}) secret. source names the secret in errors; errors
// never quote credentials.
func parseDockerConfig(source string, data []byte, legacy bool) ([]entry, error) {
	var auths map[string]dockerAuth
	dec := json.NewDecoder(bytes.NewReader(data))
	if legacy {
		if err := dec.Decode(&auths); err != nil {
			return nil, fmt.Errorf("%s: .dockercfg is not a JSON object of registry credentials: %v", source, jsonErr(err))
		}
	} else {
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if err := dec.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("%s: .dockerconfigjson is not a Docker config file: %v", source, jsonErr(err))
		}
		if cfg.Auths == nil {
			return nil, fmt.Errorf("%s: .dockerconfigjson has no \"auths\"", source)
		}
		auths = cfg.Auths
	}
	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []entry
	for _, k := range keys {
		a := auths[k]
		host, p, err := parseKey(k)
		if err != nil {
			return nil, fmt.Errorf("%s: registry %q: %v", source, k, err)
		}
		ac := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: registry %q: auth is not base64", source, k)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("%s: registry %q: auth is not base64 of user:password", source, k)
			}
			ac.Username, ac.Password = user, pass
		}
		if ac == (authn.AuthConfig{}) {
			return nil, fmt.Errorf("%s: registry %q: no credentials (want auth, username/password or a token)", source, k)
		}
		out = append(out, entry{host: host, path: p, auth: ac})
	}
	return out, nil
}

// jsonErr describes a decoding error without the decoder's quote of the
// input, which could be part of a credential.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("a JSON %s where %s belongs", te.Value, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return "malformed JSON"
}

// parseKey splits a Docker config key ("https://index.docker.io/v1/",
// "registry.example.ca:5000/team", "*.azurecr.io") into host and path.
func parseKey(k string) (host, p string, err error) {
	s := k
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("not a registry URL")
		}
		s = u.Host + u.Path
	}
	host, p, _ = strings.Cut(s, "/")
	p = strings.Trim(path.Clean("/"+p), "/")
	if host == "" {
		return "", "", fmt.Errorf("no registry host")
	}
	host = strings.ToLower(host)
	switch host { // Docker Hub's names; its config key carries a /v1/ API path
	case "index.docker.io", "docker.io", "registry-1.docker.io":
		host = name.DefaultRegistry
		if p == "v1" || p == "v2" {
			p = ""
		}
	}
	return host, p, nil
}

// NewKeychain builds a keychain from image pull secrets, in order; for
// equally specific matches the first secret wins, as in the kubelet.
func NewKeychain(secrets []corev1.Secret) (*Keychain, error) {
	kc := &Keychain{}
	for i := range secrets {
		s := &secrets[i]
		source := fmt.Sprintf("Secret %s/%s", s.Namespace, s.Name)
		var (
			es  []entry
			err error
		)
		switch {
		case s.Data[corev1.DockerConfigJsonKey] != nil:
			es, err = parseDockerConfig(source, s.Data[corev1.DockerConfigJsonKey], false)
		case s.Data[corev1.DockerConfigKey] != nil:
			es, err = parseDockerConfig(source, s.Data[corev1.DockerConfigKey], true)
		default:
			err = fmt.Errorf("%s: type %s has neither %s nor %s; not an image pull secret", source, s.Type,
				corev1.DockerConfigJsonKey, corev1.DockerConfigKey)
		}
		if err != nil {
			return nil, err
		}
		kc.entries = append(kc.entries, es...)
	}
	return kc, nil
}

// Resolve implements authn.Keychain; without a match it is anonymous.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	reg := strings.ToLower(r.RegistryStr())
	repoPath := strings.TrimPrefix(strings.TrimPrefix(r.String(), r.RegistryStr()), "/")
	best, bestLen := -1, -1
	for i, e := range k.entries {
		if !hostMatches(e.host, reg) || !pathPrefix(e.path, repoPath) {
			continue
		}
		if l := len(e.path); l > bestLen {
			best, bestLen = i, l
		}
	}
	if best < 0 {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(k.entries[best].auth), nil
}

// hostMatches compares hosts label by label; a key label may be a glob
// ("*.example.ca"); ports must be equal.
func hostMatches(pattern, host string) bool {
	ph, pp, _ := strings.Cut(pattern, ":")
	hh, hp, _ := strings.Cut(host, ":")
	if pp != hp {
		return false
	}
	pl, hl := strings.Split(ph, "."), strings.Split(hh, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if ok, err := path.Match(pl[i], hl[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func pathPrefix(prefix, repo string) bool {
	return prefix == "" || repo == prefix || strings.HasPrefix(repo, prefix+"/")
}
