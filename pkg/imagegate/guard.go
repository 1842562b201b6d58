package imagegate

import (
	"context"
	"errors"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission/specguard"
)

// PolicyGuard is a validating handler for ImagePolicies: it refuses a spec
// the gate could not compile, naming every invalid field. The CRD schema
// checks the enums, but not label selectors (In and NotIn without values,
// label key and value syntax), and a policy stored invalid would leave
// replicas that start after it not ready.
type PolicyGuard struct{}

var _ admission.Handler = PolicyGuard{}

var policyGuard = specguard.Guard[v1alpha1.ImagePolicy, *v1alpha1.ImagePolicy]{
	Kind: "ImagePolicy",
	Check: func(p *v1alpha1.ImagePolicy) error {
		if _, err := CompilePolicy(&p.Spec); err != nil {
			return errors.New(oneLine(err))
		}
		return nil
	},
}

// Handle checks ImagePolicy creations and updates with CompilePolicy, as
// the gate compiles them.
func (PolicyGuard) Handle(ctx context.Context, req admission.Request) admission.Response {
	return policyGuard.Handle(ctx, req)
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
