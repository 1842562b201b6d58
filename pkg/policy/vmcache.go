package policy

import (
	"slices"
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

// read is one thing a run read. Reads are kept in the order the run made
// them, so an object's own read comes before the reads below it, which
// name it by its index.
type read struct {
	root readRoot
	kind readKind
	// parent is the index of the readObject of the object read from, -1
	// for the root document (for readKeys, the object iterated).
	parent int32
	key    *ast.Term   // readValue, readObject
	value  ast.Value   // readValue
	hash   int         // readValue: value's, which is a cheap first test
	keys   []*ast.Term // readKeys
}

// readLog records the reads of one VM run. A nil log records nothing.
type readLog struct {
	reads []read
	// uncacheable is set when the run read something the log cannot
	// check again cheaply: a deferred part of the review, the data
	// document as a whole.
	uncacheable bool
}

// add records r and returns its index (-1 for a nil log).
func (l *readLog) add(r read) int32 {
	if l == nil {
		return -1
	}
	l.reads = append(l.reads, r)
	return int32(len(l.reads) - 1)
}

func (l *readLog) spoil() {
	if l != nil {
		l.uncacheable = true
	}
}

// cachedRun is one VM run's reads and results.
type cachedRun struct {
	reads   []read
	results map[[2]string]violations
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

// checker checks runs against one review, reusing its buffers.
type checker struct {
	review, inventory ast.Value
	deferred          []target.Deferred
	// objects holds, by read index, the object each readObject found;
	// values the value each readValue found, to be compared whole.
	objects []ast.Object
	values  []ast.Value
	// depth and under hold, for the review's objects while it has
	// deferred parts, how deep each is and which deferred paths (a bit
	// each) run through it.
	depth []int32
	under []uint64
}

// repeats reports whether a run that made these reads would make them
// again on the checker's review (with its deferred parts) and inventory.
func (c *checker) repeats(r *cachedRun) bool {
	n := len(r.reads)
	c.objects = slices.Grow(c.objects[:0], n)[:n]
	c.values = slices.Grow(c.values[:0], n)[:n]
	clear(c.values)
	tracking := len(c.deferred) > 0 && len(c.deferred) <= 64
	if tracking {
		c.depth = slices.Grow(c.depth[:0], n)[:n]
		c.under = slices.Grow(c.under[:0], n)[:n]
	}
	for i := range r.reads {
		rd := &r.reads[i]
		var obj ast.Object
		var depth int32
		under := uint64(1)<<len(c.deferred) - 1 // every path runs through the root
		switch {
		case rd.parent >= 0:
			obj = c.objects[rd.parent]
			if tracking && rd.root == rootReview {
				depth, under = c.depth[rd.parent], c.under[rd.parent]
			}
		case rd.root == rootReview:
			obj, _ = c.review.(ast.Object)
		default:
			obj, _ = c.inventory.(ast.Object)
		}
		if obj == nil {
			return false
		}
		if rd.root == rootReview && len(c.deferred) > 0 {
			if !tracking {
				return false
			}
			// The run read nothing deferred, or it would not have been
			// kept; this review's deferred parts are not in its value,
			// so a read of one (or of the keys or the whole of an object
			// holding one) cannot be checked here. That an object on
			// the way to one exists is still known.
			if rd.kind == readKeys {
				if under != 0 {
					return false
				}
			} else {
				under = c.through(under, depth, rd.key)
				if under != 0 && (rd.kind != readObject || c.ends(under, depth+1)) {
					return false
				}
			}
		}
		if rd.kind == readKeys {
			if obj.Len() != len(rd.keys) {
				return false
			}
			for _, k := range rd.keys {
				if obj.Get(k) == nil {
					return false
				}
			}
			continue
		}
		var v ast.Value
		if t := obj.Get(rd.key); t != nil {
			v = t.Value
		}
		switch rd.kind {
		case readValue:
			// Rego values keep their hashes (objects and arrays update
			// theirs as they are built): values are compared whole only
			// once every read agrees on them, so that a run that differs
			// anywhere costs no walk.
			if (v == nil) != (rd.value == nil) || (v != nil && v.Hash() != rd.hash) {
				return false
			}
			c.values[i] = v
		case readObject:
			o, ok := v.(ast.Object)
			if !ok {
				return false
			}
			c.objects[i] = o
			if tracking {
				c.depth[i], c.under[i] = depth+1, under
			}
		}
	}
	for i := range r.reads {
		if v := c.values[i]; v != nil && !sameJSON(v, r.reads[i].value) {
			return false
		}
	}
	return true
}

// through narrows under, the deferred paths through an object at depth,
// to those that go on through its key.
func (c *checker) through(under uint64, depth int32, key *ast.Term) uint64 {
	k, _ := key.Value.(ast.String)
	for i, d := range c.deferred {
		if under&(1<<i) != 0 && (int(depth) >= len(d.Path) || d.Path[depth] != string(k)) {
			under &^= 1 << i
		}
	}
	return under
}

// ends reports whether one of the deferred paths in under ends at depth.
func (c *checker) ends(under uint64, depth int32) bool {
	for i, d := range c.deferred {
		if under&(1<<i) != 0 && len(d.Path) == int(depth) {
			return true
		}
	}
	return false
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
