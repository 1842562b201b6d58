package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fjson "github.com/open-policy-agent/eopa/pkg/json"
	"github.com/open-policy-agent/eopa/pkg/vm"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	regoschema "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/regorewriter"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"github.com/open-policy-agent/opa/v1/ast"
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
// read, and the template runs once per constraint with
// input = {review, parameters}.
const (
	templateModule = "template"
	libPrefix      = "libs"
	libRoot        = "data.lib"
	// violationQuery enumerates the template's violations; resultVar is the
	// variable each one is bound to.
	violationQuery = "data.template.violation[result]"
	resultVar      = ast.Var("result")
)

// regoDriver evaluates Rego templates. The framework's stock driver
// compiles its evaluation query on every review, converts the review to a
// Rego value once per template, and runs each template through a hook rule
// that reads the constraint's parameters from storage and calls the
// template `with input as` them. This driver compiles each template's query
// once, when the template is added; converts each review once; keeps each
// constraint's parameters as a ready Rego value; and evaluates the
// template directly with topdown, once per constraint, with the input the
// hook would have built. Results are what the hook returns: for each
// violation r with a msg, {key, details: object.get(r, "details", {}),
// msg}, deduplicated as the hook's set would be. Most of a review of many
// constraints was the hook's own evaluation (docs/performance.md).
type regoDriver struct {
	mu        sync.RWMutex
	templates map[string]*preparedTemplate    // by constraint kind
	params    map[string]map[string]*ast.Term // by constraint kind, then name
	// copies holds a copy of each constraint, made when it is added, that
	// its results share: reviews would otherwise copy it for every review
	// it has results in (by kind, then name).
	copies map[string]map[string]*unstructured.Unstructured
	// names are each constraint's name as the VM's string, made when the
	// constraint is added: every review lists its matched constraints for
	// the VM (vmMatched), and making them there was about 4% of a
	// review's allocations. By kind, then name.
	names map[string]map[string]fjson.File
	store storage.Store

	capabilities *ast.Capabilities
	tracing      bool
	printHook    print.Hook
	counts       *EvaluatorCounts

	// The VM program of the loaded templates (built by the first review,
	// rebuilt in the background after changes) and the constraints'
	// parameters for it (converted by the first review after a change);
	// progMu serialises the building of both.
	useVM bool
	// noDetails: results without details (WithoutDetails), and a VM
	// program that does not return them.
	noDetails bool
	progMu    sync.Mutex
	prog      atomic.Pointer[vmProgram]
	vmParams  atomic.Pointer[fjson.Json]
	// building is set while a build in the background is pending.
	building atomic.Bool
	// cache answers VM runs that would repeat a recent one (vmcache.go);
	// nil when off.
	cache *reviewCache
}

type preparedTemplate struct {
	compiler *ast.Compiler
	qc       ast.QueryCompiler
	query    ast.Body
	// result is the compiled query's name for resultVar.
	result ast.Var
	// vmModules are the template's modules in the VM program's layout;
	// vmErr says why there are none.
	vmModules []*ast.Module
	vmErr     error
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
		params:       map[string]map[string]*ast.Term{},
		copies:       map[string]map[string]*unstructured.Unstructured{},
		names:        map[string]map[string]fjson.File{},
		store:        store,
		capabilities: caps,
		tracing:      o.tracing,
		printHook:    o.printHook,
		useVM:        !o.noVM,
		noDetails:    o.noDetails,
		counts:       o.counts,
		cache:        newReviewCache(o.reviewCache),
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
	mods, err := rewriteTemplate(&ct.Spec.Targets[0], frameworkLayout)
	if err != nil {
		return err
	}
	printOn := d.printHook != nil
	compiler := ast.NewCompiler().WithCapabilities(d.capabilities).WithEnablePrintStatements(printOn)
	modules := map[string]*ast.Module{}
	for i, m := range mods {
		modules[fmt.Sprintf("%s%d", templateModule, i)] = m
	}
	compiler.Compile(modules)
	if compiler.Failed() {
		return fmt.Errorf("%w: %v", clienterrors.ErrCompile, compiler.Errors)
	}
	qc := compiler.QueryCompiler().WithEnablePrintStatements(printOn)
	query, err := qc.Compile(ast.MustParseBodyWithOpts(violationQuery, ast.ParserOptions{RegoVersion: ast.RegoV1}))
	if err != nil {
		return fmt.Errorf("%w: preparing the query: %v", clienterrors.ErrCompile, err)
	}
	pt := &preparedTemplate{compiler: compiler, qc: qc, query: query, result: resultVar}
	for rewritten, original := range qc.RewrittenVars() {
		if original == resultVar {
			pt.result = rewritten
		}
	}
	kind := ct.Spec.CRD.Spec.Names.Kind
	if d.useVM {
		pt.vmModules, pt.vmErr = rewriteTemplate(&ct.Spec.Targets[0], vmLayout(kind))
	}
	d.mu.Lock()
	d.templates[kind] = pt
	d.mu.Unlock()
	d.buildSoon()
	return nil
}

