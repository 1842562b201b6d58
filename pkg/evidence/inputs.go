// Package evidence reads what the compliance model assesses, from files or
// from a cluster, and turns it into compliance.Evidence: constraint
// templates and constraints, audit results (wg-policy PolicyReports), the
// admission webhooks' configuration, image scans (Trivy reports, the
// scanner's ImageScans), kube-bench and kube-hunter runs (their JSON, the
// scanner's NodeBenchmark and PenetrationTest summaries). Reading
// (files.go, cluster.go) fills Inputs; each adapter (policies.go,
// policyreports.go, webhooks.go, trivy.go and imagescans.go through
// scans.go, kubebench.go and kubehunter.go, infrascans.go through those
// two) converts one kind of input.
package evidence

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/clusterscan"
	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/policy"
)

// Options tune how inputs become evidence.
type Options struct {
	// Now is the report's time, against which ages are measured.
	Now time.Time
	// WebhookTLSMinVersion is the lowest TLS version the admission
	// webhook accepts ("1.2"; the webhook's own setting). Empty leaves it
	// out of the report.
	WebhookTLSMinVersion string
	// SystemNamespaces may be left out of admission without a finding.
	SystemNamespaces []string
	// MaxScanAge and MaxDBAge bound the age of image scans and of the
	// vulnerability database before they are reported as stale; 0
	// disables the check.
	MaxScanAge time.Duration
	MaxDBAge   time.Duration
	// MaxBenchmarkAge and MaxPenTestAge bound the age of the scanner's
	// kube-bench and kube-hunter summaries (NodeBenchmark,
	// PenetrationTest), by when the tool ran (status.origin.scanTime). An
	// older summary, or one that does not say when it ran, assesses
	// nothing: the report names it as stale. 0 disables the check.
	MaxBenchmarkAge time.Duration
	MaxPenTestAge   time.Duration
}

// DefaultOptions are the settings guardctl report starts from.
func DefaultOptions(now time.Time) Options {
	return Options{
		Now:                  now,
		WebhookTLSMinVersion: "1.2",
		SystemNamespaces:     []string{"kube-system", "kube-public", "kube-node-lease", "daaas-guard"},
		MaxScanAge:           7 * 24 * time.Hour,
		MaxDBAge:             72 * time.Hour,
		// Three of the scanner's default intervals: two runs missed, or a
		// run over many nodes that takes long, before the evidence is
		// stale.
		MaxBenchmarkAge: 3 * clusterscan.DefaultKubeBenchInterval,
		MaxPenTestAge:   3 * clusterscan.DefaultKubeHunterInterval,
	}
}

// Inputs are the decoded inputs of a report, before they become evidence.
type Inputs struct {
	Templates []*policy.Template
	// TemplateOrigins says where each template was read.
	TemplateOrigins map[*policy.Template]string
	Constraints     []Constraint
	Reports         []Report
	Webhooks        []WebhookConfig
	Trivy           []*TrivyReport
	TrivyDB         *TrivyDB
	// ImageScans are the scanner's verdicts (from a cluster).
	ImageScans []ImageScan
	Bench      []*BenchRun
	Hunter     []*HunterRun
	// NodeBenchmarks, ClusterBenchmarks and PenetrationTests are the
	// scanner's kube-bench and kube-hunter summaries (from a cluster).
	NodeBenchmarks    []NodeBenchmark
	ClusterBenchmarks []ClusterBenchmark
	PenetrationTests  []PenetrationTest
	// Running lists the images the cluster runs; RunningKnown says
	// whether it was read at all (files do not say what runs).
	Running      []RunningImage
	RunningKnown bool
	// Nodes are the cluster's node names, for benchmark coverage;
	// NodesKnown says whether they were read at all (files do not say
	// which nodes exist), NodeBenchmarksKnown whether the NodeBenchmarks
	// were: a node lacks one only if both were.
	Nodes               []string
	NodesKnown          bool
	NodeBenchmarksKnown bool
	// Origins lists, per source, the files or clusters read.
	Origins map[compliance.Source][]string
	// Warnings are problems that did not stop reading.
	Warnings []string
}

// NewInputs returns empty inputs.
func NewInputs() *Inputs {
	return &Inputs{TemplateOrigins: map[*policy.Template]string{}, Origins: map[compliance.Source][]string{}}
}

func (in *Inputs) origin(s compliance.Source, origin string) {
	for _, o := range in.Origins[s] {
		if o == origin {
			return
		}
	}
	in.Origins[s] = append(in.Origins[s], origin)
}

