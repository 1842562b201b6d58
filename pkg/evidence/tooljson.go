package evidence

// Minimal decoding of kube-bench and kube-hunter JSON, so that reports can
// be made from those tools' files now. The scanner's shared parsers
// (pkg/kubebench, pkg/kubehunter) will replace this file: only
// DecodeKubeBench and DecodeKubeHunter are used elsewhere, and they return
// the adapter types BenchRun and HunterRun (kubebench.go, kubehunter.go).
//
// Formats: kube-bench --json marshals check.OverallControls
// {"Controls": [...], "Totals": {...}}, or with --nototals a bare array of
// controls (aquasecurity/kube-bench:check/controls.go, check.go,
// cmd/common.go); kube-hunter --report json writes
// {"nodes", "services", "vulnerabilities"} (aquasecurity/kube-hunter:
// kube_hunter/modules/report/base.py, json.py).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

type benchControls struct {
	ID              string       `json:"id"`
	Version         string       `json:"version"`
	DetectedVersion string       `json:"detected_version"`
	Text            string       `json:"text"`
	NodeType        string       `json:"node_type"`
	Groups          []benchGroup `json:"tests"`
}

type benchGroup struct {
	ID     string       `json:"section"`
	Text   string       `json:"desc"`
	Checks []benchCheck `json:"results"`
}

type benchCheck struct {
	ID             string `json:"test_number"`
	Text           string `json:"test_desc"`
	Remediation    string `json:"remediation"`
	State          string `json:"status"`
	ActualValue    string `json:"actual_value"`
	ExpectedResult string `json:"expected_result"`
	Reason         string `json:"reason"`
	Scored         bool   `json:"scored"`
}

// DecodeKubeBench reads kube-bench --json output, with or without totals.
// Problems name the file and the field.
func DecodeKubeBench(name string, data []byte) (*BenchRun, error) {
	data = bytes.TrimSpace(data)
	var controls []benchControls
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &controls); err != nil {
			return nil, fmt.Errorf("%s: kube-bench JSON: %v", name, err)
		}
	default:
		var overall struct {
			Controls []benchControls `json:"Controls"`
		}
		if err := json.Unmarshal(data, &overall); err != nil {
			return nil, fmt.Errorf("%s: kube-bench JSON: %v", name, err)
		}
		controls = overall.Controls
	}
	if len(controls) == 0 {
		return nil, fmt.Errorf("%s: kube-bench JSON: Controls: no controls", name)
	}
	run := &BenchRun{Origin: name}
	var errs []error
	for i, c := range controls {
		field := fmt.Sprintf("Controls[%d]", i)
		if c.ID == "" {
			errs = append(errs, fmt.Errorf("%s: kube-bench JSON: %s.id: required", name, field))
		}
		run.Benchmarks = appendUnique(run.Benchmarks, c.Version)
		run.KubernetesVersions = appendUnique(run.KubernetesVersions, c.DetectedVersion)
		run.NodeTypes = appendUnique(run.NodeTypes, c.NodeType)
		for j, g := range c.Groups {
			for k, ch := range g.Checks {
				cf := fmt.Sprintf("%s.tests[%d].results[%d]", field, j, k)
				if ch.ID == "" {
					errs = append(errs, fmt.Errorf("%s: kube-bench JSON: %s.test_number: required", name, cf))
					continue
				}
				state := strings.ToUpper(ch.State)
				switch state {
				case "PASS", "FAIL", "WARN", "INFO":
				default:
					errs = append(errs, fmt.Errorf("%s: kube-bench JSON: %s.status: %q is not PASS, FAIL, WARN or INFO (check %s)", name, cf, ch.State, ch.ID))
					continue
				}
				run.Checks = append(run.Checks, BenchCheck{
					ID: ch.ID, Text: ch.Text, Status: state, Scored: ch.Scored,
					Remediation: ch.Remediation, ActualValue: ch.ActualValue,
					ExpectedResult: ch.ExpectedResult, Reason: ch.Reason,
					NodeType: c.NodeType, Section: g.ID,
				})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return run, nil
}

type hunterReport struct {
	Nodes []struct {
		Type     string `json:"type"`
		Location string `json:"location"`
	} `json:"nodes"`
	Services []struct {
		Service  string `json:"service"`
		Location string `json:"location"`
	} `json:"services"`
	Vulnerabilities *[]struct {
		Location      string `json:"location"`
		VID           string `json:"vid"`
		Category      string `json:"category"`
		Severity      string `json:"severity"`
		Vulnerability string `json:"vulnerability"`
		Description   string `json:"description"`
		Evidence      string `json:"evidence"`
		AVDReference  string `json:"avd_reference"`
		Hunter        string `json:"hunter"`
	} `json:"vulnerabilities"`
}

// DecodeKubeHunter reads kube-hunter --report json output. Problems name
// the file and the field.
func DecodeKubeHunter(name string, data []byte) (*HunterRun, error) {
	var r hunterReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: kube-hunter JSON: %v", name, err)
	}
	if r.Vulnerabilities == nil {
		return nil, fmt.Errorf("%s: kube-hunter JSON: vulnerabilities: required", name)
	}
	run := &HunterRun{Origin: name}
	for _, n := range r.Nodes {
		run.Nodes = append(run.Nodes, n.Location)
	}
	for _, s := range r.Services {
		run.Services = append(run.Services, strings.TrimSpace(s.Service+" "+s.Location))
	}
	var errs []error
	for i, v := range *r.Vulnerabilities {
		if v.VID == "" && v.Vulnerability == "" {
			errs = append(errs, fmt.Errorf("%s: kube-hunter JSON: vulnerabilities[%d]: neither vid nor vulnerability is set", name, i))
			continue
		}
		run.Findings = append(run.Findings, HunterFinding{
			VID: v.VID, Name: v.Vulnerability, Category: v.Category, Severity: v.Severity,
			Location: v.Location, Description: v.Description, Evidence: v.Evidence,
			Hunter: v.Hunter, Reference: v.AVDReference,
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return run, nil
}

func appendUnique(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
