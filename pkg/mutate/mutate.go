// Package mutate holds daaas-guard's pod mutators and the mutating
// admission handler that runs them: GPU tolerations (gpu.go) and Vault
// agent injection (vault*.go), configured by the cluster's MutationConfig
// (config.go). Mutators change a Pod through methods that record a JSON
// patch as they go (patch.go); every mutator is idempotent, so running the
// chain on its own output yields an empty patch, as the API server's
// reinvocation requires.
package mutate

import "errors"

// Mutator changes pods at creation.
type Mutator interface {
	// Name identifies the mutator in metrics and audit annotations.
	Name() string
	// Mutate changes p through its methods. It returns a *Denial for a
	// pod that must not be created as it is; any other error is the
	// mutator's own failure.
	Mutate(p *Pod) error
}

// Denial refuses a pod, with a message for the user who created it.
type Denial struct {
	Message string
}

func (d *Denial) Error() string { return d.Message }

// deny builds a Denial.
func deny(msg string) error { return &Denial{Message: msg} }

// IsDenial reports whether err refuses the pod, and the message.
func IsDenial(err error) (string, bool) {
	var d *Denial
	if errors.As(err, &d) {
		return d.Message, true
	}
	return "", false
}

// Run applies each mutator to p in order, stopping at the first error.
// Each sees the changes of those before it.
func Run(p *Pod, mutators []Mutator) (changed []string, err error) {
	for _, m := range mutators {
		before := len(p.ops)
		if err := m.Mutate(p); err != nil {
			return changed, err
		}
		if len(p.ops) > before {
			changed = append(changed, m.Name())
		}
	}
	return changed, nil
}