// AddTemplate adds a decoded template read from origin.
func (in *Inputs) AddTemplate(t *policy.Template, origin string) {
	in.Templates = append(in.Templates, t)
	in.TemplateOrigins[t] = origin
	in.origin(compliance.SourcePolicy, origin)
}

// Merge adds other's inputs to in.
func (in *Inputs) Merge(other *Inputs) error {
	in.Templates = append(in.Templates, other.Templates...)
	for t, o := range other.TemplateOrigins {
		in.TemplateOrigins[t] = o
	}
	in.Constraints = append(in.Constraints, other.Constraints...)
	in.Reports = append(in.Reports, other.Reports...)
	in.Webhooks = append(in.Webhooks, other.Webhooks...)
	in.Trivy = append(in.Trivy, other.Trivy...)
	in.ImageScans = append(in.ImageScans, other.ImageScans...)
	if other.TrivyDB != nil {
		if in.TrivyDB != nil && in.TrivyDB.Origin != other.TrivyDB.Origin {
			return fmt.Errorf("two Trivy DB metadata files, %s and %s: give the one the scans used", in.TrivyDB.Origin, other.TrivyDB.Origin)
		}
		in.TrivyDB = other.TrivyDB
	}
	in.Bench = append(in.Bench, other.Bench...)
	in.Hunter = append(in.Hunter, other.Hunter...)
	in.NodeBenchmarks = append(in.NodeBenchmarks, other.NodeBenchmarks...)
	in.ClusterBenchmarks = append(in.ClusterBenchmarks, other.ClusterBenchmarks...)
	in.PenetrationTests = append(in.PenetrationTests, other.PenetrationTests...)
	in.Running = append(in.Running, other.Running...)
	in.RunningKnown = in.RunningKnown || other.RunningKnown
	in.Nodes = append(in.Nodes, other.Nodes...)
	in.NodesKnown = in.NodesKnown || other.NodesKnown
	in.NodeBenchmarksKnown = in.NodeBenchmarksKnown || other.NodeBenchmarksKnown
	for _, s := range compliance.Sources {
		for _, o := range other.Origins[s] {
			in.origin(s, o)
		}
	}
	in.Warnings = append(in.Warnings, other.Warnings...)
	return nil
}

