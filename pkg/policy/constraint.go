package policy

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	apivalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/statcan/daaas-guard/pkg/target"
)

var knownActions = []string{ActionDeny, ActionDryRun, ActionWarn, ActionScoped}

// validateConstraint checks a constraint against its generated CRD: name,
// group and version, the schema (types, enums, patterns), unknown fields,
// the match block and the enforcement actions. schema is set when a problem
// is a schema violation in the framework's sense.
func validateConstraint(u *unstructured.Unstructured, crd *apiextensions.CustomResourceDefinition, src Source) (problems []FieldProblem, schema bool) {
	add := func(path string, msg string) {
		problems = append(problems, FieldProblem{Field: path, Line: lineAt(src, path), Msg: msg})
	}
	if errs := apivalidation.IsDNS1123Subdomain(u.GetName()); len(errs) > 0 {
		add("metadata.name", strings.Join(errs, "; "))
	}
	gvk := u.GroupVersionKind()
	if gvk.Group != ConstraintGroup {
		add("apiVersion", fmt.Sprintf("group must be %s, found %q", ConstraintGroup, gvk.Group))
	}
	if gvk.Version != "v1beta1" && gvk.Version != "v1alpha1" {
		add("apiVersion", fmt.Sprintf("version must be v1beta1 or v1alpha1, found %q", gvk.Version))
	}
	if len(problems) > 0 {
		return problems, false
	}

	validator, _, err := validation.NewSchemaValidator(crd.Spec.Validation.OpenAPIV3Schema)
	if err != nil {
		add("", fmt.Sprintf("cannot build the schema validator: %v", err))
		return problems, false
	}
	obj := u.DeepCopy().Object
	for _, fe := range validation.ValidateCustomResource(nil, obj, validator) {
		add(fe.Field, fieldMessage(fe))
		schema = true
	}
	for _, fe := range validateActions(u) {
		add(fe.Field, fieldMessage(fe))
		schema = true
	}
	structural, err := structuralschema.NewStructural(crd.Spec.Validation.OpenAPIV3Schema)
	if err != nil {
		add("", fmt.Sprintf("template schema is not structural: %v", err))
		return problems, schema
	}
	unknown := pruning.PruneWithOptions(u.DeepCopy().Object, structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		add(p, "unknown field")
	}
	if len(problems) > 0 {
		return problems, schema
	}
	if err := (&target.Target{}).ValidateConstraint(u); err != nil {
		// The framework reports match problems as invalid, not as schema
		// violations; gator's "invalid: true" tests depend on the difference.
		add("spec.match", strings.TrimPrefix(err.Error(), target.ErrMatchSpec.Error()+": "))
		return problems, false
	}
	return nil, false
}

// validateActions checks spec.enforcementAction and, when it is scoped,
// spec.scopedEnforcementActions. Gatekeeper's webhook rejects other values;
// gator does not, which lets typos pass tests and fail in the cluster.
func validateActions(u *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	action, found, err := unstructured.NestedString(u.Object, "spec", "enforcementAction")
	if err != nil {
		return append(errs, field.Invalid(spec.Child("enforcementAction"), u.Object["spec"], "must be a string"))
	}
	if !found || action == "" {
		action = ActionDeny
	}
	if !contains(knownActions, action) {
		errs = append(errs, field.NotSupported(spec.Child("enforcementAction"), action, knownActions))
	}
	raw, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "scopedEnforcementActions")
	list, _ := raw.([]interface{})
	if action == ActionScoped && (!found || len(list) == 0) {
		errs = append(errs, field.Required(spec.Child("scopedEnforcementActions"), "enforcementAction scoped needs at least one entry"))
	}
	for i, item := range list {
		p := spec.Child("scopedEnforcementActions").Index(i)
		m, _ := item.(map[string]interface{})
		a, _ := m["action"].(string)
		if !contains([]string{ActionDeny, ActionDryRun, ActionWarn}, a) {
			errs = append(errs, field.NotSupported(p.Child("action"), a, []string{ActionDeny, ActionDryRun, ActionWarn}))
		}
		eps, _ := m["enforcementPoints"].([]interface{})
		if len(eps) == 0 {
			errs = append(errs, field.Required(p.Child("enforcementPoints"), "name at least one enforcement point, or \"*\""))
		}
		for j, ep := range eps {
			em, _ := ep.(map[string]interface{})
			if name, _ := em["name"].(string); name == "" {
				errs = append(errs, field.Required(p.Child("enforcementPoints").Index(j).Child("name"), ""))
			}
		}
	}
	return errs
}

// fieldMessage renders a validation error without repeating its path.
func fieldMessage(fe *field.Error) string {
	detail := fe.Detail
	// kube-openapi details repeat the path: "spec.parameters.x in body must
	// be of type boolean: \"string\"".
	if i := strings.Index(detail, " in body "); i >= 0 {
		detail = detail[i+len(" in body "):]
	}
	switch fe.Type {
	case field.ErrorTypeTypeInvalid:
		if i := strings.LastIndex(detail, ": "); i >= 0 {
			return fmt.Sprintf("%s, found %s", detail[:i], strings.Trim(detail[i+2:], `"`))
		}
		return detail
	case field.ErrorTypeInvalid:
		if detail != "" {
			return fmt.Sprintf("%s (value %s)", detail, valueString(fe.BadValue))
		}
	case field.ErrorTypeNotSupported:
		return fmt.Sprintf("unsupported value %s; %s", valueString(fe.BadValue), detail)
	case field.ErrorTypeRequired:
		if detail != "" {
			return "is required: " + detail
		}
		return "is required"
	}
	fe.Detail = detail
	return fe.ErrorBody()
}

func valueString(v interface{}) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v", v)
}

// lineAt finds the line of a dotted field path such as
// spec.parameters.labels[0] in the constraint's source.
func lineAt(src Source, path string) int {
	if src == nil {
		return 0
	}
	parts := splitPath(path)
	for len(parts) > 0 {
		if l := src.LineOf(parts...); l > 0 {
			return l
		}
		parts = parts[:len(parts)-1] // the field may be missing: point at its parent
	}
	return 0
}

func splitPath(path string) []interface{} {
	var out []interface{}
	for _, seg := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		for seg != "" {
			i := strings.IndexByte(seg, '[')
			if i < 0 {
				out = append(out, seg)
				break
			}
			if i > 0 {
				out = append(out, seg[:i])
			}
			j := strings.IndexByte(seg[i:], ']')
			if j < 0 {
				out = append(out, seg)
				break
			}
			if n, err := strconv.Atoi(seg[i+1 : i+j]); err == nil {
				out = append(out, n)
			}
			seg = seg[i+j+1:]
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
