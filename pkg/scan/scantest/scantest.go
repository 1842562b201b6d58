// Package scantest builds real fixtures for scanner tests: a Trivy
// vulnerability database written with trivy-db's public API, Alpine-like
// images built with go-containerregistry, and go-containerregistry's
// registry serving them on 127.0.0.1. Nothing is downloaded.
package scantest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/bucket"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	bolt "go.etcd.io/bbolt"
)

// The fixture: an Alpine release Trivy still supports (no end-of-life
// warning), a package with a critical advisory, the vulnerable and the
// fixed version.
const (
	AlpineRelease     = "3.23.2"
	Package           = "busybox"
	VulnerableVersion = "1.37.0-r18"
	FixedVersion      = "1.37.0-r19"
	CVE               = "CVE-2099-0001"
)

// Advisory is one vulnerability of one Alpine package.
type Advisory struct {
	ID, Package, FixedVersion string
	Severity                  dbtypes.Severity
}

// DefaultAdvisories is the fixture's single critical advisory.
var DefaultAdvisories = []Advisory{{ID: CVE, Package: Package, FixedVersion: FixedVersion, Severity: dbtypes.SeverityCritical}}

// BuildDB writes a vulnerability database into dir (trivy.db and
// metadata.json, the layout of Trivy's <cache>/db) holding advisories for
// the fixture's Alpine release, built at updatedAt. It must not run while
// a scanner in the same process has a database open: trivy-db's handle is
// process-global.
func BuildDB(dir string, updatedAt time.Time, advisories []Advisory) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := tdb.Init(dir, tdb.WithBoltOptions(&bolt.Options{Timeout: 5 * time.Second})); err != nil {
		return fmt.Errorf("creating %s: %w", tdb.Path(dir), err)
	}
	release := AlpineRelease[:strings.LastIndex(AlpineRelease, ".")] // buckets are per major.minor
	src := bucket.NewAlpine(release).Name()
	c := tdb.Config{}
	err := c.BatchUpdate(func(tx *bolt.Tx) error {
		if err := c.PutDataSource(tx, src, dbtypes.DataSource{ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}); err != nil {
			return err
		}
		for _, a := range advisories {
			if err := c.PutAdvisory(tx, []string{src, a.Package}, a.ID, dbtypes.Advisory{FixedVersion: a.FixedVersion}); err != nil {
				return err
			}
			if err := c.PutVulnerability(tx, a.ID, dbtypes.Vulnerability{
				Title:          "test advisory " + a.ID,
				Severity:       a.Severity.String(),
				VendorSeverity: dbtypes.VendorSeverity{"nvd": a.Severity},
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := tdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", tdb.Path(dir), err)
	}
	// DownloadedAt must be set, or Trivy's own update logic would want to
	// download; NextUpdate is in the future for the same reason.
	return metadata.NewClient(dir).Update(metadata.Metadata{Version: tdb.SchemaVersion,
		NextUpdate: updatedAt.Add(24 * time.Hour), UpdatedAt: updatedAt, DownloadedAt: updatedAt})
}

// APK is an installed Alpine package; Origin (the source package, which
// Alpine advisories name) defaults to Name.
type APK struct{ Name, Version, Origin string }

// AlpineImage is a one-layer linux/amd64 image with /etc/alpine-release
// and an apk database listing pkgs.
func AlpineImage(pkgs ...APK) (v1.Image, error) {
	var db strings.Builder
	for _, p := range pkgs {
		origin := p.Origin
		if origin == "" {
			origin = p.Name
		}
		fmt.Fprintf(&db, "P:%s\nV:%s\nA:x86_64\nL:MIT\no:%s\n\n", p.Name, p.Version, origin)
	}
	layer, err := tarLayer(map[string]string{
		"etc/alpine-release":   AlpineRelease + "\n",
		"lib/apk/db/installed": db.String(),
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return mutate.ConfigFile(img, cfg)
}

// VulnerableImage has the fixture package at its vulnerable version.
func VulnerableImage() (v1.Image, error) {
	return AlpineImage(APK{Name: Package, Version: VulnerableVersion}, APK{Name: "musl", Version: "1.2.5-r10"})
}

// FixedImage has the fixture package at its fixed version.
func FixedImage() (v1.Image, error) {
	return AlpineImage(APK{Name: Package, Version: FixedVersion}, APK{Name: "musl", Version: "1.2.5-r10"})
}

func tarLayer(files map[string]string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// Registry is go-containerregistry's in-memory registry on 127.0.0.1.
type Registry struct {
	srv *httptest.Server
	// Host is host:port, for image references.
	Host string
	// Requests counts requests served, to check that nothing is pulled
	// twice.
	Requests func() int
}

// NewRegistry starts a registry; Close stops it.
func NewRegistry() *Registry {
	var n atomic.Int64
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	return &Registry{srv: srv, Host: strings.TrimPrefix(srv.URL, "http://"), Requests: func() int { return int(n.Load()) }}
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Push uploads img as repository:tag (repository without the host) and
// returns its digest.
func (r *Registry) Push(repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
