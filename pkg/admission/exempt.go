package admission

import (
	"sync/atomic"

	"github.com/statcan/daaas-guard/pkg/match"
)

// IgnoreLabel is the namespace label that the webhook configurations'
// namespaceSelector skips, as Gatekeeper's does. Only namespaces allowed to
// carry it may carry it (see LabelGuard).
const IgnoreLabel = "admission.gatekeeper.sh/ignore"

// Exemptions decides which namespaces are never reviewed: the suite's own
// namespace (admission of its own pods must not depend on itself), and the
// namespaces a Gatekeeper Config excludes for the webhook process.
type Exemptions struct {
	// Own is the namespace the webhook runs in.
	Own string
	// MayIgnore lists the namespaces (globs) allowed to carry IgnoreLabel.
	MayIgnore []match.Glob

	fromConfig atomic.Pointer[[]match.Glob]
}

// SetConfigExcluded replaces the namespaces excluded by the Gatekeeper
// Config (spec.match entries whose processes include webhook or *).
func (e *Exemptions) SetConfigExcluded(globs []match.Glob) {
	cp := append([]match.Glob(nil), globs...)
	e.fromConfig.Store(&cp)
}

// Exempt reports whether requests in namespace ns are not reviewed.
func (e *Exemptions) Exempt(ns string) bool {
	if ns == "" {
		return false
	}
	if ns == e.Own {
		return true
	}
	if p := e.fromConfig.Load(); p != nil {
		for _, g := range *p {
			if g.Matches(ns) {
				return true
			}
		}
	}
	return false
}

// MayCarryIgnoreLabel reports whether namespace ns may be labelled with
// IgnoreLabel.
func (e *Exemptions) MayCarryIgnoreLabel(ns string) bool {
	if ns == e.Own {
		return true
	}
	for _, g := range e.MayIgnore {
		if g.Matches(ns) {
			return true
		}
	}
	return false
}
