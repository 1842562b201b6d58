package scan

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

type state int

const (
	pending  state = iota // queued
	running               // being scanned
	writing               // scanned, ImageScan being written
	done                  // verdict written (or known from the cluster)
	deleting              // ImageScan being deleted (retention)
)

// entry is what the scheduler knows about one digest.
type entry struct {
	state state
	job   Job
	// late collects tags asked for while the verdict was being written.
	late []string
	// For done entries: the database the verdict was made with (zero for
	// ingested reports) and when it falls due for a rescan.
	db  time.Time
	due time.Time
	// For deleting entries: the entry held (nil if none), and whether a
	// scan was asked for meanwhile.
	saved *entry
	again bool
}

// queue holds every digest's entry under one lock, so that asking for a
// scan and finishing one never race into a second scan of the same
// digest. Pending jobs leave in priority order, FIFO within a priority.
// Only running jobs count against the concurrency bound (the number of
// workers calling next): finished scans hold no slot, unlike scan Jobs
// kept until a TTL (aquasecurity/trivy-operator#2793).
type queue struct {
	mu      sync.Mutex
	entries map[string]*entry
	fifo    [numPriorities][]string // may hold stale digests, skipped on pop
	npend   int
	nrun    int
	nwrite  int
	wake    chan struct{}
}

func newQueue() *queue {
	return &queue{entries: map[string]*entry{}, wake: make(chan struct{}, 1)}
}

// outcome of add.
type outcome int

const (
	queued outcome = iota // a new job
	merged                // into a job pending, running or being written
	fresh                 // the digest has a current verdict
)

// add queues j unless its digest is pending, running or being written,
// in which case it merges tags, pull secrets and priority into that job,
// or has a verdict that is current at now for database db.
func (q *queue) add(j Job, now, db time.Time) outcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[j.Digest]
	if e != nil {
		switch e.state {
		case pending:
			old := e.job.Priority
			merge(&e.job, &j)
			if e.job.Priority > old {
				q.fifo[e.job.Priority] = append(q.fifo[e.job.Priority], j.Digest)
			}
			return merged
		case running:
			merge(&e.job, &j)
			return merged
		case writing:
			for _, t := range j.Tags {
				if !slices.Contains(e.job.Tags, t) && !slices.Contains(e.late, t) {
					e.late = append(e.late, t)
				}
			}
			return merged
		case deleting:
			merge(&e.job, &j)
			e.again = true
			return merged
		case done:
			if current(e, now, db) {
				return fresh
			}
		}
	}
	nj := j
	nj.Tags = slices.Clone(j.Tags)
	nj.PullSecrets = slices.Clone(j.PullSecrets)
	if e != nil && e.state == done && nj.Repository == "" {
		nj.Repository = e.job.Repository
	}
	q.entries[j.Digest] = &entry{state: pending, job: nj}
	q.npend++
	q.fifo[j.Priority] = append(q.fifo[j.Priority], j.Digest)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return queued
}

// current reports whether a done entry's verdict still stands: made with
// database db (ingested verdicts have none and stand until due) and not due.
func current(e *entry, now, db time.Time) bool {
	if !e.db.IsZero() && !e.db.Equal(db) {
		return false
	}
	return now.Before(e.due)
}

// known records a verdict found in the cluster (an ImageScan), unless the
// scheduler is already busy with the digest.
func (q *queue) known(digest, repository string, db, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.entries[digest]; e != nil && e.state != done {
		return
	}
	q.entries[digest] = &entry{state: done, job: Job{Digest: digest, Repository: repository}, db: db, due: due}
}

// forget drops a digest whose ImageScan was deleted, unless it is busy.
func (q *queue) forget(digest string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.entries[digest]; e != nil && e.state == done {
		delete(q.entries, digest)
	}
}

// hold marks digest as having its ImageScan deleted, unless a scan of it is
// pending, running or being written (or another hold is on). Scans asked
// for meanwhile wait for release.
func (q *queue) hold(digest string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[digest]
	if e != nil && e.state != done {
		return false
	}
	h := &entry{state: deleting, job: Job{Digest: digest}, saved: e}
	if e != nil {
		h.job.Repository = e.job.Repository
	}
	q.entries[digest] = h
	return true
}

