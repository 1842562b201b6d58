// Package v1alpha1 holds Gatekeeper's Config resource
// (config.gatekeeper.sh/v1alpha1, kind Config, named "config" in the
// webhook's namespace), which daaas-guard reads as it is so that an
// existing Gatekeeper configuration keeps working: spec.sync.syncOnly names
// the kinds kept in data.inventory, spec.match excludes namespaces from
// processes. The types are written for the suite; the format is Gatekeeper's
// (website/docs/sync.md, website/docs/exempt-namespaces.md).
//
// +kubebuilder:object:generate=true
// +groupName=config.gatekeeper.sh
package v1alpha1