// buildSoon rebuilds the VM program in the background shortly after the
// templates change; templates changed together (at start) are built once.
// Until then reviews keep the program they have, and topdown evaluates
// the templates changed since it was built: a change applies at once, and
// no review waits for a build.
func (d *regoDriver) buildSoon() {
	if !d.useVM || !d.building.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(vmBuildDelay, func() {
		d.building.Store(false)
		d.mu.RLock()
		defer d.mu.RUnlock()
		d.progMu.Lock()
		defer d.progMu.Unlock()
		d.build()
	})
}

// build compiles the loaded templates into a VM program and makes it the
// current one. The caller holds d.mu for reading and d.progMu.
func (d *regoDriver) build() *vmProgram {
	p := buildProgram(d.capabilities, d.printHook != nil, d.noDetails, d.templates)
	d.prog.Store(p)
	return p
}

// packageLayout says where a template's Rego lives once loaded: the
// package of its entry point and the prefix of its libraries' packages.
type packageLayout struct {
	entry     ast.Ref
	libPrefix string
}

// frameworkLayout is the constraint framework's: the entry point in
// data.template, the libraries under data.libs.
var frameworkLayout = packageLayout{
	entry:     ast.Ref{ast.DefaultRootDocument, ast.StringTerm(templateModule)},
	libPrefix: libPrefix,
}