// Evidence converts the inputs into evidence, with what each source
// contributed (and which sources gave nothing) and the warnings met.
func (in *Inputs) Evidence(opts Options) ([]compliance.Evidence, []compliance.SourceInfo, []string) {
	warnings := append([]string(nil), in.Warnings...)
	var out []compliance.Evidence
	var infos []compliance.SourceInfo

	pol, w := PolicyEvidence(in.Templates, in.TemplateOrigins, in.Constraints)
	out = append(out, pol...)
	warnings = append(warnings, w...)
	if len(in.Templates) > 0 {
		versioned := 0
		for _, t := range in.Templates {
			if t.Annotations[AnnotationVersion] != "" {
				versioned++
			}
		}
		infos = append(infos, compliance.SourceInfo{Source: compliance.SourcePolicy, Origin: origins(in.Origins[compliance.SourcePolicy]),
			Tool:   "Gatekeeper ConstraintTemplates",
			Detail: fmt.Sprintf("%s (%d versioned), %s", plural(len(in.Templates), "template"), versioned, plural(len(in.Constraints), "constraint"))})
	} else {
		infos = append(infos, notProvided(compliance.SourcePolicy))
	}

	audit, latest := AuditEvidence(in.Reports, in.Templates)
	out = append(out, audit...)
	if len(in.Reports) > 0 {
		results := 0
		for _, r := range in.Reports {
			results += len(r.Report.Results)
		}
		infos = append(infos, compliance.SourceInfo{Source: compliance.SourceAudit, Origin: origins(in.Origins[compliance.SourceAudit]),
			Tool: "wg-policy PolicyReports (wgpolicyk8s.io/v1alpha2)", ProducedAt: latest,
			Detail: fmt.Sprintf("%s, %s", plural(len(in.Reports), "report"), plural(results, "result"))})
	} else {
		infos = append(infos, notProvided(compliance.SourceAudit))
	}

	out = append(out, WebhookEvidence(in.Webhooks, opts)...)
	if len(in.Webhooks) > 0 {
		configs := map[string]bool{}
		for _, w := range in.Webhooks {
			configs[w.Kind+"/"+w.Config] = true
		}
		detail := fmt.Sprintf("%s in %s", plural(len(in.Webhooks), "webhook"), plural(len(configs), "configuration"))
		if opts.WebhookTLSMinVersion != "" {
			detail += "; serving TLS " + opts.WebhookTLSMinVersion + "+ (as configured for this report)"
		}
		infos = append(infos, compliance.SourceInfo{Source: compliance.SourceWebhookConfig, Origin: origins(in.Origins[compliance.SourceWebhookConfig]),
			Tool: "admission webhook configurations", Detail: detail})
	} else {
		infos = append(infos, notProvided(compliance.SourceWebhookConfig))
	}

	summarised, benchMissing, benchStale := benchSummaryRuns(in.NodeBenchmarks, opts)
	bench := append(append([]*BenchRun(nil), in.Bench...), summarised...)
	out = append(out, BenchEvidence(bench)...)
	out = append(out, benchMissing...)
	out = append(out, benchStale...)
	var coverage string
	if in.NodesKnown && in.NodeBenchmarksKnown {
		var uncovered *compliance.Evidence
		uncovered, coverage = nodeCoverage(in.Nodes, in.NodeBenchmarks, len(in.Bench), opts)
		if uncovered != nil {
			out = append(out, *uncovered)
		}
	}
	infos = append(infos, benchInfos(bench, len(benchMissing), len(benchStale), opts.MaxBenchmarkAge, coverage, scheduleDetail(in.ClusterBenchmarks))...)

	summarisedHunts, hunterMissing, hunterStale := hunterSummaryRuns(in.PenetrationTests, opts)
	hunter := append(append([]*HunterRun(nil), in.Hunter...), summarisedHunts...)
	out = append(out, HunterEvidence(hunter)...)
	out = append(out, hunterMissing...)
	out = append(out, hunterStale...)
	infos = append(infos, hunterInfo(hunter, len(hunterMissing), len(hunterStale), opts.MaxPenTestAge, in.Origins[compliance.SourceKubeHunter]))

	var running []RunningImage
	if in.RunningKnown {
		running = in.Running
	}
	out = append(out, ScanEvidence(in.Trivy, in.ImageScans, in.TrivyDB, running, opts)...)
	if len(in.Trivy) > 0 || in.TrivyDB != nil || len(in.ImageScans) > 0 {
		scans, waiting, dbs := collectScans(in.Trivy, in.ImageScans, in.TrivyDB)
		info := scanInfo(origins(in.Origins[compliance.SourceImageScan]), scans, dbs)
		if info.DBVersion == "" {
			if len(in.Trivy) > 0 {
				info.DBVersion = "not recorded (Trivy's JSON does not carry it; give the DB's metadata.json)"
			} else {
				info.DBVersion = "not recorded (the verdicts were ingested from other scanners' reports)"
			}
		}
		info.Detail = plural(len(scans), "image") + " scanned"
		if n := len(waiting); n > 0 {
			info.Detail += fmt.Sprintf("; %s without a verdict (pending or failed)", plural(n, "ImageScan"))
		}
		if info.Version == "" && len(in.Trivy) > 0 {
			info.Detail += "; the reports do not record Trivy's version"
		}
		if in.RunningKnown {
			missing := len(unscanned(scans, in.Running))
			info.Detail += fmt.Sprintf("; %d of %d running images scanned", len(in.Running)-missing, len(in.Running))
		} else {
			info.Detail += "; coverage of running images unknown (not read from a cluster)"
		}
		infos = append(infos, info)
	} else {
		infos = append(infos, notProvided(compliance.SourceImageScan))
	}
	return out, infos, warnings
}

