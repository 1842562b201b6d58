package v1alpha1

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Limits that keep an ImageScan small: etcd holds one per digest, and
// trivy-operator's full vulnerability lists in etcd are what this design
// avoids (aquasecurity/trivy-operator#441).
const (
	// MaxImageScanVulnerabilities caps status.vulnerabilities.
	MaxImageScanVulnerabilities = 4
	// MaxImageScanTags caps status.tags.
	MaxImageScanTags = 3
	// MaxImageScanPullSecrets caps spec.pullSecrets.
	MaxImageScanPullSecrets = 4
)

// ImageScan sources.
const (
	// SourceTrivy: scanned by this scanner with Trivy in-process.
	SourceTrivy = "Trivy"
	// SourceStarboard: taken from a Starboard VulnerabilityReport.
	SourceStarboard = "StarboardVulnerabilityReport"
	// SourceTrivyReport: taken from a Trivy JSON report file.
	SourceTrivyReport = "TrivyReport"
)

// ConditionScanned is True when the status holds a verdict. Its reason is
// ReasonScanSucceeded; ReasonRescanFailed when the latest scan failed and
// the verdict is the previous one's; ReasonScanFailed (status False) when no
// scan has succeeded yet.
const (
	ConditionScanned    = "Scanned"
	ReasonScanSucceeded = "Succeeded"
	ReasonRescanFailed  = "RescanFailed"
	ReasonScanFailed    = "Failed"
)

// SecretReference names a Secret (an image pull secret) in a namespace.
type SecretReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ImageScanSpec says which image the scan is about and how to pull it.
type ImageScanSpec struct {
	// Digest of the image manifest or index, as pods and registries name it.
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	Digest string `json:"digest"`
	// Repository the image is pulled from for (re)scans, without tag or
	// digest, e.g. registry.example.ca/team/image.
	// +kubebuilder:validation:MinLength=1
	Repository string `json:"repository"`
	// PullSecrets that gave access to the repository when the image was last
	// seen (at most 4). Only names: the scanner reads the Secrets when it
	// pulls.
	// +kubebuilder:validation:MaxItems=4
	// +optional
	PullSecrets []SecretReference `json:"pullSecrets,omitempty"`
}

// SeverityCounts counts vulnerabilities by severity.
type SeverityCounts struct {
	Critical int32 `json:"critical,omitempty"`
	High     int32 `json:"high,omitempty"`
	Medium   int32 `json:"medium,omitempty"`
	Low      int32 `json:"low,omitempty"`
	Unknown  int32 `json:"unknown,omitempty"`
}

// FixableVulnerability is a critical or high vulnerability with a fix.
type FixableVulnerability struct {
	// ID is the CVE or advisory ID.
	ID string `json:"id"`
	// +kubebuilder:validation:Enum=CRITICAL;HIGH
	Severity         string `json:"severity"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installedVersion,omitempty"`
	FixedVersion     string `json:"fixedVersion"`
}

// VulnerabilityDB identifies the vulnerability database a scan used.
type VulnerabilityDB struct {
	// SchemaVersion of the Trivy DB.
	SchemaVersion int32 `json:"schemaVersion,omitempty"`
	// UpdatedAt is when the DB was built; a scan made with an older DB is
	// redone.
	UpdatedAt metav1.Time `json:"updatedAt"`
}

// ImageScanStatus is the verdict: counts, not the full vulnerability list
// (the scanner can keep that on a volume and serve it over HTTP).
type ImageScanStatus struct {
	// ObservedGeneration is the spec generation the verdict is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Scanned.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Source of the verdict.
	// +kubebuilder:validation:Enum=Trivy;StarboardVulnerabilityReport;TrivyReport
	// +optional
	Source string `json:"source,omitempty"`
	// Scanner and its version, e.g. "Trivy v0.74.0".
	// +optional
	Scanner string `json:"scanner,omitempty"`
	// ScannedAt is when the scan finished (or failed).
	// +optional
	ScannedAt *metav1.Time `json:"scannedAt,omitempty"`
	// DB is the vulnerability database the scan used.
	// +optional
	DB *VulnerabilityDB `json:"db,omitempty"`
	// OS detected in the image, e.g. "alpine 3.22.1".
	// +optional
	OS string `json:"os,omitempty"`
	// Tags are the references (registry/repository:tag) last seen resolving
	// to this digest, most recent first (at most 3). A tag belongs to one
	// ImageScan at a time.
	// +kubebuilder:validation:MaxItems=3
	// +optional
	Tags []string `json:"tags,omitempty"`
	// Vulnerabilities counts every vulnerability found, by severity.
	// +optional
	Vulnerabilities SeverityCounts `json:"vulnerabilities,omitempty"`
	// Fixable counts those with a fixed version available.
	// +optional
	Fixable SeverityCounts `json:"fixable,omitempty"`
	// FixableCriticalHigh lists fixable critical and high vulnerabilities,
	// critical first, at most 4; FixableNotListed counts the rest.
	// +kubebuilder:validation:MaxItems=4
	// +optional
	FixableCriticalHigh []FixableVulnerability `json:"fixableCriticalHigh,omitempty"`
	// +optional
	FixableNotListed int32 `json:"fixableNotListed,omitempty"`
	// Error says why the latest scan failed; the counts, if any, are then
	// those of the last successful scan (see the Scanned condition).
	// +optional
	Error string `json:"error,omitempty"`
}

// ImageScan is the vulnerability verdict for one image digest. It is
// cluster-scoped and named from the digest (ImageScanName), so every pod,
// workflow and namespace running the image shares one scan.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=imgscan
// +kubebuilder:printcolumn:name="Repository",type=string,JSONPath=`.spec.repository`
// +kubebuilder:printcolumn:name="Critical",type=integer,JSONPath=`.status.vulnerabilities.critical`
// +kubebuilder:printcolumn:name="High",type=integer,JSONPath=`.status.vulnerabilities.high`
// +kubebuilder:printcolumn:name="Fixable-Crit",type=integer,JSONPath=`.status.fixable.critical`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.status.source`,priority=1
// +kubebuilder:printcolumn:name="Scanned",type=date,JSONPath=`.status.scannedAt`
type ImageScan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImageScanSpec   `json:"spec"`
	Status ImageScanStatus `json:"status,omitempty"`
}

// ImageScanList lists ImageScans.
// +kubebuilder:object:root=true
type ImageScanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageScan `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImageScan{}, &ImageScanList{})
}

// ImageScanName is the name of the ImageScan for digest: "sha256-<hex>".
func ImageScanName(digest string) (string, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || algo != "sha256" || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("image digest %q: want sha256:<64 lowercase hex digits>", digest)
	}
	return algo + "-" + hex, nil
}

// Scanned reports whether the status holds a verdict.
func (s *ImageScanStatus) Scanned() bool {
	for _, c := range s.Conditions {
		if c.Type == ConditionScanned {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}
