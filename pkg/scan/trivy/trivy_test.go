package trivy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"

	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/registry"
	"github.com/statcan/daaas-guard/pkg/scan/report"
	"github.com/statcan/daaas-guard/pkg/scan/scantest"
)

var updateFixture = flag.Bool("update-fixture", false, "rewrite ../report/testdata/trivy-alpine.json from a real scan")

// fixture is a real database, a registry on loopback and images in it.
type fixture struct {
	dbDir, db2Dir string
	reg           *scantest.Registry
	vuln, fixed   string // repository@digest
	mixed         string
}

var t0 = time.Date(2026, 8, 20, 6, 0, 0, 0, time.UTC)

// The advisories of the mixed image: one per kind of finding a verdict
// counts (fixable critical, unfixed high, fixable medium in a package whose
// advisories name its origin).
var mixedAdvisories = append([]scantest.Advisory{
	{ID: "CVE-2099-0002", Package: "musl", Severity: dbtypes.SeverityHigh},
	{ID: "CVE-2099-0003", Package: "openssl", FixedVersion: "3.5.2-r1", Severity: dbtypes.SeverityMedium},
}, scantest.DefaultAdvisories...)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dbDir: filepath.Join(t.TempDir(), "db"), db2Dir: filepath.Join(t.TempDir(), "db")}
	// Both databases are built before any engine opens one: trivy-db's
	// handle is process-global.
	if err := scantest.BuildDB(f.dbDir, t0, mixedAdvisories); err != nil {
		t.Fatal(err)
	}
	if err := scantest.BuildDB(f.db2Dir, t0.Add(24*time.Hour), append(slices.Clone(mixedAdvisories),
		scantest.Advisory{ID: "CVE-2099-0004", Package: scantest.Package, FixedVersion: "1.38.0-r0", Severity: dbtypes.SeverityHigh})); err != nil {
		t.Fatal(err)
	}
	f.reg = scantest.NewRegistry()
	t.Cleanup(f.reg.Close)
	push := func(repoTag string, pkgs ...scantest.APK) string {
		img, err := scantest.AlpineImage(pkgs...)
		if err != nil {
			t.Fatal(err)
		}
		d, err := f.reg.Push(repoTag, img)
		if err != nil {
			t.Fatal(err)
		}
		return f.reg.Host + "/" + strings.SplitN(repoTag, ":", 2)[0] + "@" + d
	}
	musl := scantest.APK{Name: "musl", Version: "1.2.5-r10"}
	// musl carries the mixed image's unfixed advisory; the vulnerable and
	// fixed images leave it out so they differ by the one CVE.
	f.vuln = push("etl:vulnerable", scantest.APK{Name: scantest.Package, Version: scantest.VulnerableVersion})
	f.fixed = push("etl:fixed", scantest.APK{Name: scantest.Package, Version: scantest.FixedVersion})
	f.mixed = push("mixed:1", scantest.APK{Name: scantest.Package, Version: scantest.VulnerableVersion}, musl,
		scantest.APK{Name: "libcrypto3", Version: "3.5.2-r0", Origin: "openssl"}, scantest.APK{Name: "libssl3", Version: "3.5.2-r0", Origin: "openssl"})
	return f
}