// rewriteTemplate parses a target's Rego (entry point and libraries) and
// moves it under the given package layout.
func rewriteTemplate(tgt *templates.Target, layout packageLayout) ([]*ast.Module, error) {
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
	rr, err := regorewriter.New(regorewriter.NewPackagePrefixer(layout.libPrefix), []string{libRoot}, []string{"data.inventory"})
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
	entry.Package.Path = layout.entry.Copy()
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
func (d *regoDriver) RemoveTemplate(_ context.Context, ct *templates.ConstraintTemplate) error {
	kind := ct.Spec.CRD.Spec.Names.Kind
	d.mu.Lock()
	delete(d.templates, kind)
	delete(d.params, kind)
	delete(d.copies, kind)
	delete(d.names, kind)
	d.vmParams.Store(nil)
	d.mu.Unlock()
	d.buildSoon()
	return nil
}

// vmMatched lists, by kind, the constraints the program evaluates. The
// names share one array, sorted by kind: a slice per kind was an
// allocation per kind and review. The caller holds d.mu for reading.
func (d *regoDriver) vmMatched(prog *vmProgram, constraints [][2]string) vmMatched {
	sel := make([][2]string, 0, len(constraints))
	kinds := 0
	for _, id := range constraints {
		kind, name := id[0], id[1]
		if prog.evaluates(kind, d.templates[kind]) && d.params[kind][name] != nil {
			sel = append(sel, id)
		}
	}
	if len(sel) == 0 {
		return nil
	}
	slices.SortFunc(sel, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	for i := range sel {
		if i == 0 || sel[i][0] != sel[i-1][0] {
			kinds++
		}
	}
	names := make([]fjson.File, len(sel))
	matched := make(vmMatched, kinds)
	start := 0
	for i, id := range sel {
		names[i] = d.names[id[0]][id[1]]
		if i+1 == len(sel) || sel[i+1][0] != id[0] {
			matched[id[0]] = names[start : i+1 : i+1]
			start = i + 1
		}
	}
	return matched
}

// AddConstraint keeps the constraint's parameters as a Rego value.
func (d *regoDriver) AddConstraint(_ context.Context, constraint *unstructured.Unstructured) error {
	params, _, err := unstructured.NestedFieldNoCopy(constraint.Object, "spec", "parameters")
	if err != nil {
		return fmt.Errorf("%w: spec.parameters: %v", ErrConstraint, err)
	}
	if params == nil {
		params = map[string]interface{}{}
	}
	v, err := ast.InterfaceToValue(params)
	if err != nil {
		return fmt.Errorf("%w: spec.parameters: %v", ErrConstraint, err)
	}
	kind, name := constraint.GetKind(), constraint.GetName()
	copied := constraint.DeepCopy()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.params[kind] == nil {
		d.params[kind] = map[string]*ast.Term{}
		d.copies[kind] = map[string]*unstructured.Unstructured{}
	}
	if d.names[kind] == nil {
		d.names[kind] = map[string]fjson.File{}
	}
	d.params[kind][name] = ast.NewTerm(v)
	d.copies[kind][name] = copied
	// The VM's strings are immutable, so every run shares them.
	d.names[kind][name] = fjson.NewString(name)
	d.vmParams.Store(nil)
	return nil
}

// RemoveConstraint forgets the constraint's parameters.
func (d *regoDriver) RemoveConstraint(_ context.Context, constraint *unstructured.Unstructured) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.params[constraint.GetKind()], constraint.GetName())
	delete(d.copies[constraint.GetKind()], constraint.GetName())
	delete(d.names[constraint.GetKind()], constraint.GetName())
	d.vmParams.Store(nil)
	return nil
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

// Query evaluates the review against the given constraints. An
// evaluation error becomes a result for the constraint, carrying the error,
// so that a broken template fails closed, as in the stock driver.
func (d *regoDriver) Query(ctx context.Context, _ string, constraints []*unstructured.Unstructured, review interface{}, opts ...reviews.ReviewOpt) (*drivers.QueryResponse, error) {
	ids := make([][2]string, len(constraints))
	for i, c := range constraints {
		ids[i] = [2]string{c.GetKind(), c.GetName()}
	}
	return d.queryIDs(ctx, ids, review, opts...)
}

// queryIDs is Query for the constraints of these kinds and names. The
// engine keeps them with its constraints: reading them from each
// constraint's map was 1.6% of the webhook's CPU while pods were created.
func (d *regoDriver) queryIDs(ctx context.Context, ids [][2]string, review interface{}, opts ...reviews.ReviewOpt) (*drivers.QueryResponse, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cfg := reviews.ReviewCfg{}
	for _, opt := range opts {
		opt(&cfg)
	}
	tracing := d.tracing || cfg.TracingEnabled
	// Topdown takes the review whole, made when first needed; the VM takes
	// it with the parts policies seldom read left raw until read.
	var reviewTerm *ast.Term
	fullReview := func() (*ast.Term, error) {
		if reviewTerm == nil {
			var err error
			reviewTerm, err = reviewValue(review, cfg.Namespace)
			return reviewTerm, err
		}
		return reviewTerm, nil
	}
	var trace strings.Builder

	txn, err := d.store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", clienterrors.ErrRead, err)
	}
	defer d.store.Abort(ctx, txn)
	// One cancellation for the whole review: the deadline applies to all
	// of it, and a goroutine per evaluation would cost more than some
	// templates do.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()

	d.mu.RLock()
	defer d.mu.RUnlock()
	// The VM evaluates what it can in one run; when the run fails, topdown
	// evaluates every constraint, and a template's error is reported for
	// its own constraints only.
	var prog *vmProgram
	var vmResults map[[2]string]violations
	if d.useVM && !tracing {
		vmTerm, deferred, err := vmReviewValue(review, cfg.Namespace)
		if err != nil {
			return nil, err
		}
		prog = d.program()
		if vmResults, err = d.vmReview(ctx, prog, ids, vmTerm, deferred, txn, cancel); err != nil {
			prog = nil
		}
	}
	var results []*types.Result
	for _, id := range ids {
		kind, name := id[0], id[1]
		t := d.templates[kind]
		if t == nil {
			return nil, fmt.Errorf("%w: no template for kind %q", clienterrors.ErrMissingConstraintTemplate, kind)
		}
		params := d.params[kind][name]
		if params == nil {
			// As the hook does when the constraint is not in storage.
			continue
		}
		var found violations
		if prog.evaluates(kind, t) {
			if d.counts != nil {
				d.counts.VM.Add(1)
			}
			// A copy: results sorts it, and the review cache keeps the run.
			found = append(found, vmResults[[2]string{kind, name}]...)
		} else {
			if d.counts != nil {
				d.counts.Topdown.Add(1)
			}
			whole, err := fullReview()
			if err != nil {
				return nil, err
			}
			if err := d.topdownEval(ctx, t, params, whole, &found, txn, cancel, tracing, &trace); err != nil {
				results = append(results, errorResult(d.copies[kind][name], err))
				continue
			}
		}
		rs, err := found.results(d.copies[kind][name], !d.noDetails)
		if err != nil {
			return nil, err
		}
		results = append(results, rs...)
	}
	resp := &drivers.QueryResponse{Results: results}
	if trace.Len() > 0 {
		s := trace.String()
		resp.Trace = &s
	}
	return resp, nil
}

