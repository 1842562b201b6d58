package audit

import (
	"cmp"
	"slices"

	"github.com/statcan/daaas-guard/pkg/policy"
)

// Violation is one constraint's finding on one existing object, with the
// fields Gatekeeper puts in a constraint's status.violations.
type Violation struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Message   string `json:"message"`
	// EnforcementAction is the action that applies at the audit point.
	EnforcementAction string `json:"enforcementAction"`
}

// compareViolations orders violations by namespace, name, kind, group,
// version and message: the order the status lists them in, so that two
// passes over the same cluster give the same list.
func compareViolations(a, b Violation) int {
	return cmp.Or(
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Group, b.Group),
		cmp.Compare(a.Version, b.Version),
		cmp.Compare(a.Message, b.Message),
		cmp.Compare(a.EnforcementAction, b.EnforcementAction),
	)
}

// capped keeps the first max items of a stream in the order cmp gives,
// and counts them all. Memory stays within 2*max items whatever the
// stream's length: when the buffer fills it is sorted and cut back.
type capped[T any] struct {
	max   int
	cmp   func(a, b T) int
	items []T
	total int
}

func newCapped[T any](max int, cmp func(a, b T) int) *capped[T] {
	return &capped[T]{max: max, cmp: cmp}
}

func (c *capped[T]) add(v T) {
	c.total++
	if c.max <= 0 {
		return
	}
	c.items = append(c.items, v)
	if len(c.items) >= 2*c.max {
		c.compact()
	}
}

func (c *capped[T]) compact() {
	slices.SortStableFunc(c.items, c.cmp)
	if len(c.items) > c.max {
		clear(c.items[c.max:])
		c.items = c.items[:c.max]
	}
}

// sorted returns the kept items in order; at most max of them.
func (c *capped[T]) sorted() []T {
	c.compact()
	return slices.Clone(c.items)
}

// action is the enforcement action a result is reported with at the audit
// point. A scoped constraint may list several; the strongest counts.
func action(r policy.Result) string {
	for _, a := range []string{policy.ActionDeny, policy.ActionWarn, policy.ActionDryRun} {
		if r.Has(a) {
			return a
		}
	}
	if len(r.Actions) > 0 {
		return r.Actions[0]
	}
	return r.Action
}
