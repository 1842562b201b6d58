package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/statcan/daaas-guard/pkg/expansion"
	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/match"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/target"
)

// Options configure a run.
type Options struct {
	// Run selects tests and cases by name, with gator's --run syntax:
	// "REGEX" selects tests or cases whose name matches; "TEST//CASE"
	// selects cases matching CASE in tests matching TEST.
	Run string
	// Parallel is how many suites run at once; 0 means one per CPU.
	Parallel int
	// Strict turns warnings about unknown suite fields into errors.
	Strict bool
	// Trace records an evaluation trace for every case.
	Trace bool
	// Engine adds options to every engine the runner creates (for example
	// another Rego driver).
	Engine []policy.Option
}

// Report is the outcome of a run.
type Report struct {
	Suites []*SuiteResult
	// NotSuites counts YAML files that were looked at and are not suites.
	NotSuites int
}

// SuiteResult is the outcome of one suite file.
type SuiteResult struct {
	Path     string
	Skipped  bool
	Err      error // the suite could not be read
	Warnings []string
	Tests    []*TestResult
	Duration time.Duration
}

// Where locates a test, or a case of it when c is not nil, for messages:
// `suite.yaml:12: test "name" case "name"`.
func Where(suitePath string, t *TestResult, c *CaseResult) string {
	if c != nil {
		return fmt.Sprintf("%s:%d: test %q case %q", suitePath, c.Line, t.Name, c.Name)
	}
	return fmt.Sprintf("%s:%d: test %q", suitePath, t.Line, t.Name)
}

// TestResult is the outcome of one test. Err and the cases' Err hold the
// cause only; Where says where it happened.
type TestResult struct {
	Name     string
	Line     int
	Skipped  bool
	Err      error // the template or constraint could not be used
	Cases    []*CaseResult
	Duration time.Duration
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name     string
	Line     int
	Skipped  bool
	Err      error
	Results  []policy.Result
	Print    string // output of Rego print() calls
	Trace    string
	Duration time.Duration
}

// Status is the verdict on a suite, test or case.
type Status string

// Verdicts. Error means the input could not be used; Fail means an
// assertion did not hold.
const (
	Pass  Status = "pass"
	Fail  Status = "fail"
	Error Status = "error"
	Skip  Status = "skip"
)

// StatusOf classifies an error.
func StatusOf(err error) Status {
	switch {
	case err == nil:
		return Pass
	case IsInputError(err):
		return Error
	default:
		return Fail
	}
}

// IsInputError reports whether err is about unusable input rather than a
// failed assertion.
func IsInputError(err error) bool {
	for _, target := range []error{ErrInput, policy.ErrTemplate, policy.ErrConstraint, policy.ErrData,
		policy.ErrReview, manifest.ErrInvalid} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Status of a case.
func (c *CaseResult) Status() Status {
	if c.Skipped {
		return Skip
	}
	return StatusOf(c.Err)
}

// Counts tallies case verdicts over the report; a test or suite that
// failed, or passed, as a whole (an invalid-constraint test has no cases)
// counts once.
func (r *Report) Counts() map[Status]int {
	n := map[Status]int{}
	for _, s := range r.Suites {
		switch {
		case s.Skipped:
			n[Skip]++
			continue
		case s.Err != nil:
			n[StatusOf(s.Err)]++
			continue
		}
		for _, t := range s.Tests {
			switch {
			case t.Skipped:
				n[Skip]++
			case t.Err != nil || len(t.Cases) == 0:
				n[StatusOf(t.Err)]++
			default:
				for _, c := range t.Cases {
					n[c.Status()]++
				}
			}
		}
	}
	return n
}

// ExitCode is 0 when everything passed, 1 when an assertion failed, and 2
// when some input could not be used (or no suite was found).
func (r *Report) ExitCode() int {
	n := r.Counts()
	switch {
	case n[Error] > 0 || len(r.Suites) == 0:
		return 2
	case n[Fail] > 0:
		return 1
	default:
		return 0
	}
}

// Runner runs suites.
type Runner struct {
	opts   Options
	filter filter
}

// NewRunner checks the options.
func NewRunner(opts Options) (*Runner, error) {
	f, err := newFilter(opts.Run)
	if err != nil {
		return nil, err
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.GOMAXPROCS(0)
	}
	return &Runner{opts: opts, filter: f}, nil
}

// Run loads and runs the suites found under paths, suites in parallel.
func (r *Runner) Run(ctx context.Context, paths []string) (*Report, error) {
	files, err := Find(paths)
	if err != nil {
		return nil, err
	}
	type slot struct {
		res      *SuiteResult
		notSuite bool
	}
	slots := make([]slot, len(files))
	sem := make(chan struct{}, r.opts.Parallel)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := Load(f)
			switch {
			case err != nil:
				slots[i].res = &SuiteResult{Path: f, Err: err}
			case s == nil:
				slots[i].notSuite = true
			default:
				slots[i].res = r.RunSuite(ctx, s)
			}
		}()
	}
	wg.Wait()
	rep := &Report{}
	for _, s := range slots {
		if s.notSuite {
			rep.NotSuites++
			continue
		}
		rep.Suites = append(rep.Suites, s.res)
	}
	return rep, nil
}

