package imagegate

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// PolicyGuard is a validating handler for ImagePolicies: it refuses a spec
// the gate could not compile, naming every invalid field. The CRD schema
// checks the enums, but not label selectors (In and NotIn without values,
// label key and value syntax), and a policy stored invalid would leave
// replicas that start after it not ready.
type PolicyGuard struct{}

var _ admission.Handler = PolicyGuard{}

// Handle checks ImagePolicy creations and updates with CompilePolicy, as
// the gate compiles them.
func (PolicyGuard) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != v1alpha1.GroupVersion.Group || req.Kind.Kind != "ImagePolicy" || req.SubResource != "" {
		return admission.Allowed("not an ImagePolicy")
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	obj := &v1alpha1.ImagePolicy{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding ImagePolicy %q: %w", req.Name, err))
	}
	if _, err := CompilePolicy(&obj.Spec); err != nil {
		return admission.Denied(fmt.Sprintf("ImagePolicy %q: %s", obj.Name, oneLine(err)))
	}
	return admission.Allowed("")
}

// oneLine joins the errors CompilePolicy collects with "; ": errors.Join
// separates them with newlines, which kubectl would print as broken lines.
func oneLine(err error) string {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err.Error()
	}
	var msgs []string
	for _, e := range joined.Unwrap() {
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}
