package policy

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/target"
)

// Response is the outcome of one review.
type Response struct {
	// Results holds every violation, at every enforcement action, sorted by
	// constraint kind, constraint name and message.
	Results []Result
	// Trace is the evaluation trace, when tracing was asked for.
	Trace string
}

// Result is one violation of one constraint.
type Result struct {
	Kind       string // constraint kind
	Constraint string // constraint name
	Template   string // template name
	Message    string
	Details    map[string]interface{}
	// Action is the constraint's spec.enforcementAction.
	Action string
	// Actions are the actions that apply at the enforcement point of the
	// review: Action itself, or for a scoped constraint the actions listed
	// for that point.
	Actions []string
	// Object is the constraint itself (its annotations carry metadata such
	// as severity or control IDs), shared by all its results: read it, do
	// not change it.
	Object *unstructured.Unstructured
}

// Has reports whether action applies to the result.
func (r *Result) Has(action string) bool { return contains(r.Actions, action) }

// Denied returns the results that deny the object.
func (r *Response) Denied() []Result { return r.with(ActionDeny) }

// Denies reports whether any result denies the object, without
// collecting them as Denied does.
func (r *Response) Denies() bool {
	return slices.ContainsFunc(r.Results, func(res Result) bool { return res.Has(ActionDeny) })
}

// Warned returns the results that warn about the object.
func (r *Response) Warned() []Result { return r.with(ActionWarn) }

// DryRun returns the results that are only recorded.
func (r *Response) DryRun() []Result { return r.with(ActionDryRun) }

func (r *Response) with(action string) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Has(action) {
			out = append(out, res)
		}
	}
	return out
}

func (e *Engine) response(resp *types.Response) *Response {
	out := &Response{}
	if resp == nil {
		return out
	}
	if resp.Trace != nil {
		out.Trace = *resp.Trace
	}
	if len(resp.Results) > 0 {
		out.Results = make([]Result, 0, len(resp.Results))
	}
	for _, fr := range resp.Results {
		out.Results = append(out.Results, e.result(fr))
	}
	sort.SliceStable(out.Results, func(i, j int) bool {
		a, b := out.Results[i], out.Results[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Constraint != b.Constraint {
			return a.Constraint < b.Constraint
		}
		return a.Message < b.Message
	})
	return out
}

func (e *Engine) result(fr *types.Result) Result {
	r := Result{
		Message: fr.Msg,
		Details: details(fr.Metadata),
		Action:  fr.EnforcementAction,
		Object:  fr.Constraint,
	}
	if fr.Constraint != nil {
		r.Kind = fr.Constraint.GetKind()
		r.Constraint = fr.Constraint.GetName()
		if t := e.Template(r.Kind); t != nil {
			r.Template = t.Name
		}
	}
	if r.Action == "" {
		r.Action = ActionDeny
	}
	if r.Action == ActionScoped {
		r.Actions = append([]string(nil), fr.ScopedEnforcementActions...)
		sort.Strings(r.Actions)
	} else {
		r.Actions = []string{r.Action}
	}
	return r
}

// details returns what the policy put in its violation's "details"; the
// driver nests it under the key "details".
func details(md map[string]interface{}) map[string]interface{} {
	d, _ := md["details"].(map[string]interface{})
	if len(d) == 0 {
		return nil
	}
	return d
}

// ReviewExpanded reviews an object and every object the expansion set
// derives from it (a Deployment's Pod, a CronJob's Job and Pod). Results
// about derived objects are prefixed with "[Implied by <template>]" and
// take the template's enforcement action when it sets one. set may be nil.
func (e *Engine) ReviewExpanded(ctx context.Context, obj *target.Object, set *expansion.Set, opts ...ReviewOption) (*Response, error) {
	resp, err := e.Review(ctx, obj, opts...)
	if err != nil {
		return resp, err
	}
	derived, err := e.ReviewDerived(ctx, obj.Object, obj.Namespace, obj.Operation, set, opts...)
	resp.Results = append(resp.Results, derived...)
	return resp, err
}

// ReviewDerived reviews only the objects the expansion set derives from
// parent, as generated objects under the parent's operation (as Gatekeeper
// does), and returns their results marked as implied by their template.
func (e *Engine) ReviewDerived(ctx context.Context, parent *unstructured.Unstructured, ns *corev1.Namespace, op admissionv1.Operation, set *expansion.Set, opts ...ReviewOption) ([]Result, error) {
	if set == nil || set.Len() == 0 || !set.AppliesTo(parent.GroupVersionKind()) {
		return nil, nil
	}
	derived, err := set.Expand(parent, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReview, err)
	}
	var out []Result
	for _, d := range derived {
		sub, err := e.Review(ctx, &target.Object{Object: d.Object, Namespace: ns, Operation: op, Source: match.SourceGenerated}, opts...)
		if err != nil {
			return out, err
		}
		for _, r := range sub.Results {
			r.Message = expansion.MessagePrefix(d.Template) + r.Message
			if d.EnforcementAction != "" {
				r.Action, r.Actions = d.EnforcementAction, []string{d.EnforcementAction}
			}
			out = append(out, r)
		}
	}
	return out, nil
}
