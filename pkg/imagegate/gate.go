package imagegate

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
)

// Source prefixes every message, as a constraint's name prefixes the
// webhook's other messages.
const Source = "[image-vulnerabilities]"

// Verdicts finds the verdict for an image as a spec names it: by digest
// when pinned, else by the digest the scanner last resolved the tag to
// (nil, nil when unknown). *verdict.Index is one; it reads memory only.
type Verdicts interface {
	Lookup(image string) (*verdict.Verdict, error)
	// Unscanned counts the ImageScans without a verdict: the scan
	// requests still outstanding, and the scans that failed.
	Unscanned() int
}

// ScanRequester asks, without blocking, for a scan of a digest nobody has
// scanned yet.
type ScanRequester interface {
	RequestScan(digest, repository string)
}

// UsageRecorder notes, without blocking, that an exception let an
// admission through. It is called only once the request is admitted.
type UsageRecorder interface {
	Used(exception string)
}

// Outcomes of a review, for metrics.
const (
	OutcomeDenied    = "denied"
	OutcomeWarned    = "warned"
	OutcomeUnscanned = "unscanned"
	OutcomeExcepted  = "excepted"
	OutcomeAllowed   = "allowed"
)

// Config builds a Gate.
type Config struct {
	Verdicts Verdicts
	// Scans and Usage may be nil (nothing is requested or recorded).
	Scans   ScanRequester
	Usage   UsageRecorder
	Metrics *Metrics
	Log     logr.Logger
	// MaxUnscanned is how many ImageScans without a verdict there may be
	// before the gate stops requesting scans (default
	// DefaultMaxUnscanned). Users choose the digests they are denied for,
	// so without it every new digest would add an object to etcd and to
	// every replica's index, and a pull for the scanner.
	MaxUnscanned int
	// Now defaults to time.Now.
	Now func() time.Time
}

// DefaultMaxUnscanned is MaxUnscanned when unset: well above the images a
// cluster's pipelines bring in between two scanner passes.
const DefaultMaxUnscanned = 200

// Gate holds the current policy and exceptions; controllers replace them
// (SetPolicy, SetExceptions) while reviews read them without locks.
type Gate struct {
	cfg        Config
	policy     atomic.Pointer[Policy]
	exceptions atomic.Pointer[[]*Exception]
}

// New returns a gate with the default policy and no exceptions.
func New(cfg Config) *Gate {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUnscanned <= 0 {
		cfg.MaxUnscanned = DefaultMaxUnscanned
	}
	g := &Gate{cfg: cfg}
	g.policy.Store(DefaultPolicy())
	g.exceptions.Store(&[]*Exception{})
	return g
}

// SetPolicy replaces the policy (nil: the defaults).
func (g *Gate) SetPolicy(p *Policy) {
	if p == nil {
		p = DefaultPolicy()
	}
	g.policy.Store(p)
}

// Policy returns the policy in force.
func (g *Gate) Policy() *Policy { return g.policy.Load() }

// SetExceptions replaces the exceptions.
func (g *Gate) SetExceptions(ex []*Exception) {
	cp := append([]*Exception(nil), ex...)
	g.exceptions.Store(&cp)
}

// Subject is what is reviewed: the images a pod, Workflow or PipelineRun
// will run, in a namespace.
type Subject struct {
	// Object names it in messages, e.g. "Pod alice/train-x".
	Object          string
	Namespace       string
	NamespaceLabels map[string]string
	Containers      []images.Container
	// DryRun is set when the request will not be persisted: the review then
	// has no side effects (no scan is requested), as the webhook declares.
	DryRun bool
	// DeniedElsewhere is set when the request is denied whatever the
	// images' verdicts (by a constraint): no scan is requested for it, so
	// a pod that could never run cannot make the webhook write anything.
	DeniedElsewhere bool
}

// Result is the gate's answer: deny messages and warnings, each prefixed
// by Source.
type Result struct {
	Denies   []string
	Warnings []string
	Outcome  string
	// Used names, sorted, the exceptions that let the subject through;
	// empty when it is denied. Review does not record their use: whether
	// the request is admitted is known only once every check has answered.
	Used []string
}