// RunSuite runs one suite.
func (r *Runner) RunSuite(ctx context.Context, s *Suite) *SuiteResult {
	start := time.Now()
	res := &SuiteResult{Path: s.Path, Skipped: s.Skip, Warnings: s.Warnings}
	defer func() { res.Duration = time.Since(start) }()
	if s.Skip {
		return res
	}
	if r.opts.Strict && len(s.Warnings) > 0 {
		res.Err = &InputError{File: s.Path, Msg: "strict mode: " + strings.Join(s.Warnings, "; ")}
		return res
	}
	files := &fileCache{dir: filepath.Dir(s.Path), suite: s.Path}
	for _, t := range s.Tests {
		res.Tests = append(res.Tests, r.runTest(ctx, files, t))
	}
	return res
}

func (r *Runner) runTest(ctx context.Context, files *fileCache, t *Test) *TestResult {
	start := time.Now()
	res := &TestResult{Name: t.Name, Line: t.Line}
	defer func() { res.Duration = time.Since(start) }()
	if t.Skip || !r.filter.selectsTest(t) {
		res.Skipped = true
		return res
	}

	var expanded *expansion.Set
	if t.Expansion != "" {
		set, err := files.expansions(t.Expansion)
		if err != nil {
			res.Err = err
			return res
		}
		expanded = set
	}
	var print bytes.Buffer
	opts := append([]policy.Option{policy.WithEnforcementPoints(policy.EnforcementPointGator), policy.WithPrintOutput(&print)}, r.opts.Engine...)
	engine, err := policy.New(opts...)
	if err != nil {
		res.Err = err
		return res
	}
	if err := files.addTemplate(ctx, engine, t.Template); err != nil {
		res.Err = err
		return res
	}
	cerr := files.addConstraint(ctx, engine, t.Constraint)
	if t.Invalid {
		switch {
		case cerr == nil:
			res.Err = errors.New("the test expects the constraint to break its schema, but it is valid")
		case errors.Is(cerr, policy.ErrSchema):
			// expected
		default:
			res.Err = fmt.Errorf("the test expects a schema error, got: %v", cerr)
		}
		return res
	}
	if cerr != nil {
		res.Err = cerr
		return res
	}
	for _, c := range t.Cases {
		if c.Skip || !r.filter.selectsCase(t.Name, c.Name) {
			res.Cases = append(res.Cases, &CaseResult{Name: c.Name, Line: c.Line, Skipped: true})
			continue
		}
		print.Reset()
		cr := r.runCase(ctx, files, engine, expanded, t, c)
		cr.Print = print.String()
		res.Cases = append(res.Cases, cr)
	}
	return res
}

