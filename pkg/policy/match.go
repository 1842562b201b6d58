package policy

import (
	"context"
	"fmt"
	"strings"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	constraintlib "github.com/open-policy-agent/frameworks/constraint/pkg/core/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/target"
)

// The engine matches a review to its constraints itself and hands the
// matched ones to the driver, as the constraint framework's Client.Review
// does, with the same semantics (template operations at the webhook,
// enforcement actions scoped to enforcement points, match errors reported
// as violations of their constraint). The framework's loop built a map
// per template and a key string per matched constraint and result on
// every review: on the library's pod fixtures a review allocated 240 KB
// with it and 195 KB without, and took about 5% longer
// (docs/performance.md). The framework's client still holds the
// templates and constraints, compiles them and makes their CRDs.

// constraintEntry is a constraint as reviews need it, made when it is
// added.
type constraintEntry struct {
	obj        *unstructured.Unstructured // as added, without status
	kind, name string                     // obj's, read once
	matcher    constraintlib.Matcher
	// action is spec.enforcementAction (deny by default; scoped when
	// spec.scopedEnforcementActions decides); byEP its actions at each
	// enforcement point.
	action string
	byEP   map[string][]string
}

func newConstraintEntry(t *target.Target, u *unstructured.Unstructured, eps []string) (*constraintEntry, error) {
	action, err := apiconstraints.GetEnforcementAction(u)
	if err != nil {
		return nil, err
	}
	byEP := map[string][]string{}
	if apiconstraints.IsEnforcementActionScoped(action) {
		if byEP, err = apiconstraints.GetEnforcementActionsForEP(u, eps); err != nil {
			return nil, err
		}
	} else {
		for _, ep := range eps {
			byEP[ep] = []string{action}
		}
	}
	m, err := t.ToMatcher(u)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apiconstraints.ErrInvalidConstraint, err)
	}
	obj := u.DeepCopy()
	unstructured.RemoveNestedField(obj.Object, "status")
	return &constraintEntry{obj: obj, kind: obj.GetKind(), name: obj.GetName(), matcher: m, action: action, byEP: byEP}, nil
}

// matched is a constraint a review matched, with its actions at the
// review's enforcement points.
type matched struct {
	entry   *constraintEntry
	actions []string // scoped actions; nil otherwise
}

// review matches r to its constraints and evaluates them.
func (e *Engine) review(ctx context.Context, r *target.Review, ep string, opts []reviews.ReviewOpt) (*types.Response, error) {
	if e.viaClient {
		return e.reviewViaClient(ctx, r, opts)
	}
	eps, err := e.reviewPoints(ep)
	if err != nil {
		return nil, err
	}
	handled, review, err := e.target.HandleReview(r)
	if err != nil {
		errs := clienterrors.ErrorMap{}
		errs.Add(target.Name, fmt.Errorf("%w for target %q: %v", constraintclient.ErrReview, target.Name, err))
		return nil, &errs
	}
	if !handled {
		return nil, nil
	}
	e.reviewing.RLock()
	defer e.reviewing.RUnlock()
	e.state.RLock()
	run, rejected := e.match(review, ep, eps)
	e.state.RUnlock()
	return e.query(ctx, review, run, rejected, opts)
}

// reviewViaClient reviews through the framework's client
// (WithFrameworkReview).
func (e *Engine) reviewViaClient(ctx context.Context, r *target.Review, opts []reviews.ReviewOpt) (*types.Response, error) {
	resps, err := e.client.Review(ctx, r, opts...)
	if resps == nil {
		return nil, err
	}
	return resps.ByTarget[target.Name], err
}

// reviewPoints returns the enforcement points a review at ep covers.
func (e *Engine) reviewPoints(ep string) ([]string, error) {
	var eps []string
	for _, p := range e.eps {
		if ep == apiconstraints.AllEnforcementPoints || ep == p {
			eps = append(eps, p)
		}
	}
	if eps == nil {
		return nil, fmt.Errorf("%w, supported enforcement points: %v", constraintclient.ErrUnsupportedEnforcementPoints, e.eps)
	}
	return eps, nil
}

