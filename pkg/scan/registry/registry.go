package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// Client resolves and opens images. The zero value pulls linux/amd64 over
// HTTPS (plain HTTP for loopback and private-network registries, as
// go-containerregistry decides).
type Client struct {
	// Platform picks the image of a multi-platform index to scan.
	Platform *v1.Platform
	// Transport, when set, carries registry requests (custom CAs, proxies).
	Transport http.RoundTripper
	// UserAgent is sent to registries.
	UserAgent string
}

func (c *Client) options(ctx context.Context, kc authn.Keychain) []remote.Option {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	if c.Platform != nil {
		p = *c.Platform
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(p)}
	if kc != nil {
		opts = append(opts, remote.WithAuthFromKeychain(kc))
	}
	if c.Transport != nil {
		opts = append(opts, remote.WithTransport(c.Transport))
	}
	if c.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.UserAgent))
	}
	return opts
}

// Resolve returns the digest a tag points to now (of the index, for a
// multi-platform image: what pods and runtimes record).
func (c *Client) Resolve(ctx context.Context, ref images.Ref, kc authn.Keychain) (string, error) {
	if ref.Digest != "" {
		return ref.Digest, nil
	}
	t, err := name.NewTag(ref.TagName(), name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref.TagName(), err)
	}
	d, err := remote.Head(t, c.options(ctx, kc)...)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref.TagName(), err)
	}
	return d.Digest.String(), nil
}

// Image opens repository@digest for reading; for an index, the image for
// the client's platform. Layers are fetched only when read.
func (c *Client) Image(ctx context.Context, repository, digest string, kc authn.Keychain) (v1.Image, error) {
	d, err := name.NewDigest(repository+"@"+digest, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("image %s@%s: %w", repository, digest, err)
	}
	img, err := remote.Image(d, c.options(ctx, kc)...)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", d, err)
	}
	return img, nil
}
