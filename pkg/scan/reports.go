package scan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// ReportStore keeps each scan's full report (Trivy JSON) in a directory,
// one file per digest, and serves them over HTTP: the complete findings
// stay out of etcd but remain at hand.
type ReportStore struct {
	Dir string
	// MaxBytes bounds the reports kept, so the directory stays below its
	// volume's size: past it, the oldest reports go first (0: no bound).
	MaxBytes int64
}

// staleTemp is the age past which a temporary file is taken to be left
// over by a Put that never finished (the process was killed).
const staleTemp = time.Hour

// Put writes digest's report, replacing any earlier one atomically, then
// keeps the directory within MaxBytes.
func (r *ReportStore) Put(digest string, data []byte) error {
	if err := r.put(digest, data); err != nil {
		return err
	}
	if r.MaxBytes <= 0 {
		return nil
	}
	if err := r.Prune(nil, time.Now()); err != nil {
		return fmt.Errorf("keeping reports within %d bytes: %w", r.MaxBytes, err)
	}
	return nil
}

func (r *ReportStore) put(digest string, data []byte) error {
	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(r.Dir, ".report-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(r.Dir, name+".json"))
}

// Prune removes the reports of digests keep refuses (keep nil keeps
// all), then the oldest reports while the rest exceed MaxBytes, and
// temporary files left by a Put that never finished. Files it did not
// write are left alone.
func (r *ReportStore) Prune(keep func(digest string) bool, now time.Time) error {
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		return fmt.Errorf("pruning reports in %s: %w", r.Dir, err)
	}
	type file struct {
		path string
		size int64
		mod  time.Time
	}
	var kept []file
	var total int64
	var errs []error
	remove := func(path string) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(r.Dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if strings.HasPrefix(e.Name(), ".report-") {
			if now.Sub(fi.ModTime()) > staleTemp {
				remove(path)
			}
			continue
		}
		digest, ok := reportDigest(e.Name())
		if !ok {
			continue
		}
		if keep != nil && !keep(digest) {
			remove(path)
			continue
		}
		kept = append(kept, file{path: path, size: fi.Size(), mod: fi.ModTime()})
		total += fi.Size()
	}
	if r.MaxBytes > 0 && total > r.MaxBytes {
		slices.SortFunc(kept, func(a, b file) int { return a.mod.Compare(b.mod) })
		for _, f := range kept {
			if total <= r.MaxBytes {
				break
			}
			remove(f.path)
			total -= f.size
		}
	}
	return errors.Join(errs...)
}

// reportDigest returns the digest a report's file name is for.
func reportDigest(file string) (string, bool) {
	name, ok := strings.CutSuffix(file, ".json")
	if !ok {
		return "", false
	}
	digest := strings.Replace(name, "-", ":", 1)
	if n, err := v1alpha1.ImageScanName(digest); err != nil || n != name {
		return "", false
	}
	return digest, true
}

// ServeHTTP serves GET <prefix>/sha256-<hex>.json, the prefix being
// stripped by the caller (http.StripPrefix).
func (r *ReportStore) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	base := strings.TrimPrefix(req.URL.Path, "/")
	// Only names of the store's own files: no path can escape the
	// directory.
	if _, ok := reportDigest(base); !ok {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	http.ServeFile(w, req, filepath.Join(r.Dir, base))
}

// TrivyReportDir ingests Trivy JSON reports (`trivy image -f json`) from a
// directory, checking for new or changed files every so often.
type TrivyReportDir struct {
	Dir       string
	Every     time.Duration
	Scheduler *Scheduler
	seen      map[string]time.Time // file -> modification time ingested
}

// Start ingests the directory now and then every Every (default 5m) until
// ctx ends.
func (d *TrivyReportDir) Start(ctx context.Context) error {
	every := cmpOr(d.Every, 5*time.Minute)
	for {
		d.Sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// Sync ingests the files that are new or changed since the last Sync and
// returns how many it wrote; errors are logged with the file's name.
func (d *TrivyReportDir) Sync(ctx context.Context) int {
	s := d.Scheduler
	m := s.cfg.Metrics.Ingested
	if d.seen == nil {
		d.seen = map[string]time.Time{}
	}
	files, err := filepath.Glob(filepath.Join(d.Dir, "*.json"))
	if err != nil {
		s.log.Error(err, "listing Trivy reports", "dir", d.Dir)
		return 0
	}
	n := 0
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.IsDir() || d.seen[f].Equal(fi.ModTime()) {
			continue
		}
		rep, err := readTrivyReport(f)
		if err != nil { // not read again until it changes
			d.seen[f] = fi.ModTime()
			m.WithLabelValues(v1alpha1.SourceTrivyReport, "invalid").Inc()
			s.log.Error(err, "ignoring a Trivy report")
			continue
		}
		wrote, err := s.Ingest(ctx, rep, v1alpha1.SourceTrivyReport)
		if err != nil { // tried again at the next sync
			m.WithLabelValues(v1alpha1.SourceTrivyReport, "failed").Inc()
			s.log.Error(err, "ingesting a Trivy report", "file", f)
			if ctx.Err() != nil {
				return n
			}
			continue
		}
		d.seen[f] = fi.ModTime()
		if wrote {
			n++
			m.WithLabelValues(v1alpha1.SourceTrivyReport, "written").Inc()
		} else {
			m.WithLabelValues(v1alpha1.SourceTrivyReport, "superseded").Inc()
		}
	}
	return n
}

func readTrivyReport(file string) (*report.Report, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	rep, err := report.ParseTrivyJSON(file, data)
	if err != nil {
		return nil, err
	}
	if rep.Digest == "" {
		return nil, fmt.Errorf("%s: %w", file, report.ErrNoDigest)
	}
	rep.Repository = normalizeRepository(rep.Repository, rep.Digest)
	return rep, nil
}
