package policyreport

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

func object(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const report = `apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata:
  name: audit
  namespace: jane
scope:
  kind: Namespace
  name: jane
summary: {pass: 1, fail: 1, warn: 0, error: 0, skip: 0}
results:
  - policy: PSPPrivilegedContainer
    rule: no-privileged
    result: fail
    severity: critical
    category: AC-6
    scored: true
    timestamp: {seconds: 1795602000, nanos: 5}
    resources:
      - {apiVersion: v1, kind: Pod, namespace: jane, name: nb-0}
    message: privileged
    properties: {guard.statcan.gc.ca/controls: "AC-6,CM-7"}
  - policy: ContainerAllowedImages
    result: pass
`

func TestFromUnstructured_DecodesBothKindsWithCRDFieldNames(t *testing.T) {
	r, err := FromUnstructured(object(t, report))
	if err != nil {
		t.Fatal(err)
	}
	want := PolicyReportResult{
		Policy: "PSPPrivilegedContainer", Rule: "no-privileged", Result: ResultFail, Severity: SeverityCritical,
		Category: "AC-6", Scored: true, Timestamp: metav1.Timestamp{Seconds: 1795602000, Nanos: 5},
		Resources:  []corev1.ObjectReference{{APIVersion: "v1", Kind: "Pod", Namespace: "jane", Name: "nb-0"}},
		Message:    "privileged",
		Properties: map[string]string{"guard.statcan.gc.ca/controls": "AC-6,CM-7"},
	}
	if diff := cmp.Diff(want, r.Results[0]); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if r.Summary != (Summary{Pass: 1, Fail: 1}) || r.Scope.Name != "jane" {
		t.Errorf("summary %+v, scope %+v", r.Summary, r.Scope)
	}
	cluster := strings.Replace(strings.Replace(report, "kind: PolicyReport", "kind: ClusterPolicyReport", 1), "  namespace: jane\n", "", 1)
	c, err := FromUnstructured(object(t, cluster))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != "ClusterPolicyReport" || len(c.Results) != 2 {
		t.Errorf("cluster report: kind %s, %d results", c.Kind, len(c.Results))
	}
}

func TestFromUnstructured_RejectsWhatTheCRDWouldNot(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"unknown field", "    rule: no-privileged\n", "    rulez: no-privileged\n", []string{`PolicyReport "jane/audit"`, "rulez"}},
		{"result outside the enum", "    result: fail\n", "    result: failed\n", []string{"results[0].result", `"failed"`}},
		{"severity outside the enum", "severity: critical", "severity: urgent", []string{"results[0].severity", `"urgent"`}},
		{"no policy", "  - policy: ContainerAllowedImages\n", "  - policy: \"\"\n", []string{"results[1].policy: required"}},
		{"wrong type", "scored: true", "scored: yes please", []string{"PolicyReport", "scored"}},
		{"other version", "wgpolicyk8s.io/v1alpha2", "wgpolicyk8s.io/v1beta1", []string{`version "v1beta1"`}},
		{"not a report", "kind: PolicyReport", "kind: Pod", []string{"not a wgpolicyk8s.io PolicyReport"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromUnstructured(object(t, strings.Replace(report, tc.old, tc.new, 1)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
