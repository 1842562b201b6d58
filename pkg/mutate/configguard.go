package mutate

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission/specguard"
)

// ConfigGuard is a validating handler for MutationConfigs: it rejects a
// spec the webhook could not apply, naming every invalid field, for what
// the CRD's schema cannot check (quantities against each other,
// toleration and selector rules, URLs without CEL's help).
type ConfigGuard struct{}

var _ admission.Handler = ConfigGuard{}

var configGuard = specguard.Guard[v1alpha1.MutationConfig, *v1alpha1.MutationConfig]{
	Kind: "MutationConfig",
	Check: func(c *v1alpha1.MutationConfig) error {
		_, err := NewConfig(&c.Spec)
		return err
	},
}

// Handle checks MutationConfig creations and updates.
func (ConfigGuard) Handle(ctx context.Context, req admission.Request) admission.Response {
	return configGuard.Handle(ctx, req)
}
