// Package kustomize renders kustomizations in-process (kustomize's own
// library, as `kustomize build` does), so guardctl and the tests can check
// the manifests a cluster would receive without a kustomize binary.
package kustomize

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/statcan/daaas-guard/pkg/manifest"
)

// Files are the names kustomize recognises as a kustomization.
var Files = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// IsKustomization reports whether dir holds a kustomization.
func IsKustomization(dir string) bool {
	for _, f := range Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// Build renders the kustomization in dir and reads the result as
// documents named "kustomize build <dir>".
func Build(dir string, opts manifest.Options) ([]*manifest.Document, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return manifest.Parse("kustomize build "+filepath.ToSlash(dir), out, opts)
}
