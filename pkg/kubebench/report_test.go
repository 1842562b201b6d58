package kubebench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// minimal is the smallest valid kube-bench object: one control, one
// section, one failing and one passing check.
const minimal = `{"Controls":[{"id":"1","version":"cis-1.10","detected_version":"1.37","text":"Control Plane Security Configuration","node_type":"master",
 "tests":[{"section":"1.2","type":"","pass":1,"fail":1,"warn":0,"info":0,"desc":"API Server","results":[
  {"test_number":"1.2.1","test_desc":"Ensure that the --anonymous-auth argument is set to false","audit":"/bin/ps -ef | grep kube-apiserver","AuditEnv":"","AuditConfig":"","type":"","remediation":"Edit the API server pod specification","test_info":["Edit the API server pod specification"],"status":"FAIL","actual_value":"root 1 kube-apiserver","scored":false,"IsMultiple":false,"expected_result":"'--anonymous-auth' is equal to 'false'","reason":""},
  {"test_number":"1.2.2","test_desc":"Ensure that the --token-auth-file parameter is not set","status":"PASS","scored":true}]}],
 "total_pass":1,"total_fail":1,"total_warn":0,"total_info":0}],
 "Totals":{"total_pass":1,"total_fail":1,"total_warn":0,"total_info":0}}`

func TestParse_Minimal(t *testing.T) {
	r, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := &Report{
		HasTotals: true,
		Totals:    Totals{Pass: 1, Fail: 1},
		Controls: []Controls{{
			ID: "1", Version: "cis-1.10", DetectedVersion: "1.37", Text: "Control Plane Security Configuration", NodeType: "master",
			Totals: Totals{Pass: 1, Fail: 1},
			Groups: []Group{{ID: "1.2", Text: "API Server", Totals: Totals{Pass: 1, Fail: 1}, Checks: []Check{
				{ID: "1.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Audit: "/bin/ps -ef | grep kube-apiserver",
					Remediation: "Edit the API server pod specification", TestInfo: []string{"Edit the API server pod specification"},
					State: Fail, ActualValue: "root 1 kube-apiserver", ExpectedResult: "'--anonymous-auth' is equal to 'false'"},
				{ID: "1.2.2", Text: "Ensure that the --token-auth-file parameter is not set", State: Pass, Scored: true},
			}}},
		}},
	}
	if d := cmp.Diff(want, r); d != "" {
		t.Errorf("report (-want +got):\n%s", d)
	}
}