// Review decides on every image of s.
func (g *Gate) Review(s Subject) Result {
	p := g.policy.Load()
	if len(s.Containers) == 0 {
		return Result{Outcome: OutcomeAllowed}
	}
	if !p.Enforce {
		g.count(OutcomeAllowed)
		return Result{Outcome: OutcomeAllowed}
	}
	now := g.cfg.Now()
	exceptions := *g.exceptions.Load()
	var res Result
	var unscanned bool
	// requested counts the scans this review asked for: the index learns
	// of them only once the stubs exist, and one Workflow can name
	// hundreds of images.
	var requested int
	seen := map[string]bool{}
	for _, c := range s.Containers {
		if seen[c.Image] {
			continue
		}
		seen[c.Image] = true
		v, err := g.cfg.Verdicts.Lookup(c.Image)
		if err != nil {
			res.Denies = append(res.Denies, fmt.Sprintf("%s container %s: %v", Source, c.Name, err))
			continue
		}
		if v == nil || !v.Scanned {
			unscanned = true
			ref, _ := images.Parse(c.Image) // Lookup parsed it already
			g.unscanned(&res, p, s, c, ref, v != nil, &requested)
			continue
		}
		for _, name := range g.judge(&res, p, exceptions, s, c, v, now) {
			if !slices.Contains(res.Used, name) {
				res.Used = append(res.Used, name)
			}
		}
	}
	sort.Strings(res.Used)
	switch {
	case len(res.Denies) > 0:
		res.Outcome = OutcomeDenied
		// A denied request uses no exception, whichever image it was for.
		res.Used = nil
	case len(res.Used) > 0:
		res.Outcome = OutcomeExcepted
	case unscanned && len(res.Warnings) > 0:
		res.Outcome = OutcomeWarned
	case unscanned:
		res.Outcome = OutcomeUnscanned
	default:
		res.Outcome = OutcomeAllowed
	}
	g.count(res.Outcome)
	return res
}

func (g *Gate) count(outcome string) {
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.Decisions.WithLabelValues(outcome).Inc()
	}
}

// unscanned applies the namespace's mode to an image without a verdict.
// queued is set when its ImageScan exists already.
func (g *Gate) unscanned(res *Result, p *Policy, s Subject, c images.Container, ref images.Ref, queued bool, requested *int) {
	switch p.UnscannedMode(s.NamespaceLabels) {
	case v1alpha1.UnscannedAllow:
	case v1alpha1.UnscannedWarn:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s image %s has not been scanned yet; it is admitted and will be scanned once it runs", Source, c.Image))
	default:
		deny := func(remedy string) {
			res.Denies = append(res.Denies, fmt.Sprintf("%s image %s has not been scanned and namespace %s admits only scanned images; %s",
				Source, c.Image, s.Namespace, remedy))
		}
		// Users name the images: without this, any registry they name
		// could be made to serve the scanner a pull. An image whose
		// ImageScan exists is in the queue already and adds nothing.
		if !queued && !p.MayScan(ref.Repository) {
			if g.cfg.Metrics != nil {
				g.cfg.Metrics.ScanRequests.WithLabelValues("unlisted_registry").Inc()
			}
			deny("its registry is not one the scanner pulls from (ImagePolicy spec.scanRegistries), so no scan can be requested: use an image from one of those registries")
			return
		}
		if ref.Digest == "" {
			// The webhook cannot resolve a tag without calling the
			// registry, and a denied pod never exists for the scanner to
			// find: only a pinned digest can be queued from here.
			deny(fmt.Sprintf("pin it by digest (%s@sha256:…) to have it scanned, then retry in %v", ref.Repository, p.RetryAfter))
			return
		}
		if s.DryRun {
			deny("a dry run requests no scan: send the request without dry run to have it scanned")
			return
		}
		if s.DeniedElsewhere {
			deny("no scan was requested as the request is denied for other reasons too: fix those and retry")
			return
		}
		// Other replicas, and reviews running beside this one, may request
		// scans the index does not show yet: the cap is approximate, but it
		// bounds what users can make the webhook create. An image whose
		// ImageScan exists is in the queue already and adds nothing to it.
		if !queued && g.cfg.Verdicts.Unscanned()+*requested >= g.cfg.MaxUnscanned {
			if g.cfg.Metrics != nil {
				g.cfg.Metrics.ScanRequests.WithLabelValues("refused").Inc()
			}
			deny("the scan queue is full, so no scan was requested: retry later")
			return
		}
		if !queued && g.cfg.Scans != nil {
			*requested++
			g.cfg.Scans.RequestScan(ref.Digest, ref.Repository)
		}
		deny(fmt.Sprintf("a scan has been requested: retry in %v", p.RetryAfter))
	}
}