// match returns the constraints review matches at ep, and the results of
// those whose match failed (autorejections). The caller holds e.state for
// reading.
func (e *Engine) match(review interface{}, ep string, eps []string) (run []matched, rejected []*types.Result) {
	op := ""
	filterOps := false
	if ep == EnforcementPointWebhook {
		if ar, ok := review.(constraintclient.ARGetter); ok {
			op, filterOps = string(ar.GetAdmissionRequest().Operation), true
		}
	}
	for _, c := range e.constraints {
		if filterOps && !e.templates[c.kind].matchesOperation(op) {
			continue
		}
		var actions []string
		if apiconstraints.IsEnforcementActionScoped(c.action) {
			actions = scopedActions(c, eps)
			if len(actions) == 0 {
				continue // not enforced at these points
			}
		}
		ok, err := c.matcher.Match(review)
		switch {
		case err != nil:
			rejected = append(rejected, &types.Result{
				Msg:                      fmt.Errorf("%w: %v", clienterrors.ErrAutoreject, err).Error(),
				Constraint:               c.obj,
				EnforcementAction:        c.action,
				ScopedEnforcementActions: actions,
			})
		case ok:
			run = append(run, matched{entry: c, actions: actions})
		}
	}
	return run, rejected
}

// scopedActions are a scoped constraint's actions at eps, each once.
func scopedActions(c *constraintEntry, eps []string) []string {
	var out []string
	for _, ep := range eps {
		for _, a := range c.byEP[ep] {
			if !contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// matchesOperation says whether the template applies to an admission
// operation: templates that list no operations, or more than one target,
// apply to all of them.
func (t *Template) matchesOperation(op string) bool {
	if t == nil || len(t.core.Spec.Targets) != 1 {
		return true
	}
	ops := t.core.Spec.Targets[0].Operations
	if len(ops) == 0 {
		return true
	}
	for _, o := range ops {
		if string(o) == op || o == "*" {
			return true
		}
	}
	return false
}

// query runs the driver on the matched constraints and completes the
// results with their constraints' actions, as the framework's client
// does. The error, if any, is the framework's: by target, then by driver.
// The results are left in the driver's order, rejections last: the
// client sorts them by constraint, but response sorts them by constraint
// and message, stably, and each constraint's results come from the driver
// in one order whatever the constraints' order, so sorting here too
// changed nothing.
func (e *Engine) query(ctx context.Context, review interface{}, run []matched, rejected []*types.Result, opts []reviews.ReviewOpt) (*types.Response, error) {
	resp := &types.Response{Target: target.Name}
	var errs clienterrors.ErrorMap
	if len(run) > 0 {
		var qr *drivers.QueryResponse
		var err error
		if d, ok := e.driver.(*regoDriver); ok {
			ids := make([][2]string, len(run))
			for i, m := range run {
				ids[i] = [2]string{m.entry.kind, m.entry.name}
			}
			qr, err = d.queryIDs(ctx, ids, review, opts...)
		} else {
			cs := make([]*unstructured.Unstructured, len(run))
			for i, m := range run {
				cs[i] = m.entry.obj
			}
			qr, err = e.driver.Query(ctx, target.Name, cs, review, opts...)
		}
		switch {
		case err != nil:
			byDriver := clienterrors.ErrorMap{}
			byDriver.Add(e.driver.Name(), err)
			errs = clienterrors.ErrorMap{}
			errs.Add(target.Name, &byDriver)
		case qr != nil:
			resp.Results = qr.Results
			if qr.Trace != nil {
				var b strings.Builder
				fmt.Fprintf(&b, "DRIVER %s:\n\n", e.driver.Name())
				b.WriteString(*qr.Trace)
				b.WriteString("\n\n")
				trace := b.String()
				resp.Trace = &trace
			}
		}
	}
	if len(resp.Results) > 0 {
		byKey := make(map[[2]string]*matched, len(run))
		for i := range run {
			byKey[[2]string{run[i].entry.kind, run[i].entry.name}] = &run[i]
		}
		for _, r := range resp.Results {
			if r.Constraint == nil {
				continue
			}
			if m := byKey[[2]string{r.Constraint.GetKind(), r.Constraint.GetName()}]; m != nil {
				r.EnforcementAction = m.entry.action
				r.ScopedEnforcementActions = m.actions
			}
		}
	}
	resp.Results = append(resp.Results, rejected...)
	if len(errs) > 0 {
		return resp, &errs
	}
	return resp, nil
}
