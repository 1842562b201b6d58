// Package report holds vulnerability findings in one scanner-neutral model,
// whatever produced them (Trivy in-process, a Trivy JSON report file, a
// Starboard VulnerabilityReport), and turns them into the compact verdict an
// ImageScan stores. It does not import Trivy.
package report

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// Severity of a vulnerability, as Trivy and Starboard spell it.
type Severity string

// Severities, most severe first.
const (
	Critical Severity = "CRITICAL"
	High     Severity = "HIGH"
	Medium   Severity = "MEDIUM"
	Low      Severity = "LOW"
	Unknown  Severity = "UNKNOWN"
)

// ParseSeverity reads a severity case-insensitively; Starboard's NONE and
// anything unrecognised count as UNKNOWN, and ok says whether s was one of
// the five.
func ParseSeverity(s string) (sev Severity, ok bool) {
	switch Severity(strings.ToUpper(s)) {
	case Critical:
		return Critical, true
	case High:
		return High, true
	case Medium:
		return Medium, true
	case Low:
		return Low, true
	case Unknown:
		return Unknown, true
	}
	return Unknown, false
}

// Rank orders severities: CRITICAL 4 down to UNKNOWN 0.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// Finding is one vulnerability in one installed package.
type Finding struct {
	ID               string
	Package          string
	InstalledVersion string
	// FixedVersion is empty when no fix is available.
	FixedVersion string
	Severity     Severity
}

// Fixable reports whether a fixed version exists.
func (f Finding) Fixable() bool { return f.FixedVersion != "" }

// Report is the outcome of scanning one image.
type Report struct {
	// Digest is the image (manifest or index) digest, when known.
	Digest string
	// Repository the image came from, without tag or digest, when known.
	Repository string
	// Tags are references (repository:tag) that named the image.
	Tags []string
	// OS detected in the image, e.g. "alpine 3.22.1".
	OS       string
	Scanner  string
	Findings []Finding
	// CreatedAt is when the scan ran, when the source says.
	CreatedAt time.Time
	// Full is the scanner's complete report (Trivy JSON), when kept.
	Full []byte
}

// DB identifies a vulnerability database.
type DB struct {
	SchemaVersion int
	// UpdatedAt is when the database was built; scans made with an older
	// one are redone.
	UpdatedAt time.Time
}

// Summary is the compact verdict of a report, ready for an ImageScan
// status.
type Summary struct {
	Vulnerabilities     v1alpha1.SeverityCounts
	Fixable             v1alpha1.SeverityCounts
	FixableCriticalHigh []v1alpha1.FixableVulnerability
	FixableNotListed    int32
}

func add(c *v1alpha1.SeverityCounts, s Severity) {
	switch s {
	case Critical:
		c.Critical++
	case High:
		c.High++
	case Medium:
		c.Medium++
	case Low:
		c.Low++
	default:
		c.Unknown++
	}
}

// Summarize counts findings by severity and lists fixable critical and high
// ones, critical first, then by ID, at most max of them. A vulnerability
// found in several packages counts once per package, as Trivy reports it.
func Summarize(findings []Finding, max int) Summary {
	var s Summary
	var listed []v1alpha1.FixableVulnerability
	seen := map[[2]string]bool{}
	for _, f := range findings {
		key := [2]string{f.ID, f.Package}
		if seen[key] { // the same package in two layers or targets
			continue
		}
		seen[key] = true
		add(&s.Vulnerabilities, f.Severity)
		if !f.Fixable() {
			continue
		}
		add(&s.Fixable, f.Severity)
		if f.Severity == Critical || f.Severity == High {
			listed = append(listed, v1alpha1.FixableVulnerability{ID: f.ID, Severity: string(f.Severity),
				Package: f.Package, InstalledVersion: f.InstalledVersion, FixedVersion: f.FixedVersion})
		}
	}
	slices.SortFunc(listed, func(a, b v1alpha1.FixableVulnerability) int {
		if a.Severity != b.Severity {
			return cmp.Compare(Severity(b.Severity).Rank(), Severity(a.Severity).Rank())
		}
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Package, b.Package))
	})
	if len(listed) > max {
		s.FixableNotListed = int32(len(listed) - max)
		listed = listed[:max]
	}
	s.FixableCriticalHigh = listed
	return s
}
