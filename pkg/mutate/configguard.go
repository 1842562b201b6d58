package mutate

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// ConfigGuard is a validating handler for MutationConfigs: it rejects a
// spec the webhook could not apply, naming every invalid field, for what
// the CRD's schema cannot check (quantities against each other,
// toleration and selector rules, URLs without CEL's help).
type ConfigGuard struct{}

var _ admission.Handler = ConfigGuard{}

// Handle checks MutationConfig creations and updates.
func (ConfigGuard) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != v1alpha1.GroupVersion.Group || req.Kind.Kind != "MutationConfig" || req.SubResource != "" {
		return admission.Allowed("not a MutationConfig")
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	obj := &v1alpha1.MutationConfig{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding MutationConfig %q: %w", req.Name, err))
	}
	if _, err := NewConfig(&obj.Spec); err != nil {
		return admission.Denied(fmt.Sprintf("MutationConfig %q: %v", obj.Name, err))
	}
	return admission.Allowed("")
}
