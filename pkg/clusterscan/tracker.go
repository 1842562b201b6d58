package clusterscan

import (
	"sync"
	"time"
)

// tracker remembers what this process did but its caches may not show
// yet: Jobs it created (so the concurrency bound holds before the Job
// cache catches up) and nodes whose Job of a run it has already read (so a
// deleted Job is not re-created before the NodeBenchmark cache catches
// up). After a restart the caches are fresh, so losing it is harmless.
type tracker struct {
	mu        sync.Mutex
	launched  map[string]launch // Job name
	attempted map[string]string // node -> run
}

type launch struct {
	node string
	at   time.Time
}

// hunterKey stands for the cluster in attempted: kube-hunter has one Job
// per run, not one per node.
const hunterKey = "\x00kube-hunter"

// launchGrace is how long a created Job counts as running without being
// seen in the cache.
const launchGrace = time.Minute

func newTracker() *tracker {
	return &tracker{launched: map[string]launch{}, attempted: map[string]string{}}
}

func (t *tracker) launch(job, node string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.launched[job] = launch{node: node, at: now}
}

// unseen returns the Jobs created within launchGrace that are not in seen,
// and forgets older ones.
func (t *tracker) unseen(seen map[string]bool, now time.Time) map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for name, l := range t.launched {
		switch {
		case now.Sub(l.at) > launchGrace:
			delete(t.launched, name)
		case !seen[name]:
			out[name] = l.node
		}
	}
	return out
}

// done records that the Job for node in run has been read.
func (t *tracker) done(job, node, run string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.launched, job)
	if node != "" {
		t.attempted[node] = run
	}
}

func (t *tracker) attemptedIn(node, run string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attempted[node] == run
}
