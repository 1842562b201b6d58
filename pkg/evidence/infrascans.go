package evidence

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
)

// The scanner's infrastructure scans (pkg/clusterscan) are kept in the
// cluster as summaries: a NodeBenchmark per node (kube-bench), the
// ClusterBenchmark that aggregates them and tracks the scheduled runs, and
// the PenetrationTest (kube-hunter). A summary keeps counts and a capped
// list of failing checks or findings, not the tool's JSON: it becomes the
// BenchRun or HunterRun the JSON would give, with what it leaves out
// counted (BenchEvidence, HunterEvidence) and said in the messages.

// NodeBenchmark is a node's kube-bench summary read from a cluster.
type NodeBenchmark struct {
	Bench  *v1alpha1.NodeBenchmark
	Origin string
}

// ClusterBenchmark is the cluster-wide kube-bench summary: the schedule
// of the runs. Its counts repeat the NodeBenchmarks', which are the
// evidence.
type ClusterBenchmark struct {
	Bench  *v1alpha1.ClusterBenchmark
	Origin string
}

// PenetrationTest is the cluster's kube-hunter summary.
type PenetrationTest struct {
	Test   *v1alpha1.PenetrationTest
	Origin string
}

func (o ClusterOptions) readNodeBenchmarks(ctx context.Context, c client.Reader, in *Inputs) error {
	err := o.listAll(ctx, c, v1alpha1.GroupVersion.WithKind("NodeBenchmark"), nil, func(u *unstructured.Unstructured) error {
		nb := &v1alpha1.NodeBenchmark{}
		if err := decodeSummary("NodeBenchmark", u, nb); err != nil {
			in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %v: left out", err))
			return nil
		}
		in.NodeBenchmarks = append(in.NodeBenchmarks, NodeBenchmark{Bench: nb, Origin: ClusterOrigin})
		in.origin(compliance.SourceKubeBench, ClusterOrigin)
		return nil
	})
	in.NodeBenchmarksKnown = err == nil
	return err
}

