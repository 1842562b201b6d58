package evidence

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// TrivyReport is the part of a Trivy JSON report (trivy image -f json,
// SchemaVersion 2; aquasecurity/trivy:pkg/types/report.go) that bears on
// compliance. Fields are decoded by Trivy's own key names.
type TrivyReport struct {
	Origin        string          `json:"-"`
	SchemaVersion int             `json:"SchemaVersion"`
	CreatedAt     *time.Time      `json:"CreatedAt"`
	ArtifactName  string          `json:"ArtifactName"`
	ArtifactType  string          `json:"ArtifactType"`
	Metadata      trivyMetadata   `json:"Metadata"`
	Results       []trivyResult   `json:"Results"`
	Trivy         *trivyGenerator `json:"Trivy"`
}

type trivyGenerator struct {
	Version string `json:"Version"`
}

type trivyMetadata struct {
	ImageID     string   `json:"ImageID"`
	RepoTags    []string `json:"RepoTags"`
	RepoDigests []string `json:"RepoDigests"`
	OS          *struct {
		Family string `json:"Family"`
		Name   string `json:"Name"`
		EOSL   bool   `json:"EOSL"`
	} `json:"OS"`
}

type trivyResult struct {
	Target          string            `json:"Target"`
	Class           string            `json:"Class"`
	Type            string            `json:"Type"`
	Packages        []json.RawMessage `json:"Packages"`
	Vulnerabilities []trivyVuln       `json:"Vulnerabilities"`
	Secrets         []trivySecret     `json:"Secrets"`
}

type trivyVuln struct {
	VulnerabilityID  string `json:"VulnerabilityID"`
	PkgName          string `json:"PkgName"`
	InstalledVersion string `json:"InstalledVersion"`
	FixedVersion     string `json:"FixedVersion"`
	Severity         string `json:"Severity"`
	Title            string `json:"Title"`
}

type trivySecret struct {
	RuleID    string `json:"RuleID"`
	Category  string `json:"Category"`
	Severity  string `json:"Severity"`
	Title     string `json:"Title"`
	StartLine int    `json:"StartLine"`
}

// DecodeTrivy reads a Trivy JSON report. Trivy adds fields between
// versions, so unknown fields are ignored; the schema version and the
// artifact name are required.
func DecodeTrivy(name string, data []byte) (*TrivyReport, error) {
	r := &TrivyReport{Origin: name}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: Trivy JSON: %v", name, err)
	}
	if r.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: Trivy JSON: SchemaVersion: %d is not supported; want 2 (Trivy 0.20 and later)", name, r.SchemaVersion)
	}
	if r.ArtifactName == "" {
		return nil, fmt.Errorf("%s: Trivy JSON: ArtifactName: required", name)
	}
	for i, res := range r.Results {
		for j, v := range res.Vulnerabilities {
			if v.VulnerabilityID == "" {
				return nil, fmt.Errorf("%s: Trivy JSON: Results[%d].Vulnerabilities[%d].VulnerabilityID: required", name, i, j)
			}
		}
	}
	return r, nil
}

// TrivyDB is Trivy's vulnerability database metadata (metadata.json
// beside trivy.db; aquasecurity/trivy-db:pkg/metadata/metadata.go).
type TrivyDB struct {
	Origin       string    `json:"-"`
	Version      int       `json:"Version"`
	NextUpdate   time.Time `json:"NextUpdate"`
	UpdatedAt    time.Time `json:"UpdatedAt"`
	DownloadedAt time.Time `json:"DownloadedAt"`
}

