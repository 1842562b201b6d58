package evidence

import (
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/statcan/daaas-guard/pkg/compliance"
)

// WebhookConfig is one webhook of a Validating- or
// MutatingWebhookConfiguration, in the fields compliance reads.
type WebhookConfig struct {
	Origin string
	// Kind and Config name the configuration; Name the webhook in it.
	Kind, Config, Name string
	FailurePolicy      string
	TimeoutSeconds     int32
	NamespaceSelector  *metav1.LabelSelector
	ObjectSelector     *metav1.LabelSelector
	MatchConditions    []string
}

// IsWebhookConfiguration reports whether u is a Validating- or
// MutatingWebhookConfiguration.
func IsWebhookConfiguration(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Group == admissionregistrationv1.GroupName &&
		(gvk.Kind == "ValidatingWebhookConfiguration" || gvk.Kind == "MutatingWebhookConfiguration")
}

// DecodeWebhooks reads the webhooks of a Validating- or
// MutatingWebhookConfiguration (admissionregistration.k8s.io/v1).
func DecodeWebhooks(u *unstructured.Unstructured, origin string) ([]WebhookConfig, error) {
	fail := func(err error) error {
		return fmt.Errorf("%s: %s %q: %v", origin, u.GetKind(), u.GetName(), err)
	}
	if v := u.GroupVersionKind().Version; v != "v1" {
		return nil, fail(fmt.Errorf("apiVersion: version %q is not supported; use admissionregistration.k8s.io/v1", v))
	}
	var out []WebhookConfig
	add := func(name string, fp *admissionregistrationv1.FailurePolicyType, timeout *int32, ns, obj *metav1.LabelSelector, mc []admissionregistrationv1.MatchCondition) {
		w := WebhookConfig{Origin: origin, Kind: u.GetKind(), Config: u.GetName(), Name: name,
			FailurePolicy: string(admissionregistrationv1.Fail), TimeoutSeconds: 10, NamespaceSelector: ns, ObjectSelector: obj}
		if fp != nil { // v1 defaults: Fail, 10 seconds
			w.FailurePolicy = string(*fp)
		}
		if timeout != nil {
			w.TimeoutSeconds = *timeout
		}
		for _, c := range mc {
			w.MatchConditions = append(w.MatchConditions, c.Name)
		}
		out = append(out, w)
	}
	switch u.GetKind() {
	case "ValidatingWebhookConfiguration":
		var c admissionregistrationv1.ValidatingWebhookConfiguration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
			return nil, fail(err)
		}
		for _, w := range c.Webhooks {
			add(w.Name, w.FailurePolicy, w.TimeoutSeconds, w.NamespaceSelector, w.ObjectSelector, w.MatchConditions)
		}
	case "MutatingWebhookConfiguration":
		var c admissionregistrationv1.MutatingWebhookConfiguration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
			return nil, fail(err)
		}
		for _, w := range c.Webhooks {
			add(w.Name, w.FailurePolicy, w.TimeoutSeconds, w.NamespaceSelector, w.ObjectSelector, w.MatchConditions)
		}
	default:
		return nil, fail(fmt.Errorf("not a webhook configuration"))
	}
	return out, nil
}