func (f *fixture) scan(t *testing.T, e *Engine, image string) *report.Report {
	t.Helper()
	ref, err := images.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	rc := &registry.Client{}
	img, err := rc.Image(context.Background(), ref.Repository, ref.Digest, &registry.Keychain{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Scan(context.Background(), ref.Repository, ref.Digest, img)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// One test function for the engine: trivy-db's handle is global, so the
// engine's life must not overlap another's.
func TestEngine(t *testing.T) {
	f := newFixture(t)
	e, err := New(Options{DBDir: f.dbDir, KeepFull: true, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.DB(); got.SchemaVersion != 2 || !got.UpdatedAt.Equal(t0) {
		t.Errorf("DB %+v, want schema 2 built at %v", got, t0)
	}
	if got := e.Name(); got != "Trivy "+pinnedVersion {
		t.Errorf("Name %q, want Trivy and its module version", got)
	}
	gomod, err := os.ReadFile(filepath.Join("..", "..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(gomod, []byte("github.com/aquasecurity/trivy "+pinnedVersion+"\n")) {
		t.Errorf("go.mod does not require Trivy %s: update pinnedVersion with the module", pinnedVersion)
	}

	// The CVE must be found, with its severity and fixed version, through
	// Trivy's real code: this fails if a silent trap (nil
	// PkgRelationships: nothing found; empty VulnSeveritySources:
	// UNKNOWN) or a Trivy API change makes scans miss it.
	t.Run("finds the known CVE", func(t *testing.T) {
		r := f.scan(t, e, f.vuln)
		want := []report.Finding{{ID: scantest.CVE, Package: scantest.Package, InstalledVersion: scantest.VulnerableVersion,
			FixedVersion: scantest.FixedVersion, Severity: report.Critical}}
		if diff := cmp.Diff(want, r.Findings); diff != "" {
			t.Errorf("findings (-want +got):\n%s", diff)
		}
		if r.OS != "alpine "+scantest.AlpineRelease {
			t.Errorf("OS %q", r.OS)
		}
		if !bytes.Contains(r.Full, []byte(scantest.CVE)) {
			t.Error("the full report lacks the CVE")
		}
	})
	t.Run("the fixed image is clean", func(t *testing.T) {
		if r := f.scan(t, e, f.fixed); len(r.Findings) != 0 {
			t.Errorf("findings %+v, want none", r.Findings)
		}
	})
	t.Run("every kind of finding", func(t *testing.T) {
		r := f.scan(t, e, f.mixed)
		got := report.Summarize(r.Findings, 8)
		if got.Vulnerabilities.Critical != 1 || got.Vulnerabilities.High != 1 || got.Vulnerabilities.Medium != 2 ||
			got.Fixable.Critical != 1 || got.Fixable.High != 0 || got.Fixable.Medium != 2 {
			t.Errorf("summary %+v", got)
		}
		if *updateFixture {
			var out bytes.Buffer
			if err := json.Indent(&out, r.Full, "", "  "); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "report", "testdata", "trivy-alpine.json"), append(out.Bytes(), '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("the traps are real", func(t *testing.T) {
		// Evidence for the options the engine pins: were either left out,
		// Trivy would not fail, it would just see less.
		for _, tc := range []struct {
			name  string
			mod   func(*types.ScanOptions)
			check func(*testing.T, []types.DetectedVulnerability)
		}{
			{"nil PkgRelationships finds nothing", func(o *types.ScanOptions) { o.PkgRelationships = nil },
				func(t *testing.T, v []types.DetectedVulnerability) {
					if len(v) != 0 {
						t.Errorf("found %d; Trivy no longer drops everything here, review scanOptions", len(v))
					}
				}},
			{"empty VulnSeveritySources gives UNKNOWN", func(o *types.ScanOptions) { o.VulnSeveritySources = nil },
				func(t *testing.T, v []types.DetectedVulnerability) {
					if len(v) != 1 || v[0].Severity != "UNKNOWN" {
						t.Errorf("found %+v; Trivy no longer loses the severity here, review scanOptions", v)
					}
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				opts := scanOptions()
				tc.mod(&opts)
				e.optionsForTest = &opts
				defer func() { e.optionsForTest = nil }()
				r := f.scan(t, e, f.vuln)
				var rep types.Report
				if err := json.Unmarshal(r.Full, &rep); err != nil {
					t.Fatal(err)
				}
				var vulns []types.DetectedVulnerability
				for _, res := range rep.Results {
					vulns = append(vulns, res.Vulnerabilities...)
				}
				tc.check(t, vulns)
			})
		}
	})
	t.Run("scans run concurrently", func(t *testing.T) {
		errs := make(chan error, 8)
		for i := range 8 {
			go func() {
				img := f.vuln
				if i%2 == 1 {
					img = f.fixed
				}
				ref, _ := images.Parse(img)
				im, err := (&registry.Client{}).Image(context.Background(), ref.Repository, ref.Digest, &registry.Keychain{})
				if err == nil {
					var r *report.Report
					r, err = e.Scan(context.Background(), ref.Repository, ref.Digest, im)
					if err == nil && len(r.Findings) != 1-i%2 {
						err = errors.New("wrong findings under concurrency")
					}
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("reloads a rebuilt database", func(t *testing.T) {
		if changed, err := e.Reload(); err != nil || changed {
			t.Fatalf("Reload of an unchanged database: %v, %v", changed, err)
		}
		for _, name := range []string{"trivy.db", "metadata.json"} { // replaced as a DB updater would
			data, err := os.ReadFile(filepath.Join(f.db2Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(f.dbDir, "."+name)
			if err := os.WriteFile(tmp, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(f.dbDir, name)); err != nil {
				t.Fatal(err)
			}
		}
		if changed, err := e.Reload(); err != nil || !changed {
			t.Fatalf("Reload of a rebuilt database: %v, %v", changed, err)
		}
		if got := e.DB().UpdatedAt; !got.Equal(t0.Add(24 * time.Hour)) {
			t.Errorf("DB built at %v after reload", got)
		}
		if r := f.scan(t, e, f.vuln); len(r.Findings) != 2 {
			t.Errorf("findings with the new database: %+v, want the new advisory too", r.Findings)
		}
	})
}

func TestNew_ExplainsAMissingDatabase(t *testing.T) {
	_, err := New(Options{DBDir: t.TempDir(), Log: logr.Discard()})
	if !errors.Is(err, ErrDBNotFound) || !strings.Contains(err.Error(), "--download-db-only") {
		t.Errorf("error %v, want ErrDBNotFound saying how to get one", err)
	}
}

// TestOnlyTheScannerLinksTrivy keeps Trivy (~150 MB and minutes of build)
// out of the other binaries: the webhook reads verdicts through
// pkg/scan/verdict, which must not import it.
func TestOnlyTheScannerLinksTrivy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-deps", "github.com/statcan/daaas-guard/cmd/webhook",
		"github.com/statcan/daaas-guard/cmd/guardctl", "github.com/statcan/daaas-guard/pkg/scan/verdict")
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/aquasecurity/trivy/") || strings.HasPrefix(p, "github.com/aquasecurity/trivy-db/") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("webhook, guardctl or the verdict index link Trivy: %v", bad)
	}
	if !strings.Contains(string(out), "github.com/statcan/daaas-guard/pkg/webhook") {
		t.Errorf("go list did not list the webhook's packages:\n%s", out)
	}
}
