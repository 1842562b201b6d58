package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	regoschema "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/regorewriter"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/statcan/daaas-guard/pkg/target"
)

// The driver keeps the constraint framework's conventions, so templates
// behave exactly as under Gatekeeper: the template's module is moved to
// data.template, its libraries under data.libs, only data.inventory may be
// read, and a hook module runs the template once per constraint with
// input = {review, parameters}.
const (
	templateModule = "template"
	libPrefix      = "libs"
	libRoot        = "data.lib"
	hookModule     = "hooks.hooks_builtin"
	hookQuery      = "data.hooks.violation[result]"
)

// hookRego evaluates every constraint of one kind: for each key in
// input.constraints it reads the constraint's parameters from storage and
// runs the template with the review and those parameters as input.
const hookRego = `package hooks

violation[response] {
	key := input.constraints[_]
	params := data.constraints[key.kind][key.name]
	data.template.violation[r] with input as {"review": input.review, "parameters": params}
	response := {"key": key, "details": object.get(r, "details", {}), "msg": r.msg}
}
`

var parsedHook = func() *ast.Module {
	m, err := ast.ParseModuleWithOpts(hookModule, hookRego, ast.ParserOptions{RegoVersion: ast.RegoV0})
	if err != nil {
		panic(fmt.Sprintf("hook module: %v", err))
	}
	return m
}()

// regoDriver evaluates Rego templates. Unlike the framework's stock driver,
// which compiles the evaluation query on every review and converts the
// review to a Rego value once per template, it prepares each template's
// query when the template is added and converts each review once; storage
// reads at evaluation time keep constraints and data current.
type regoDriver struct {
	mu        sync.RWMutex
	templates map[string]*preparedTemplate // by constraint kind
	store     storage.Store

	capabilities *ast.Capabilities
	tracing      bool
	printHook    print.Hook
}

type preparedTemplate struct {
	query rego.PreparedEvalQuery
}

var _ drivers.Driver = &regoDriver{}

func newRegoDriver(o options) (*regoDriver, error) {
	caps := ast.CapabilitiesForThisVersion()
	if !o.allowNetwork {
		var kept []*ast.Builtin
		for _, b := range caps.Builtins {
			if !contains(networkBuiltins, b.Name) {
				kept = append(kept, b)
			}
		}
		caps.Builtins = kept
	}
	// Values are kept as Rego values, so reading referential data during
	// evaluation does not convert it again on every read.
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	ctx := context.Background()
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	if err := storage.MakeDir(ctx, store, txn, storage.Path{"inventory"}); err != nil {
		store.Abort(ctx, txn)
		return nil, err
	}
	if err := store.Commit(ctx, txn); err != nil {
		return nil, err
	}
	return &regoDriver{
		templates:    map[string]*preparedTemplate{},
		store:        store,
		capabilities: caps,
		tracing:      o.tracing,
		printHook:    o.printHook,
	}, nil
}

// Name is the engine name templates use in code[].engine; the framework
// also routes referential data to the driver with this name.
func (d *regoDriver) Name() string { return regoschema.Name }

// AddTemplate compiles the template and prepares its query.
func (d *regoDriver) AddTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	if len(ct.Spec.Targets) != 1 {
		return fmt.Errorf("%w: must declare exactly one target", clienterrors.ErrInvalidConstraintTemplate)
	}
	mods, err := rewriteTemplate(&ct.Spec.Targets[0])
	if err != nil {
		return err
	}
	printOn := d.printHook != nil
	compiler := ast.NewCompiler().WithCapabilities(d.capabilities).WithEnablePrintStatements(printOn)
	modules := map[string]*ast.Module{hookModule: parsedHook}
	for i, m := range mods {
		modules[fmt.Sprintf("%s%d", templateModule, i)] = m
	}
	compiler.Compile(modules)
	if compiler.Failed() {
		return fmt.Errorf("%w: %v", clienterrors.ErrCompile, compiler.Errors)
	}
	args := []func(*rego.Rego){
		rego.Compiler(compiler),
		rego.Store(d.store),
		rego.Query(hookQuery),
		rego.SetRegoVersion(ast.RegoV0),
		rego.EnablePrintStatements(printOn),
	}
	if d.printHook != nil {
		args = append(args, rego.PrintHook(d.printHook))
	}
	pq, err := rego.New(args...).PrepareForEval(ctx)
	if err != nil {
		return fmt.Errorf("%w: preparing the query: %v", clienterrors.ErrCompile, err)
	}
	kind := ct.Spec.CRD.Spec.Names.Kind
	d.mu.Lock()
	d.templates[kind] = &preparedTemplate{query: pq}
	d.mu.Unlock()
	return nil
}

