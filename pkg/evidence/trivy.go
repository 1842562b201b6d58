package evidence

import (
	"encoding/json"
	"fmt"
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

// trivyScan is what a Trivy report says about its image.
func trivyScan(r *TrivyReport) *imageScan {
	s := &imageScan{origin: r.Origin, image: r.ArtifactName, scannedAt: r.CreatedAt,
		vulnerabilities: map[compliance.Severity]int{}, fixable: map[compliance.Severity]listed{}, secrets: map[compliance.Severity][]string{}}
	if r.Trivy != nil {
		s.scanner = r.Trivy.Version
	}
	s.id.addRef(r.ArtifactName)
	for _, d := range r.Metadata.RepoDigests {
		s.id.addRef(d)
	}
	for _, t := range r.Metadata.RepoTags {
		s.id.addRef(t)
	}
	s.id.addImageID(r.Metadata.ImageID)
	for _, res := range r.Results {
		s.packages += len(res.Packages)
		for _, v := range res.Vulnerabilities {
			sev := compliance.ParseSeverity(v.Severity)
			s.vulnerabilities[sev]++
			if v.FixedVersion != "" && (sev == compliance.SeverityCritical || sev == compliance.SeverityHigh) {
				f := s.fixable[sev]
				f.n++
				f.items = append(f.items, fixDescription(v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.FixedVersion))
				s.fixable[sev] = f
			}
		}
		for _, sec := range res.Secrets {
			sev := compliance.ParseSeverity(sec.Severity)
			s.secrets[sev] = append(s.secrets[sev], fmt.Sprintf("%s in %s:%d", sec.RuleID, res.Target, sec.StartLine))
		}
	}
	return s
}
