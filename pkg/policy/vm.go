package policy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/eopa/pkg/iropt"
	fjson "github.com/open-policy-agent/eopa/pkg/json"
	"github.com/open-policy-agent/eopa/pkg/vm"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/statcan/daaas-guard/pkg/target"
)

// Reviews are evaluated by the bytecode VM of Enterprise OPA (open source
// since 2025, github.com/open-policy-agent/eopa) when they can be: every
// loaded template is compiled, with a generated hook module, into one
// program that evaluates all the constraints a review matched in a single
// run, with the review converted once. OPA's planner turns the Rego into
// its intermediate representation, the same one OPA compiles to Wasm; the
// VM interprets that, several times faster than topdown walks the AST
// (docs/performance.md). Topdown remains the reference: it evaluates
// reviews that are traced, templates the planner cannot take, and
// any review whose VM run fails, so a template's runtime error is reported
// for its constraint exactly as before.

// vmTarget is the rego target under which OPA's planner hands over the
// plan of the combined program.
const vmTarget = "daaas-guard-vm"

// vmQuery is the program's entry point, the hook's result set: one
// [kind, name, violation] triple per violation of a matched constraint.
const vmQuery = "data.hook.results"

// vmBuildDelay is how long the program waits for more template changes
// before it is built in the background.
const vmBuildDelay = 50 * time.Millisecond

// vmTemplateRoot is where each template's Rego lives in the program:
// data.t[kind].tpl, its libraries under data.t[kind].libs.
const vmTemplateRoot = "t"

func vmLayout(kind string) packageLayout {
	return packageLayout{
		entry:     ast.Ref{ast.DefaultRootDocument, ast.StringTerm(vmTemplateRoot), ast.StringTerm(kind), ast.StringTerm("tpl")},
		libPrefix: vmTemplateRoot + "." + kind + "." + libPrefix,
	}
}

// planCapture receives the plan from irPlugin through the context given to
// rego's PrepareForEval: rego offers no other way to get at it.
type planCapture struct{ policy *ir.Policy }

type planCaptureKey struct{}

// irPlugin is a rego target plugin that only keeps the plan.
type irPlugin struct{}

func (irPlugin) IsTarget(t string) bool { return t == vmTarget }

func (irPlugin) PrepareForEval(ctx context.Context, p *ir.Policy, _ ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	c, ok := ctx.Value(planCaptureKey{}).(*planCapture)
	if !ok {
		return nil, errors.New("the VM target is for the policy engine's own use")
	}
	c.policy = p
	return irPlugin{}, nil
}

func (irPlugin) Eval(context.Context, *rego.EvalContext, ast.Value) (ast.Value, error) {
	return nil, errors.New("the VM target is for the policy engine's own use")
}

func init() { rego.RegisterPlugin(vmTarget, irPlugin{}) }

// vmProgram is the loaded templates compiled for the VM.
type vmProgram struct {
	exe vm.Executable
	// vms are machines for the program, one per review at a time: a
	// machine keeps the program's string constants once made.
	vms sync.Pool
	// kinds are the templates the program evaluates, as they were when
	// it was built: a template changed since is left to topdown until the
	// program is rebuilt, as are the excluded ones (with the reason).
	kinds    map[string]*preparedTemplate
	excluded map[string]error
	// unrepeatable are the kinds whose templates call a builtin whose
	// answer can change between two runs on the same input (the time, a
	// random number, the network): their runs are never cached.
	unrepeatable map[string]bool
	// messagesOnly: the hook returns messages, not violations
	// (hookModule).
	messagesOnly bool
}

// repeatable reports whether a run of these kinds gives the same results
// whenever it reads the same values.
func (p *vmProgram) repeatable(kinds vmMatched) bool {
	for kind := range kinds {
		if p.unrepeatable[kind] {
			return false
		}
	}
	return true
}

