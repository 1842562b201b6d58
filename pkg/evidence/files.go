package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/kustomize"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// Kind is the kind of an input file.
type Kind string

// Input kinds. KindAuto recognises each file by its content.
const (
	KindAuto          Kind = ""
	KindPolicies      Kind = "policies"
	KindPolicyReports Kind = "policy-reports"
	KindWebhooks      Kind = "webhook-configs"
	KindTrivy         Kind = "trivy"
	KindTrivyDB       Kind = "trivy-db"
	KindKubeBench     Kind = "kube-bench"
	KindKubeHunter    Kind = "kube-hunter"
)

// kubernetes stands for files of Kubernetes objects, sorted by kind once
// read.
const kubernetes Kind = "kubernetes"

// ReadFiles reads inputs from files and directories (walked recursively
// for .json, .yaml and .yml; a directory holding a kustomization is
// rendered with kustomize instead). With KindAuto each file is recognised
// by its content: kube-bench, kube-hunter and Trivy JSON, Trivy DB
// metadata, and Kubernetes objects (templates, constraints, PolicyReports,
// webhook configurations; other objects are skipped with a warning). With
// another kind every file must be of that kind (objects that are no
// evidence at all are skipped, as with KindAuto). Every file that cannot
// be used is reported, by name and field.
func ReadFiles(paths []string, kind Kind) (*Inputs, error) {
	in := NewInputs()
	var errs []error
	for _, p := range paths {
		if info, err := os.Stat(p); err == nil && info.IsDir() && kustomize.IsKustomization(p) {
			docs, err := kustomize.Build(p, manifest.Options{AllowUntyped: true, KeepLists: true})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, in.addObjects(p, docs, kind)...)
			continue
		}
		files, err := manifest.Files([]string{p}, ".json", ".yaml", ".yml")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := in.AddFile(f, data, kind); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return in, nil
}

// AddFile adds the inputs in one file's content; name is used in errors
// and as the evidence's origin.
func (in *Inputs) AddFile(name string, data []byte, kind Kind) error {
	detected := sniff(data)
	if detected == "report" {
		return fmt.Errorf("%s: is a compliance report; give earlier reports with --previous", name)
	}
	switch kind {
	case KindAuto:
		kind = detected
	case KindPolicies, KindPolicyReports, KindWebhooks:
		if detected != kubernetes {
			return fmt.Errorf("%s: expected Kubernetes objects (%s), found %s", name, kind, describeKind(detected))
		}
	default:
		if detected != kind {
			return fmt.Errorf("%s: expected %s, found %s", name, describeKind(kind), describeKind(detected))
		}
	}
	switch kind {
	case KindKubeBench:
		run, err := DecodeKubeBench(name, data)
		if err != nil {
			return err
		}
		in.Bench = append(in.Bench, run)
		in.origin(compliance.SourceKubeBench, name)
	case KindKubeHunter:
		run, err := DecodeKubeHunter(name, data)
		if err != nil {
			return err
		}
		in.Hunter = append(in.Hunter, run)
		in.origin(compliance.SourceKubeHunter, name)
	case KindTrivy:
		r, err := DecodeTrivy(name, data)
		if err != nil {
			return err
		}
		in.Trivy = append(in.Trivy, r)
		in.origin(compliance.SourceImageScan, name)
	case KindTrivyDB:
		db, err := DecodeTrivyDB(name, data)
		if err != nil {
			return err
		}
		if in.TrivyDB != nil {
			return fmt.Errorf("%s: a second Trivy DB metadata file (first: %s): give the one the scans used", name, in.TrivyDB.Origin)
		}
		in.TrivyDB = db
		in.origin(compliance.SourceImageScan, name)
	default:
		docs, err := manifest.Parse(name, data, manifest.Options{AllowUntyped: true, KeepLists: true})
		if err != nil {
			return err
		}
		if errs := in.addObjects(name, docs, kind); len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	return nil
}

// addObjects sorts Kubernetes objects into inputs. want, when not auto,
// is the only kind of evidence the objects may be.
func (in *Inputs) addObjects(name string, docs []*manifest.Document, want Kind) []error {
	var errs []error
	ignored := map[string]int{}
	for _, d := range docs {
		u := d.Object
		var got Kind
		switch {
		case policy.IsTemplate(u), policy.IsConstraint(u):
			got = KindPolicies
		case policyreport.IsReport(u):
			got = KindPolicyReports
		case IsWebhookConfiguration(u):
			got = KindWebhooks
		}
		if want != KindAuto && want != kubernetes && got != "" && got != want {
			errs = append(errs, fmt.Errorf("%s: %s %q is not one of the %s this input takes", d.Pos(), kindOf(u.GetKind()), u.GetName(), want))
			continue
		}
		switch got {
		case KindPolicies:
			if policy.IsConstraint(u) {
				in.Constraints = append(in.Constraints, Constraint{Object: u, Origin: d.Pos()})
				in.origin(compliance.SourcePolicy, name)
				continue
			}
			t, err := policy.NewTemplate(u, d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			in.Templates = append(in.Templates, t)
			in.TemplateOrigins[t] = d.Pos()
			in.origin(compliance.SourcePolicy, name)
		case KindPolicyReports:
			r, err := policyreport.FromUnstructured(u)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Pos(), err))
				continue
			}
			in.Reports = append(in.Reports, Report{Report: r, Origin: name})
			in.origin(compliance.SourceAudit, name)
		case KindWebhooks:
			ws, err := DecodeWebhooks(u, d.Pos())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			in.Webhooks = append(in.Webhooks, ws...)
			in.origin(compliance.SourceWebhookConfig, name)
		default:
			if u.GroupVersionKind().Group != "kustomize.config.k8s.io" {
				ignored[kindOf(u.GetKind())]++
			}
		}
	}
	if len(ignored) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(ignored)) {
			parts = append(parts, fmt.Sprintf("%s (%d)", k, ignored[k]))
		}
		in.Warnings = append(in.Warnings, fmt.Sprintf("%s: skipped objects that are not evidence: %s", name, strings.Join(parts, ", ")))
	}
	return errs
}

