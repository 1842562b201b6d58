// Package trivy scans container images for vulnerabilities with Trivy
// (github.com/aquasecurity/trivy) running in this process, against an
// offline vulnerability database in a directory: no per-scan download, no
// network call but the image pull. It is the only package that imports
// Trivy, so that binaries other than the scanner do not link it.
//
// Trivy's maintainers say it is not designed as a library
// (aquasecurity/trivy#2938): the version is pinned in go.mod and the tests
// scan a real image against a real database, so an API change that makes
// scans find nothing fails them.
package trivy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	imageartifact "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
	"github.com/go-logr/logr"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// Options configure an Engine.
type Options struct {
	// DBDir holds the offline database: trivy.db and metadata.json, as
	// `trivy --download-db-only` leaves them in <cache>/db. Required.
	DBDir string
	// CacheDir, when set, keeps layer analyses across scans and restarts
	// (Trivy's fs cache), so a rescan after a database update pulls only
	// the manifest and config. Empty: an in-memory cache per scan.
	CacheDir string
	// MaxImageSize refuses larger images (uncompressed bytes; 0: no limit).
	MaxImageSize int64
	// Parallel is how many layers of one image are analysed at once
	// (default 2).
	Parallel int
	// KeepFull keeps Trivy's complete JSON report in Report.Full.
	KeepFull bool
	// Log receives Trivy's own log records too, its informational ones
	// demoted to debug.
	Log logr.Logger
}

// Engine scans images. The Trivy database handle is process-global, so a
// process has one Engine; scans run concurrently and share the database,
// which Reload swaps once running scans are done.
type Engine struct {
	opts    Options
	log     logr.Logger
	version string

	mu    sync.RWMutex // held for reading by scans, for writing by Reload
	db    report.DB
	cache cache.Cache // shared fs cache, or nil for per-scan memory caches

	optionsForTest *types.ScanOptions
}

// ErrDBNotFound means the database directory, trivy.db or metadata.json
// does not exist. Other failures to read them (permissions, a path through
// a file, corrupt contents) are other errors.
var ErrDBNotFound = errors.New("offline vulnerability database not found")

// New opens the database in opts.DBDir read-only. It also points the
// process's default slog logger, which Trivy logs through, at opts.Log:
// Trivy's own default buffers every record in memory until its CLI
// initialises logging, which a library user never does.
func New(opts Options) (*Engine, error) {
	if opts.DBDir == "" {
		return nil, errors.New("trivy: the vulnerability database directory is required")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	slog.SetDefault(slog.New(demoteInfo{logr.ToSlogHandler(opts.Log.WithName("trivy"))}))
	e := &Engine{opts: opts, log: opts.Log, version: trivyVersion()}
	// The database is looked at before the scan cache is opened: a caller
	// waiting for the database calls New again, and the cache's bolt file,
	// left open by a failed call, would lock that caller out of it.
	info, err := readMetadata(opts.DBDir)
	if err != nil {
		return nil, err
	}
	if opts.CacheDir != "" {
		c, _, err := cache.New(cache.Options{Backend: "fs", CacheDir: opts.CacheDir})
		if err != nil {
			return nil, fmt.Errorf("trivy: scan cache in %s: %w", opts.CacheDir, err)
		}
		e.cache = c
	}
	if err := openDB(opts.DBDir); err != nil {
		if e.cache != nil {
			_ = e.cache.Close()
		}
		return nil, err
	}
	e.db = info
	e.log.Info("vulnerability database loaded", "dir", opts.DBDir, "updatedAt", info.UpdatedAt, "schemaVersion", info.SchemaVersion)
	return e, nil
}

// Name is the scanner and its version, e.g. "Trivy v0.74.0".
func (e *Engine) Name() string { return "Trivy " + e.version }

// DB describes the database scans currently use.
func (e *Engine) DB() report.DB {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.db
}

// Reload reopens the database if its metadata says it was rebuilt
// (UpdatedAt changed), waiting for running scans first. It reports whether
// it did.
func (e *Engine) Reload() (bool, error) {
	info, err := readMetadata(e.opts.DBDir)
	if err != nil {
		return false, err
	}
	e.mu.RLock()
	same := info.UpdatedAt.Equal(e.db.UpdatedAt)
	e.mu.RUnlock()
	if same {
		return false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if info.UpdatedAt.Equal(e.db.UpdatedAt) {
		return false, nil
	}
	if err := tdb.Close(); err != nil {
		return false, fmt.Errorf("trivy: closing the vulnerability database: %w", err)
	}
	if err := openDB(e.opts.DBDir); err != nil {
		return false, err
	}
	e.log.Info("vulnerability database reloaded", "updatedAt", info.UpdatedAt, "previous", e.db.UpdatedAt)
	e.db = info
	return true, nil
}

// Close closes the database and the scan cache.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if e.cache != nil {
		errs = append(errs, e.cache.Close())
	}
	return errors.Join(append(errs, tdb.Close())...)
}

func readMetadata(dir string) (report.DB, error) {
	for _, f := range []string{tdb.Path(dir), metadata.Path(dir)} {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			return report.DB{}, fmt.Errorf("trivy: %w: %v (download it with `trivy image --download-db-only --cache-dir X` and point the scanner at X/db)", ErrDBNotFound, err)
		} else if err != nil {
			return report.DB{}, fmt.Errorf("trivy: vulnerability database: %w", err)
		}
	}
	m, err := metadata.NewClient(dir).Get()
	if err != nil {
		return report.DB{}, fmt.Errorf("trivy: reading %s: %w", metadata.Path(dir), err)
	}
	if m.Version != tdb.SchemaVersion {
		return report.DB{}, fmt.Errorf("trivy: %s: database schema version %d, this Trivy reads version %d", metadata.Path(dir), m.Version, tdb.SchemaVersion)
	}
	if m.UpdatedAt.IsZero() {
		return report.DB{}, fmt.Errorf("trivy: %s: UpdatedAt is missing", metadata.Path(dir))
	}
	return report.DB{SchemaVersion: m.Version, UpdatedAt: m.UpdatedAt}, nil
}