// timeDependent are builtins OPA does not mark nondeterministic whose
// answer depends on the current time.
var timeDependent = map[string]bool{
	"io.jwt.decode_verify":                                   true,
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// callsUnrepeatable reports whether the modules call a builtin that is
// nondeterministic, depends on the time or reaches the network, or print
// when its output is kept (a cached run would print nothing).
func callsUnrepeatable(mods []*ast.Module, print bool) bool {
	found := false
	unrepeatable := func(op ast.Ref) bool {
		name := op.String()
		if name == ast.Print.Name {
			return print
		}
		b, ok := ast.BuiltinMap[name]
		return ok && (b.Nondeterministic || timeDependent[name] || contains(networkBuiltins, name))
	}
	for _, m := range mods {
		// Calls are expressions (f(x)) or terms inside them (y := f(x)).
		ast.NewGenericVisitor(func(x any) bool {
			switch x := x.(type) {
			case *ast.Expr:
				if x.IsCall() && unrepeatable(x.Operator()) {
					found = true
				}
			case ast.Call:
				if ref, ok := x[0].Value.(ast.Ref); ok && unrepeatable(ref) {
					found = true
				}
			}
			return found
		}).Walk(m)
	}
	return found
}

// hookModule dispatches each matched constraint to its template, with the
// input the framework's hook gives it ({"review": ..., "parameters": ...}),
// taken from data.input (vmInputs) so that the review reaches the VM
// unconverted: a value built in Rego would be converted whole.
//
// Its results are [kind, name, violation] triples. With messagesOnly they
// are [kind, name, msg, details] for each distinct (msg, details) pair the
// framework's hook would respond with, and details is null unless two
// pairs share a message: the VM converts its whole result to OPA's AST,
// and details were about 40% of its allocations per violation, while the
// pairs keep the results as many as Gatekeeper gives (and, where messages
// repeat, Go still merges 1 and 1.0 in details as one number, as the
// framework's set does). A constraint without violations stops before the
// pairs are built.
func hookModule(kinds []string, messagesOnly bool) (*ast.Module, error) {
	var b strings.Builder
	b.WriteString("package hook\n\n")
	if messagesOnly {
		b.WriteString("details(true, _) := null\n\ndetails(false, d) := d\n\n")
	}
	for _, k := range kinds {
		if messagesOnly {
			fmt.Fprintf(&b, `results contains [%[1]q, name, p[0], d] if {
	some name in data.matched[%[1]q]
	vs := data.%[2]s[%[1]q].tpl.violation with input as data.input[%[1]q][name]
	vs != set()
	pairs := {[v.msg, object.get(v, "details", {})] | some v in vs}
	unique := count({p[0] | some p in pairs}) == count(pairs)
	some p in pairs
	d := details(unique, p[1])
}

`, k, vmTemplateRoot)
			continue
		}
		fmt.Fprintf(&b, `results contains [%[1]q, name, r] if {
	some name in data.matched[%[1]q]
	r := data.%[2]s[%[1]q].tpl.violation[_] with input as data.input[%[1]q][name]
}

`, k, vmTemplateRoot)
	}
	return ast.ParseModuleWithOpts("hook", b.String(), ast.ParserOptions{RegoVersion: ast.RegoV1})
}

// compileProgram compiles the given templates' modules (by kind) into one
// VM program; with print, their print statements reach the print hook.
func compileProgram(caps *ast.Capabilities, print, messagesOnly bool, modules map[string][]*ast.Module) (vm.Executable, error) {
	kinds := make([]string, 0, len(modules))
	for k := range modules {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	hook, err := hookModule(kinds, messagesOnly)
	if err != nil {
		return nil, err
	}
	all := map[string]*ast.Module{"hook": hook}
	for _, k := range kinds {
		for i, m := range modules[k] {
			all[fmt.Sprintf("%s/%d", k, i)] = m.Copy()
		}
	}
	compiler := ast.NewCompiler().WithCapabilities(caps).WithEnablePrintStatements(print)
	compiler.Compile(all)
	if compiler.Failed() {
		return nil, compiler.Errors
	}
	capture := &planCapture{}
	ctx := context.WithValue(context.Background(), planCaptureKey{}, capture)
	r := rego.New(rego.Query(vmQuery), rego.Compiler(compiler), rego.Target(vmTarget), rego.Capabilities(caps), rego.EnablePrintStatements(print))
	if _, err := r.PrepareForEval(ctx); err != nil {
		return nil, err
	}
	if capture.policy == nil {
		return nil, errors.New("no plan")
	}
	optimised, err := iropt.RunPasses(capture.policy, iropt.RegoVMIROptimizationPassSchedule)
	if err != nil {
		return nil, err
	}
	return vm.NewCompiler().WithPolicy(optimised).Compile()
}

// buildProgram compiles every template that has VM modules. When the whole
// set does not compile, each template is tried alone and those that fail
// are left to topdown.
func buildProgram(caps *ast.Capabilities, print, messagesOnly bool, templates map[string]*preparedTemplate) *vmProgram {
	modules := map[string][]*ast.Module{}
	excluded := map[string]error{}
	for kind, t := range templates {
		if t.vmErr != nil {
			excluded[kind] = t.vmErr
			continue
		}
		modules[kind] = t.vmModules
	}
	exe, err := compileProgram(caps, print, messagesOnly, modules)
	if err != nil {
		for kind, mods := range modules {
			if _, err := compileProgram(caps, print, messagesOnly, map[string][]*ast.Module{kind: mods}); err != nil {
				excluded[kind] = err
				delete(modules, kind)
			}
		}
		exe, err = compileProgram(caps, print, messagesOnly, modules)
		if err != nil {
			for kind := range modules {
				excluded[kind] = err
			}
			return &vmProgram{kinds: map[string]*preparedTemplate{}, excluded: excluded}
		}
	}
	p := &vmProgram{exe: exe, kinds: map[string]*preparedTemplate{}, excluded: excluded, unrepeatable: map[string]bool{}, messagesOnly: messagesOnly}
	p.vms.New = func() any { return vm.NewVM().WithExecutable(exe) }
	for kind, mods := range modules {
		p.kinds[kind] = templates[kind]
		if callsUnrepeatable(mods, print) {
			p.unrepeatable[kind] = true
		}
	}
	return p
}

// evaluates says whether the program evaluates the template as it is now.
func (p *vmProgram) evaluates(kind string, t *preparedTemplate) bool {
	return p != nil && t != nil && p.kinds[kind] == t
}

// vmRun evaluates the matched constraints of a review in one VM run and
// returns each constraint's violations, by kind and name (without their
// details if the program returns messages only).
// Reads of the review and of data.inventory are recorded in log, when
// set.
func (d *regoDriver) vmRun(ctx context.Context, p *vmProgram, params fjson.Json, inventory ast.Value, matched vmMatched, review *ast.Term, deferred []target.Deferred, cancel topdown.Cancel, log *readLog) (_ map[[2]string]violations, err error) {
	n := 0
	for _, names := range matched {
		n += len(names)
	}
	data := &vmData{params: params, inventory: inventory, matched: matched, log: log,
		kindInputs: make([]vmKindInputs, 0, len(matched)), inputs: make([]vmInput, 0, n)}
	if data.review, err = fromASTDeferred(ctx, review.Value, deferred); err != nil {
		return nil, err
	}
	if root, ok := data.review.(*astObject); ok {
		root.log, root.root, root.at = log, rootReview, -1
	} else {
		log.spoil()
	}
	// The VM requires somewhere to count its instructions.
	_, ctx = vm.WithStatistics(ctx)
	machine := p.vms.Get().(*vm.VM)
	defer func() {
		machine.WithDataNamespace(nil)
		p.vms.Put(machine)
	}()
	res, err := machine.WithDataNamespace(data).Eval(ctx, "eval", vm.EvalOpts{
		Cache:          builtins.Cache{},
		Seed:           rand.Reader,
		Capabilities:   d.capabilities,
		ExternalCancel: cancel,
		PrintHook:      d.printHook,
	})
	if err != nil {
		return nil, err
	}
	out := map[[2]string]violations{}
	width := 3
	if p.messagesOnly {
		width = 4
	}
	set, ok := res.(ast.Set)
	if !ok {
		return nil, fmt.Errorf("the VM returned %T, not a result set", res)
	}
	err = set.Iter(func(bindings *ast.Term) error {
		obj, ok := bindings.Value.(ast.Object)
		if !ok {
			return fmt.Errorf("the VM returned a result of type %T", bindings.Value)
		}
		return obj.Iter(func(_, v *ast.Term) error {
			triples, ok := v.Value.(ast.Set)
			if !ok {
				return fmt.Errorf("the VM returned results of type %T", v.Value)
			}
			return triples.Iter(func(t *ast.Term) error {
				a, ok := t.Value.(*ast.Array)
				if !ok || a.Len() != width {
					return fmt.Errorf("the VM returned a malformed result %v", t)
				}
				kind, ok1 := a.Elem(0).Value.(ast.String)
				name, ok2 := a.Elem(1).Value.(ast.String)
				if !ok1 || !ok2 {
					return fmt.Errorf("the VM returned a malformed result %v", t)
				}
				key := [2]string{string(kind), string(name)}
				vs := out[key]
				if p.messagesOnly {
					vs = append(vs, violation{msg: a.Elem(2), details: a.Elem(3)})
				} else {
					vs.add(a.Elem(2))
				}
				out[key] = vs
				return nil
			})
		})
	})
	return out, err
}

// vmData is the data document of a VM run: the referential data, read in
// place from the store's Rego values as the program asks for them, each
// constraint's input (data.input[kind][name]: the review, read the same
// way, and the constraint's parameters, converted when constraints
// change), and the constraints the review matched (data.matched[kind]:
// their names), which the hook walks. Templates can read no other data
// (data.inventory only), so there is none.
type vmData struct {
	params    fjson.Json
	inventory ast.Value
	matched   vmMatched
	// inventoryVM is inventory as the VM sees it, made on first use; like
	// review, the parts templates read are converted once per run.
	inventoryVM any
	// review is the review for this run; the parts of it templates read
	// are converted once, the rest (a pod's managedFields, its status)
	// never.
	review any
	// log records the run's reads of review and inventory (may be nil).
	log *readLog
	// kindInputs and inputs back the views of data.input the run reads.
	kindInputs []vmKindInputs
	inputs     []vmInput
}

var _ vm.IterableObject = (*vmData)(nil)

func (d *vmData) Get(ctx context.Context, key any) (any, bool, error) {
	switch keyString(key) {
	case "inventory":
		v, err := d.inventoryForVM(ctx)
		return v, err == nil, err
	case "input":
		return vmInputs{d}, true, nil
	case "matched":
		return d.matched, true, nil
	}
	return nil, false, nil
}

func (d *vmData) Iter(ctx context.Context, f func(key, value any) (bool, error)) error {
	// Iterating the data document whole is not recorded read by read.
	d.log.spoil()
	inventory, err := d.inventoryForVM(ctx)
	if err != nil {
		return err
	}
	if stop, err := f(fjson.NewString("input"), vmInputs{d}); stop || err != nil {
		return err
	}
	if stop, err := f(fjson.NewString("inventory"), inventory); stop || err != nil {
		return err
	}
	_, err = f(fjson.NewString("matched"), d.matched)
	return err
}

// vmMatched is data.matched: by kind, the names of the constraints a run
// evaluates, as the VM's strings, made once per constraint (the driver's
// names). It was the run's input, which the VM converted whole on every
// run.
type vmMatched map[string][]fjson.File

var _ vm.IterableObject = vmMatched(nil)

func (m vmMatched) Get(_ context.Context, key any) (any, bool, error) {
	names, ok := m[keyString(key)]
	if !ok {
		return nil, false, nil
	}
	return fjson.NewArray(names, len(names)), true, nil
}

func (m vmMatched) Iter(ctx context.Context, f func(key, value any) (bool, error)) error {
	for _, kind := range slices.Sorted(maps.Keys(m)) {
		v, _, _ := m.Get(ctx, fjson.NewString(kind))
		if stop, err := f(fjson.NewString(kind), v); stop || err != nil {
			return err
		}
	}
	return nil
}

// key names the set: kinds and names, sorted (the engine lists them in no
// particular order, and the hook's results are a set), as the review cache
// keys runs.
func (m vmMatched) key() string {
	var b strings.Builder
	for _, kind := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(kind)
		b.WriteByte(0)
		names := make([]string, len(m[kind]))
		for i, n := range m[kind] {
			names[i] = n.(*fjson.String).Value()
		}
		slices.Sort(names)
		for _, n := range names {
			b.WriteString(n)
			b.WriteByte(1)
		}
		b.WriteByte(0)
	}
	return b.String()
}

func (d *vmData) inventoryForVM(ctx context.Context) (any, error) {
	if d.inventoryVM == nil {
		v, err := fromAST(ctx, d.inventory)
		if err != nil {
			return nil, err
		}
		if root, ok := v.(*astObject); ok {
			root.log, root.root, root.at = d.log, rootInventory, -1
		} else {
			d.log.spoil()
		}
		d.inventoryVM = v
	}
	return d.inventoryVM, nil
}

// vmInputs is data.input: by kind, then by constraint name, the input of
// the constraint, for the constraints that have parameters.
type vmInputs struct{ d *vmData }

var _ vm.IterableObject = vmInputs{}

func (in vmInputs) Get(ctx context.Context, key any) (any, bool, error) {
	byName, ok, err := (&vm.DataOperations{}).Get(ctx, in.d.params, key)
	if !ok || err != nil {
		return nil, false, err
	}
	return in.d.kindInput(byName), true, nil
}

func (in vmInputs) Iter(ctx context.Context, f func(key, value any) (bool, error)) error {
	return (&vm.DataOperations{}).Iter(ctx, in.d.params, func(k, byName any) (bool, error) {
		return f(k, in.d.kindInput(byName))
	})
}

type vmKindInputs struct {
	d      *vmData
	byName any
}

var _ vm.IterableObject = (*vmKindInputs)(nil)

func (in *vmKindInputs) Get(ctx context.Context, key any) (any, bool, error) {
	params, ok, err := (&vm.DataOperations{}).Get(ctx, in.byName, key)
	if !ok || err != nil {
		return nil, false, err
	}
	return in.d.input(params), true, nil
}

func (in *vmKindInputs) Iter(ctx context.Context, f func(key, value any) (bool, error)) error {
	return (&vm.DataOperations{}).Iter(ctx, in.byName, func(k, params any) (bool, error) {
		return f(k, in.d.input(params))
	})
}

// kindInput and input hand out the run's views of data.input from slices
// sized to the constraints it evaluates: one allocation per run, where
// there were two per constraint. (An append that outgrows a slice leaves
// the views already handed out where they are.)
func (d *vmData) kindInput(byName any) *vmKindInputs {
	d.kindInputs = append(d.kindInputs, vmKindInputs{d: d, byName: byName})
	return &d.kindInputs[len(d.kindInputs)-1]
}

func (d *vmData) input(params any) *vmInput {
	d.inputs = append(d.inputs, vmInput{review: d.review, params: params})
	return &d.inputs[len(d.inputs)-1]
}

// vmInput is one constraint's input: {"review": ..., "parameters": ...}.
type vmInput struct{ review, params any }

var _ vm.IterableObject = (*vmInput)(nil)

func (in *vmInput) Get(_ context.Context, key any) (any, bool, error) {
	switch keyString(key) {
	case "parameters":
		return in.params, true, nil
	case "review":
		return in.review, true, nil
	}
	return nil, false, nil
}

func (in *vmInput) Iter(_ context.Context, f func(key, value any) (bool, error)) error {
	if stop, err := f(fjson.NewString("parameters"), in.params); stop || err != nil {
		return err
	}
	_, err := f(fjson.NewString("review"), in.review)
	return err
}

// astObject shows a Rego object to the VM without converting it whole:
// only the parts a template reads are converted, each once per wrapper.
// Deferred parts below it are parsed when read.
type astObject struct {
	obj      ast.Object
	memo     map[string]any
	deferred []target.Deferred
	// log, when set, records what the run read below this object, which
	// is in root, read by the log's read at (-1: it is the root).
	log  *readLog
	root readRoot
	at   int32
}

var _ vm.IterableObject = (*astObject)(nil)

func (o *astObject) Get(ctx context.Context, key any) (any, bool, error) {
	k, ok := key.(*fjson.String)
	if !ok {
		// Objects from JSON have only string keys.
		return nil, false, nil
	}
	return o.child(ctx, k.Value(), nil, nil)
}

// child is the converted value under key (kt and t, the key's term and
// the value's, when the caller has them).
func (o *astObject) child(ctx context.Context, key string, kt, t *ast.Term) (any, bool, error) {
	if x, ok := o.memo[key]; ok {
		return x, true, nil
	}
	var below []target.Deferred
	for _, d := range o.deferred {
		switch {
		case d.Path[0] != key:
		case len(d.Path) == 1:
			o.log.spoil()
			v, err := target.ParseJSON(d.Raw)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", key, err)
			}
			t = ast.NewTerm(v)
		default:
			below = append(below, target.Deferred{Path: d.Path[1:], Raw: d.Raw})
		}
	}
	if kt == nil {
		// The keys templates look up are mostly Kubernetes field names.
		kt = target.StringTerm(key)
	}
	if t == nil {
		if t = o.obj.Get(kt); t == nil {
			o.log.add(read{root: o.root, kind: readValue, parent: o.at, key: kt})
			return nil, false, nil
		}
	}
	x, err := fromASTDeferred(ctx, t.Value, below)
	if err != nil {
		return nil, false, err
	}
	if o.log != nil {
		if child, ok := x.(*astObject); ok {
			child.log, child.root = o.log, o.root
			child.at = o.log.add(read{root: o.root, kind: readObject, parent: o.at, key: kt})
		} else {
			o.log.add(read{root: o.root, kind: readValue, parent: o.at, key: kt, value: t.Value, hash: t.Value.Hash()})
		}
	}
	if o.memo == nil {
		// Not sized to the object: data.inventory.namespace has a key per
		// namespace, and a review reads one or two of them.
		o.memo = map[string]any{}
	}
	o.memo[key] = x
	return x, true, nil
}