// rewriteTemplate parses a target's Rego (entry point and libraries) and
// moves it under the framework's package layout.
func rewriteTemplate(tgt *templates.Target) ([]*ast.Module, error) {
	var src *regoschema.Source
	for _, code := range tgt.Code {
		if code.Engine != regoschema.Name {
			continue
		}
		s, err := regoschema.GetSource(code)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", clienterrors.ErrInvalidConstraintTemplate, err)
		}
		src = s
	}
	if src == nil {
		return nil, fmt.Errorf("%w: no Rego code", clienterrors.ErrInvalidConstraintTemplate)
	}
	version := ast.RegoV0
	if src.Version == "v1" {
		version = ast.RegoV1
	}
	rr, err := regorewriter.New(regorewriter.NewPackagePrefixer(libPrefix), []string{libRoot}, []string{"data.inventory"})
	if err != nil {
		return nil, err
	}
	entry, err := ast.ParseModuleWithOpts(templateModule, src.Rego, ast.ParserOptions{RegoVersion: version})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	if entry == nil {
		return nil, fmt.Errorf("%w: the Rego module is empty", clienterrors.ErrInvalidConstraintTemplate)
	}
	entry.Package.Path = ast.Ref{ast.VarTerm("data"), ast.StringTerm(templateModule)}
	hasViolation := false
	for _, r := range entry.Rules {
		if string(r.Head.Name) == "violation" {
			hasViolation = true
		}
	}
	if !hasViolation {
		return nil, fmt.Errorf("%w: invalid rego: %w: missing required rules: [violation]",
			clienterrors.ErrInvalidConstraintTemplate, clienterrors.ErrInvalidModule)
	}
	rr.AddEntryPointModule(templateModule, entry)
	for i, lib := range src.Libs {
		path := fmt.Sprintf(`%s["lib_%d"]`, libPrefix, i)
		m, err := ast.ParseModuleWithOpts(path, lib, ast.ParserOptions{RegoVersion: version})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", clienterrors.ErrInvalidConstraintTemplate, err)
		}
		if err := rr.AddLib(path, m); err != nil {
			return nil, fmt.Errorf("%w: %v", clienterrors.ErrInvalidConstraintTemplate, err)
		}
	}
	sources, err := rr.Rewrite()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	var mods []*ast.Module
	for _, m := range sources.EntryPoints {
		mods = append(mods, m.Module)
	}
	for _, m := range sources.Libs {
		mods = append(mods, m.Module)
	}
	return mods, nil
}

// RemoveTemplate forgets the template and its constraints' parameters.
func (d *regoDriver) RemoveTemplate(ctx context.Context, ct *templates.ConstraintTemplate) error {
	kind := ct.Spec.CRD.Spec.Names.Kind
	if err := d.remove(ctx, storage.Path{"constraints", kind}); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.templates, kind)
	d.mu.Unlock()
	return nil
}

// AddConstraint stores the constraint's parameters where the hook reads them.
func (d *regoDriver) AddConstraint(ctx context.Context, constraint *unstructured.Unstructured) error {
	params, _, err := unstructured.NestedFieldNoCopy(constraint.Object, "spec", "parameters")
	if err != nil {
		return fmt.Errorf("%w: spec.parameters: %v", ErrConstraint, err)
	}
	if params == nil {
		params = map[string]interface{}{}
	}
	return d.write(ctx, drivers.ConstraintKeyFrom(constraint).StoragePath(), params)
}

// RemoveConstraint deletes the constraint's parameters.
func (d *regoDriver) RemoveConstraint(ctx context.Context, constraint *unstructured.Unstructured) error {
	return d.remove(ctx, drivers.ConstraintKeyFrom(constraint).StoragePath())
}

// AddData stores referential data under data.inventory.
func (d *regoDriver) AddData(ctx context.Context, _ string, path storage.Path, data interface{}) error {
	return d.write(ctx, append(storage.Path{"inventory"}, path...), data)
}

// RemoveData deletes referential data.
func (d *regoDriver) RemoveData(ctx context.Context, _ string, path storage.Path) error {
	return d.remove(ctx, append(storage.Path{"inventory"}, path...))
}

func (d *regoDriver) write(ctx context.Context, path storage.Path, value interface{}) error {
	if len(path) == 0 {
		return fmt.Errorf("%w: empty storage path", clienterrors.ErrPathInvalid)
	}
	return storage.Txn(ctx, d.store, storage.WriteParams, func(txn storage.Transaction) error {
		if _, err := d.store.Read(ctx, txn, path); storage.IsNotFound(err) {
			if err := storage.MakeDir(ctx, d.store, txn, path[:len(path)-1]); err != nil {
				return fmt.Errorf("%w: %v", clienterrors.ErrWrite, err)
			}
		} else if err != nil {
			return fmt.Errorf("%w: %v", clienterrors.ErrRead, err)
		}
		if err := d.store.Write(ctx, txn, storage.AddOp, path, value); err != nil {
			return fmt.Errorf("%w: %v", clienterrors.ErrWrite, err)
		}
		return nil
	})
}

