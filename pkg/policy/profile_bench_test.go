package policy

import (
	"path/filepath"
	"testing"

	"github.com/statcan/daaas-guard/pkg/kustomize"
	"github.com/statcan/daaas-guard/pkg/manifest"
)

func kustomizeProfile(b testing.TB) ([]*manifest.Document, error) {
	b.Helper()
	return kustomize.Build(filepath.Join("..", "..", "policies", "profiles", "daaas"), manifest.Options{AllowUntyped: true, KeepLists: true})
}
