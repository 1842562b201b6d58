// Package images names container images the one way the scanner and the
// admission webhook both use, and lists the images a Pod, an Argo Workflow
// or a Tekton PipelineRun runs. It does no network call.
package images

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Ref is a parsed image reference. Repository is in go-containerregistry's
// canonical form: "python" is index.docker.io/library/python.
type Ref struct {
	Repository string
	// Tag is empty when the reference is by digest only.
	Tag string
	// Digest ("sha256:...") is empty when the reference is by tag only.
	Digest string
}

// Parse reads an image reference as a pod spec or a container runtime
// writes it: "python:3.12", "ghcr.io/x/y@sha256:...", "repo:tag@sha256:...",
// and a runtime's "docker-pullable://repo@sha256:...". A reference with
// neither tag nor digest gets the tag "latest", as the runtime would pull.
func Parse(image string) (Ref, error) {
	s := strings.TrimPrefix(image, "docker-pullable://")
	s = strings.TrimPrefix(s, "docker://")
	if s == "" {
		return Ref{}, fmt.Errorf("image reference is empty")
	}
	var r Ref
	if base, digest, ok := strings.Cut(s, "@"); ok {
		d, err := name.NewDigest(base+"@"+digest, name.WeakValidation)
		if err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", image, err)
		}
		r.Digest = d.DigestStr()
		if !strings.HasPrefix(r.Digest, "sha256:") {
			return Ref{}, fmt.Errorf("image reference %q: only sha256 digests are supported", image)
		}
		s = base
		// A tag next to a digest is informational; keep it for naming.
		if t, err := name.NewTag(base, name.WeakValidation); err == nil && hasExplicitTag(base) {
			r.Repository, r.Tag = t.Context().Name(), t.TagStr()
			return r, nil
		}
		repo, err := name.NewRepository(base, name.WeakValidation)
		if err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", image, err)
		}
		r.Repository = repo.Name()
		return r, nil
	}
	t, err := name.NewTag(s, name.WeakValidation)
	if err != nil {
		return Ref{}, fmt.Errorf("image reference %q: %w", image, err)
	}
	r.Repository, r.Tag = t.Context().Name(), t.TagStr()
	return r, nil
}

// hasExplicitTag reports whether ref ends in ":tag" after its last slash
// (a colon before it is a registry port).
func hasExplicitTag(ref string) bool {
	i := strings.LastIndex(ref, "/")
	return strings.Contains(ref[i+1:], ":")
}

// TagName is "repository:tag", the key a tag is looked up by; empty for a
// digest-only reference.
func (r Ref) TagName() string {
	if r.Tag == "" {
		return ""
	}
	return r.Repository + ":" + r.Tag
}

// DigestName is "repository@digest"; empty for a tag-only reference.
func (r Ref) DigestName() string {
	if r.Digest == "" {
		return ""
	}
	return r.Repository + "@" + r.Digest
}

// String is the most precise name of the reference.
func (r Ref) String() string {
	if r.Digest != "" {
		return r.DigestName()
	}
	return r.TagName()
}