// judge denies an image whose findings at or above the policy's severity
// are not all excepted. It returns the exceptions that admitted the image
// (none when it is denied).
func (g *Gate) judge(res *Result, p *Policy, exceptions []*Exception, s Subject, c images.Container, v *verdict.Verdict, now time.Time) []string {
	counts := v.Vulnerabilities
	if p.FixableOnly {
		counts = v.Fixable
	}
	total := int(counts.Critical)
	for rank, n := range []int32{counts.High, counts.Medium, counts.Low} {
		if rank+1 <= p.MinRank {
			total += int(n)
		}
	}
	if total == 0 {
		return nil
	}
	repo := v.Repository // normalised by the scanner
	var open []string
	var used []string
	var expired []string
	listed := 0
	for _, f := range v.FixableCriticalHigh {
		if severityRank[f.Severity] > p.MinRank {
			continue
		}
		listed++
		if ex := covering(exceptions, f.ID, repo, s.Namespace, now); ex != nil {
			if !containsStr(used, ex.Name) {
				used = append(used, ex.Name)
			}
			continue
		}
		open = append(open, fmt.Sprintf("%s (%s fixed in %s)", f.ID, f.Package, f.FixedVersion))
		for _, ex := range exceptions {
			if !now.Before(ex.Expires) && ex.Applies(f.ID, repo, s.Namespace) && !containsStr(expired, ex.Name) {
				expired = append(expired, ex.Name)
			}
		}
	}
	// Findings the ImageScan does not list by ID (past its cap, below HIGH,
	// or without a fix) cannot be matched to an exception.
	if more := total - listed; more > 0 {
		kind := vulnerabilities(more)
		if p.FixableOnly {
			kind = "fixable " + kind
		}
		open = append(open, fmt.Sprintf("%d more %s at or above %s", more, kind, rankName(p.MinRank)))
	}
	if len(open) > 0 {
		msg := fmt.Sprintf("%s image %s: %s; ask for an ImageException or use a fixed image", Source, c.Image, strings.Join(open, ", "))
		if len(expired) > 0 {
			sort.Strings(expired)
			msg += fmt.Sprintf(" (expired ImageException %s ignored)", strings.Join(expired, ", "))
		}
		res.Denies = append(res.Denies, msg)
		return nil
	}
	sort.Strings(used)
	res.Warnings = append(res.Warnings, fmt.Sprintf("%s image %s: %d %s at or above %s admitted under ImageException %s",
		Source, c.Image, listed, vulnerabilities(listed), rankName(p.MinRank), strings.Join(used, ", ")))
	return used
}

func covering(exceptions []*Exception, cve, repo, ns string, now time.Time) *Exception {
	for _, ex := range exceptions {
		if ex.Covers(cve, repo, ns, now) {
			return ex
		}
	}
	return nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func rankName(rank int) string {
	for name, r := range severityRank {
		if r == rank {
			return name
		}
	}
	return "?"
}

func vulnerabilities(n int) string {
	if n == 1 {
		return "vulnerability"
	}
	return "vulnerabilities"
}