// DecodeTrivyDB reads a Trivy DB metadata.json.
func DecodeTrivyDB(name string, data []byte) (*TrivyDB, error) {
	db := &TrivyDB{Origin: name}
	if err := json.Unmarshal(data, db); err != nil {
		return nil, fmt.Errorf("%s: Trivy DB metadata: %v", name, err)
	}
	if db.Version == 0 || db.UpdatedAt.IsZero() {
		return nil, fmt.Errorf("%s: Trivy DB metadata: Version and UpdatedAt are required", name)
	}
	return db, nil
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

// maxListed bounds the IDs or objects one message lists.
const maxListed = 10

// ScanEvidence turns Trivy reports into image-scan evidence: per image,
// that it was scanned, its fixable critical and high vulnerabilities
// (VULN-CRITICAL, VULN-HIGH: fail when any, pass when none), secrets found
// (SECRET-CRITICAL, SECRET-HIGH), whether the report lists packages
// (package-inventory) and a stale scan (scan-age). With DB metadata, the
// database's age; with the running images, each one that has no scan.
func ScanEvidence(reports []*TrivyReport, db *TrivyDB, running []RunningImage, opts Options) []compliance.Evidence {
	var out []compliance.Evidence
	for _, r := range reports {
		subject := []compliance.Ref{{Kind: "Image", Name: r.ArtifactName}}
		ev := func(id, title string, res compliance.Result, sev compliance.Severity, msg string) {
			out = append(out, compliance.Evidence{Source: compliance.SourceImageScan, ID: id, Title: title, Result: res,
				Severity: sev, Subjects: subject, Origin: r.Origin, Message: msg})
		}
		bySev := map[compliance.Severity]int{}
		fixable := map[compliance.Severity][]string{}
		packages := 0
		secrets := map[compliance.Severity][]string{}
		for _, res := range r.Results {
			packages += len(res.Packages)
			for _, v := range res.Vulnerabilities {
				sev := compliance.ParseSeverity(v.Severity)
				bySev[sev]++
				if v.FixedVersion != "" {
					fixable[sev] = append(fixable[sev], fmt.Sprintf("%s (%s %s, fixed in %s)", v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.FixedVersion))
				}
			}
			for _, s := range res.Secrets {
				sev := compliance.ParseSeverity(s.Severity)
				secrets[sev] = append(secrets[sev], fmt.Sprintf("%s in %s:%d", s.RuleID, res.Target, s.StartLine))
			}
		}
		when := "at an unknown time"
		if r.CreatedAt != nil {
			when = "on " + r.CreatedAt.UTC().Format(time.RFC3339)
		}
		total := 0
		for _, n := range bySev {
			total += n
		}
		ev("scanned", "Image scanned for vulnerabilities", compliance.ResultPass, compliance.SeverityInfo,
			fmt.Sprintf("scanned %s: %d %s (%d critical, %d high, %d medium, %d low), %d fixable critical or high",
				when, total, vulnerabilities(total), bySev[compliance.SeverityCritical], bySev[compliance.SeverityHigh], bySev[compliance.SeverityMedium],
				bySev[compliance.SeverityLow], len(fixable[compliance.SeverityCritical])+len(fixable[compliance.SeverityHigh])))
		for _, sev := range []compliance.Severity{compliance.SeverityCritical, compliance.SeverityHigh} {
			id := "VULN-" + strings.ToUpper(string(sev))
			title := "No fixable " + string(sev) + " vulnerabilities"
			if ids := fixable[sev]; len(ids) > 0 {
				ev(id, title, compliance.ResultFail, sev, fmt.Sprintf("%d fixable %s vulnerabilities: %s", len(ids), sev, listSome(ids)))
			} else {
				ev(id, title, compliance.ResultPass, sev, "none with a fix available")
			}
			if found := secrets[sev]; len(found) > 0 {
				ev("SECRET-"+strings.ToUpper(string(sev)), "No embedded "+string(sev)+" secrets", compliance.ResultFail, sev,
					fmt.Sprintf("%d %s secrets in the image: %s", len(found), sev, listSome(found)))
			}
		}
		if packages > 0 {
			ev("package-inventory", "Image package inventory", compliance.ResultPass, compliance.SeverityInfo,
				fmt.Sprintf("the scan lists %d packages", packages))
		}
		if r.CreatedAt != nil && opts.MaxScanAge > 0 && opts.Now.Sub(*r.CreatedAt) > opts.MaxScanAge {
			ev("scan-age", "Scan is recent", compliance.ResultWarn, compliance.SeverityMedium,
				fmt.Sprintf("scanned %s, more than %s before this report: rescan", when, opts.MaxScanAge))
		}
	}
	if db != nil {
		e := compliance.Evidence{Source: compliance.SourceImageScan, ID: "db-age", Title: "Vulnerability database is current",
			Result: compliance.ResultPass, Severity: compliance.SeverityInfo, Origin: db.Origin,
			Subjects: []compliance.Ref{{Kind: "VulnerabilityDB", Name: fmt.Sprintf("trivy-db v%d", db.Version)}},
			Message:  fmt.Sprintf("updated %s", db.UpdatedAt.UTC().Format(time.RFC3339))}
		if opts.MaxDBAge > 0 && opts.Now.Sub(db.UpdatedAt) > opts.MaxDBAge {
			e.Result, e.Severity = compliance.ResultWarn, compliance.SeverityMedium
			e.Message = fmt.Sprintf("updated %s, more than %s before this report: scans miss newer advisories", db.UpdatedAt.UTC().Format(time.RFC3339), opts.MaxDBAge)
		}
		out = append(out, e)
	}
	for _, img := range unscanned(reports, running) {
		out = append(out, compliance.Evidence{Source: compliance.SourceImageScan, ID: "unscanned", Title: "Running image is scanned",
			Result: compliance.ResultFail, Severity: compliance.SeverityHigh, Origin: "cluster",
			Subjects: []compliance.Ref{{Kind: "Image", Name: img.Image}},
			Message:  fmt.Sprintf("no scan of this image; it runs in %s", listSome(img.Pods))})
	}
	return out
}

// unscanned returns the running images that no report covers, matched by
// digest, then by reference.
func unscanned(reports []*TrivyReport, running []RunningImage) []RunningImage {
	known := map[string]bool{}
	for _, r := range reports {
		known[r.ArtifactName] = true
		known[normalizeImage(r.ArtifactName)] = true
		for _, d := range r.Metadata.RepoDigests {
			known[d] = true
			known[digestOf(d)] = true
		}
		for _, t := range r.Metadata.RepoTags {
			known[normalizeImage(t)] = true
		}
		if r.Metadata.ImageID != "" {
			known[r.Metadata.ImageID] = true
		}
	}
	var out []RunningImage
	for _, img := range running {
		id := strings.TrimPrefix(strings.TrimPrefix(img.ImageID, "docker-pullable://"), "docker://")
		if known[img.Image] || known[normalizeImage(img.Image)] || (id != "" && (known[id] || known[digestOf(id)])) {
			continue
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out
}

// normalizeImage writes a reference the way registries resolve it:
// docker.io/library/ for bare names, :latest when no tag or digest.
func normalizeImage(ref string) string {
	if ref == "" {
		return ""
	}
	name, rest := ref, ""
	if i := strings.IndexAny(ref, "@"); i >= 0 {
		name, rest = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, rest = ref[:i], ref[i:]
	}
	if rest == "" {
		rest = ":latest"
	}
	first, _, found := strings.Cut(name, "/")
	switch {
	case !found:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	return name + rest
}

// digestOf returns the sha256:... part of a reference, or "".
func digestOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[i+1:]
	}
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	return ""
}

// listSome lists up to maxListed items, saying how many more there are.
func listSome(items []string) string {
	items = slices.Clone(items)
	sort.Strings(items)
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}

func vulnerabilities(n int) string {
	if n == 1 {
		return "vulnerability"
	}
	return "vulnerabilities"
}
