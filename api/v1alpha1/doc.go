// Package v1alpha1 holds daaas-guard's own API types, in the group
// guard.statcan.gc.ca: mutation configuration, image scan verdicts and
// exceptions, CIS and penetration-test summaries, and compliance reports.
// Each kind lives in its own <kind>_types.go; controller-gen writes the
// deep-copy code and the CRDs (make generate).
//
// +kubebuilder:object:generate=true
// +groupName=guard.statcan.gc.ca
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "guard.statcan.gc.ca", Version: "v1alpha1"}

	// SchemeBuilder registers the package's types; each <kind>_types.go
	// adds its kinds in an init function.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
