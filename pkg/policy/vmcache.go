package policy

import (
	"slices"
	"strings"
	"sync"

	fjson "github.com/open-policy-agent/eopa/pkg/json"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/statcan/daaas-guard/pkg/target"
)

// A VM run reads the review and data.inventory only through astObject, so
// what it read can be written down as it reads. Given the same program,
// the same parameters, the same matched constraints and, at every path it
// read, the same value, a run is bound to repeat itself: its templates
// are deterministic (runs that call a builtin which is not, or that
// print, are never kept). The review cache keeps the last runs' reads and
// results and answers a review that agrees with one of them at every path
// it read, without running the program.
//
// That is what a burst of pods made from one template looks like: a
// Deployment's or a Job's replicas differ in their names, which no
// template of the platform's profile reads. A review that differs at
// any path a run read (an image, a label that was iterated over, an
// inventory object a template looked up) is evaluated.

// readRoot says which document a read was of.
type readRoot uint8

const (
	rootReview readRoot = iota
	rootInventory
)

// readKind says what a read saw at its path.
type readKind uint8

const (
	// readValue: the value at the path (nil: nothing there).
	readValue readKind = iota
	// readObject: an object, whose own reads are recorded below it.
	readObject
	// readKeys: the keys of the object at the path (it was iterated).
	readKeys
)

type read struct {
	root  readRoot
	kind  readKind
	path  []string
	value ast.Value   // readValue
	keys  []*ast.Term // readKeys
}

// readLog records the reads of one VM run. A nil log records nothing.
type readLog struct {
	reads []read
	// uncacheable is set when the run read something the log cannot
	// check again cheaply: a deferred part of the review, the data
	// document as a whole.
	uncacheable bool
}

func (l *readLog) add(r read) {
	if l != nil {
		l.reads = append(l.reads, r)
	}
}

func (l *readLog) spoil() {
	if l != nil {
		l.uncacheable = true
	}
}

// childPath is path with key appended, sharing nothing with path.
func childPath(path []string, key string) []string {
	out := make([]string, len(path)+1)
	copy(out, path)
	out[len(path)] = key
	return out
}

// cachedRun is one VM run's reads and results.
type cachedRun struct {
	reads   []read
	results map[[2]string][]*ast.Term
}

// reviewCache holds recent VM runs by program, parameters and matched
// constraints, the least recently used dropped first. It is emptied when
// the program or the parameters change.
type reviewCache struct {
	mu     sync.Mutex
	max    int
	size   int
	prog   *vmProgram
	params *fjson.Json
	// runs holds, by matched constraints, the most recently used runs
	// first.
	runs map[string][]*cachedRun
	// order is the keys of runs, the most recently used last.
	order []string
}

// perKey bounds the runs kept for one set of matched constraints, and so
// the runs a review that matches none of them is checked against. Most
// pods of a cluster match the same constraints, so it is what bounds the
// pod templates answered at once.
const perKey = 16

func newReviewCache(max int) *reviewCache {
	if max <= 0 {
		return nil
	}
	return &reviewCache{max: max, runs: map[string][]*cachedRun{}}
}

// candidates returns the runs kept for key under prog and params.
func (c *reviewCache) candidates(prog *vmProgram, params *fjson.Json, key string) []*cachedRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prog != prog || c.params != params {
		return nil
	}
	return c.runs[key]
}

// used marks run, kept under key, as just used.
func (c *reviewCache) used(key string, run *cachedRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	runs := c.runs[key]
	if i := slices.Index(runs, run); i > 0 {
		// A new slice: candidates' callers may be reading the old one.
		c.runs[key] = slices.Concat(runs[i:i+1], runs[:i], runs[i+1:])
	}
	c.touch(key)
}

// touch moves key to the end of order.
func (c *reviewCache) touch(key string) {
	if i := slices.Index(c.order, key); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	c.order = append(c.order, key)
}

