package scan

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
}

// Put writes digest's report, replacing any earlier one atomically.
func (r *ReportStore) Put(digest string, data []byte) error {
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

// ServeHTTP serves GET <prefix>/sha256-<hex>.json, the prefix being
// stripped by the caller (http.StripPrefix).
func (r *ReportStore) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	base := strings.TrimPrefix(req.URL.Path, "/")
	name, ok := strings.CutSuffix(base, ".json")
	// Only names an ImageScan can have: no path can escape the directory.
	if !ok || name == "" {
		http.NotFound(w, req)
		return
	}
	if _, err := v1alpha1.ImageScanName(strings.Replace(name, "-", ":", 1)); err != nil {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	http.ServeFile(w, req, filepath.Join(r.Dir, name+".json"))
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