func (d *regoDriver) remove(ctx context.Context, path storage.Path) error {
	err := storage.Txn(ctx, d.store, storage.WriteParams, func(txn storage.Transaction) error {
		return d.store.Write(ctx, txn, storage.RemoveOp, path, nil)
	})
	if err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("%w: %v", clienterrors.ErrWrite, err)
	}
	return nil
}

// Query evaluates the review against the given constraints, one prepared
// query per constraint kind. An evaluation error becomes a result for each
// constraint of that kind, so that a broken template fails closed, as in
// the stock driver.
func (d *regoDriver) Query(ctx context.Context, target string, constraints []*unstructured.Unstructured, review interface{}, opts ...reviews.ReviewOpt) (*drivers.QueryResponse, error) {
	if len(constraints) == 0 {
		return nil, nil
	}
	cfg := reviews.ReviewCfg{}
	for _, opt := range opts {
		opt(&cfg)
	}
	reviewTerm, err := reviewValue(review, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	byKind := map[string][]*unstructured.Unstructured{}
	var kinds []string
	for _, c := range constraints {
		k := c.GetKind()
		if _, seen := byKind[k]; !seen {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], c)
	}
	sort.Strings(kinds)
	keys := drivers.KeyMap(constraints)
	tracing := d.tracing || cfg.TracingEnabled
	var results []*types.Result
	var trace strings.Builder

	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, kind := range kinds {
		t := d.templates[kind]
		if t == nil {
			return nil, fmt.Errorf("%w: no template for kind %q", clienterrors.ErrMissingConstraintTemplate, kind)
		}
		input := ast.NewObject(
			ast.Item(ast.StringTerm("target"), ast.StringTerm(target)),
			ast.Item(ast.StringTerm("constraints"), constraintKeys(byKind[kind])),
			ast.Item(ast.StringTerm("review"), reviewTerm),
		)
		evalOpts := []rego.EvalOption{rego.EvalParsedInput(input)}
		var buf *topdown.BufferTracer
		if tracing {
			buf = topdown.NewBufferTracer()
			evalOpts = append(evalOpts, rego.EvalQueryTracer(buf))
		}
		rs, err := t.query.Eval(ctx, evalOpts...)
		if buf != nil {
			var b bytes.Buffer
			topdown.PrettyTrace(&b, *buf)
			trace.Write(b.Bytes())
		}
		if err != nil {
			rs = errorResults(byKind[kind], err)
		}
		kindResults, err := drivers.ToResults(keys, rs)
		if err != nil {
			return nil, err
		}
		results = append(results, kindResults...)
	}
	resp := &drivers.QueryResponse{Results: results}
	if trace.Len() > 0 {
		s := trace.String()
		resp.Trace = &s
	}
	return resp, nil
}

// reviewValue converts a review to a Rego value once, with the Namespace
// object the framework passes along (null when there is none).
func reviewValue(review interface{}, namespace map[string]interface{}) (*ast.Term, error) {
	if r, ok := review.(*target.Review); ok {
		return r.Value(namespace)
	}
	raw, err := json.Marshal(review)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the review: %v", ErrReview, err)
	}
	v, err := target.ParseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: decoding the review: %v", ErrReview, err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: the review is not an object", ErrReview)
	}
	return target.WithNamespace(obj, namespace)
}

func constraintKeys(cs []*unstructured.Unstructured) *ast.Term {
	terms := make([]*ast.Term, 0, len(cs))
	for _, c := range cs {
		terms = append(terms, ast.ObjectTerm(
			ast.Item(ast.StringTerm("kind"), ast.StringTerm(c.GetKind())),
			ast.Item(ast.StringTerm("name"), ast.StringTerm(c.GetName())),
		))
	}
	return ast.ArrayTerm(terms...)
}

func errorResults(cs []*unstructured.Unstructured, err error) rego.ResultSet {
	rs := make(rego.ResultSet, 0, len(cs))
	for _, c := range cs {
		rs = append(rs, rego.Result{Bindings: map[string]interface{}{
			"result": map[string]interface{}{
				"msg": err.Error(),
				"key": map[string]interface{}{"kind": c.GetKind(), "name": c.GetName()},
			},
		}})
	}
	return rs
}

// Dump lists the loaded templates and the stored data, for debugging.
func (d *regoDriver) Dump(ctx context.Context) (string, error) {
	d.mu.RLock()
	kinds := sortedKeys(d.templates)
	d.mu.RUnlock()
	var data interface{}
	err := storage.Txn(ctx, d.store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		var err error
		data, err = d.store.Read(ctx, txn, storage.Path{})
		return err
	})
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(map[string]interface{}{"templates": kinds, "data": data}, "", "  ")
	return string(b), err
}

// GetDescriptionForStat: this driver gathers no statistics.
func (d *regoDriver) GetDescriptionForStat(name string) (string, error) {
	return "", errors.New("unknown stat " + name)
}
