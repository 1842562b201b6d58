package target

import (
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
)

// globPattern is the pattern Gatekeeper's generated constraint CRDs put on
// namespace and name globs: lowercase DNS-ish characters (":" allowed for
// names such as system:serviceaccount), optionally starred at either end.
const globPattern = `^\*?[-:a-z0-9]*\*?$`

func stringArray(item apiextensions.JSONSchemaProps) apiextensions.JSONSchemaProps {
	return apiextensions.JSONSchemaProps{
		Type:  "array",
		Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &item},
	}
}

func labelSelectorSchema(description string) apiextensions.JSONSchemaProps {
	atomic := "atomic"
	return apiextensions.JSONSchemaProps{
		Type:        "object",
		Description: description,
		XMapType:    &atomic,
		Properties: map[string]apiextensions.JSONSchemaProps{
			"matchLabels": {
				Type: "object",
				AdditionalProperties: &apiextensions.JSONSchemaPropsOrBool{
					Allows: true,
					Schema: &apiextensions.JSONSchemaProps{Type: "string"},
				},
			},
			"matchExpressions": {
				Type:      "array",
				XListType: &atomic,
				Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{
					Type:     "object",
					Required: []string{"key", "operator"},
					Properties: map[string]apiextensions.JSONSchemaProps{
						"key":      {Type: "string"},
						"operator": {Type: "string", Description: "In, NotIn, Exists or DoesNotExist."},
						"values": func() apiextensions.JSONSchemaProps {
							s := stringArray(apiextensions.JSONSchemaProps{Type: "string"})
							s.XListType = &atomic
							return s
						}(),
					},
				}},
			},
		},
	}
}

// matchSchema is the schema of spec.match in every constraint CRD this
// target generates. It accepts exactly what Gatekeeper's constraint CRDs
// accept, so constraints written for Gatekeeper validate the same way here.
func matchSchema() apiextensions.JSONSchemaProps {
	glob := apiextensions.JSONSchemaProps{Type: "string", Pattern: globPattern}
	return apiextensions.JSONSchemaProps{
		Type:        "object",
		Description: "Which objects the constraint applies to. All criteria that are set must hold.",
		Properties: map[string]apiextensions.JSONSchemaProps{
			"kinds": {
				Type:        "array",
				Description: "Groups and kinds in scope; one entry has to accept the object.",
				Items: &apiextensions.JSONSchemaPropsOrArray{Schema: &apiextensions.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensions.JSONSchemaProps{
						"apiGroups": stringArray(apiextensions.JSONSchemaProps{Type: "string"}),
						"kinds":     stringArray(apiextensions.JSONSchemaProps{Type: "string"}),
					},
				}},
			},
			"scope": {
				Type:        "string",
				Description: "*, Cluster or Namespaced (default *).",
			},
			"namespaces": func() apiextensions.JSONSchemaProps {
				s := stringArray(glob)
				s.Description = "Namespaces in scope; a leading or trailing * makes a suffix or prefix glob."
				return s
			}(),
			"excludedNamespaces": func() apiextensions.JSONSchemaProps {
				s := stringArray(glob)
				s.Description = "Namespaces out of scope; globs as in namespaces."
				return s
			}(),
			"labelSelector":     labelSelectorSchema("Selects objects by their labels."),
			"namespaceSelector": labelSelectorSchema("Selects objects by the labels of their Namespace (or their own, for a Namespace)."),
			"name": {
				Type:        "string",
				Pattern:     globPattern,
				Description: "Object name in scope; globs as in namespaces.",
			},
			"source": {
				Type:        "string",
				Description: "All, Original or Generated (default All).",
				Enum: []apiextensions.JSON{
					apiextensions.JSON("All"),
					apiextensions.JSON("Generated"),
					apiextensions.JSON("Original"),
				},
			},
		},
	}
}