func (r *Runner) runCase(ctx context.Context, files *fileCache, engine *policy.Engine, set *expansion.Set, t *Test, c *Case) *CaseResult {
	start := time.Now()
	res := &CaseResult{Name: c.Name, Line: c.Line}
	defer func() { res.Duration = time.Since(start) }()
	switch {
	case c.Object == "":
		res.Err = &InputError{Msg: "object is required"}
		return res
	case len(c.Assertions) == 0:
		res.Err = &InputError{Msg: "assertions must not be empty"}
		return res
	}
	resp, err := r.review(ctx, files, engine, set, c)
	if err != nil {
		res.Err = err
		return res
	}
	res.Results = resp.Results
	res.Trace = resp.Trace
	for i, a := range c.Assertions {
		if err := a.check(resp.Results); err != nil {
			res.Err = fmt.Errorf("assertion %d: %w", i+1, err)
			return res
		}
	}
	return res
}

// review loads the case's inventory and object and reviews the object.
// The inventory is removed again afterwards, so cases stay independent.
func (r *Runner) review(ctx context.Context, files *fileCache, engine *policy.Engine, set *expansion.Set, c *Case) (*policy.Response, error) {
	docs, err := files.objects(c.Object)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, &InputError{File: files.rel(c.Object), Msg: fmt.Sprintf("must hold exactly one object, found %d", len(docs))}
	}
	var added []*unstructured.Unstructured
	defer func() {
		for _, u := range added {
			_ = engine.RemoveData(ctx, u)
		}
	}()
	for _, inv := range c.Inventory {
		objs, err := files.objects(inv)
		if err != nil {
			return nil, err
		}
		for _, d := range objs {
			if err := engine.AddData(ctx, d.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Pos(), err)
			}
			added = append(added, d.Object)
		}
	}
	in, err := reviewInput(docs[0])
	if err != nil {
		return nil, err
	}
	opts := []policy.ReviewOption{policy.AtEnforcementPoint(policy.EnforcementPointGator), policy.Traced(r.opts.Trace)}
	var resp *policy.Response
	if obj, ok := in.(*target.Object); ok {
		// As in gator, only plain objects are expanded, not AdmissionReviews.
		resp, err = engine.ReviewExpanded(ctx, obj, set, opts...)
	} else {
		resp, err = engine.Review(ctx, in, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", docs[0].Pos(), err)
	}
	return resp, nil
}

var admissionReviewGK = schema.GroupKind{Group: "admission.k8s.io", Kind: "AdmissionReview"}

// reviewInput turns a fixture into what the engine reviews: an
// AdmissionReview fixture is reviewed as its request (so tests can set
// operation, userInfo and oldObject), anything else as a stored object.
func reviewInput(d *manifest.Document) (interface{}, error) {
	u := d.Object
	if u.GroupVersionKind().GroupKind() != admissionReviewGK {
		return &target.Object{Object: u, Source: match.SourceOriginal}, nil
	}
	var ar admissionv1.AdmissionReview
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &ar, true); err != nil {
		return nil, &InputError{File: d.File, Line: d.Line, Msg: "invalid AdmissionReview: " + err.Error()}
	}
	switch {
	case ar.Request == nil:
		return nil, &InputError{File: d.File, Line: d.Line, Msg: "AdmissionReview has no request"}
	case ar.Request.Object.Raw == nil && ar.Request.OldObject.Raw == nil:
		return nil, &InputError{File: d.File, Line: d.Line, Msg: "AdmissionReview request has neither object nor oldObject"}
	}
	return &target.Request{AdmissionRequest: ar.Request, Source: match.SourceOriginal}, nil
}

// check applies an assertion to a case's results.
func (a *Assertion) check(results []policy.Result) error {
	var re *regexp.Regexp
	if a.Message != nil {
		var err error
		if re, err = regexp.Compile(*a.Message); err != nil {
			return &InputError{Msg: fmt.Sprintf("message %q is not a valid regular expression: %v", *a.Message, err)}
		}
	}
	got := 0
	var msgs []string
	for _, res := range results {
		msgs = append(msgs, res.Message)
		if re == nil || re.MatchString(res.Message) {
			got++
		}
	}
	var want string
	ok := true
	switch {
	case a.Violations.Exact >= 0:
		want = fmt.Sprintf("exactly %d", a.Violations.Exact)
		ok = got == a.Violations.Exact
	case a.Violations.Raw == "no":
		want, ok = "none", got == 0
	default:
		want, ok = "at least 1", got > 0
	}
	if ok {
		return nil
	}
	what := "violations"
	if a.Message != nil {
		what = fmt.Sprintf("violations matching %q", *a.Message)
	}
	return &AssertionError{Msg: fmt.Sprintf("got %d %s, want %s", got, what, want), Messages: msgs}
}

