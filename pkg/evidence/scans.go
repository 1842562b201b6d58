package evidence

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// imageScan is what one scan of one image says, whichever input recorded
// it: a Trivy JSON report (trivy.go) or the scanner's ImageScan verdict
// (imagescans.go). Both become evidence through scanEvidence, so that the
// same facts give the same evidence.
type imageScan struct {
	origin string
	// image names the scanned image in the evidence.
	image string
	// id is what coverage matches running images against.
	id imageIdentity
	// scannedAt is when the verdict was produced, when known; before
	// bounds it otherwise (a verdict kept after a failed rescan).
	scannedAt, before *time.Time
	// scanner is the scanner's version ("0.74.0" for Trivy), when known.
	scanner string
	// vulnerabilities counts findings by severity; fixable lists the
	// critical and high ones with a fix, described.
	vulnerabilities map[compliance.Severity]int
	fixable         map[compliance.Severity]listed
	// secrets lists embedded secrets found, by severity.
	secrets map[compliance.Severity][]string
	// packages is the number of packages the scan lists (0: not listed).
	packages int
	// rescanFailed says why the latest rescan failed, the verdict being an
	// earlier scan's; it failed at before.
	rescanFailed string
}

// listed is a count and some of the items counted.
type listed struct {
	n     int
	items []string
}

func (l listed) String() string {
	return listCounted(l.items, l.n)
}

// waitingScan is an image the scanner was asked about and holds no
// verdict for yet: its scan is pending, or failed.
type waitingScan struct {
	origin, image string
	id            imageIdentity
	// reason says why there is no verdict.
	reason string
}

// imageIdentity is how an image is named: by registry digest, by image
// config ID, by tag.
type imageIdentity struct {
	digests   []string // "sha256:...", as registries serve the manifest or index
	configIDs []string // "sha256:...", the image config's digest
	refs      []string // tagged references, canonical (images.Parse)
}

// addRef records what a reference says: its digest, and its tag.
func (id *imageIdentity) addRef(ref string) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return
	}
	r, err := images.Parse(ref)
	if err != nil {
		id.refs = appendUnique(id.refs, ref) // matched as written
		return
	}
	id.digests = appendUnique(id.digests, r.Digest)
	id.refs = appendUnique(id.refs, r.TagName())
}

// addImageID records a container runtime's imageID: a registry digest
// (repo@sha256:..., containerd and CRI-O) or an image config ID
// (sha256:..., Docker).
func (id *imageIdentity) addImageID(imageID string) {
	if d, ok := images.DigestOf(imageID); ok {
		id.digests = appendUnique(id.digests, d.Digest)
		return
	}
	s := strings.TrimPrefix(strings.TrimPrefix(imageID, "docker-pullable://"), "docker://")
	if strings.HasPrefix(s, "sha256:") {
		id.configIDs = appendUnique(id.configIDs, s)
	}
}

// RunningImage is an image the cluster runs, for scan coverage.
type RunningImage struct {
	// Image is the reference in the pod spec; ImageID the resolved one
	// from the container status (repo@sha256:...), when known.
	Image   string
	ImageID string
	// Pods are some of the pods that run it ("namespace/name").
	Pods []string
}

func (img RunningImage) identity() imageIdentity {
	var id imageIdentity
	id.addRef(img.Image)
	id.addImageID(img.ImageID)
	return id
}

// maxListed bounds the IDs or objects one message lists.
const maxListed = 10

// ScanEvidence turns image scans, Trivy reports (with the DB metadata
// they were made with, if given) and the scanner's ImageScan verdicts,
// into evidence; with the running images, it states each one that no scan
// covers.
func ScanEvidence(reports []*TrivyReport, verdicts []ImageScan, db *TrivyDB, running []RunningImage, opts Options) []compliance.Evidence {
	scans, waiting, dbs := collectScans(reports, verdicts, db)
	return scanEvidence(scans, waiting, dbs, running, opts)
}

// collectScans gathers the scans the reports and the verdicts give, the
// ImageScans still without a verdict, and the vulnerability databases: the
// metadata given with the reports, then the builds the verdicts name.
func collectScans(reports []*TrivyReport, verdicts []ImageScan, db *TrivyDB) ([]*imageScan, []*waitingScan, []*TrivyDB) {
	var scans []*imageScan
	for _, r := range reports {
		scans = append(scans, trivyScan(r))
	}
	fromVerdicts, waiting, builds := verdictScans(verdicts)
	scans = append(scans, fromVerdicts...)
	var dbs []*TrivyDB
	if db != nil {
		dbs = append(dbs, db)
	}
	return scans, waiting, append(dbs, builds...)
}

