package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// LabelGuard stops namespaces from exempting themselves: the validating
// webhook configurations skip namespaces labelled IgnoreLabel, so only the
// namespaces the operator allowed may carry that label. Its webhook
// configuration must fail closed, or the guard could be bypassed while the
// webhook is down.
type LabelGuard struct {
	Exemptions *Exemptions
}

var _ admission.Handler = &LabelGuard{}

// Handle checks Namespace creations and updates.
func (g *LabelGuard) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != "" || req.Kind.Kind != "Namespace" {
		return admission.Allowed("not a Namespace")
	}
	if req.Object.Raw == nil {
		return admission.Allowed("no object")
	}
	var ns struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &ns); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding Namespace: %w", err))
	}
	if _, labelled := ns.Metadata.Labels[IgnoreLabel]; !labelled {
		return admission.Allowed("")
	}
	name := ns.Metadata.Name
	if name == "" {
		name = req.Name
	}
	if g.Exemptions.MayCarryIgnoreLabel(name) {
		return admission.Allowed(fmt.Sprintf("namespace %q may be exempt", name))
	}
	return admission.Denied(fmt.Sprintf("namespace %q may not carry the label %s: only namespaces the platform team exempts may skip policy review", name, IgnoreLabel))
}
