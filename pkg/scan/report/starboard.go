package report

import (
	"fmt"
	"strings"

	sbv1alpha1 "github.com/aquasecurity/starboard/pkg/apis/aquasecurity/v1alpha1"
)

// FromStarboard converts a Starboard VulnerabilityReport
// (aquasecurity.github.io/v1alpha1) so that a platform already running
// Starboard keeps its findings. Errors name the report and the field.
func FromStarboard(vr *sbv1alpha1.VulnerabilityReport) (*Report, error) {
	id := fmt.Sprintf("VulnerabilityReport %s/%s", vr.Namespace, vr.Name)
	a := vr.Report.Artifact
	if a.Repository == "" {
		return nil, fmt.Errorf("%s: report.artifact.repository is empty", id)
	}
	repo := a.Repository
	if server := strings.TrimSuffix(vr.Report.Registry.Server, "/"); server != "" {
		repo = server + "/" + repo
	}
	r := &Report{Repository: repo, CreatedAt: vr.Report.UpdateTimestamp.Time}
	if a.Digest != "" {
		if !strings.HasPrefix(a.Digest, "sha256:") {
			return nil, fmt.Errorf("%s: report.artifact.digest %q is not a sha256 digest", id, a.Digest)
		}
		r.Digest = a.Digest
	}
	if a.Tag != "" {
		r.Tags = []string{repo + ":" + a.Tag}
	}
	if s := vr.Report.Scanner; s.Name != "" {
		r.Scanner = strings.TrimSpace(s.Name + " " + s.Version)
	}
	for i, v := range vr.Report.Vulnerabilities {
		field := fmt.Sprintf("report.vulnerabilities[%d]", i)
		if v.VulnerabilityID == "" {
			return nil, fmt.Errorf("%s: %s.vulnerabilityID is empty", id, field)
		}
		if v.Resource == "" {
			return nil, fmt.Errorf("%s: %s.resource is empty (vulnerability %s)", id, field, v.VulnerabilityID)
		}
		sev, ok := ParseSeverity(string(v.Severity))
		if !ok && v.Severity != sbv1alpha1.SeverityNone {
			return nil, fmt.Errorf("%s: %s.severity: %q is not one of CRITICAL, HIGH, MEDIUM, LOW, NONE, UNKNOWN (vulnerability %s)",
				id, field, v.Severity, v.VulnerabilityID)
		}
		r.Findings = append(r.Findings, Finding{ID: v.VulnerabilityID, Package: v.Resource,
			InstalledVersion: v.InstalledVersion, FixedVersion: v.FixedVersion, Severity: sev})
	}
	return r, nil
}
