package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The subset of Trivy's JSON report (`trivy image -f json`, schema version
// 2) a verdict needs; field names as in aquasecurity/trivy pkg/types
// (Report, Metadata, Result, DetectedVulnerability). Unknown fields are
// ignored: Trivy adds fields between releases.
type trivyReport struct {
	SchemaVersion *int
	CreatedAt     time.Time
	ArtifactName  string
	ArtifactType  string
	Trivy         struct{ Version string }
	Metadata      struct {
		OS *struct {
			Family string
			Name   string
		}
		ImageID     string
		RepoTags    []string
		RepoDigests []string
	}
	Results []struct {
		Target          string
		Class           string
		Vulnerabilities []struct {
			VulnerabilityID  string
			PkgName          string
			InstalledVersion string
			FixedVersion     string
			Severity         string
		}
	}
}

// ParseTrivyJSON reads a Trivy JSON report of a container image. name
// labels errors (a file name, for example). Errors name the field at fault.
func ParseTrivyJSON(name string, data []byte) (*Report, error) {
	var tr trivyReport
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&tr); err != nil {
		return nil, fmt.Errorf("%s: not a Trivy JSON report: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: more than one JSON value; want one Trivy report", name)
	}
	switch {
	case tr.SchemaVersion == nil:
		return nil, fmt.Errorf("%s: SchemaVersion is missing; not a Trivy JSON report", name)
	case *tr.SchemaVersion != 2:
		return nil, fmt.Errorf("%s: SchemaVersion %d is not supported (want 2)", name, *tr.SchemaVersion)
	case tr.ArtifactType != "" && tr.ArtifactType != "container_image":
		return nil, fmt.Errorf("%s: ArtifactType %q: only container_image reports carry image verdicts", name, tr.ArtifactType)
	}
	r := &Report{CreatedAt: tr.CreatedAt, Tags: tr.Metadata.RepoTags}
	if tr.Trivy.Version != "" {
		r.Scanner = "Trivy v" + strings.TrimPrefix(tr.Trivy.Version, "v")
	} else {
		r.Scanner = "Trivy"
	}
	if os := tr.Metadata.OS; os != nil && os.Family != "" {
		r.OS = strings.TrimSpace(os.Family + " " + os.Name)
	}
	for i, rd := range tr.Metadata.RepoDigests {
		repo, digest, ok := strings.Cut(rd, "@")
		if !ok || repo == "" || !strings.HasPrefix(digest, "sha256:") {
			return nil, fmt.Errorf("%s: Metadata.RepoDigests[%d]: %q is not repository@sha256:digest", name, i, rd)
		}
		if i == 0 {
			r.Repository, r.Digest = repo, digest
		}
	}
	for i, res := range tr.Results {
		for j, v := range res.Vulnerabilities {
			field := fmt.Sprintf("Results[%d].Vulnerabilities[%d]", i, j)
			if v.VulnerabilityID == "" {
				return nil, fmt.Errorf("%s: %s.VulnerabilityID is missing", name, field)
			}
			if v.PkgName == "" {
				return nil, fmt.Errorf("%s: %s.PkgName is missing (vulnerability %s)", name, field, v.VulnerabilityID)
			}
			sev, ok := ParseSeverity(v.Severity)
			if !ok {
				return nil, fmt.Errorf("%s: %s.Severity: %q is not one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN (vulnerability %s)",
					name, field, v.Severity, v.VulnerabilityID)
			}
			r.Findings = append(r.Findings, Finding{ID: v.VulnerabilityID, Package: v.PkgName,
				InstalledVersion: v.InstalledVersion, FixedVersion: v.FixedVersion, Severity: sev})
		}
	}
	return r, nil
}

// ErrNoDigest is returned for reports that do not say which digest they
// are about, so no verdict can be keyed on them.
var ErrNoDigest = errors.New("the report names no image digest (Metadata.RepoDigests is empty)")