// scanEvidence turns scans into image-scan evidence: per image, that it
// was scanned, its fixable critical and high vulnerabilities
// (VULN-CRITICAL, VULN-HIGH: fail when any, pass when none), secrets found
// (SECRET-CRITICAL, SECRET-HIGH), whether the scan lists packages
// (package-inventory) and a stale scan (scan-age). With the vulnerability
// databases, each one's age; with the running images, each one that no
// scan covers.
func scanEvidence(scans []*imageScan, waiting []*waitingScan, dbs []*TrivyDB, running []RunningImage, opts Options) []compliance.Evidence {
	var out []compliance.Evidence
	for _, s := range scans {
		subject := []compliance.Ref{{Kind: "Image", Name: s.image}}
		ev := func(id, title string, res compliance.Result, sev compliance.Severity, msg string) {
			out = append(out, compliance.Evidence{Source: compliance.SourceImageScan, ID: id, Title: title, Result: res,
				Severity: sev, Subjects: subject, Origin: s.origin, Message: msg})
		}
		when := "at an unknown time"
		switch {
		case s.scannedAt != nil:
			when = "on " + s.scannedAt.UTC().Format(time.RFC3339)
		case s.before != nil:
			when = "before " + s.before.UTC().Format(time.RFC3339)
		}
		total := 0
		for _, n := range s.vulnerabilities {
			total += n
		}
		v := s.vulnerabilities
		ev("scanned", "Image scanned for vulnerabilities", compliance.ResultPass, compliance.SeverityInfo,
			fmt.Sprintf("scanned %s: %d %s (%d critical, %d high, %d medium, %d low), %d fixable critical or high",
				when, total, vulnerabilities(total), v[compliance.SeverityCritical], v[compliance.SeverityHigh], v[compliance.SeverityMedium],
				v[compliance.SeverityLow], s.fixable[compliance.SeverityCritical].n+s.fixable[compliance.SeverityHigh].n))
		for _, sev := range []compliance.Severity{compliance.SeverityCritical, compliance.SeverityHigh} {
			id := "VULN-" + strings.ToUpper(string(sev))
			title := "No fixable " + string(sev) + " vulnerabilities"
			if f := s.fixable[sev]; f.n > 0 {
				ev(id, title, compliance.ResultFail, sev, fmt.Sprintf("%d fixable %s vulnerabilities: %s", f.n, sev, f))
			} else {
				ev(id, title, compliance.ResultPass, sev, "none with a fix available")
			}
			if found := s.secrets[sev]; len(found) > 0 {
				ev("SECRET-"+strings.ToUpper(string(sev)), "No embedded "+string(sev)+" secrets", compliance.ResultFail, sev,
					fmt.Sprintf("%d %s secrets in the image: %s", len(found), sev, listSome(found)))
			}
		}
		if s.packages > 0 {
			ev("package-inventory", "Image package inventory", compliance.ResultPass, compliance.SeverityInfo,
				fmt.Sprintf("the scan lists %d packages", s.packages))
		}
		switch {
		case s.rescanFailed != "":
			at := "at an unknown time"
			if s.before != nil {
				at = "on " + s.before.UTC().Format(time.RFC3339)
			}
			ev("scan-age", "Scan is recent", compliance.ResultWarn, compliance.SeverityMedium,
				fmt.Sprintf("the latest rescan, %s, failed (%s); this verdict is an earlier scan's", at, s.rescanFailed))
		case s.scannedAt != nil && opts.MaxScanAge > 0 && opts.Now.Sub(*s.scannedAt) > opts.MaxScanAge:
			ev("scan-age", "Scan is recent", compliance.ResultWarn, compliance.SeverityMedium,
				fmt.Sprintf("scanned %s, more than %s before this report: rescan", when, opts.MaxScanAge))
		}
	}
	for _, db := range dbs {
		e := compliance.Evidence{Source: compliance.SourceImageScan, ID: "db-age", Title: "Vulnerability database is current",
			Result: compliance.ResultPass, Severity: compliance.SeverityInfo, Origin: db.Origin,
			Subjects: []compliance.Ref{{Kind: "VulnerabilityDB", Name: db.name()}},
			Message:  fmt.Sprintf("updated %s", db.UpdatedAt.UTC().Format(time.RFC3339))}
		if opts.MaxDBAge > 0 && opts.Now.Sub(db.UpdatedAt) > opts.MaxDBAge {
			e.Result, e.Severity = compliance.ResultWarn, compliance.SeverityMedium
			e.Message = fmt.Sprintf("updated %s, more than %s before this report: scans miss newer advisories", db.UpdatedAt.UTC().Format(time.RFC3339), opts.MaxDBAge)
		}
		out = append(out, e)
	}
	// A running image that no scan covers fails, saying why when the
	// scanner holds no verdict for it yet; a waiting scan of an image that
	// does not run is a warning: never a pass.
	pending := newIdentityIndex(len(waiting), func(i int) imageIdentity { return waiting[i].id })
	runs := make([]bool, len(waiting))
	for _, img := range unscanned(scans, running) {
		msg := "no scan of this image"
		if i, ok := pending.find(img); ok {
			msg, runs[i] = waiting[i].reason, true
		}
		out = append(out, compliance.Evidence{Source: compliance.SourceImageScan, ID: "unscanned", Title: "Running image is scanned",
			Result: compliance.ResultFail, Severity: compliance.SeverityHigh, Origin: ClusterOrigin,
			Subjects: []compliance.Ref{{Kind: "Image", Name: img.Image}},
			Message:  fmt.Sprintf("%s; it runs in %s", msg, listSome(img.Pods))})
	}
	for i, w := range waiting {
		if !runs[i] {
			out = append(out, compliance.Evidence{Source: compliance.SourceImageScan, ID: "scanned", Title: "Image scanned for vulnerabilities",
				Result: compliance.ResultWarn, Severity: compliance.SeverityMedium, Origin: w.origin,
				Subjects: []compliance.Ref{{Kind: "Image", Name: w.image}}, Message: w.reason})
		}
	}
	return out
}