func TestParse_RejectsWhatIsNotKubeBenchOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string // substrings of the error, each a located problem
	}{
		{"empty", "", []string{"empty document"}},
		{"blank", "  \n", []string{"empty document"}},
		{"string", `"PASS"`, []string{"not kube-bench JSON"}},
		{"null", `null`, []string{"not kube-bench JSON"}},
		{"truncated", minimal[:200], []string{"invalid JSON at byte"}},
		{"trailing data", minimal + `{}`, []string{"invalid JSON"}},
		{"empty object", `{}`, []string{"Controls: required", "Totals: required"}},
		{"kube-hunter output", `{"nodes":[],"services":[],"vulnerabilities":[]}`, []string{"nodes: unknown field"}},
		{"unknown member in a check", strings.Replace(minimal, `"reason":""`, `"reason":"","severity":"high"`, 1),
			[]string{"Controls[0].tests[0].results[0].severity: unknown field"}},
		{"member names are case-sensitive", strings.Replace(minimal, `"Totals"`, `"totals"`, 1), []string{"totals: unknown field"}},
		{"duplicate member", strings.Replace(minimal, `"status":"PASS"`, `"status":"PASS","status":"FAIL"`, 1), []string{"duplicate"}},
		{"wrong type", strings.Replace(minimal, `"total_fail":1,"total_warn":0,"total_info":0}],`, `"total_fail":"1","total_warn":0,"total_info":0}],`, 1),
			[]string{"Controls[0].total_fail: must be an integer, found a string"}},
		{"fractional count", strings.Replace(minimal, `"pass":1,`, `"pass":1.5,`, 1), []string{"Controls[0].tests[0].pass: must be an integer"}},
		{"unknown state", strings.Replace(minimal, `"status":"PASS"`, `"status":"OK"`, 1),
			[]string{`Controls[0].tests[0].results[1].status: must be one of PASS, FAIL, WARN, INFO, found "OK"`}},
		{"missing state", strings.Replace(minimal, `"status":"PASS",`, ``, 1), []string{"Controls[0].tests[0].results[1].status: required"}},
		{"missing scored", strings.Replace(minimal, `,"scored":true`, ``, 1), []string{"Controls[0].tests[0].results[1].scored: required"}},
		{"null check ID", strings.Replace(minimal, `"test_number":"1.2.2"`, `"test_number":null`, 1), []string{"Controls[0].tests[0].results[1].test_number: required"}},
		{"empty check ID", strings.Replace(minimal, `"test_number":"1.2.2"`, `"test_number":" "`, 1), []string{"results[1].test_number: must not be empty"}},
		{"unknown node type", strings.Replace(minimal, `"node_type":"master"`, `"node_type":"laptop"`, 1), []string{`Controls[0].node_type: must be one of master, node`}},
		{"negative count", strings.Replace(minimal, `"warn":0,"info":0,"desc"`, `"warn":-1,"info":0,"desc"`, 1), []string{"Controls[0].tests[0].warn: must not be negative"}},
		{"group count disagrees with results", strings.Replace(minimal, `"pass":1,"fail":1,`, `"pass":2,"fail":1,`, 1),
			[]string{"Controls[0].tests[0].pass: is 2 but its results hold 1 PASS"}},
		{"control total disagrees with sections", strings.Replace(minimal, `"total_pass":1,"total_fail":1,"total_warn":0,"total_info":0}],`, `"total_pass":1,"total_fail":3,"total_warn":0,"total_info":0}],`, 1),
			[]string{"Controls[0].total_fail: is 3 but its tests hold 1 FAIL", "Totals.total_fail: is 1 but the controls hold 3 FAIL"}},
		{"no controls", `{"Controls":[],"Totals":{"total_pass":0,"total_fail":0,"total_warn":0,"total_info":0}}`, []string{"Controls: no controls"}},
		{"no controls, array shape", `[]`, []string{"no controls"}},
		{"missing results", strings.Replace(minimal, `"desc":"API Server","results":[`, `"desc":"API Server","x":[`, 1), []string{"x: unknown field"}},
		{"invalid UTF-8", strings.Replace(minimal, "API Server", "API \xff Server", 1), []string{"invalid UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want *ParseError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParse_CapsTheProblemsListed(t *testing.T) {
	var b strings.Builder
	b.WriteString(`[`)
	for i := range 30 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"id":"","version":"cis-1.10","text":"","node_type":"node","tests":[],"total_pass":0,"total_fail":0,"total_warn":0,"total_info":0}`)
	}
	b.WriteString(`]`)
	_, err := Parse([]byte(b.String()))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want *ParseError", err)
	}
	if len(pe.Problems) != maxProblems || pe.Omitted != 30-maxProblems {
		t.Errorf("listed %d, omitted %d; want %d and %d", len(pe.Problems), pe.Omitted, maxProblems, 30-maxProblems)
	}
	if !strings.HasSuffix(err.Error(), "(and 20 more)") {
		t.Errorf("error does not say how many were left out: %v", err)
	}
}

// The committed fixtures are real kube-bench v0.10.4 output (see
// testdata/README.md): both shapes must parse, agree with each other, and
// hold every state kube-bench reports.
func TestParse_RealKubeBenchOutput(t *testing.T) {
	for _, tc := range []struct {
		file      string
		hasTotals bool
		nodeTypes []string
	}{
		{"kube-bench-master.json", true, []string{"master", "etcd", "controlplane", "policies"}},
		{"kube-bench-master-nototals.json", false, []string{"master", "etcd"}},
		{"kube-bench-node.json", true, []string{"node"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if r.HasTotals != tc.hasTotals {
				t.Errorf("HasTotals = %v, want %v", r.HasTotals, tc.hasTotals)
			}
			var types []string
			for _, c := range r.Controls {
				types = append(types, c.NodeType)
				if c.Version != "cis-1.10" {
					t.Errorf("control %s: version %q, want cis-1.10", c.ID, c.Version)
				}
			}
			if d := cmp.Diff(tc.nodeTypes, types); d != "" {
				t.Errorf("node types (-want +got):\n%s", d)
			}
			if r.Totals.Pass == 0 || r.Totals.Fail == 0 || r.Totals.Warn == 0 {
				t.Errorf("totals %+v: a real run on this control plane passes, fails and warns", r.Totals)
			}
		})
	}
}
