package serving

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Processors says how a server that computes on every request shares Go's
// processors (GOMAXPROCS) between that computation and its network.
//
// Go's scheduler asks the network poller for ready connections only when
// a processor has nothing else to run, or from its monitor thread at most
// every 10 ms; goroutines the monitor wakes then wait in the global run
// queue, which a busy processor looks at once every 61 scheduling rounds.
// When every processor evaluates and more requests wait for a turn, no
// processor is ever idle: requests that have arrived were not read for
// about 5 ms on average and up to 70 ms, and overtook one another. One
// processor more than evaluation slots stays mostly parked in the poller,
// so a request is read as soon as it arrives and waits for its turn in
// arrival order. An idle processor is not free, though: Go wakes threads
// to look for work whenever one is, 10-25% more CPU per request at
// light load. So the processor is added only while requests queue,
// and removed when they have not for a while (docs/performance.md).
type Processors struct {
	// Network is the number of processors added while requests queue.
	// 0 leaves GOMAXPROCS alone.
	Network int
	// Linger is how long without a queued request before they are
	// removed again.
	Linger time.Duration
}

// DefaultProcessors is what the webhook uses unless told otherwise.
var DefaultProcessors = Processors{Network: 1, Linger: time.Second}

// Scaler adds and removes the network processors. Its zero value and a
// nil Scaler do nothing.
type Scaler struct {
	compute, network int
	linger           time.Duration
	log              logr.Logger

	added      atomic.Bool
	lastQueued atomic.Int64 // unix nanoseconds
	mu         sync.Mutex   // serialises changes of GOMAXPROCS
}

// Scaler returns the Scaler for p. Computation gets GOMAXPROCS as the
// runtime set it (the container's CPU limit, or the machine's CPUs).
// GOMAXPROCS in the environment wins: then nothing is ever added.
func (p Processors) Scaler(log logr.Logger) *Scaler {
	s := &Scaler{compute: runtime.GOMAXPROCS(0), linger: p.Linger, log: log}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set && p.Network > 0 {
		s.network = p.Network
	}
	if s.linger <= 0 {
		s.linger = DefaultProcessors.Linger
	}
	return s
}

// Compute is the number of processors for computation: the evaluation
// slots.
func (s *Scaler) Compute() int { return s.compute }

// Queued says a request is waiting for an evaluation slot. It is cheap
// once the processors are added.
func (s *Scaler) Queued() {
	if s == nil || s.network == 0 {
		return
	}
	s.lastQueued.Store(time.Now().UnixNano())
	if s.added.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.added.Load() {
		runtime.GOMAXPROCS(s.compute + s.network)
		s.added.Store(true)
		s.log.V(1).Info("requests queue: processors added for the network", "gomaxprocs", s.compute+s.network)
	}
}

// Start removes the added processors once no request has queued for
// Linger, until ctx ends (a controller-runtime Runnable).
func (s *Scaler) Start(ctx context.Context) error {
	if s == nil || s.network == 0 {
		return nil
	}
	tick := time.NewTicker(s.linger / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.shrink(time.Now())
		}
	}
}

// NeedLeaderElection is false: every replica tunes its own processors.
func (s *Scaler) NeedLeaderElection() bool { return false }

// shrink removes the added processors if no request queued since
// now-Linger.
func (s *Scaler) shrink(now time.Time) {
	if !s.added.Load() || now.UnixNano()-s.lastQueued.Load() < int64(s.linger) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.added.Load() && now.UnixNano()-s.lastQueued.Load() >= int64(s.linger) {
		// Back to the runtime's own setting, which follows the
		// container's CPU limit (setting GOMAXPROCS stops that).
		runtime.SetDefaultGOMAXPROCS()
		s.added.Store(false)
		s.log.V(1).Info("requests no longer queue: processors removed", "gomaxprocs", runtime.GOMAXPROCS(0))
	}
}