// WebhookEvidence turns the webhooks' configuration into evidence that
// admission control cannot lapse silently: failure-policy (Fail passes,
// Ignore fails: requests are admitted unreviewed while the webhook is
// down), timeout (information), exemptions (pass when only system
// namespaces are left out, warn otherwise) and, once for all, the TLS
// version the webhook serves.
func WebhookEvidence(webhooks []WebhookConfig, opts Options) []compliance.Evidence {
	var out []compliance.Evidence
	system := map[string]bool{}
	for _, ns := range opts.SystemNamespaces {
		system[ns] = true
	}
	for _, w := range webhooks {
		subject := []compliance.Ref{{Kind: w.Kind, APIVersion: "admissionregistration.k8s.io/v1", Name: w.Config + "#" + w.Name}}
		ev := func(id, title string, res compliance.Result, sev compliance.Severity, msg string) {
			out = append(out, compliance.Evidence{Source: compliance.SourceWebhookConfig, ID: id, Title: title, Result: res,
				Severity: sev, Subjects: subject, Origin: w.Origin, Message: msg})
		}
		if w.FailurePolicy == string(admissionregistrationv1.Fail) {
			ev("failure-policy", "Admission fails closed", compliance.ResultPass, compliance.SeverityHigh,
				"failurePolicy Fail: requests are rejected while the webhook cannot answer")
		} else {
			ev("failure-policy", "Admission fails closed", compliance.ResultFail, compliance.SeverityHigh,
				fmt.Sprintf("failurePolicy %s: requests are admitted unreviewed while the webhook cannot answer", w.FailurePolicy))
		}
		ev("timeout", "Admission timeout", compliance.ResultInfo, compliance.SeverityInfo, fmt.Sprintf("timeoutSeconds %d", w.TimeoutSeconds))

		excluded, others := namespaceExclusions(w.NamespaceSelector)
		var extra []string
		for _, ns := range excluded {
			if !system[ns] {
				extra = append(extra, ns)
			}
		}
		parts := []string{"excludes namespaces " + orNoneList(excluded)}
		if len(others) > 0 {
			parts = append(parts, "namespace selector "+strings.Join(others, "; "))
		}
		if w.ObjectSelector != nil && (len(w.ObjectSelector.MatchLabels) > 0 || len(w.ObjectSelector.MatchExpressions) > 0) {
			parts = append(parts, "object selector "+metav1.FormatLabelSelector(w.ObjectSelector))
		}
		if len(w.MatchConditions) > 0 {
			parts = append(parts, "match conditions "+strings.Join(w.MatchConditions, ", "))
		}
		msg := strings.Join(parts, "; ")
		if len(extra) > 0 {
			ev("exemptions", "Only system namespaces are exempt", compliance.ResultWarn, compliance.SeverityMedium,
				fmt.Sprintf("exempts non-system namespaces %s; %s", strings.Join(extra, ", "), msg))
		} else {
			ev("exemptions", "Only system namespaces are exempt", compliance.ResultPass, compliance.SeverityMedium, msg)
		}
	}
	if len(webhooks) > 0 && opts.WebhookTLSMinVersion != "" {
		e := compliance.Evidence{Source: compliance.SourceWebhookConfig, ID: "tls-min-version", Title: "Webhook serves TLS 1.2 or later",
			Result: compliance.ResultPass, Severity: compliance.SeverityHigh, Origin: "configuration",
			Message: "the webhook accepts TLS " + opts.WebhookTLSMinVersion + " and later"}
		switch opts.WebhookTLSMinVersion {
		case "1.2", "1.3":
		default:
			e.Result = compliance.ResultFail
			e.Message = "the webhook accepts TLS " + opts.WebhookTLSMinVersion + ", older than 1.2"
		}
		out = append(out, e)
	}
	return out
}

// namespaceExclusions returns the namespaces a selector leaves out by name
// (kubernetes.io/metadata.name NotIn) and the selector's other terms.
func namespaceExclusions(sel *metav1.LabelSelector) (excluded, others []string) {
	if sel == nil {
		return nil, nil
	}
	for k, v := range sel.MatchLabels {
		others = append(others, k+"="+v)
	}
	for _, e := range sel.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpNotIn {
			excluded = append(excluded, e.Values...)
			continue
		}
		term := e.Key + " " + string(e.Operator)
		if len(e.Values) > 0 {
			term += " (" + strings.Join(e.Values, ", ") + ")"
		}
		others = append(others, term)
	}
	sort.Strings(excluded)
	sort.Strings(others)
	return excluded, others
}

func orNoneList(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