// readNodes lists the nodes' names (metadata only), for benchmark
// coverage.
func (o ClusterOptions) readNodes(ctx context.Context, c client.Reader, in *Inputs) error {
	var names []string
	err := eachPage(ctx, c, o.PageSize, nil, func() *metav1.PartialObjectMetadataList {
		nodes := &metav1.PartialObjectMetadataList{}
		nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
		return nodes
	}, func(nodes *metav1.PartialObjectMetadataList) error {
		for _, n := range nodes.Items {
			names = append(names, n.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	in.Nodes, in.NodesKnown = names, true
	return nil
}

func (o ClusterOptions) readClusterBenchmarks(ctx context.Context, c client.Reader, in *Inputs) error {
	return o.listAll(ctx, c, v1alpha1.GroupVersion.WithKind("ClusterBenchmark"), nil, func(u *unstructured.Unstructured) error {
		cb := &v1alpha1.ClusterBenchmark{}
		if err := decodeSummary("ClusterBenchmark", u, cb); err != nil {
			in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %v: left out", err))
			return nil
		}
		in.ClusterBenchmarks = append(in.ClusterBenchmarks, ClusterBenchmark{Bench: cb, Origin: ClusterOrigin})
		return nil
	})
}

func (o ClusterOptions) readPenetrationTests(ctx context.Context, c client.Reader, in *Inputs) error {
	return o.listAll(ctx, c, v1alpha1.GroupVersion.WithKind("PenetrationTest"), nil, func(u *unstructured.Unstructured) error {
		pt := &v1alpha1.PenetrationTest{}
		if err := decodeSummary("PenetrationTest", u, pt); err != nil {
			in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %v: left out", err))
			return nil
		}
		in.PenetrationTests = append(in.PenetrationTests, PenetrationTest{Test: pt, Origin: ClusterOrigin})
		in.origin(compliance.SourceKubeHunter, ClusterOrigin)
		return nil
	})
}

// decodeSummary reads a NodeBenchmark, ClusterBenchmark or PenetrationTest
// as the API serves it. The CRDs validate the shape; what they cannot
// (negative counts, a listed check or finding without ID) is checked here,
// so that a summary read is one the evidence can state.
func decodeSummary(kind string, u *unstructured.Unstructured, obj runtime.Object) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return fmt.Errorf("%s %q: %v", kind, u.GetName(), err)
	}
	var problems []string
	counts := func(field string, c map[string]int32) {
		for _, k := range slices.Sorted(maps.Keys(c)) {
			if c[k] < 0 {
				problems = append(problems, fmt.Sprintf("%s.%s: %d is negative", field, k, c[k]))
			}
		}
	}
	totals := func(field string, t v1alpha1.BenchmarkTotals) {
		counts(field, map[string]int32{"pass": t.Pass, "fail": t.Fail, "warn": t.Warn, "info": t.Info})
	}
	switch o := obj.(type) {
	case *v1alpha1.NodeBenchmark:
		if s := o.Status.Summary; s != nil {
			totals("status.summary.totals", s.Totals)
			for i, sec := range s.Sections {
				totals(fmt.Sprintf("status.summary.sections[%d].totals", i), sec.Totals)
			}
			counts("status.summary", map[string]int32{"failuresOmitted": s.FailuresOmitted})
			for i, f := range s.Failures {
				if f.ID == "" {
					problems = append(problems, fmt.Sprintf("status.summary.failures[%d].id: empty", i))
				}
			}
		}
	case *v1alpha1.PenetrationTest:
		if s := o.Status.Summary; s != nil {
			counts("status.summary", map[string]int32{"nodes": s.Nodes, "services": s.Services, "findingsOmitted": s.FindingsOmitted})
			counts("status.summary.counts", map[string]int32{"high": s.Counts.High, "medium": s.Counts.Medium, "low": s.Counts.Low, "unknown": s.Counts.Unknown})
			for i, f := range s.Findings {
				if f.ID == "" && f.Name == "" {
					problems = append(problems, fmt.Sprintf("status.summary.findings[%d]: neither id nor name is set", i))
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s %q: %s", kind, u.GetName(), strings.Join(problems, "; "))
	}
	return nil
}

// scanState reads a summary's Scanned condition: whether the latest scan
// failed, and why.
func scanState(conditions []metav1.Condition) (failed bool, why string) {
	c := meta.FindStatusCondition(conditions, v1alpha1.InfraScanConditionScanned)
	if c == nil {
		return false, ""
	}
	why = c.Reason
	if c.Message != "" {
		why = joinColon(c.Reason, clip(c.Message, 300))
	}
	return c.Status == metav1.ConditionFalse, why
}

func joinColon(a, b string) string {
	if a == "" {
		return b
	}
	return a + ": " + b
}

func originOf(o *v1alpha1.InfraScanOrigin) (from, scanner, image string, at time.Time) {
	if o == nil {
		return "", "", "", time.Time{}
	}
	from = strings.TrimSpace(string(o.Source) + " " + o.Name)
	return from, o.Scanner, o.Image, o.ScanTime.Time
}

// benchSummaryRuns turns NodeBenchmarks into runs; a NodeBenchmark
// without a summary (its scan pending, or failed with no earlier summary
// to keep) is no run but evidence that the node has no benchmark, and one
// whose summary is older than opts.MaxBenchmarkAge is no run but evidence
// that the node's benchmark is stale.
func benchSummaryRuns(benches []NodeBenchmark, opts Options) (runs []*BenchRun, missing, stale []compliance.Evidence) {
	for _, b := range benches {
		nb := b.Bench
		object := "NodeBenchmark " + nb.Name
		failed, why := scanState(nb.Status.Conditions)
		sum := nb.Status.Summary
		if sum == nil {
			missing = append(missing, noSummary(compliance.SourceKubeBench, "benchmark-run", "CIS Kubernetes Benchmark run", b.Origin,
				[]compliance.Ref{{Kind: "Node", Name: nb.Name}}, object, "kube-bench scan", failed, why))
			continue
		}
		if old := staleness(object, nb.Status.Origin, opts.MaxBenchmarkAge, opts.Now); old != "" {
			t := sum.Totals
			stale = append(stale, staleSummary(compliance.SourceKubeBench, "benchmark-age", "CIS benchmark is recent", b.Origin,
				[]compliance.Ref{{Kind: "Node", Name: nb.Name}}, old,
				fmt.Sprintf("its %s not assessed (%d pass, %d fail, %d warn, %d info): rescan the node", counted(int(t.Pass+t.Fail+t.Warn+t.Info), "check", "is", "are"), t.Pass, t.Fail, t.Warn, t.Info),
				failed, why))
			continue
		}
		run := &BenchRun{Origin: b.Origin, Node: nb.Name, NodeTypes: sum.NodeTypes,
			Summary: &BenchSummary{Object: object, FailuresOmitted: int(sum.FailuresOmitted),
				Totals: benchCounts(sum.Totals)}}
		for _, v := range strings.Split(sum.Benchmark, ",") {
			run.Benchmarks = appendUnique(run.Benchmarks, strings.TrimSpace(v))
		}
		run.KubernetesVersions = appendUnique(nil, sum.KubernetesVersion)
		s := run.Summary
		s.From, s.Scanner, s.Image, s.ScanTime = originOf(nb.Status.Origin)
		if failed {
			s.LatestFailed = orNoReason(why)
		}
		for _, sec := range sum.Sections {
			s.Sections = append(s.Sections, BenchSection{ID: sec.ID, Text: sec.Text, NodeType: sec.NodeType, Counts: benchCounts(sec.Totals)})
		}
		for _, f := range sum.Failures {
			c := BenchCheck{ID: f.ID, Text: f.Text, Status: "FAIL", Scored: f.Scored}
			// kube-bench numbers a section's checks after it: 1.2.5 is
			// in section 1.
			for _, sec := range sum.Sections {
				if sec.ID != "" && strings.HasPrefix(f.ID, sec.ID+".") {
					c.Section, c.NodeType = sec.ID, sec.NodeType
					break
				}
			}
			run.Checks = append(run.Checks, c)
		}
		runs = append(runs, run)
	}
	return runs, missing, stale
}

func benchCounts(t v1alpha1.BenchmarkTotals) BenchCounts {
	return BenchCounts{Pass: int(t.Pass), Fail: int(t.Fail), Warn: int(t.Warn), Info: int(t.Info)}
}

// hunterSummaryRuns is benchSummaryRuns for PenetrationTests, against
// opts.MaxPenTestAge.
func hunterSummaryRuns(tests []PenetrationTest, opts Options) (runs []*HunterRun, missing, stale []compliance.Evidence) {
	for _, t := range tests {
		pt := t.Test
		object := "PenetrationTest " + pt.Name
		failed, why := scanState(pt.Status.Conditions)
		sum := pt.Status.Summary
		if sum == nil {
			missing = append(missing, noSummary(compliance.SourceKubeHunter, "hunter-run", "kube-hunter penetration test run", t.Origin,
				nil, object, "kube-hunter run", failed, why))
			continue
		}
		if old := staleness(object, pt.Status.Origin, opts.MaxPenTestAge, opts.Now); old != "" {
			c := sum.Counts
			stale = append(stale, staleSummary(compliance.SourceKubeHunter, "hunter-age", "Penetration test is recent", t.Origin, nil, old,
				fmt.Sprintf("its %s not assessed (%d high, %d medium, %d low, %d unknown): run kube-hunter again",
					counted(int(c.High+c.Medium+c.Low+c.Unknown), "finding", "is", "are"), c.High, c.Medium, c.Low, c.Unknown),
				failed, why))
			continue
		}
		s := &HunterSummary{Object: object, Nodes: int(sum.Nodes), Services: int(sum.Services), FindingsOmitted: int(sum.FindingsOmitted),
			Counts: map[compliance.Severity]int{compliance.SeverityHigh: int(sum.Counts.High), compliance.SeverityMedium: int(sum.Counts.Medium),
				compliance.SeverityLow: int(sum.Counts.Low), compliance.SeverityUnknown: int(sum.Counts.Unknown)}}
		s.From, s.Scanner, s.Image, s.ScanTime = originOf(pt.Status.Origin)
		if failed {
			s.LatestFailed = orNoReason(why)
		}
		run := &HunterRun{Origin: t.Origin, Summary: s}
		for _, f := range sum.Findings {
			run.Findings = append(run.Findings, HunterFinding{VID: f.ID, Name: f.Name, Category: f.Category, Severity: f.Severity, Location: f.Location})
		}
		runs = append(runs, run)
	}
	return runs, missing, stale
}

// noSummary is the evidence of a summary that holds none: a scan that
// failed with no earlier result is an error (not evaluated); one not run
// yet is recorded and decides nothing.
func noSummary(source compliance.Source, id, title, origin string, subjects []compliance.Ref, object, scan string, failed bool, why string) compliance.Evidence {
	e := compliance.Evidence{Source: source, ID: id, Title: title, Subjects: subjects, Origin: origin,
		Result: compliance.ResultSkip, Severity: compliance.SeverityInfo,
		Message: fmt.Sprintf("%s holds no summary yet: the %s is pending", object, scan)}
	if failed {
		e.Result, e.Severity = compliance.ResultError, compliance.SeverityMedium
		e.Message = fmt.Sprintf("%s holds no summary: the %s failed (%s)", object, scan, orNoReason(why))
	}
	return e
}

// staleness says why a summary is too old to be evidence at now: it ran
// more than limit before, or does not say when it ran (the scanner always
// records it; without it the summary's age cannot be shown to be within
// the limit). Empty when it may stand, or when limit is 0.
func staleness(object string, origin *v1alpha1.InfraScanOrigin, limit time.Duration, now time.Time) string {
	if limit <= 0 {
		return ""
	}
	if origin == nil || origin.ScanTime.IsZero() {
		return fmt.Sprintf("%s does not record when its scan ran (status.origin.scanTime), so its age cannot be shown to be within the limit of %s", object, age(limit))
	}
	at := origin.ScanTime.Time
	if old := now.Sub(at); old > limit {
		return fmt.Sprintf("%s was scanned %s, %s before this report, more than the limit of %s", object, timeOrUnknown(at), age(old), age(limit))
	}
	return ""
}

// staleSummary is the evidence of a summary too old to be evidence, in
// place of what it says: as for a summary not written yet (noSummary),
// it is recorded and decides nothing, so that the controls it would bear
// on are not assessed on it; when the latest scan failed, leaving the
// summary old, it is an error (not evaluated). Nodes that no current
// summary covers are a finding of their own (nodeCoverage).
func staleSummary(source compliance.Source, id, title, origin string, subjects []compliance.Ref, stale, unassessed string, failed bool, why string) compliance.Evidence {
	e := compliance.Evidence{Source: source, ID: id, Title: title, Subjects: subjects, Origin: origin,
		Result: compliance.ResultSkip, Severity: compliance.SeverityMedium, Message: stale + "; " + unassessed}
	if failed {
		e.Result = compliance.ResultError
		e.Message += fmt.Sprintf(" (the latest scan failed: %s)", orNoReason(why))
	}
	return e
}

// nodeCoverage is the evidence of the nodes that no current NodeBenchmark
// covers: those without one, and those whose one is stale (a NodeBenchmark
// without a summary is evidence of its own). It returns nil when every
// node is covered, and says for the source's header how many are.
// fileRuns counts the kube-bench runs read from files, whose JSON names
// no node.
func nodeCoverage(nodes []string, benches []NodeBenchmark, fileRuns int, opts Options) (*compliance.Evidence, string) {
	if len(nodes) == 0 {
		return nil, ""
	}
	state := map[string]string{}
	for _, b := range benches {
		nb := b.Bench
		switch {
		case nb.Status.Summary == nil:
			state[nb.Name] = "pending"
		case staleness("", nb.Status.Origin, opts.MaxBenchmarkAge, opts.Now) != "":
			state[nb.Name] = "stale"
		default:
			state[nb.Name] = "current"
		}
	}
	var none, stale []string
	covered := 0
	for _, n := range nodes {
		switch state[n] {
		case "":
			none = append(none, n)
		case "stale":
			stale = append(stale, n)
		case "current":
			covered++
		}
	}
	header := fmt.Sprintf("%d of %s with a current NodeBenchmark", covered, plural(len(nodes), "node"))
	if len(none)+len(stale) == 0 {
		return nil, header
	}
	var parts []string
	if len(none) > 0 {
		parts = append(parts, "without a NodeBenchmark: "+listSome(none))
	}
	if len(stale) > 0 {
		parts = append(parts, fmt.Sprintf("with one older than %s only: %s", age(opts.MaxBenchmarkAge), listSome(stale)))
	}
	verb := "have"
	if len(none)+len(stale) == 1 {
		verb = "has"
	}
	msg := fmt.Sprintf("%d of %s %s no current CIS benchmark, so their configuration is not assessed; %s",
		len(none)+len(stale), plural(len(nodes), "node"), verb, strings.Join(parts, "; "))
	if fileRuns > 0 {
		msg += fmt.Sprintf("; the %s read from files do not name their nodes", plural(fileRuns, "kube-bench run"))
	}
	uncovered := append(append([]string(nil), none...), stale...)
	slices.Sort(uncovered)
	var subjects []compliance.Ref
	for _, n := range uncovered[:min(len(uncovered), maxListed)] {
		subjects = append(subjects, compliance.Ref{Kind: "Node", Name: n})
	}
	return &compliance.Evidence{Source: compliance.SourceKubeBench, ID: "node-coverage", Title: "Every node has a current CIS benchmark",
		Result: compliance.ResultFail, Severity: compliance.SeverityMedium, Subjects: subjects, Origin: ClusterOrigin, Message: msg}, header
}

// age writes a duration as a reader counts it: "3d", "209d12h", "5h30m",
// "45m"; to the minute.
func age(d time.Duration) string {
	d = d.Truncate(time.Minute)
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, mins := d/time.Hour, (d%time.Hour)/time.Minute
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if hours > 0 {
		fmt.Fprintf(&b, "%dh", hours)
	}
	if mins > 0 && days == 0 {
		fmt.Fprintf(&b, "%dm", mins)
	}
	if b.Len() == 0 {
		return "0m"
	}
	return b.String()
}

// scheduleDetail says what the ClusterBenchmarks tell of the scheduled
// kube-bench runs.
func scheduleDetail(cbs []ClusterBenchmark) string {
	var parts []string
	for _, cb := range cbs {
		sch := cb.Bench.Status.Schedule
		if sch.LastScheduleTime == nil {
			continue
		}
		p := "the last scheduled run started " + timeOrUnknown(sch.LastScheduleTime.Time)
		switch {
		case sch.LastCompletionTime != nil:
			p += " and finished " + timeOrUnknown(sch.LastCompletionTime.Time)
		case sch.ActiveJobs > 0:
			p += fmt.Sprintf(" and is running (%s)", plural(int(sch.ActiveJobs), "Job"))
		}
		if n := cb.Bench.Status.NodesInError; n > 0 {
			p += fmt.Sprintf("; the latest scan of %s failed", plural(int(n), "node"))
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
