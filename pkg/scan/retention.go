package scan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
)

// LastSeenAnnotation records on an ImageScan when the scanner last saw its
// image in use (RFC 3339). It is an annotation, not a status field, so that
// it outlives restarts and leader changes without a change to the CRD; the
// scanner rewrites it only once it is an eighth of the retention old, which
// keeps the writes to a few per image and retention period.
const LastSeenAnnotation = "guard.statcan.gc.ca/last-seen"

// DefaultSweepInterval is how often retention is applied by default.
const DefaultSweepInterval = time.Hour

// sawInUse notes that a pod or workload uses digest, for the next sweep:
// a short-lived pod can come and go between two sweeps.
func (s *Scheduler) sawInUse(digest string) {
	if s.cfg.Retention == 0 && s.cfg.StubRetention == 0 {
		return // no sweep would ever empty the set
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[digest] = true
}

// inUse is what the cluster runs or is about to run.
type inUse struct {
	digests map[string]bool
	tags    map[string]bool // repository:tag, canonical
}

func (u *inUse) add(image, imageID string) {
	if d, ok := images.DigestOf(imageID); ok {
		u.digests[d.Digest] = true
	}
	ref, err := images.Parse(image)
	if err != nil {
		return
	}
	if ref.Digest != "" {
		u.digests[ref.Digest] = true
	} else {
		u.tags[ref.TagName()] = true
	}
}

func (u *inUse) has(is *v1alpha1.ImageScan) bool {
	return u.digests[is.Spec.Digest] || slices.ContainsFunc(is.Status.Tags, func(t string) bool { return u.tags[t] })
}

// listInUse reads the images of every pod and of every workload of the
// given kinds from the cache. Pods of any phase count: a finished Job's pod
// still says its image may run again.
func (s *Scheduler) listInUse(ctx context.Context, kinds []schema.GroupVersionKind) (*inUse, error) {
	u := &inUse{digests: map[string]bool{}, tags: map[string]bool{}}
	pods := &corev1.PodList{}
	if err := s.cfg.Client.List(ctx, pods); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		for _, c := range images.OfPod(&pods.Items[i]) {
			u.add(c.Image, c.ImageID)
		}
	}
	for _, gvk := range kinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := s.cfg.Client.List(ctx, list); err != nil {
			if meta.IsNoMatchError(err) {
				continue // not installed: nothing of that kind runs
			}
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			for _, c := range images.OfWorkload(gvk.Kind, list.Items[i].Object) {
				u.add(c.Image, "")
			}
		}
	}
	// A tag the scheduler resolved names its digest even when no ImageScan
	// lists it (an ImageScan keeps only a few tags).
	s.mu.Lock()
	for t := range u.tags {
		if r, ok := s.resolved[t]; ok {
			u.digests[r.digest] = true
		}
	}
	s.mu.Unlock()
	return u, nil
}

// limit is how long is may stay unused: the retention, or the shorter
// stub retention when it has no verdict; zero when it stays for good.
func (s *Scheduler) limit(is *v1alpha1.ImageScan) time.Duration {
	l := s.cfg.Retention
	if st := s.cfg.StubRetention; st > 0 && !is.Status.Scanned() && (l == 0 || st < l) {
		l = st
	}
	return l
}

// lastSeen returns the time recorded in LastSeenAnnotation, if readable.
func lastSeen(is *v1alpha1.ImageScan) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, is.Annotations[LastSeenAnnotation])
	return t, err == nil
}

// expired reports whether is has gone unused for longer than its limit.
// Its age counts from its creation or from the recorded last sighting,
// whichever is later. The recorded time can lag the real last sighting by
// the refresh period plus a sweep interval, which is added so that no
// ImageScan goes before its limit.
func (s *Scheduler) expired(is *v1alpha1.ImageScan, now time.Time) bool {
	l := s.limit(is)
	if l <= 0 {
		return false
	}
	from, slack := is.CreationTimestamp.Time, time.Duration(0)
	if t, ok := lastSeen(is); ok && t.After(from) {
		from, slack = t, l/8+s.cfg.SweepInterval
	}
	if from.IsZero() {
		return false // nothing says how old it is
	}
	return now.Sub(from) > l+slack
}