// benchInfos says what the kube-bench runs rest on, per benchmark used;
// missing counts the NodeBenchmarks without a summary, stale those older
// than maxAge, coverage says how many nodes a current one covers (empty:
// the nodes are not known), schedule is what the ClusterBenchmark says of
// the scheduled runs.
func benchInfos(runs []*BenchRun, missing, stale int, maxAge time.Duration, coverage, schedule string) []compliance.SourceInfo {
	var tail []string
	if missing > 0 {
		tail = append(tail, plural(missing, "NodeBenchmark")+" without a summary (scan pending or failed)")
	}
	if stale > 0 {
		tail = append(tail, fmt.Sprintf("%s older than %s, not assessed", plural(stale, "NodeBenchmark"), age(maxAge)))
	}
	if coverage != "" {
		tail = append(tail, coverage)
	}
	if schedule != "" {
		tail = append(tail, schedule)
	}
	if len(runs) == 0 {
		if len(tail) == 0 {
			return []compliance.SourceInfo{notProvided(compliance.SourceKubeBench)}
		}
		return []compliance.SourceInfo{{Source: compliance.SourceKubeBench, Origin: ClusterOrigin, Tool: "kube-bench",
			Detail: "no run; " + strings.Join(tail, "; ")}}
	}
	type group struct {
		origins, versions, nodeTypes, scanners []string
		runs, checks, summaries, unlisted      int
		latest                                 *time.Time
	}
	groups := map[string]*group{}
	for _, r := range runs {
		bench := strings.Join(r.Benchmarks, ", ")
		g := groups[bench]
		if g == nil {
			g = &group{}
			groups[bench] = g
		}
		g.runs++
		g.origins = appendUnique(g.origins, r.Origin)
		for _, v := range r.KubernetesVersions {
			g.versions = appendUnique(g.versions, v)
		}
		for _, n := range r.NodeTypes {
			g.nodeTypes = appendUnique(g.nodeTypes, n)
		}
		if s := r.Summary; s != nil {
			t := s.Totals
			g.checks += t.Pass + t.Fail + t.Warn + t.Info
			g.summaries++
			g.unlisted += t.Pass + t.Warn + t.Info + s.FailuresOmitted
			g.scanners = appendUnique(g.scanners, strings.TrimSpace(s.Scanner+" "+s.Image))
			if at := s.ScanTime; !at.IsZero() && (g.latest == nil || at.After(*g.latest)) {
				g.latest = &at
			}
		} else {
			g.checks += len(r.Checks)
		}
	}
	var out []compliance.SourceInfo
	for _, bench := range slices.Sorted(maps.Keys(groups)) {
		g := groups[bench]
		detail := fmt.Sprintf("%s, %s; %s checks; Kubernetes %s as detected", plural(g.runs, "run"), plural(g.checks, "check"),
			orNone(strings.Join(g.nodeTypes, ", ")), orNone(strings.Join(g.versions, ", ")))
		if g.summaries > 0 {
			detail += fmt.Sprintf("; %d from the scanner's NodeBenchmark summaries (%s), which list failing checks only, up to a limit: %d checks are counted per section, not listed",
				g.summaries, orNone(strings.Join(g.scanners, ", ")), g.unlisted)
		}
		out = append(out, compliance.SourceInfo{Source: compliance.SourceKubeBench, Origin: origins(g.origins), Tool: "kube-bench",
			Benchmark: orNone(bench), ProducedAt: g.latest, Detail: strings.Join(append([]string{detail}, tail...), "; ")})
	}
	return out
}

// hunterInfo says what the kube-hunter runs rest on; missing counts the
// PenetrationTests without a summary, stale those older than maxAge.
func hunterInfo(runs []*HunterRun, missing, stale int, maxAge time.Duration, from []string) compliance.SourceInfo {
	if len(runs) == 0 && missing == 0 && stale == 0 {
		return notProvided(compliance.SourceKubeHunter)
	}
	findings, files := 0, 0
	var scanners, notes []string
	var latest *time.Time
	for _, r := range runs {
		s := r.Summary
		if s == nil {
			files++
			findings += len(r.Findings)
			continue
		}
		for _, n := range s.Counts {
			findings += n
		}
		scanners = appendUnique(scanners, strings.TrimSpace(s.Scanner+" "+s.Image))
		if at := s.ScanTime; !at.IsZero() && (latest == nil || at.After(*latest)) {
			latest = &at
		}
	}
	if files > 0 {
		notes = append(notes, "kube-hunter's JSON does not record its version")
	}
	if n := len(runs) - files; n > 0 {
		notes = append(notes, fmt.Sprintf("%d from the scanner's PenetrationTest summary (%s), which lists findings without description or evidence, up to a limit",
			n, orNone(strings.Join(scanners, ", "))))
	}
	if missing > 0 {
		notes = append(notes, plural(missing, "PenetrationTest")+" without a summary (run pending or failed)")
	}
	if stale > 0 {
		notes = append(notes, fmt.Sprintf("%s older than %s, not assessed", plural(stale, "PenetrationTest"), age(maxAge)))
	}
	return compliance.SourceInfo{Source: compliance.SourceKubeHunter, Origin: origins(from), Tool: "kube-hunter", ProducedAt: latest,
		Detail: strings.Join(append([]string{fmt.Sprintf("%s, %s", plural(len(runs), "run"), plural(findings, "finding"))}, notes...), "; ")}
}

func notProvided(s compliance.Source) compliance.SourceInfo {
	return compliance.SourceInfo{Source: s, Detail: "not provided"}
}

// origins names the inputs of a source compactly.
func origins(list []string) string {
	if len(list) == 1 {
		return list[0]
	}
	return fmt.Sprintf("%d inputs: %s", len(list), listSome(list))
}

// plural writes a count and a noun, in the plural unless the count is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