// openDB opens trivy.db read-only. Trivy's own db.Init drops bolt's open
// timeout, so it would wait forever for a writer's lock; this one gives up.
func openDB(dir string) error {
	if err := tdb.Init(dir, tdb.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: 30 * time.Second})); err != nil {
		return fmt.Errorf("trivy: opening %s: %w", tdb.Path(dir), err)
	}
	return nil
}

// disabledAnalyzers leave only what finds vulnerable OS and language
// packages in an image, and nothing that needs a database we do not have or
// the network: the jar analyzer needs Trivy's Java DB, executables are for
// Rekor lookups. This mirrors what `trivy image --scanners vuln` disables
// (pkg/commands/artifact/run.go, disabledAnalyzers).
var disabledAnalyzers = func() []analyzer.Type {
	d := []analyzer.Type{analyzer.TypeJar, analyzer.TypeSecret, analyzer.TypeLicenseFile,
		analyzer.TypeHistoryDockerfile, analyzer.TypeExecutable, analyzer.TypeRpmArchive, analyzer.TypeApkCommand}
	d = append(d, analyzer.TypeLockfiles...)
	return append(d, analyzer.TypeConfigFiles...)
}()

// ScanOptions are the options of a vulnerability scan. Two of them fail
// silently when left at their zero value, and are guarded by tests:
// without PkgRelationships every package is filtered out and nothing is
// found; without VulnSeveritySources every severity is UNKNOWN.
func scanOptions() types.ScanOptions {
	return types.ScanOptions{
		PkgTypes:            []string{types.PkgTypeOS, types.PkgTypeLibrary},
		PkgRelationships:    ftypes.Relationships,
		Scanners:            types.Scanners{types.VulnerabilityScanner},
		VulnSeveritySources: []dbtypes.SourceID{"auto"},
	}
}

// Scan scans img, the image repository@digest names, and returns its
// findings. img is read lazily: layers are pulled as Trivy analyses them.
func (e *Engine) Scan(ctx context.Context, repository, digest string, img v1.Image) (*report.Report, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	c := e.cache
	if c == nil {
		c = cache.NewMemoryCache()
		defer c.Close()
	}
	ref := repository + "@" + digest
	art, err := imageartifact.NewArtifact(namedImage{Image: img, ref: ref}, c, artifact.Option{
		DisabledAnalyzers: disabledAnalyzers,
		Offline:           true,
		NoProgress:        true,
		Parallel:          e.opts.Parallel,
		ImageOption:       ftypes.ImageOptions{MaxImageSize: e.opts.MaxImageSize},
	})
	if err != nil {
		return nil, fmt.Errorf("preparing the scan of %s: %w", ref, err)
	}
	svc := local.NewService(applier.NewApplier(c), ospkg.NewScanner(), langpkg.NewScanner(), vulnerability.NewClient(tdb.Config{}))
	opts := scanOptions()
	if e.optionsForTest != nil {
		opts = *e.optionsForTest
	}
	rep, err := scan.NewService(svc, art).ScanArtifact(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", ref, err)
	}
	rep.Trivy.Version = e.version // "dev" unless Trivy's own build sets it
	full, err := json.Marshal(rep)
	if err != nil {
		return nil, fmt.Errorf("encoding the report of %s: %w", ref, err)
	}
	// The same reader as for report files, so both paths agree.
	r, err := report.ParseTrivyJSON(ref, full)
	if err != nil {
		return nil, err
	}
	r.Repository, r.Digest = repository, digest
	if e.opts.KeepFull {
		r.Full = full
	}
	if rep.Metadata.OS != nil && rep.Metadata.OS.Eosl {
		e.log.Info("image OS no longer gets security updates; findings may be incomplete", "image", ref, "os", r.OS)
	}
	return r, nil
}

// namedImage gives a go-containerregistry image the names Trivy reports.
type namedImage struct {
	v1.Image
	ref string
}

func (i namedImage) Name() string { return i.ref }

func (i namedImage) ID() (string, error) {
	h, err := i.ConfigName()
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func (i namedImage) RepoTags() []string    { return nil }
func (i namedImage) RepoDigests() []string { return []string{i.ref} }

// pinnedVersion is the Trivy version go.mod requires (a test keeps them
// equal); test binaries carry no module list to read it from.
const pinnedVersion = "v0.74.0"

// trivyVersion is the linked Trivy module's version.
func trivyVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/aquasecurity/trivy" {
				return d.Version
			}
		}
	}
	return pinnedVersion
}

// demoteInfo logs Trivy's per-scan informational records ("Detected OS",
// "Number of language-specific files") at debug level.
type demoteInfo struct{ slog.Handler }

func (d demoteInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return d.Handler.Enabled(ctx, demote(l))
}

func (d demoteInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.Handler.Handle(ctx, r)
}

func (d demoteInfo) WithAttrs(a []slog.Attr) slog.Handler { return demoteInfo{d.Handler.WithAttrs(a)} }
func (d demoteInfo) WithGroup(n string) slog.Handler      { return demoteInfo{d.Handler.WithGroup(n)} }

func demote(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

// Dir is where Trivy keeps the database under a cache directory, for
// callers holding a `--cache-dir`.
func Dir(cacheDir string) string { return filepath.Join(cacheDir, "db") }
