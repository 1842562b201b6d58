package eval

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
// iterations times in each of a few rounds at the webhook's enforcement
// point and keeping the fastest round, so that a policy
// author can see which templates make reviews slow. Baseline is the cost of
// a review that does no policy work: decoding the object and starting the
// evaluator, which every measurement pays once through a yardstick
// constraint that matches everything and never holds; it is subtracted
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
		if err := addYardstick(ctx, e); err != nil {
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
		// The fastest of a few rounds: what else runs on the machine only
		// ever adds time.
		per := time.Duration(math.MaxInt64)
		for round := 0; round < costRounds; round++ {
			start := time.Now()
			for i := 0; i < iterations; i++ {
				for _, in := range inputs {
					if _, err := e.Review(ctx, in, policy.AtEnforcementPoint(policy.EnforcementPointWebhook)); err != nil {
						return 0, 0, 0, err
					}
				}
			}
			per = min(per, time.Since(start)/time.Duration(iterations*max(len(inputs), 1)))
		}
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

// costRounds is how many times each template's reviews are timed.
const costRounds = 5

// yardstickKind is the constraint kind of the yardstick: a name no policy
// library uses.
const yardstickKind = "DaaasGuardCostYardstick"

// addYardstick loads a template and a constraint that match every object
// and never hold, so that every measurement includes the evaluator's fixed
// cost per review.
func addYardstick(ctx context.Context, e *policy.Engine) error {
	t, err := policy.NewTemplate(&unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "templates.gatekeeper.sh/v1",
		"kind":       "ConstraintTemplate",
		"metadata":   map[string]interface{}{"name": strings.ToLower(yardstickKind)},
		"spec": map[string]interface{}{
			"crd": map[string]interface{}{"spec": map[string]interface{}{"names": map[string]interface{}{"kind": yardstickKind}}},
			"targets": []interface{}{map[string]interface{}{
				"target": "admission.k8s.gatekeeper.sh",
				"rego":   "package yardstick\nviolation[{\"msg\": \"never\"}] {\n  false\n}\n",
			}},
		},
	}}, nil)
	if err != nil {
		return err
	}
	if err := e.AddTemplate(ctx, t); err != nil {
		return err
	}
	return e.AddConstraint(ctx, &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       yardstickKind,
		"metadata":   map[string]interface{}{"name": "yardstick"},
		"spec":       map[string]interface{}{},
	}}, nil)
}
