package eval

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/target"
)

// Cost is what one template's constraints cost to evaluate, per review.
type Cost struct {
	Kind        string
	Template    string
	Constraints int
	// PerReview is the mean time of one review of the objects with only
	// this template's constraints loaded, minus Baseline.
	PerReview time.Duration
	Results   int
}

// Costs measures each template separately, reviewing every object
// iterations times at the webhook's enforcement point, so that a policy
// author can see which templates make reviews slow. Baseline is the cost of
// a review that matches no constraint (decoding the object), subtracted
// from every template's figure. The slowest template comes first.
func Costs(ctx context.Context, set *PolicySet, data, objects []*manifest.Document, iterations int) ([]Cost, time.Duration, error) {
	if iterations <= 0 {
		iterations = 20
	}
	measure := func(keep func(string) bool) (time.Duration, int, int, error) {
		e, err := policy.New(policy.WithEnforcementPoints(policy.EnforcementPointWebhook))
		if err != nil {
			return 0, 0, 0, err
		}
		pols, err := set.Load(ctx, e, keep)
		if err != nil {
			return 0, 0, 0, err
		}
		for _, d := range data {
			if err := e.AddData(ctx, d.Object); err != nil {
				return 0, 0, 0, fmt.Errorf("%s: %w", d.Pos(), err)
			}
		}
		var inputs []*target.Request
		for _, d := range objects {
			req, err := target.AdmissionRequestFor(d.Object)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("%s: %w", d.Pos(), err)
			}
			ns := e.Target().Namespace(d.Object.GetNamespace())
			inputs = append(inputs, &target.Request{AdmissionRequest: req, Namespace: ns, Source: match.SourceOriginal})
		}
		results := 0
		for _, in := range inputs { // warm up, and count results once
			resp, err := e.Review(ctx, in, policy.AtEnforcementPoint(policy.EnforcementPointWebhook))
			if err != nil {
				return 0, 0, 0, err
			}
			results += len(resp.Results)
		}
		start := time.Now()
		for i := 0; i < iterations; i++ {
			for _, in := range inputs {
				if _, err := e.Review(ctx, in, policy.AtEnforcementPoint(policy.EnforcementPointWebhook)); err != nil {
					return 0, 0, 0, err
				}
			}
		}
		per := time.Since(start) / time.Duration(iterations*max(len(inputs), 1))
		return per, pols.Constraints, results, nil
	}
	baseline, _, _, err := measure(func(string) bool { return false })
	if err != nil {
		return nil, 0, err
	}
	var out []Cost
	for _, d := range set.Templates {
		t, err := policy.NewTemplate(d.Object, d)
		if err != nil {
			return nil, 0, err
		}
		per, n, results, err := measure(func(kind string) bool { return kind == t.Kind })
		if err != nil {
			return nil, 0, err
		}
		if n == 0 {
			continue // no constraint: never evaluated
		}
		c := Cost{Kind: t.Kind, Template: t.Name, Constraints: n, PerReview: per - baseline, Results: results}
		if c.PerReview < 0 {
			c.PerReview = 0
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PerReview > out[j].PerReview })
	return out, baseline, nil
}