// release ends a hold. A scan asked for during it is queued now (and
// release returns true); otherwise the entry is dropped if the ImageScan
// was deleted, or put back as it was.
func (q *queue) release(digest string, deleted bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[digest]
	if e == nil || e.state != deleting {
		return false
	}
	switch {
	case e.again:
		e.state, e.saved, e.again = pending, nil, false
		q.npend++
		q.fifo[e.job.Priority] = append(q.fifo[e.job.Priority], digest)
		select {
		case q.wake <- struct{}{}:
		default:
		}
		return true
	case deleted || e.saved == nil:
		delete(q.entries, digest)
	default:
		q.entries[digest] = e.saved
	}
	return false
}

// has reports whether the queue knows digest in any state.
func (q *queue) has(digest string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.entries[digest] != nil
}

// merge adds what src knows to dst: newer tags first, pull secrets, the
// higher priority; the repository stays that of the first request.
func merge(dst, src *Job) {
	for i := len(src.Tags) - 1; i >= 0; i-- {
		dst.Tags = addFront(dst.Tags, src.Tags[i], v1alpha1.MaxImageScanTags)
	}
	for _, s := range src.PullSecrets {
		if !slices.Contains(dst.PullSecrets, s) && len(dst.PullSecrets) < v1alpha1.MaxImageScanPullSecrets {
			dst.PullSecrets = append(slices.Clip(dst.PullSecrets), s)
		}
	}
	dst.Priority = max(dst.Priority, src.Priority)
	if dst.Repository == "" {
		dst.Repository = src.Repository
	}
}

// addFront puts s first in list, removing an earlier copy, keeping at most
// limit entries. It never writes into list's array.
func addFront(list []string, s string, limit int) []string {
	if s == "" {
		return list
	}
	out := make([]string, 0, min(len(list)+1, limit))
	out = append(out, s)
	for _, t := range list {
		if t != s && len(out) < limit {
			out = append(out, t)
		}
	}
	return out
}

// next blocks until a job is pending, marks it running and returns a copy;
// false when ctx ends.
func (q *queue) next(ctx context.Context) (Job, bool) {
	for {
		q.mu.Lock()
		for p := numPriorities - 1; p >= 0; p-- {
			for len(q.fifo[p]) > 0 {
				d := q.fifo[p][0]
				q.fifo[p] = q.fifo[p][1:]
				e := q.entries[d]
				if e == nil || e.state != pending || e.job.Priority != p {
					continue // moved to a higher priority
				}
				e.state = running
				q.npend--
				q.nrun++
				more := q.npend > 0
				j := e.job
				j.Tags, j.PullSecrets = slices.Clone(j.Tags), slices.Clone(j.PullSecrets)
				q.mu.Unlock()
				if more { // pass the wake-up on to another worker
					select {
					case q.wake <- struct{}{}:
					default:
					}
				}
				return j, true
			}
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return Job{}, false
		case <-q.wake:
		}
	}
}

// scanned moves a running job to writing and returns it with whatever was
// merged into it while it ran.
func (q *queue) scanned(digest string) Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[digest]
	e.state = writing
	q.nrun--
	q.nwrite++
	j := e.job
	j.Tags, j.PullSecrets = slices.Clone(j.Tags), slices.Clone(j.PullSecrets)
	return j
}

// written marks the verdict written, current for database db until due,
// and returns the tags asked for while it was being written.
func (q *queue) written(digest string, db, due time.Time) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[digest]
	late := e.late
	e.state, e.late, e.db, e.due = done, nil, db, due
	q.nwrite--
	return late
}

// abandon drops a running job that was neither scanned nor written (the
// scanner is stopping); it is asked for again later.
func (q *queue) abandon(digest string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.entries[digest]; e != nil && e.state == running {
		delete(q.entries, digest)
		q.nrun--
	}
}

// idle reports whether no job is pending, running or being written.
func (q *queue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.npend+q.nrun+q.nwrite == 0
}

// counts returns the number of pending and running jobs.
func (q *queue) counts() (pending, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.npend, q.nrun
}