// add keeps a run, dropping the least recently used when full.
func (c *reviewCache) add(prog *vmProgram, params *fjson.Json, key string, run *cachedRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prog != prog || c.params != params {
		c.prog, c.params = prog, params
		c.runs, c.order, c.size = map[string][]*cachedRun{}, nil, 0
	}
	old := c.runs[key]
	// Within the cache's size, so that the key just used stays.
	limit := min(perKey, c.max)
	runs := make([]*cachedRun, 0, min(len(old)+1, limit))
	runs = append(runs, run)
	runs = append(runs, old[:min(len(old), limit-1)]...)
	c.size += len(runs) - len(old)
	c.runs[key] = runs
	c.touch(key)
	for c.size > c.max {
		oldest := c.order[0]
		c.order = c.order[1:]
		c.size -= len(c.runs[oldest])
		delete(c.runs, oldest)
	}
}

// matchedKey names a set of matched constraints: kinds and names, sorted
// (the hook's input lists them in no particular order, and its results
// are a set).
func matchedKey(matched ast.Object) string {
	var b strings.Builder
	for _, k := range matched.Keys() {
		b.WriteString(string(k.Value.(ast.String)))
		b.WriteByte(0)
		var names []string
		if arr, ok := matched.Get(k).Value.(*ast.Array); ok {
			arr.Foreach(func(n *ast.Term) { names = append(names, string(n.Value.(ast.String))) })
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

// repeats reports whether a run that made these reads would make them
// again on review (with its deferred parts) and inventory.
func (r *cachedRun) repeats(review ast.Value, deferred []target.Deferred, inventory ast.Value) bool {
	for i := range r.reads {
		rd := &r.reads[i]
		doc := inventory
		if rd.root == rootReview {
			doc = review
			if touchesDeferred(rd, deferred) {
				return false
			}
		}
		v := lookup(doc, rd.path)
		switch rd.kind {
		case readValue:
			if (v == nil) != (rd.value == nil) || (v != nil && !sameJSON(v, rd.value)) {
				return false
			}
		case readObject:
			if _, ok := v.(ast.Object); !ok {
				return false
			}
		case readKeys:
			obj, ok := v.(ast.Object)
			if !ok || obj.Len() != len(rd.keys) {
				return false
			}
			for _, k := range rd.keys {
				if obj.Get(k) == nil {
					return false
				}
			}
		}
	}
	return true
}

// touchesDeferred reports whether checking rd would need a part of the
// review that is deferred (left raw, not in the review's value). The
// run that made rd read nothing deferred, or it would not have been kept.
func touchesDeferred(rd *read, deferred []target.Deferred) bool {
	for _, d := range deferred {
		if prefixOf(d.Path, rd.path) {
			// rd is of the deferred part or below it.
			return true
		}
		// A value or the keys of an object that holds the deferred part
		// would be seen without it; that the object exists is still
		// known.
		if rd.kind != readObject && prefixOf(rd.path, d.Path) {
			return true
		}
	}
	return false
}

func prefixOf(prefix, path []string) bool {
	if len(prefix) > len(path) {
		return false
	}
	for i := range prefix {
		if prefix[i] != path[i] {
			return false
		}
	}
	return true
}

// lookup is the value at path below v, through objects only (nil: none).
func lookup(v ast.Value, path []string) ast.Value {
	for _, key := range path {
		obj, ok := v.(ast.Object)
		if !ok {
			return nil
		}
		t := obj.Get(ast.InternedTerm(key))
		if t == nil {
			return nil
		}
		v = t.Value
	}
	return v
}

// sameJSON is equality as a template could tell: unlike Rego's own, the
// numbers 1 and 1.0 differ (sprintf writes them differently).
func sameJSON(a, b ast.Value) bool {
	switch a := a.(type) {
	case ast.Number:
		b, ok := b.(ast.Number)
		return ok && a == b
	case ast.String:
		b, ok := b.(ast.String)
		return ok && a == b
	case ast.Boolean:
		b, ok := b.(ast.Boolean)
		return ok && a == b
	case ast.Null:
		_, ok := b.(ast.Null)
		return ok
	case *ast.Array:
		b, ok := b.(*ast.Array)
		if !ok || a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !sameJSON(a.Elem(i).Value, b.Elem(i).Value) {
				return false
			}
		}
		return true
	case ast.Object:
		b, ok := b.(ast.Object)
		if !ok || a.Len() != b.Len() {
			return false
		}
		same := true
		a.Foreach(func(k, v *ast.Term) {
			if !same {
				return
			}
			w := b.Get(k)
			same = w != nil && sameJSON(v.Value, w.Value)
		})
		return same
	}
	// Sets and other values do not come from JSON.
	return false
}
