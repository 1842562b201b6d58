package evidence

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
)

// ImageScan is an image verdict the scanner keeps in the cluster (pkg/scan
// writes one per image digest, from its own Trivy scans or from reports it
// ingested).
type ImageScan struct {
	Scan   *v1alpha1.ImageScan
	Origin string
}

func (o ClusterOptions) readImageScans(ctx context.Context, c client.Reader, in *Inputs) error {
	return o.listAll(ctx, c, v1alpha1.GroupVersion.WithKind("ImageScan"), nil, func(u *unstructured.Unstructured) error {
		is, err := DecodeImageScan(u)
		if err != nil {
			in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %v: left out", err))
			return nil
		}
		in.ImageScans = append(in.ImageScans, ImageScan{Scan: is, Origin: ClusterOrigin})
		in.origin(compliance.SourceImageScan, ClusterOrigin)
		return nil
	})
}

// DecodeImageScan reads an ImageScan as the API serves it. The CRD
// validates most fields; what it cannot (negative counts) is checked here,
// so that a verdict read is one the evidence can state.
func DecodeImageScan(u *unstructured.Unstructured) (*v1alpha1.ImageScan, error) {
	is := &v1alpha1.ImageScan{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, is); err != nil {
		return nil, fmt.Errorf("ImageScan %q: %v", u.GetName(), err)
	}
	if _, err := v1alpha1.ImageScanName(is.Spec.Digest); err != nil {
		return nil, fmt.Errorf("ImageScan %q: spec.digest: %v", is.Name, err)
	}
	st := &is.Status
	for _, c := range []struct {
		field  string
		counts v1alpha1.SeverityCounts
	}{{"vulnerabilities", st.Vulnerabilities}, {"fixable", st.Fixable}} {
		for sev, n := range map[string]int32{"critical": c.counts.Critical, "high": c.counts.High, "medium": c.counts.Medium,
			"low": c.counts.Low, "unknown": c.counts.Unknown} {
			if n < 0 {
				return nil, fmt.Errorf("ImageScan %q: status.%s.%s: %d is negative", is.Name, c.field, sev, n)
			}
		}
	}
	if st.FixableNotListed < 0 {
		return nil, fmt.Errorf("ImageScan %q: status.fixableNotListed: %d is negative", is.Name, st.FixableNotListed)
	}
	for i, v := range st.FixableCriticalHigh {
		if sev := compliance.ParseSeverity(v.Severity); sev != compliance.SeverityCritical && sev != compliance.SeverityHigh {
			return nil, fmt.Errorf("ImageScan %q: status.fixableCriticalHigh[%d].severity: %q is not CRITICAL or HIGH", is.Name, i, v.Severity)
		}
	}
	return is, nil
}

// verdictScans turns ImageScans into scans, as a Trivy report would give
// them, and the vulnerability databases the scans used (one per build).
// An ImageScan without a verdict (its scan pending, or failed with no
// earlier verdict to keep) is no scan: it covers no running image, and
// says why there is no verdict.
func verdictScans(verdicts []ImageScan) ([]*imageScan, []*waitingScan, []*TrivyDB) {
	var scans []*imageScan
	var waiting []*waitingScan
	builds := map[string]*TrivyDB{}
	for _, v := range verdicts {
		is, st := v.Scan, &v.Scan.Status
		image := is.Spec.Repository + "@" + is.Spec.Digest
		var id imageIdentity
		id.digests = []string{is.Spec.Digest}
		for _, t := range st.Tags {
			id.addRef(t)
		}
		if !st.Scanned() {
			waiting = append(waiting, &waitingScan{origin: v.Origin, image: image, id: id, reason: noVerdict(v.Scan)})
			continue
		}
		s := &imageScan{origin: v.Origin, image: image, id: id, scanner: scannerVersion(st.Scanner),
			vulnerabilities: map[compliance.Severity]int{
				compliance.SeverityCritical: int(st.Vulnerabilities.Critical), compliance.SeverityHigh: int(st.Vulnerabilities.High),
				compliance.SeverityMedium: int(st.Vulnerabilities.Medium), compliance.SeverityLow: int(st.Vulnerabilities.Low),
				compliance.SeverityUnknown: int(st.Vulnerabilities.Unknown)},
			fixable: map[compliance.Severity]listed{
				compliance.SeverityCritical: {n: int(st.Fixable.Critical)}, compliance.SeverityHigh: {n: int(st.Fixable.High)}}}
		if st.ScannedAt != nil {
			t := st.ScannedAt.Time
			if rescanFailed(st) {
				s.before = &t
			} else {
				s.scannedAt = &t
			}
		}
		if rescanFailed(st) {
			s.rescanFailed = orNoReason(st.Error)
		}
		for _, f := range st.FixableCriticalHigh {
			sev := compliance.ParseSeverity(f.Severity)
			l := s.fixable[sev]
			l.items = append(l.items, fixDescription(f.ID, f.Package, f.InstalledVersion, f.FixedVersion))
			l.n = max(l.n, len(l.items))
			s.fixable[sev] = l
		}
		scans = append(scans, s)
		if st.DB != nil && !st.DB.UpdatedAt.IsZero() {
			db := &TrivyDB{Origin: v.Origin, Version: int(st.DB.SchemaVersion), UpdatedAt: st.DB.UpdatedAt.UTC()}
			key := fmt.Sprintf("%s\x00%d\x00%s", db.Origin, db.Version, db.UpdatedAt.Format(time.RFC3339Nano))
			if builds[key] == nil {
				builds[key] = db
			}
		}
	}
	var dbs []*TrivyDB
	for _, k := range slices.Sorted(maps.Keys(builds)) {
		dbs = append(dbs, builds[k])
	}
	sort.SliceStable(dbs, func(i, j int) bool { return dbs[i].UpdatedAt.Before(dbs[j].UpdatedAt) })
	return scans, waiting, dbs
}

// noVerdict says why an ImageScan holds no verdict.
func noVerdict(is *v1alpha1.ImageScan) string {
	st := &is.Status
	if st.Error != "" {
		at := ""
		if st.ScannedAt != nil {
			at = " on " + st.ScannedAt.UTC().Format(time.RFC3339)
		}
		return fmt.Sprintf("no verdict: the scan%s failed (%s)", at, st.Error)
	}
	msg := "no verdict yet: the scan is pending"
	if t := is.CreationTimestamp; !t.IsZero() {
		msg += ", requested on " + t.UTC().Format(time.RFC3339)
	}
	return msg
}

// rescanFailed reports whether the verdict is kept from an earlier scan
// after the latest one failed.
func rescanFailed(st *v1alpha1.ImageScanStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == v1alpha1.ConditionScanned {
			return c.Reason == v1alpha1.ReasonRescanFailed
		}
	}
	return false
}

func orNoReason(s string) string {
	if s == "" {
		return "no reason recorded"
	}
	return s
}

// scannerVersion reads the version of Trivy from an ImageScan's scanner
// ("Trivy v0.74.0" is "0.74.0", as Trivy's JSON writes it); another
// scanner is named in full.
func scannerVersion(scanner string) string {
	name, version, _ := strings.Cut(strings.TrimSpace(scanner), " ")
	if strings.EqualFold(name, "trivy") {
		return strings.TrimPrefix(strings.TrimSpace(version), "v")
	}
	return strings.TrimSpace(scanner)
}