// topdownEval evaluates one constraint with topdown, adding the hook's
// responses.
func (d *regoDriver) topdownEval(ctx context.Context, t *preparedTemplate, params, reviewTerm *ast.Term, found *violations, txn storage.Transaction, cancel topdown.Cancel, tracing bool, trace *strings.Builder) error {
	input := ast.ObjectTerm(
		ast.Item(ast.InternedTerm("review"), reviewTerm),
		ast.Item(ast.InternedTerm("parameters"), params),
	)
	q := topdown.NewQuery(t.query).
		WithQueryCompiler(t.qc).
		WithCompiler(t.compiler).
		WithStore(d.store).
		WithTransaction(txn).
		WithInput(input).
		WithCancel(cancel).
		WithPrintHook(d.printHook)
	var buf *topdown.BufferTracer
	if tracing {
		buf = topdown.NewBufferTracer()
		q = q.WithQueryTracer(buf)
	}
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		found.add(qr[t.result])
		return nil
	})
	if buf != nil {
		var b bytes.Buffer
		topdown.PrettyTrace(&b, *buf)
		trace.Write(b.Bytes())
	}
	return err
}

// program returns the VM program, building it when there is none yet (the
// first review pays for it; later changes are built in the background).
// The caller holds d.mu for reading, so the templates cannot change
// meanwhile.
func (d *regoDriver) program() *vmProgram {
	if p := d.prog.Load(); p != nil {
		return p
	}
	d.progMu.Lock()
	defer d.progMu.Unlock()
	if p := d.prog.Load(); p != nil {
		return p
	}
	return d.build()
}

// paramsForVM returns every constraint's parameters as the VM's data
// (params[kind][name]), converting them after a change; a new pointer for
// every conversion, so that it also names this version of the parameters.
// The caller holds d.mu for reading.
func (d *regoDriver) paramsForVM(ctx context.Context) (*fjson.Json, error) {
	if p := d.vmParams.Load(); p != nil {
		return p, nil
	}
	d.progMu.Lock()
	defer d.progMu.Unlock()
	if p := d.vmParams.Load(); p != nil {
		return p, nil
	}
	all := ast.NewObject()
	for kind, byName := range d.params {
		obj := ast.NewObject()
		for name, p := range byName {
			obj.Insert(ast.StringTerm(name), p)
		}
		all.Insert(ast.StringTerm(kind), ast.NewTerm(obj))
	}
	p, err := (&vm.DataOperations{}).FromInterface(ctx, all)
	if err != nil {
		return nil, err
	}
	d.vmParams.Store(&p)
	return &p, nil
}

// vmReview runs the VM on the constraints its program evaluates.
func (d *regoDriver) vmReview(ctx context.Context, prog *vmProgram, constraints [][2]string, reviewTerm *ast.Term, deferred []target.Deferred, txn storage.Transaction, cancel topdown.Cancel) (map[[2]string]violations, error) {
	matched := d.vmMatched(prog, constraints)
	if len(matched) == 0 {
		return nil, nil
	}
	params, err := d.paramsForVM(ctx)
	if err != nil {
		return nil, err
	}
	inv, err := d.store.Read(ctx, txn, storage.Path{"inventory"})
	if err != nil {
		return nil, err
	}
	inventory, ok := inv.(ast.Value)
	if !ok {
		if inventory, err = ast.InterfaceToValue(inv); err != nil {
			return nil, err
		}
	}
	if d.cache == nil || !prog.repeatable(matched) {
		return d.vmRun(ctx, prog, *params, inventory, matched, reviewTerm, deferred, cancel, nil)
	}
	key := matched.key()
	check := checker{review: reviewTerm.Value, inventory: inventory, deferred: deferred}
	for _, run := range d.cache.candidates(prog, params, key) {
		if check.repeats(run) {
			d.cache.used(key, run)
			d.counts.cached(true)
			return run.results, nil
		}
	}
	d.counts.cached(false)
	log := &readLog{}
	out, err := d.vmRun(ctx, prog, *params, inventory, matched, reviewTerm, deferred, cancel, log)
	if err == nil && !log.uncacheable {
		d.cache.add(prog, params, key, &cachedRun{reads: log.reads, results: out})
	}
	return out, err
}