// AssertionError is a failed assertion, with every message the review
// produced so the author can see what did happen.
type AssertionError struct {
	Msg      string
	Messages []string
}

func (e *AssertionError) Error() string {
	if len(e.Messages) == 0 {
		return e.Msg + " (no violations)"
	}
	return fmt.Sprintf("%s; messages: %q", e.Msg, e.Messages)
}

// fileCache resolves the files a suite names, relative to the suite, and
// reads each once.
type fileCache struct {
	dir   string
	suite string
	mu    sync.Mutex
	docs  map[string][]*manifest.Document
	errs  map[string]error
}

func (f *fileCache) rel(p string) string { return filepath.Join(f.dir, filepath.FromSlash(p)) }

func (f *fileCache) objects(p string) ([]*manifest.Document, error) {
	if p == "" {
		return nil, &InputError{Msg: "a file path is empty"}
	}
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") {
		return nil, &InputError{Msg: fmt.Sprintf("path %q must be relative to the suite", p)}
	}
	full := f.rel(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.docs == nil {
		f.docs, f.errs = map[string][]*manifest.Document{}, map[string]error{}
	}
	if d, ok := f.docs[full]; ok {
		return d, f.errs[full]
	}
	docs, err := manifest.ReadFile(full, manifest.Options{KeepLists: true})
	if err != nil {
		var me *manifest.Error
		if !errors.As(err, &me) {
			err = &InputError{File: full, Msg: describeFSError(err)}
		}
	} else if len(docs) == 0 {
		err = &InputError{File: full, Msg: "holds no objects"}
	}
	f.docs[full], f.errs[full] = docs, err
	return docs, err
}

func (f *fileCache) one(p, what string) (*manifest.Document, error) {
	if p == "" {
		return nil, &InputError{Msg: what + " is required"}
	}
	docs, err := f.objects(p)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, &InputError{File: f.rel(p), Msg: fmt.Sprintf("must hold exactly one %s, found %d objects", what, len(docs))}
	}
	return docs[0], nil
}

// expansions reads a file of ExpansionTemplates.
func (f *fileCache) expansions(p string) (*expansion.Set, error) {
	docs, err := f.objects(p)
	if err != nil {
		return nil, err
	}
	var ts []*expansion.Template
	for _, d := range docs {
		if !expansion.IsTemplate(d.Object) {
			return nil, &InputError{File: d.File, Line: d.Line, Msg: fmt.Sprintf("expected an ExpansionTemplate (%s), found %s %s",
				expansion.Group, d.Object.GetAPIVersion(), d.Object.GetKind())}
		}
		t, err := expansion.FromObject(d.Object)
		if err != nil {
			return nil, &InputError{File: d.File, Line: d.Line, Msg: err.Error()}
		}
		ts = append(ts, t)
	}
	return expansion.NewSet(ts...), nil
}

func (f *fileCache) addTemplate(ctx context.Context, e *policy.Engine, p string) error {
	d, err := f.one(p, "template")
	if err != nil {
		return err
	}
	t, err := policy.NewTemplate(d.Object, d)
	if err != nil {
		return err
	}
	return e.AddTemplate(ctx, t)
}

func (f *fileCache) addConstraint(ctx context.Context, e *policy.Engine, p string) error {
	d, err := f.one(p, "constraint")
	if err != nil {
		return err
	}
	if !policy.IsConstraint(d.Object) {
		return &InputError{File: d.File, Line: d.Line, Msg: fmt.Sprintf("expected a constraint (%s), found %s %s",
			policy.ConstraintGroup, d.Object.GetAPIVersion(), d.Object.GetKind())}
	}
	return e.AddConstraint(ctx, d.Object, d)
}
