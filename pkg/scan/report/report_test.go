package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sbv1alpha1 "github.com/aquasecurity/starboard/pkg/apis/aquasecurity/v1alpha1"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

func TestSummarize(t *testing.T) {
	f := func(id, pkg, fixed string, sev Severity) Finding {
		return Finding{ID: id, Package: pkg, InstalledVersion: "1", FixedVersion: fixed, Severity: sev}
	}
	tests := []struct {
		name     string
		findings []Finding
		max      int
		want     Summary
	}{
		{name: "nothing found"},
		{
			name: "counts every severity, lists fixable critical and high, critical first",
			findings: []Finding{
				f("CVE-3", "b", "2", High), f("CVE-1", "a", "", Critical), f("CVE-2", "a", "2", Critical),
				f("CVE-4", "c", "2", Medium), f("CVE-5", "c", "", Low), f("CVE-6", "d", "", Unknown),
			},
			max: 8,
			want: Summary{
				Vulnerabilities: v1alpha1.SeverityCounts{Critical: 2, High: 1, Medium: 1, Low: 1, Unknown: 1},
				Fixable:         v1alpha1.SeverityCounts{Critical: 1, High: 1, Medium: 1},
				FixableCriticalHigh: []v1alpha1.FixableVulnerability{
					{ID: "CVE-2", Severity: "CRITICAL", Package: "a", InstalledVersion: "1", FixedVersion: "2"},
					{ID: "CVE-3", Severity: "HIGH", Package: "b", InstalledVersion: "1", FixedVersion: "2"},
				},
			},
		},
		{
			name:     "the same package twice (two targets) counts once",
			findings: []Finding{f("CVE-1", "a", "2", High), f("CVE-1", "a", "2", High), f("CVE-1", "b", "2", High)},
			max:      8,
			want: Summary{
				Vulnerabilities: v1alpha1.SeverityCounts{High: 2},
				Fixable:         v1alpha1.SeverityCounts{High: 2},
				FixableCriticalHigh: []v1alpha1.FixableVulnerability{
					{ID: "CVE-1", Severity: "HIGH", Package: "a", InstalledVersion: "1", FixedVersion: "2"},
					{ID: "CVE-1", Severity: "HIGH", Package: "b", InstalledVersion: "1", FixedVersion: "2"},
				},
			},
		},
		{
			name:     "the list is capped and the rest counted",
			findings: []Finding{f("CVE-1", "a", "2", High), f("CVE-2", "a", "2", Critical), f("CVE-3", "a", "2", High)},
			max:      1,
			want: Summary{
				Vulnerabilities:     v1alpha1.SeverityCounts{Critical: 1, High: 2},
				Fixable:             v1alpha1.SeverityCounts{Critical: 1, High: 2},
				FixableCriticalHigh: []v1alpha1.FixableVulnerability{{ID: "CVE-2", Severity: "CRITICAL", Package: "a", InstalledVersion: "1", FixedVersion: "2"}},
				FixableNotListed:    2,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Summarize(tc.findings, tc.max)); diff != "" {
				t.Errorf("Summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTrivyJSON_ReadsAnImageReport(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "trivy-alpine.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTrivyJSON("trivy-alpine.json", data)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture is a real scan of the mixed test image (regenerate with
	// go test ./pkg/scan/trivy -update-fixture, then update this).
	want := &Report{
		Digest:     "sha256:4aa79045a0a41ecef2ffcb53829ac972c6f2c2baea69fb9f91a44a11fbd45b25",
		Repository: "127.0.0.1:35159/mixed",
		OS:         "alpine 3.23.2",
		Scanner:    "Trivy v0.74.0",
		CreatedAt:  time.Date(2026, 11, 26, 16, 1, 43, 219521670, time.UTC),
		Findings: []Finding{
			{ID: "CVE-2099-0001", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: Critical},
			{ID: "CVE-2099-0003", Package: "libcrypto3", InstalledVersion: "3.5.2-r0", FixedVersion: "3.5.2-r1", Severity: Medium},
			{ID: "CVE-2099-0003", Package: "libssl3", InstalledVersion: "3.5.2-r0", FixedVersion: "3.5.2-r1", Severity: Medium},
			{ID: "CVE-2099-0002", Package: "musl", InstalledVersion: "1.2.5-r10", Severity: High},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseTrivyJSON (-want +got):\n%s", diff)
	}
}

func TestParseTrivyJSON_RejectsWithTheFieldAtFault(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"not JSON", `{`, "r.json: not a Trivy JSON report"},
		{"two values", `{"SchemaVersion":2} {}`, "r.json: more than one JSON value"},
		{"no schema version", `{"Results":[]}`, "r.json: SchemaVersion is missing"},
		{"old schema", `{"SchemaVersion":1}`, "r.json: SchemaVersion 1 is not supported (want 2)"},
		{"filesystem report", `{"SchemaVersion":2,"ArtifactType":"filesystem"}`, `r.json: ArtifactType "filesystem": only container_image`},
		{"bad repo digest", `{"SchemaVersion":2,"Metadata":{"RepoDigests":["alpine:3.19"]}}`, `r.json: Metadata.RepoDigests[0]: "alpine:3.19" is not repository@sha256:digest`},
		{"no ID", `{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"PkgName":"a","Severity":"LOW"}]}]}`, "r.json: Results[0].Vulnerabilities[0].VulnerabilityID is missing"},
		{"no package", `{"SchemaVersion":2,"Results":[{},{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","Severity":"LOW"}]}]}`, "r.json: Results[1].Vulnerabilities[0].PkgName is missing (vulnerability CVE-1)"},
		{"bad severity", `{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"a","Severity":"SEVERE"}]}]}`, `r.json: Results[0].Vulnerabilities[0].Severity: "SEVERE" is not one of`},
		{"wrong type", `{"SchemaVersion":"2"}`, "r.json: not a Trivy JSON report"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTrivyJSON("r.json", []byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParseTrivyJSON(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "trivy-alpine.json")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"a","Severity":"low","FixedVersion":"2"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseTrivyJSON("fuzz.json", data)
		if err != nil {
			if r != nil {
				t.Fatal("a report and an error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.json: ") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		for _, f := range r.Findings {
			if f.ID == "" || f.Package == "" {
				t.Fatalf("finding without ID or package: %+v", f)
			}
			if _, ok := ParseSeverity(string(f.Severity)); !ok {
				t.Fatalf("finding with severity %q", f.Severity)
			}
		}
		s := Summarize(r.Findings, v1alpha1.MaxImageScanVulnerabilities)
		if len(s.FixableCriticalHigh) > v1alpha1.MaxImageScanVulnerabilities {
			t.Fatalf("%d listed", len(s.FixableCriticalHigh))
		}
	})
}

func TestFromStarboard(t *testing.T) {
	ts := metav1.NewTime(time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC))
	vr := func(mod func(*sbv1alpha1.VulnerabilityReport)) *sbv1alpha1.VulnerabilityReport {
		r := &sbv1alpha1.VulnerabilityReport{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "pod-nginx-nginx"},
			Report: sbv1alpha1.VulnerabilityScanResult{
				UpdateTimestamp: ts,
				Scanner:         sbv1alpha1.Scanner{Name: "Trivy", Vendor: "Aqua Security", Version: "0.16.0"},
				Registry:        sbv1alpha1.Registry{Server: "index.docker.io"},
				Artifact:        sbv1alpha1.Artifact{Repository: "library/nginx", Tag: "1.19", Digest: "sha256:" + strings.Repeat("a", 64)},
				Vulnerabilities: []sbv1alpha1.Vulnerability{
					{VulnerabilityID: "CVE-2021-3520", Resource: "liblz4-1", InstalledVersion: "1.8.3-1", FixedVersion: "1.8.3-1+deb10u1", Severity: sbv1alpha1.SeverityCritical},
					{VulnerabilityID: "CVE-2011-3374", Resource: "apt", InstalledVersion: "1.8.2.2", Severity: sbv1alpha1.SeverityNone},
				},
			},
		}
		if mod != nil {
			mod(r)
		}
		return r
	}
	t.Run("converts", func(t *testing.T) {
		got, err := FromStarboard(vr(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := &Report{
			Digest: "sha256:" + strings.Repeat("a", 64), Repository: "index.docker.io/library/nginx",
			Tags: []string{"index.docker.io/library/nginx:1.19"}, Scanner: "Trivy 0.16.0", CreatedAt: ts.Time,
			Findings: []Finding{
				{ID: "CVE-2021-3520", Package: "liblz4-1", InstalledVersion: "1.8.3-1", FixedVersion: "1.8.3-1+deb10u1", Severity: Critical},
				{ID: "CVE-2011-3374", Package: "apt", InstalledVersion: "1.8.2.2", Severity: Unknown},
			},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("FromStarboard (-want +got):\n%s", diff)
		}
	})
	for _, tc := range []struct {
		name string
		mod  func(*sbv1alpha1.VulnerabilityReport)
		want string
	}{
		{"no repository", func(r *sbv1alpha1.VulnerabilityReport) { r.Report.Artifact.Repository = "" }, "report.artifact.repository is empty"},
		{"bad digest", func(r *sbv1alpha1.VulnerabilityReport) { r.Report.Artifact.Digest = "md5:x" }, `report.artifact.digest "md5:x" is not a sha256 digest`},
		{"no ID", func(r *sbv1alpha1.VulnerabilityReport) { r.Report.Vulnerabilities[1].VulnerabilityID = "" }, "report.vulnerabilities[1].vulnerabilityID is empty"},
		{"no resource", func(r *sbv1alpha1.VulnerabilityReport) { r.Report.Vulnerabilities[0].Resource = "" }, "report.vulnerabilities[0].resource is empty"},
		{"bad severity", func(r *sbv1alpha1.VulnerabilityReport) { r.Report.Vulnerabilities[0].Severity = "BAD" }, `report.vulnerabilities[0].severity: "BAD"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromStarboard(vr(tc.mod))
			want := fmt.Sprintf("VulnerabilityReport team-a/pod-nginx-nginx: %s", tc.want)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want it to contain %q", err, want)
			}
		})
	}
}