// violations are a constraint's violations as the framework's hook
// responds with them: for each violation r that has a msg, {key, details:
// object.get(r, "details", {}), msg: r.msg}, as a set. The key is the
// same for all of them, so a response is kept as its details and msg,
// and the set's order is theirs.
type violations []violation

type violation struct{ details, msg *ast.Term }

func (vs *violations) add(r *ast.Term) {
	if r == nil {
		return
	}
	obj, ok := r.Value.(ast.Object)
	if !ok {
		return
	}
	msg := obj.Get(ast.InternedTerm("msg"))
	if msg == nil {
		return
	}
	details := obj.Get(ast.InternedTerm("details"))
	if details == nil {
		details = ast.InternedEmptyObject
	}
	*vs = append(*vs, violation{details: details, msg: msg})
}

// results are the violations as the framework's results, in the set's
// order, each once, sharing c; without their details unless withDetails.
func (vs violations) results(c *unstructured.Unstructured, withDetails bool) ([]*types.Result, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	// Stable: of equal responses (1 and 1.0 are one number) the set keeps
	// the first added.
	slices.SortStableFunc(vs, compareViolations)
	vs = slices.CompactFunc(vs, func(a, b violation) bool { return compareViolations(a, b) == 0 })
	out := make([]*types.Result, 0, len(vs))
	for _, v := range vs {
		r, err := toResult(c, v, withDetails)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// compareViolations orders responses as ast.Compare orders them: objects
// compare key by key, and only details and msg differ.
func compareViolations(a, b violation) int {
	if c := ast.Compare(a.details, b.details); c != 0 {
		return c
	}
	return ast.Compare(a.msg, b.msg)
}

// toResult converts a response as the framework's drivers.ToResult does:
// msg must be a string. c is the copy of the constraint that all its
// results share.
func toResult(c *unstructured.Unstructured, v violation, withDetails bool) (*types.Result, error) {
	msg, ok := v.msg.Value.(ast.String)
	if !ok {
		return nil, fmt.Errorf("extracting message binding: %s %q: msg is not a string", c.GetKind(), c.GetName())
	}
	if !withDetails {
		// Nothing reads a metadata without details (policy.Result's
		// Details is nil either way): a map per violation was an
		// allocation per violation.
		return &types.Result{Msg: string(msg), Constraint: c}, nil
	}
	details, err := ast.JSON(v.details.Value)
	if err != nil {
		return nil, fmt.Errorf("extracting details: %s %q: %v", c.GetKind(), c.GetName(), err)
	}
	return &types.Result{
		Msg:        string(msg),
		Metadata:   map[string]interface{}{"details": details},
		Constraint: c,
	}, nil
}

// errorResult reports an evaluation error as a violation of the
// constraint, without details, as the stock driver does. c is the copy of
// the constraint that all its results share.
func errorResult(c *unstructured.Unstructured, err error) *types.Result {
	return &types.Result{
		Msg:        err.Error(),
		Metadata:   map[string]interface{}{"details": nil},
		Constraint: c,
	}
}

// vmReviewValue is reviewValue with the review's deferred parts left raw.
func vmReviewValue(review interface{}, namespace map[string]interface{}) (*ast.Term, []target.Deferred, error) {
	if r, ok := review.(*target.Review); ok {
		return r.DeferredValue(namespace)
	}
	v, err := reviewValue(review, namespace)
	return v, nil, err
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

// Dump lists the loaded templates and the stored data, for debugging.
func (d *regoDriver) Dump(ctx context.Context) (string, error) {
	d.mu.RLock()
	kinds := slices.Sorted(maps.Keys(d.templates))
	params := map[string]map[string]string{}
	for kind, byName := range d.params {
		params[kind] = map[string]string{}
		for name, p := range byName {
			params[kind][name] = p.String()
		}
	}
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
	dump := map[string]interface{}{"templates": kinds, "parameters": params, "data": data}
	if d.useVM {
		d.mu.RLock()
		p := d.program()
		d.mu.RUnlock()
		excluded := map[string]string{}
		for kind, err := range p.excluded {
			excluded[kind] = err.Error()
		}
		dump["vm"] = map[string]interface{}{"templates": slices.Sorted(maps.Keys(p.kinds)), "excluded": excluded}
	}
	b, err := json.MarshalIndent(dump, "", "  ")
	return string(b), err
}

// GetDescriptionForStat: this driver gathers no statistics.
func (d *regoDriver) GetDescriptionForStat(name string) (string, error) {
	return "", errors.New("unknown stat " + name)
}
