package policyreport

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsjson "sigs.k8s.io/json"
)

// IsReport reports whether u is a PolicyReport or a ClusterPolicyReport.
func IsReport(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Group == GroupVersion.Group && (gvk.Kind == "PolicyReport" || gvk.Kind == "ClusterPolicyReport")
}

// FromUnstructured decodes a PolicyReport or a ClusterPolicyReport (into
// the body they share; the kind stays in TypeMeta). Decoding is strict:
// unknown fields, wrong types, a result without policy and values outside
// the result and severity enums are errors that name the report and the
// field.
func FromUnstructured(u *unstructured.Unstructured) (*PolicyReport, error) {
	name := u.GetName()
	if ns := u.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	fail := func(format string, args ...interface{}) error {
		return fmt.Errorf("%s %q: %s", u.GetKind(), name, fmt.Sprintf(format, args...))
	}
	if !IsReport(u) {
		return nil, fail("not a %s PolicyReport or ClusterPolicyReport", GroupVersion.Group)
	}
	if v := u.GroupVersionKind().Version; v != GroupVersion.Version {
		return nil, fail("apiVersion: version %q is not supported; use %s", v, GroupVersion)
	}
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, fail("cannot encode: %v", err)
	}
	r := &PolicyReport{}
	strict, err := sigsjson.UnmarshalStrict(raw, r)
	if err != nil {
		return nil, fail("%v", err)
	}
	var errs []error
	for _, e := range strict {
		errs = append(errs, fail("%v", e))
	}
	for i, res := range r.Results {
		field := fmt.Sprintf("results[%d]", i)
		if strings.TrimSpace(res.Policy) == "" {
			errs = append(errs, fail("%s.policy: required", field))
		}
		switch res.Result {
		case "", ResultPass, ResultFail, ResultWarn, ResultError, ResultSkip:
		default:
			errs = append(errs, fail("%s.result: %q is not one of pass, fail, warn, error, skip", field, res.Result))
		}
		switch res.Severity {
		case "", SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo:
		default:
			errs = append(errs, fail("%s.severity: %q is not one of critical, high, medium, low, info", field, res.Severity))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}