// sniff recognises a file by its content: a tool's JSON, or Kubernetes
// objects (anything else, including YAML).
func sniff(data []byte) Kind {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return kubernetes
	}
	switch data[0] {
	case '[':
		var list []map[string]json.RawMessage
		if json.Unmarshal(data, &list) == nil && len(list) > 0 {
			if _, ok := list[0]["node_type"]; ok {
				return KindKubeBench
			}
			if _, ok := list[0]["tests"]; ok {
				return KindKubeBench
			}
		}
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil {
			return kubernetes // let the manifest reader report the syntax error
		}
		has := func(k string) bool { _, ok := obj[k]; return ok }
		if has("apiVersion") {
			var kind string
			_ = json.Unmarshal(obj["kind"], &kind)
			if kind == compliance.ReportKind {
				return "report"
			}
			return kubernetes
		}
		switch {
		case has("Controls"):
			return KindKubeBench
		case has("SchemaVersion"):
			return KindTrivy
		case has("vulnerabilities"):
			return KindKubeHunter
		case has("UpdatedAt") && has("NextUpdate"):
			return KindTrivyDB
		}
	}
	return kubernetes
}

func describeKind(k Kind) string {
	switch k {
	case KindKubeBench:
		return "kube-bench JSON"
	case KindKubeHunter:
		return "kube-hunter JSON"
	case KindTrivy:
		return "a Trivy JSON report"
	case KindTrivyDB:
		return "Trivy DB metadata (metadata.json)"
	case kubernetes:
		return "Kubernetes objects"
	}
	return string(k)
}

func kindOf(k string) string {
	if k == "" {
		return "a document without kind"
	}
	return k
}

// SortInputs orders inputs deterministically, whatever order files and
// API lists came in.
func (in *Inputs) SortInputs() {
	sort.SliceStable(in.Templates, func(i, j int) bool { return in.Templates[i].Kind < in.Templates[j].Kind })
	sort.SliceStable(in.Constraints, func(i, j int) bool {
		a, b := in.Constraints[i].Object, in.Constraints[j].Object
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		return a.GetName() < b.GetName()
	})
	sort.SliceStable(in.Reports, func(i, j int) bool {
		a, b := in.Reports[i], in.Reports[j]
		if a.Origin != b.Origin {
			return a.Origin < b.Origin
		}
		if a.Report.Namespace != b.Report.Namespace {
			return a.Report.Namespace < b.Report.Namespace
		}
		return a.Report.Name < b.Report.Name
	})
	sort.SliceStable(in.Webhooks, func(i, j int) bool {
		a, b := in.Webhooks[i], in.Webhooks[j]
		return a.Kind+"/"+a.Config+"/"+a.Name < b.Kind+"/"+b.Config+"/"+b.Name
	})
	sort.SliceStable(in.Trivy, func(i, j int) bool { return in.Trivy[i].Origin < in.Trivy[j].Origin })
	sort.SliceStable(in.ImageScans, func(i, j int) bool {
		a, b := in.ImageScans[i], in.ImageScans[j]
		if a.Origin != b.Origin {
			return a.Origin < b.Origin
		}
		return a.Scan.Name < b.Scan.Name
	})
	sort.SliceStable(in.Bench, func(i, j int) bool { return in.Bench[i].Origin < in.Bench[j].Origin })
	sort.SliceStable(in.Hunter, func(i, j int) bool { return in.Hunter[i].Origin < in.Hunter[j].Origin })
	sort.SliceStable(in.NodeBenchmarks, func(i, j int) bool {
		a, b := in.NodeBenchmarks[i], in.NodeBenchmarks[j]
		return a.Origin+"\x00"+a.Bench.Name < b.Origin+"\x00"+b.Bench.Name
	})
	sort.SliceStable(in.ClusterBenchmarks, func(i, j int) bool {
		a, b := in.ClusterBenchmarks[i], in.ClusterBenchmarks[j]
		return a.Origin+"\x00"+a.Bench.Name < b.Origin+"\x00"+b.Bench.Name
	})
	sort.SliceStable(in.PenetrationTests, func(i, j int) bool {
		a, b := in.PenetrationTests[i], in.PenetrationTests[j]
		return a.Origin+"\x00"+a.Test.Name < b.Origin+"\x00"+b.Test.Name
	})
	sort.SliceStable(in.Running, func(i, j int) bool { return in.Running[i].Image < in.Running[j].Image })
}