// unscanned returns the running images that no scan covers.
func unscanned(scans []*imageScan, running []RunningImage) []RunningImage {
	ix := newIdentityIndex(len(scans), func(i int) imageIdentity { return scans[i].id })
	var out []RunningImage
	for _, img := range running {
		if _, ok := ix.find(img); !ok {
			out = append(out, img)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out
}

// identityIndex finds which of n images a running image is.
type identityIndex struct {
	digests, configIDs, refs map[string]int
}

func newIdentityIndex(n int, id func(int) imageIdentity) identityIndex {
	ix := identityIndex{digests: map[string]int{}, configIDs: map[string]int{}, refs: map[string]int{}}
	add := func(m map[string]int, keys []string, i int) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				m[k] = i
			}
		}
	}
	for i := range n {
		s := id(i)
		add(ix.digests, s.digests, i)
		add(ix.configIDs, s.configIDs, i)
		add(ix.refs, s.refs, i)
	}
	return ix
}

// find returns the image img is. An image whose digest is known (pinned
// in the pod spec, or recorded by the runtime) is found by that digest, or
// by its config ID: an image of the same tag may be another one.
// Otherwise it is found by tag, as the scanner resolved the tag.
func (ix identityIndex) find(img RunningImage) (int, bool) {
	id := img.identity()
	for _, d := range id.digests {
		if i, ok := ix.digests[d]; ok {
			return i, true
		}
	}
	for _, c := range id.configIDs {
		if i, ok := ix.configIDs[c]; ok {
			return i, true
		}
	}
	if len(id.digests) > 0 {
		return 0, false
	}
	for _, r := range id.refs {
		if i, ok := ix.refs[r]; ok {
			return i, true
		}
	}
	return 0, false
}

// scanInfo describes the image scans for the report's header: the scanners'
// versions, the latest scan and the vulnerability databases.
func scanInfo(origin string, scans []*imageScan, dbs []*TrivyDB) compliance.SourceInfo {
	info := compliance.SourceInfo{Source: compliance.SourceImageScan, Origin: origin, Tool: "trivy"}
	var versions []string
	for _, s := range scans {
		versions = appendUnique(versions, s.scanner)
		if s.scannedAt != nil && (info.ProducedAt == nil || s.scannedAt.After(*info.ProducedAt)) {
			t := s.scannedAt.UTC()
			info.ProducedAt = &t
		}
	}
	sort.Strings(versions)
	info.Version = strings.Join(versions, ", ")
	switch len(dbs) {
	case 0:
	case 1:
		info.DBVersion = dbs[0].name()
	default:
		var names []string
		for _, db := range dbs {
			names = appendUnique(names, db.name())
		}
		info.DBVersion = fmt.Sprintf("%s (the oldest of %d builds the scans used)", strings.Join(names, ", "), len(dbs))
	}
	for _, db := range dbs {
		if info.DBUpdatedAt == nil || db.UpdatedAt.Before(*info.DBUpdatedAt) {
			t := db.UpdatedAt.UTC()
			info.DBUpdatedAt = &t
		}
	}
	return info
}

// name names a database build's schema: "trivy-db v2".
func (db *TrivyDB) name() string {
	if db.Version <= 0 {
		return "trivy-db (schema version not recorded)"
	}
	return "trivy-db v" + strconv.Itoa(db.Version)
}

// fixDescription describes a fixable vulnerability:
// "CVE-2019-14697 (musl 1.1.20-r4, fixed in 1.1.20-r5)".
func fixDescription(id, pkg, installed, fixed string) string {
	return fmt.Sprintf("%s (%s, fixed in %s)", id, strings.TrimSpace(pkg+" "+installed), fixed)
}

// listSome lists up to maxListed items, saying how many more there are.
func listSome(items []string) string {
	return listCounted(items, len(items))
}

// listCounted lists up to maxListed of items, of n counted in all, saying
// how many more there are.
func listCounted(items []string, n int) string {
	items = slices.Clone(items)
	sort.Strings(items)
	if len(items) > maxListed {
		items = items[:maxListed]
	}
	if more := n - len(items); more > 0 {
		if len(items) == 0 {
			return fmt.Sprintf("%d not listed", more)
		}
		return fmt.Sprintf("%s and %d more", strings.Join(items, ", "), more)
	}
	return strings.Join(items, ", ")
}

func vulnerabilities(n int) string {
	if n == 1 {
		return "vulnerability"
	}
	return "vulnerabilities"
}
