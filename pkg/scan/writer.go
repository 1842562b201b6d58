package scan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/registry"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// maxErrorLen bounds status.error: a registry's error page must not bloat
// the object.
const maxErrorLen = 512

// run scans one job and writes its verdict.
func (s *Scheduler) run(ctx context.Context, j Job) {
	m := s.cfg.Metrics
	m.Started.Inc()
	s.gauges()
	log := s.log.WithValues("image", j.Repository+"@"+j.Digest)
	db := s.db()
	start := s.cfg.Now()
	sctx, cancel := context.WithTimeout(ctx, s.cfg.ScanTimeout)
	rep, scanErr := s.scan(sctx, j)
	cancel()
	if ctx.Err() != nil { // stopping: leave it for the next leader
		s.q.abandon(j.Digest)
		s.gauges()
		return
	}
	elapsed := s.cfg.Now().Sub(start)
	m.Duration.Observe(elapsed.Seconds())
	if scanErr != nil {
		m.Finished.WithLabelValues("failed").Inc()
		log.Error(scanErr, "scan failed")
	} else {
		m.Finished.WithLabelValues("succeeded").Inc()
		log.V(1).Info("scanned", "duration", elapsed.String(), "findings", len(rep.Findings))
		if s.cfg.Reports != nil && rep.Full != nil {
			if err := s.cfg.Reports.Put(j.Digest, rep.Full); err != nil {
				log.Error(err, "keeping the full report")
			}
		}
	}
	j = s.q.scanned(j.Digest)
	s.gauges()
	now := s.cfg.Now()
	is, err := s.writeVerdict(ctx, j, rep, scanErr, db, now)
	var due time.Time
	var dbTime time.Time
	if err != nil {
		log.Error(err, "writing the ImageScan")
		due = now // not current: asked for again at the next sighting
	} else {
		dbTime, due = s.verdictTimes(is)
		s.owned(j.Digest, is.Status.Tags)
	}
	if late := s.q.written(j.Digest, dbTime, due); len(late) > 0 {
		if err := s.recordTags(ctx, j.Digest, late); err != nil {
			log.Error(err, "recording tags")
		}
	}
}

// scan pulls and scans the job's image.
func (s *Scheduler) scan(ctx context.Context, j Job) (*report.Report, error) {
	kc, err := s.keychain(ctx, j.PullSecrets)
	if err != nil {
		return nil, err
	}
	img, err := s.cfg.Registry.Image(ctx, j.Repository, j.Digest, kc)
	if err != nil {
		return nil, err
	}
	return s.cfg.Engine.Scan(ctx, j.Repository, j.Digest, img)
}

// writeVerdict creates or updates the job's ImageScan with rep (or the
// scan error) and the job's tags and pull secrets.
func (s *Scheduler) writeVerdict(ctx context.Context, j Job, rep *report.Report, scanErr error, db report.DB, now time.Time) (*v1alpha1.ImageScan, error) {
	return s.upsert(ctx, j, func(st *v1alpha1.ImageScanStatus, gen int64) {
		if scanErr != nil {
			setFailed(st, scanErr, gen, now)
			return
		}
		setVerdict(st, rep, v1alpha1.SourceTrivy, s.cfg.Engine.Name(), gen, now)
		st.DB = &v1alpha1.VulnerabilityDB{SchemaVersion: int32(db.SchemaVersion), UpdatedAt: metav1.NewTime(db.UpdatedAt)}
	})
}

// upsert creates the ImageScan for j.Digest if needed, merges j's pull
// secrets into its spec and j's tags into its status, applies status and
// writes the status, retrying on conflicts.
func (s *Scheduler) upsert(ctx context.Context, j Job, status func(st *v1alpha1.ImageScanStatus, gen int64)) (*v1alpha1.ImageScan, error) {
	name, err := v1alpha1.ImageScanName(j.Digest)
	if err != nil {
		return nil, err
	}
	var out *v1alpha1.ImageScan
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		is := &v1alpha1.ImageScan{}
		err := s.cfg.Reader.Get(ctx, client.ObjectKey{Name: name}, is)
		switch {
		case apierrors.IsNotFound(err):
			is = &v1alpha1.ImageScan{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "daaas-guard-scanner"}},
				Spec:       v1alpha1.ImageScanSpec{Digest: j.Digest, Repository: j.Repository, PullSecrets: j.PullSecrets},
			}
			if err := s.cfg.Client.Create(ctx, is); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			spec := is.Spec
			if spec.Repository == "" {
				spec.Repository = j.Repository
			}
			spec.PullSecrets = mergeSecrets(spec.PullSecrets, j.PullSecrets)
			if !specEqual(spec, is.Spec) {
				is.Spec = spec
				if err := s.cfg.Client.Update(ctx, is); err != nil {
					return err
				}
			}
		}
		status(&is.Status, is.Generation)
		for i := len(j.Tags) - 1; i >= 0; i-- {
			is.Status.Tags = addFront(is.Status.Tags, j.Tags[i], v1alpha1.MaxImageScanTags)
		}
		if err := s.cfg.Client.Status().Update(ctx, is); err != nil {
			return err
		}
		out = is
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ImageScan %s: %w", name, err)
	}
	return out, nil
}

