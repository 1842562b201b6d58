package compliance

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	guardv1alpha1 "github.com/statcan/daaas-guard/api/v1alpha1"
)

// CRStatus is the report as a ComplianceReport's status: the summary, each
// control's status and counts, and the sources' versions; no evidence, so
// that it stays small for etcd whatever the cluster's size.
func (r *Report) CRStatus() guardv1alpha1.ComplianceReportStatus {
	at := metav1.NewTime(r.GeneratedAt)
	s := guardv1alpha1.ComplianceReportStatus{
		GeneratedAt: &at,
		Cluster:     r.Cluster,
		Catalog:     r.Catalog.Name + "@" + r.Catalog.Version,
		Mapping:     r.Mapping.Name + "@" + r.Mapping.Version,
		Summary: guardv1alpha1.ComplianceSummary{
			Controls:         int32(r.Summary.Controls),
			Satisfied:        int32(r.Summary.ByStatus.Satisfied),
			Partially:        int32(r.Summary.ByStatus.Partially),
			NotSatisfied:     int32(r.Summary.ByStatus.NotSatisfied),
			NotAssessed:      int32(r.Summary.ByStatus.NotAssessed),
			EvidencePass:     int32(r.Summary.Evidence.Pass),
			EvidenceFail:     int32(r.Summary.Evidence.Fail),
			EvidenceWarn:     int32(r.Summary.Evidence.Warn),
			CriticalFailures: int32(r.Summary.Failures.Critical),
			HighFailures:     int32(r.Summary.Failures.High),
		},
	}
	for _, c := range r.Controls {
		s.Controls = append(s.Controls, guardv1alpha1.ComplianceControlStatus{
			ID:     c.ID,
			Status: guardv1alpha1.ComplianceStatus(c.Status),
			Pass:   int32(c.Counts.Pass),
			Fail:   int32(c.Counts.Fail),
			Warn:   int32(c.Counts.Warn),
		})
	}
	for _, src := range r.Sources {
		cs := guardv1alpha1.ComplianceSource{
			Source:    string(src.Source),
			Tool:      src.Tool,
			Version:   src.Version,
			Benchmark: src.Benchmark,
			DBVersion: src.DBVersion,
			Provided:  src.Origin != "",
		}
		if src.DBUpdatedAt != nil {
			t := metav1.NewTime(*src.DBUpdatedAt)
			cs.DBUpdatedAt = &t
		}
		if len(s.Sources) < 50 { // the CRD's bound; one entry per input file
			s.Sources = append(s.Sources, cs)
		}
	}
	return s
}