// sweep applies retention once: ImageScans in use get their last sighting
// recorded; those unused for longer than their limit are deleted; then the
// report store is pruned of the reports of digests without an ImageScan,
// the deleted ones' among them. kinds are the
// workload kinds whose images count as in use besides pods'.
func (s *Scheduler) sweep(ctx context.Context, kinds []schema.GroupVersionKind) error {
	now := s.cfg.Now()
	// Sightings from here on are checked again before each deletion.
	s.mu.Lock()
	seen := s.seen
	s.seen = map[string]bool{}
	s.mu.Unlock()
	u, err := s.listInUse(ctx, kinds)
	if err != nil {
		return err
	}
	for d := range seen {
		u.digests[d] = true
	}
	list := &v1alpha1.ImageScanList{}
	if err := s.cfg.Client.List(ctx, list); err != nil {
		return fmt.Errorf("listing ImageScans: %w", err)
	}
	var errs []error
	exists := map[string]bool{}
	deleted := 0
	for i := range list.Items {
		is := &list.Items[i]
		exists[is.Spec.Digest] = true
		if u.has(is) {
			if err := s.recordSeen(ctx, is, now); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !s.expired(is, now) {
			continue
		}
		gone, err := s.expire(ctx, is)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			deleted++
			delete(exists, is.Spec.Digest)
		}
	}
	if deleted > 0 {
		s.log.Info("deleted ImageScans of images no longer in use", "deleted", deleted, "imageScans", len(list.Items))
	}
	if s.cfg.Reports != nil {
		// A digest the queue knows may have an ImageScan the cache does not
		// show yet, or be scanning: its report stays.
		// File times are the machine's: compared with the real clock.
		if err := s.cfg.Reports.Prune(func(d string) bool { return exists[d] || s.q.has(d) }, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recordSeen writes now into is's last-seen annotation when the recorded
// time is older than an eighth of its limit.
func (s *Scheduler) recordSeen(ctx context.Context, is *v1alpha1.ImageScan, now time.Time) error {
	l := s.limit(is)
	if l <= 0 {
		return nil
	}
	if t, ok := lastSeen(is); ok && now.Sub(t) < l/8 {
		return nil
	}
	orig := is.DeepCopy()
	if is.Annotations == nil {
		is.Annotations = map[string]string{}
	}
	is.Annotations[LastSeenAnnotation] = now.UTC().Format(time.RFC3339)
	if err := s.cfg.Client.Patch(ctx, is, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("recording the last sighting on ImageScan %s: %w", is.Name, err)
	}
	return nil
}

// expire deletes is unless a scan of its digest is
// pending, running or being written, or its image was seen since the
// sweep began. The queue holds the digest meanwhile, so no scan starts
// during the deletion; one asked for then runs after it. It reports
// whether is is gone.
func (s *Scheduler) expire(ctx context.Context, is *v1alpha1.ImageScan) (bool, error) {
	d := is.Spec.Digest
	if !s.q.hold(d) {
		return false, nil
	}
	gone := false
	defer func() {
		if s.q.release(d, gone) {
			s.gauges()
		}
	}()
	s.mu.Lock()
	again := s.seen[d]
	s.mu.Unlock()
	if again {
		return false, nil
	}
	// The resource version is that of the listed object: a change since
	// (a tag recorded, a verdict written) makes the deletion fail, and the
	// next sweep judges the ImageScan again.
	rv := is.ResourceVersion
	err := s.cfg.Client.Delete(ctx, is, client.Preconditions{ResourceVersion: &rv})
	switch {
	case apierrors.IsConflict(err):
		return false, nil
	case err != nil && !apierrors.IsNotFound(err):
		return false, fmt.Errorf("deleting ImageScan %s: %w", is.Name, err)
	}
	gone = true
	s.Forget(d)
	s.log.V(1).Info("deleted an ImageScan no longer in use", "imageScan", is.Name, "scanned", is.Status.Scanned())
	return true, nil
}

// sweeper runs sweeps every interval on the leader.
type sweeper struct {
	s     *Scheduler
	kinds []schema.GroupVersionKind
	every time.Duration
}

func (w *sweeper) Start(ctx context.Context) error {
	// The first sweep waits an interval: pods seen at start-up have been
	// reconciled by then.
	tick(ctx, w.every, func() {
		if err := w.s.sweep(ctx, w.kinds); err != nil && ctx.Err() == nil {
			w.s.log.Error(err, "applying ImageScan retention")
		}
	})
	return nil
}