func mergeSecrets(have, add []v1alpha1.SecretReference) []v1alpha1.SecretReference {
	out := slices.Clone(have)
	for _, s := range add {
		if !slices.Contains(out, s) && len(out) < v1alpha1.MaxImageScanPullSecrets {
			out = append(out, s)
		}
	}
	return out
}

func specEqual(a, b v1alpha1.ImageScanSpec) bool {
	return a.Digest == b.Digest && a.Repository == b.Repository && slices.Equal(a.PullSecrets, b.PullSecrets)
}

// setVerdict writes a report's summary into a status.
func setVerdict(st *v1alpha1.ImageScanStatus, rep *report.Report, source, scanner string, gen int64, at time.Time) {
	sum := report.Summarize(rep.Findings, v1alpha1.MaxImageScanVulnerabilities)
	t := metav1.NewTime(at)
	st.ObservedGeneration = gen
	st.Source = source
	st.Scanner = scanner
	if rep.Scanner != "" && source != v1alpha1.SourceTrivy {
		st.Scanner = rep.Scanner
	}
	st.ScannedAt = &t
	st.DB = nil
	st.OS = rep.OS
	st.Vulnerabilities = sum.Vulnerabilities
	st.Fixable = sum.Fixable
	st.FixableCriticalHigh = sum.FixableCriticalHigh
	st.FixableNotListed = sum.FixableNotListed
	st.Error = ""
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonScanSucceeded, ObservedGeneration: gen, LastTransitionTime: t})
}

// setFailed records a failed scan, keeping an earlier verdict.
func setFailed(st *v1alpha1.ImageScanStatus, err error, gen int64, at time.Time) {
	t := metav1.NewTime(at)
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen-3] + "..."
	}
	st.ObservedGeneration = gen
	st.ScannedAt = &t
	st.Error = msg
	c := metav1.Condition{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonScanFailed,
		ObservedGeneration: gen, LastTransitionTime: t}
	if st.Scanned() {
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonRescanFailed
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// owned records that digest's ImageScan lists tags.
func (s *Scheduler) owned(digest string, tags []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tags {
		s.owners[t] = digest
	}
}

// recordTags adds tags to digest's ImageScan and takes them off the
// ImageScans they named before (a tag names one digest at a time).
func (s *Scheduler) recordTags(ctx context.Context, digest string, tags []string) error {
	var todo []string
	moved := map[string]string{}
	s.mu.Lock()
	for _, t := range tags {
		if owner := s.owners[t]; owner != digest {
			todo = append(todo, t)
			if owner != "" {
				moved[t] = owner
			}
		}
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	is, err := s.editTags(ctx, digest, func(list []string) []string {
		for i := len(todo) - 1; i >= 0; i-- {
			list = addFront(list, todo[i], v1alpha1.MaxImageScanTags)
		}
		return list
	})
	if err != nil {
		return err
	}
	s.owned(digest, is.Status.Tags)
	var errs []error
	for t, old := range moved {
		if _, err := s.editTags(ctx, old, func(list []string) []string {
			return slices.DeleteFunc(list, func(x string) bool { return x == t })
		}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// editTags rewrites the tags of digest's ImageScan.
func (s *Scheduler) editTags(ctx context.Context, digest string, edit func([]string) []string) (*v1alpha1.ImageScan, error) {
	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		return nil, err
	}
	is := &v1alpha1.ImageScan{}
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := s.cfg.Reader.Get(ctx, client.ObjectKey{Name: name}, is); err != nil {
			return err
		}
		tags := edit(slices.Clone(is.Status.Tags))
		if slices.Equal(tags, is.Status.Tags) {
			return nil
		}
		is.Status.Tags = tags
		return s.cfg.Client.Status().Update(ctx, is)
	})
	if err != nil {
		return nil, fmt.Errorf("tags of ImageScan %s: %w", name, err)
	}
	return is, nil
}

// Ingest writes a verdict from another scanner's report (source is
// v1alpha1.SourceStarboard or SourceTrivyReport). It never overrides a
// verdict of this scanner's own, nor a newer ingested one.
func (s *Scheduler) Ingest(ctx context.Context, rep *report.Report, source string) (bool, error) {
	if rep.Digest == "" {
		return false, report.ErrNoDigest
	}
	name, err := v1alpha1.ImageScanName(rep.Digest)
	if err != nil {
		return false, err
	}
	at := rep.CreatedAt
	if at.IsZero() {
		at = s.cfg.Now()
	}
	existing := &v1alpha1.ImageScan{}
	switch err := s.cfg.Reader.Get(ctx, client.ObjectKey{Name: name}, existing); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, err
	default:
		st := &existing.Status
		if st.Source == v1alpha1.SourceTrivy && st.Scanned() {
			return false, nil
		}
		if st.Scanned() && st.ScannedAt != nil && !at.After(st.ScannedAt.Time) {
			return false, nil
		}
	}
	var tags []string
	for _, t := range rep.Tags {
		tags = append(tags, normalizeTag(t))
	}
	j := Job{Digest: rep.Digest, Repository: rep.Repository, Tags: tags}
	is, err := s.upsert(ctx, j, func(st *v1alpha1.ImageScanStatus, gen int64) {
		setVerdict(st, rep, source, "", gen, at)
	})
	if err != nil {
		return false, err
	}
	s.owned(rep.Digest, is.Status.Tags)
	return true, nil
}

// emptyKeychain is anonymous access, for images without pull secrets.
var emptyKeychain = &registry.Keychain{}
