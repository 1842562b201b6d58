package clusterscan

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestReportLine(t *testing.T) {
	for _, tc := range []struct {
		name, log, want, err string
	}{
		{"only the report", `{"a":1}`, `{"a":1}`, ""},
		{"after kube-bench's stderr", "I0701 10:00:00.0 1 util.go:1] x\nWarning: Kubernetes version was not auto-detected\n" + `{"Controls":[]}` + "\n", `{"Controls":[]}`, ""},
		{"array shape", "[{\"id\":\"1\"}]\r\n", `[{"id":"1"}]`, ""},
		{"the last of two", "{\"first\":1}\n{\"second\":2}\n", `{"second":2}`, ""},
		{"a line after the report", "{\"a\":1}\nE0701 done\n", `{"a":1}`, ""},
		{"nothing", "", "", "no JSON report in the log (0 lines)"},
		{"errors only", "Error: unable to determine benchmark version\nexit 1\n", "", "no JSON report in the log (2 lines)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := reportLine([]byte(tc.log))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("reportLine = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// The fake clientset answers every log request with "fake logs".
func TestAPILogs(t *testing.T) {
	a := APILogs{Client: fake.NewClientset()}
	got, err := a.Logs(context.Background(), "scans", "kube-bench-x", "kube-bench", 1024)
	if err != nil || string(got) != "fake logs" {
		t.Errorf("Logs = %q, %v", got, err)
	}
	_, err = a.Logs(context.Background(), "scans", "kube-bench-x", "kube-bench", 4)
	if err == nil || !strings.Contains(err.Error(), "the log of pod scans/kube-bench-x is longer than 4 bytes") {
		t.Errorf("a long log gave %v", err)
	}
}