func (o *astObject) Iter(ctx context.Context, f func(key, value any) (bool, error)) error {
	keys := o.obj.Keys()
	for _, d := range o.deferred {
		if len(d.Path) == 1 {
			// In key order, as if it had been parsed with the rest.
			k := ast.StringTerm(d.Path[0])
			i, _ := slices.BinarySearchFunc(keys, k, func(a, b *ast.Term) int { return a.Value.Compare(b.Value) })
			keys = slices.Insert(keys, i, k)
		}
	}
	o.log.add(read{root: o.root, kind: readKeys, parent: o.at, keys: keys})
	for _, k := range keys {
		ks, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("object key %v is not a string", k)
		}
		v, _, err := o.child(ctx, string(ks), k, o.obj.Get(k))
		if err != nil {
			return err
		}
		if stop, err := f(fjson.NewString(string(ks)), v); stop || err != nil {
			return err
		}
	}
	return nil
}

// fromAST converts a Rego value for the VM, objects lazily.
func fromAST(ctx context.Context, v ast.Value) (any, error) {
	return fromASTDeferred(ctx, v, nil)
}

// fromASTDeferred is fromAST for a value with deferred parts below it.
func fromASTDeferred(ctx context.Context, v ast.Value, deferred []target.Deferred) (any, error) {
	if obj, ok := v.(ast.Object); ok {
		return &astObject{obj: obj, deferred: deferred}, nil
	}
	return (&vm.DataOperations{}).FromInterface(ctx, v)
}

func keyString(key any) string {
	if s, ok := key.(*fjson.String); ok {
		return s.Value()
	}
	return ""
}
