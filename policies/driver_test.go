package policies

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	stockrego "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"

	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/suite"
)

// The engine's Rego driver evaluates templates its own way, for speed
// (pkg/policy/driver.go, pkg/policy/vm.go): with the VM, and with topdown
// where the VM is not used. Either way, every case of every suite in the
// library must give exactly the results the constraint framework's stock
// driver gives through its client: same constraints, messages, details
// and actions, in the same order. The engine's own matching
// (pkg/policy/match.go) is checked by the same comparison, and so is the
// engine the webhook runs, without details (policy.WithoutDetails): the
// same results less their details.
func TestDriverMatchesStockDriver(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, opts ...policy.Option) *suite.Report {
		t.Helper()
		r, err := suite.NewRunner(suite.Options{Engine: opts})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Run(ctx, []string{"."})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// The reference: the framework's client and its stock driver, as
	// Gatekeeper runs them.
	stock := flatten(run(t, policy.WithFrameworkReview(), policy.WithDriver(func() (drivers.Driver, error) { return stockrego.New() })))
	for name, topdown := range map[string]bool{"vm": false, "vm-cached": false, "vm-messages": false, "topdown": true} {
		t.Run(name, func(t *testing.T) {
			counts := &policy.EvaluatorCounts{}
			opts := []policy.Option{policy.WithEvaluatorCounts(counts)}
			if topdown {
				opts = append(opts, policy.WithTopdownOnly())
			}
			if name == "vm-cached" {
				// Cases that repeat an earlier one's reads are answered
				// from the review cache.
				opts = append(opts, policy.WithReviewCache(256))
			}
			if name == "vm-messages" {
				opts = append(opts, policy.WithoutDetails(), policy.WithReviewCache(256))
			}
			ours := flatten(run(t, opts...))
			// Each evaluation ran where it was meant to.
			if vm, td := counts.VM.Load(), counts.Topdown.Load(); (topdown && vm > 0) || (!topdown && (vm == 0 || td > 0)) {
				t.Errorf("constraint evaluations: %d by the VM, %d by topdown", vm, td)
			}
			if (name == "vm-cached" || name == "vm-messages") && counts.CacheHits.Load() == 0 {
				t.Error("no case was answered from the review cache")
			}
			t.Logf("review cache: %d hits, %d misses", counts.CacheHits.Load(), counts.CacheMisses.Load())
			if len(ours) < 370 {
				t.Fatalf("only %d cases ran", len(ours))
			}
			for key, want := range stock {
				got, ok := ours[key]
				if !ok {
					t.Errorf("%s: not run with our driver", key)
					continue
				}
				if name == "vm-messages" {
					want = withoutDetails(want)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: results differ from the stock driver's (-stock +ours):\n%s", key, diff)
				}
			}
		})
	}
}

type caseOutcome struct {
	Err     string
	Results []resultSummary
}

type resultSummary struct {
	Constraint, Action, Message string
	Details                     interface{}
}

func flatten(rep *suite.Report) map[string]caseOutcome {
	out := map[string]caseOutcome{}
	for _, s := range rep.Suites {
		for _, tr := range s.Tests {
			for _, c := range tr.Cases {
				o := caseOutcome{}
				if c.Err != nil {
					o.Err = c.Err.Error()
				}
				for _, r := range c.Results {
					o.Results = append(o.Results, resultSummary{
						Constraint: r.Kind + "/" + r.Constraint, Action: r.Action, Message: r.Message, Details: r.Details,
					})
				}
				out[suite.Where(s.Path, tr, c)] = o
			}
		}
	}
	return out
}

func withoutDetails(o caseOutcome) caseOutcome {
	out := caseOutcome{Err: o.Err}
	for _, r := range o.Results {
		r.Details = map[string]interface{}(nil) // as Result.Details holds it
		out.Results = append(out.Results, r)
	}
	return out
}
