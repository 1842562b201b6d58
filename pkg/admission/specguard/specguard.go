// Package specguard holds the validating handler shared by the suite's own
// configuration kinds (MutationConfig, ImagePolicy): their CRD schemas
// cannot check everything the code that applies a spec does, and a spec
// stored invalid would be applied by no replica.
package specguard

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

// Guard refuses the creation or update of a Kind object (our API group)
// that Check rejects, with Check's error after the object's kind and name.
// Other requests are allowed.
type Guard[T any, PT interface {
	*T
	GetName() string
}] struct {
	Kind  string
	Check func(PT) error
}

// Handle checks Kind creations and updates with Check.
func (g Guard[T, PT]) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != v1alpha1.GroupVersion.Group || req.Kind.Kind != g.Kind || req.SubResource != "" {
		return admission.Allowed("not " + article(g.Kind) + " " + g.Kind)
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	obj := PT(new(T))
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding %s %q: %w", g.Kind, req.Name, err))
	}
	if err := g.Check(obj); err != nil {
		return admission.Denied(fmt.Sprintf("%s %q: %v", g.Kind, obj.GetName(), err))
	}
	return admission.Allowed("")
}

func article(word string) string {
	if word != "" && strings.ContainsRune("AEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}
