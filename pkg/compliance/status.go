package compliance

// Status is a control's standing in a report.
type Status string

// The four statuses a control can have.
const (
	StatusSatisfied    Status = "satisfied"
	StatusPartially    Status = "partially-satisfied"
	StatusNotSatisfied Status = "not-satisfied"
	StatusNotAssessed  Status = "not-assessed"
)

// Statuses lists the statuses, best first.
var Statuses = []Status{StatusSatisfied, StatusPartially, StatusNotSatisfied, StatusNotAssessed}

// Label is the status as a reader sees it.
func (s Status) Label() string {
	switch s {
	case StatusSatisfied:
		return "Satisfied"
	case StatusPartially:
		return "Partially satisfied"
	case StatusNotSatisfied:
		return "Not satisfied"
	default:
		return "Not assessed"
	}
}

// Counts counts the evidence mapped to a control by what it says. Error
// results count as Warn; skip results as Info.
type Counts struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Warn int `json:"warn"`
	Info int `json:"info"`
	// CriticalFail counts failing evidence of critical severity.
	CriticalFail int `json:"criticalFail"`
}

// Add counts one piece of evidence.
func (c *Counts) Add(e *Evidence) {
	switch e.Result {
	case ResultPass:
		c.Pass++
	case ResultFail:
		c.Fail++
		if e.Severity == SeverityCritical {
			c.CriticalFail++
		}
	case ResultWarn, ResultError:
		c.Warn++
	default:
		c.Info++
	}
}

// Decide is the rule that turns a control's evidence counts into its
// status. In order:
//
//  1. No pass, fail or warn evidence: not assessed. Info and skip
//     evidence alone (a template installed without a constraint, a check
//     the benchmark only informs about) assess nothing.
//  2. A critical failure, or failures with nothing passing: not
//     satisfied. One critical finding (a privileged pod running, a
//     fixable critical vulnerability) outweighs any number of passing
//     checks.
//  3. Any failure or warning besides passing evidence: partially
//     satisfied. Warnings include constraints that only warn or dry-run
//     (monitored, not enforced) and checks that could not be evaluated.
//  4. Otherwise (passing evidence only): satisfied.
//
// Satisfied means only that the evidence collected raises no finding; see
// the catalogue's disclaimer.
func Decide(c Counts) Status {
	switch {
	case c.Pass+c.Fail+c.Warn == 0:
		return StatusNotAssessed
	case c.CriticalFail > 0, c.Fail > 0 && c.Pass == 0:
		return StatusNotSatisfied
	case c.Fail > 0, c.Warn > 0:
		return StatusPartially
	default:
		return StatusSatisfied
	}
}
