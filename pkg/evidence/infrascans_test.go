package evidence

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/kubebench"
	"github.com/statcan/daaas-guard/pkg/kubehunter"
)

var benchTime = time.Date(2026, 11, 26, 3, 10, 0, 0, time.UTC)

func scanned(ok bool, reason, msg string) []metav1.Condition {
	st := metav1.ConditionTrue
	if !ok {
		st = metav1.ConditionFalse
	}
	return []metav1.Condition{{Type: v1alpha1.InfraScanConditionScanned, Status: st, Reason: reason, Message: msg,
		LastTransitionTime: metav1.NewTime(benchTime)}}
}

func jobOrigin(name, tool string) *v1alpha1.InfraScanOrigin {
	return &v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceJob, Name: name, Scanner: tool,
		Image: "docker.io/aquasec/" + tool + ":test", ScanTime: metav1.NewTime(benchTime)}
}

// infraSummaries are what the scanner keeps after a kube-bench run over
// three nodes (one summary capped, one scan failed with nothing to keep,
// one latest scan failed over an earlier summary) and a kube-hunter run
// whose summary leaves a finding out.
func infraSummaries() []client.Object {
	worker := &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: v1alpha1.NodeBenchmarkStatus{
		Origin: jobOrigin("kube-bench-worker-1-20261126", "kube-bench"),
		Summary: &v1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", KubernetesVersion: "1.31", NodeTypes: []string{"node", "policies"},
			Totals: v1alpha1.BenchmarkTotals{Pass: 20, Fail: 3, Warn: 5},
			Sections: []v1alpha1.BenchmarkSection{
				{ID: "4", Text: "Worker Node Security Configuration", NodeType: "node", Totals: v1alpha1.BenchmarkTotals{Pass: 18, Fail: 3, Warn: 1}},
				{ID: "5", Text: "Kubernetes Policies", NodeType: "policies", Totals: v1alpha1.BenchmarkTotals{Pass: 2, Warn: 4}},
			},
			Failures: []v1alpha1.BenchmarkFailure{
				{ID: "4.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Scored: true},
				{ID: "4.1.1", Text: "Ensure that the kubelet service file permissions are set to 600 or more restrictive", Scored: true},
			},
			FailuresOmitted: 1},
		Conditions: scanned(true, v1alpha1.InfraScanReasonSucceeded, "cis-1.10: 20 pass, 3 fail, 5 warn, 0 info")}}
	broken := &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "worker-2"}, Status: v1alpha1.NodeBenchmarkStatus{
		Conditions: scanned(false, v1alpha1.InfraScanReasonJobFailed, "container kube-bench exited with code 1")}}
	cp := &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "cp-1"}, Status: v1alpha1.NodeBenchmarkStatus{
		Origin: jobOrigin("kube-bench-cp-1-20261125", "kube-bench"),
		Summary: &v1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", NodeTypes: []string{"master"},
			Totals:   v1alpha1.BenchmarkTotals{Pass: 40},
			Sections: []v1alpha1.BenchmarkSection{{ID: "1", Text: "Control Plane Security Configuration", NodeType: "master", Totals: v1alpha1.BenchmarkTotals{Pass: 40}}}},
		Conditions: scanned(false, v1alpha1.InfraScanReasonLogsUnreadable, "pod log: connection refused")}}
	last := metav1.NewTime(benchTime.Add(-time.Hour))
	done := metav1.NewTime(benchTime)
	cluster := &v1alpha1.ClusterBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: v1alpha1.ClusterBenchmarkStatus{
		Schedule: v1alpha1.InfraScanSchedule{RunID: "20261126", LastScheduleTime: &last, LastCompletionTime: &done},
		Nodes:    2, NodesFailing: 1, NodesInError: 2, Totals: v1alpha1.BenchmarkTotals{Pass: 60, Fail: 3, Warn: 5},
		CommonFailures: []v1alpha1.CommonFailure{{ID: "4.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Nodes: 1}}}}
	pentest := &v1alpha1.PenetrationTest{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: v1alpha1.PenetrationTestStatus{
		Origin: jobOrigin("kube-hunter-20261126", "kube-hunter"),
		Summary: &v1alpha1.PenetrationTestSummary{Nodes: 3, Services: 4, Counts: v1alpha1.PenetrationSeverityCounts{High: 1, Low: 2},
			Findings: []v1alpha1.PenetrationFinding{
				{ID: "KHV036", Name: "Anonymous Authentication", Severity: "high", Category: "Initial Access // Exposed sensitive interfaces", Location: "10.0.0.21:10250"},
				{ID: "KHV002", Name: "K8s Version Disclosure", Severity: "low", Category: "Initial Access // Exposed sensitive interfaces", Location: "10.0.0.10:6443"},
			},
			FindingsOmitted: 1},
		Conditions: scanned(true, v1alpha1.InfraScanReasonSucceeded, "1 high, 0 medium, 2 low, 0 unknown")}}
	return []client.Object{worker, broken, cp, cluster, pentest}
}

func infraScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return scheme
}

// statuses builds the report and returns each control's status.
func statuses(ev []compliance.Evidence, infos []compliance.SourceInfo) map[string]compliance.Status {
	r := compliance.Build(compliance.DefaultModel(), ev, compliance.Meta{GeneratedAt: now, Sources: infos})
	out := map[string]compliance.Status{}
	for _, ctl := range r.Controls {
		out[ctl.ID] = ctl.Status
	}
	return out
}

func TestReadCluster_InfraScanSummariesReachTheEvidence(t *testing.T) {
	c := &pager{Reader: fake.NewClientBuilder().WithScheme(infraScheme(t)).WithObjects(infraSummaries()...).Build(), calls: map[string]int{}}
	in, err := ReadCluster(context.Background(), c, DefaultClusterSources(ClusterOptions{PageSize: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.calls["NodeBenchmarkList"]; n != 3 {
		t.Errorf("%d list calls for 3 NodeBenchmarks, 1 a page: want 3", n)
	}
	if len(in.Warnings) != 0 {
		t.Errorf("warnings: %q", in.Warnings)
	}
	ev, infos, _ := in.Evidence(DefaultOptions(now))
	var got []string
	messages := map[string]string{}
	for _, e := range ev {
		if e.Source != compliance.SourceKubeBench && e.Source != compliance.SourceKubeHunter {
			continue
		}
		subject := "-"
		if len(e.Subjects) > 0 {
			subject = e.Subjects[0].String()
		}
		line := strings.Join([]string{string(e.Source), e.ID, string(e.Result), string(e.Severity), subject}, " ")
		got = append(got, line)
		messages[line] = e.Message
		if e.Origin != ClusterOrigin {
			t.Errorf("%s: origin %q", line, e.Origin)
		}
	}
	sort.Strings(got)
	want := []string{
		// The latest scan of cp-1 failed: its earlier summary stands, and
		// says so.
		"kube-bench 1 pass unknown Node cp-1",
		"kube-bench benchmark-run pass info Node cp-1",
		"kube-bench benchmark-run warn medium Node cp-1",
		// worker-1: the listed failures, then per section what is only
		// counted, with the failure the summary left out.
		"kube-bench 4 fail unknown Node worker-1",
		"kube-bench 4 pass unknown Node worker-1",
		"kube-bench 4 warn unknown Node worker-1",
		"kube-bench 4.1.1 fail unknown Node worker-1",
		"kube-bench 4.2.1 fail unknown Node worker-1",
		"kube-bench 5 pass unknown Node worker-1",
		"kube-bench 5 warn unknown Node worker-1",
		"kube-bench benchmark-run pass info Node worker-1",
		// worker-2 was never benchmarked successfully.
		"kube-bench benchmark-run error medium Node worker-2",
		"kube-hunter KHV002 fail low Endpoint 10.0.0.10:6443",
		"kube-hunter KHV036 fail high Endpoint 10.0.0.21:10250",
		"kube-hunter hunter-run pass info -",
		"kube-hunter unlisted-findings fail low -",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kube-bench and kube-hunter evidence (-want +got):\n%s", diff)
	}
	for line, want := range map[string]string{
		"kube-bench 4.2.1 fail unknown Node worker-1":           "node check; listed by the NodeBenchmark worker-1 summary, which keeps no reason, found value or remediation (kube-bench's JSON has them)",
		"kube-bench 4 fail unknown Node worker-1":               "1 node check fails that the NodeBenchmark worker-1 summary does not list: it lists at most a configured number of failing checks, scored first",
		"kube-bench 4 pass unknown Node worker-1":               "18 node checks pass; the NodeBenchmark worker-1 summary counts them without listing them",
		"kube-bench benchmark-run pass info Node worker-1":      "kube-bench cis-1.10 on node, policies checks: 20 pass, 3 fail, 5 warn, 0 info; from the NodeBenchmark worker-1 summary of Job kube-bench-worker-1-20261126, scanned on 2026-11-26T03:10:00Z by kube-bench (docker.io/aquasec/kube-bench:test), listing 2 of its 3 failing checks",
		"kube-bench benchmark-run warn medium Node cp-1":        "the latest kube-bench scan failed (LogsUnreadable: pod log: connection refused); the checks reported are an earlier scan's, on 2026-11-26T03:10:00Z",
		"kube-bench benchmark-run error medium Node worker-2":   "NodeBenchmark worker-2 holds no summary: the kube-bench scan failed (JobFailed: container kube-bench exited with code 1)",
		"kube-hunter KHV036 fail high Endpoint 10.0.0.21:10250": "listed by the PenetrationTest cluster summary, which keeps no description or evidence (the evidence can be a credential)",
		"kube-hunter unlisted-findings fail low -":              "1 more finding of low severity that the PenetrationTest cluster summary does not list: it lists at most a configured number, highest severity first",
		"kube-hunter hunter-run pass info -":                    "kube-hunter probed 3 nodes and 4 services and reported 3 findings; from the PenetrationTest cluster summary of Job kube-hunter-20261126, scanned on 2026-11-26T03:10:00Z by kube-hunter (docker.io/aquasec/kube-hunter:test), listing 2 of the findings",
	} {
		if got := messages[line]; got != want {
			t.Errorf("%s: message\n%q, want\n%q", line, got, want)
		}
	}

	var bench, hunter []compliance.SourceInfo
	for _, s := range infos {
		switch s.Source {
		case compliance.SourceKubeBench:
			bench = append(bench, s)
		case compliance.SourceKubeHunter:
			hunter = append(hunter, s)
		}
	}
	wantBench := []compliance.SourceInfo{{Source: compliance.SourceKubeBench, Origin: ClusterOrigin, Tool: "kube-bench", Benchmark: "cis-1.10", ProducedAt: &benchTime,
		Detail: "2 runs, 68 checks; master, node, policies checks; Kubernetes 1.31 as detected; " +
			"2 from the scanner's NodeBenchmark summaries (kube-bench docker.io/aquasec/kube-bench:test), which list failing checks only, up to a limit: 66 checks are counted per section, not listed; " +
			"1 NodeBenchmark without a summary (scan pending or failed); " +
			"the last scheduled run started on 2026-11-26T02:10:00Z and finished on 2026-11-26T03:10:00Z; the latest scan of 2 nodes failed"}}
	if diff := cmp.Diff(wantBench, bench); diff != "" {
		t.Errorf("kube-bench source (-want +got):\n%s", diff)
	}
	wantHunter := []compliance.SourceInfo{{Source: compliance.SourceKubeHunter, Origin: ClusterOrigin, Tool: "kube-hunter", ProducedAt: &benchTime,
		Detail: "1 run, 3 findings; 1 from the scanner's PenetrationTest summary (kube-hunter docker.io/aquasec/kube-hunter:test), which lists findings without description or evidence, up to a limit"}}
	if diff := cmp.Diff(wantHunter, hunter); diff != "" {
		t.Errorf("kube-hunter source (-want +got):\n%s", diff)
	}

	// The controls the summaries reach, which the cluster left unassessed
	// before: CM-6 (the CIS configuration checks), RA-5 (the runs and the
	// findings), SI-4 (kube-hunter runs), CM-2 (the benchmark as a
	// baseline).
	status := statuses(ev, infos)
	for id, want := range map[string]compliance.Status{
		// Node checks of section 4 pass and fail.
		"CM-6": compliance.StatusPartially,
		// Runs happen; kube-hunter found vulnerabilities (none critical).
		"RA-5": compliance.StatusPartially,
		"SI-4": compliance.StatusSatisfied,
		// Runs happen; one failed, one node has no benchmark.
		"CM-2": compliance.StatusPartially,
		// KHV036 anonymous authentication, and nothing passing.
		"IA-2": compliance.StatusNotSatisfied,
	} {
		if status[id] != want {
			t.Errorf("%s: %s, want %s", id, status[id], want)
		}
	}
	// Without the summaries the same cluster assesses none of them.
	bare, err := ReadCluster(context.Background(), fake.NewClientBuilder().WithScheme(infraScheme(t)).Build(), DefaultClusterSources(ClusterOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	ev, infos, _ = bare.Evidence(DefaultOptions(now))
	status = statuses(ev, infos)
	for _, id := range []string{"CM-6", "RA-5", "SI-4", "CM-2", "IA-2"} {
		if status[id] != compliance.StatusNotAssessed {
			t.Errorf("%s without evidence: %s", id, status[id])
		}
	}
}

// notServed answers lists of some kinds as an API server without their
// CRDs does, or forbids them.
type notServed struct {
	client.Reader
	errs map[string]error // by list kind
}

func (n notServed) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if u, ok := list.(*unstructured.UnstructuredList); ok {
		if err := n.errs[u.GetKind()]; err != nil {
			return err
		}
	}
	return n.Reader.List(ctx, list, opts...)
}

func TestReadCluster_InfraScanKindsNotServed(t *testing.T) {
	noMatch := func(kind string) error {
		return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: kind}, SearchedVersions: []string{"v1alpha1"}}
	}
	for _, tc := range []struct {
		name         string
		errs         map[string]error
		warnings     []string
		bench, hunts bool
	}{
		{"no CRDs", map[string]error{"NodeBenchmarkList": noMatch("NodeBenchmark"), "ClusterBenchmarkList": noMatch("ClusterBenchmark"),
			"PenetrationTestList": noMatch("PenetrationTest")},
			[]string{"cluster: NodeBenchmarks: the API is not installed, left out", "cluster: ClusterBenchmarks: the API is not installed, left out",
				"cluster: PenetrationTests: the API is not installed, left out"}, false, false},
		{"PenetrationTests forbidden", map[string]error{"PenetrationTestList": apierrors.NewForbidden(
			schema.GroupResource{Group: v1alpha1.GroupVersion.Group, Resource: "penetrationtests"}, "", errors.New("RBAC: list denied"))},
			[]string{`cluster: PenetrationTests: not permitted (penetrationtests.guard.statcan.gc.ca is forbidden: RBAC: list denied), left out`}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := notServed{Reader: fake.NewClientBuilder().WithScheme(infraScheme(t)).WithObjects(infraSummaries()...).Build(), errs: tc.errs}
			in, err := ReadCluster(context.Background(), c, DefaultClusterSources(ClusterOptions{}))
			if err != nil {
				t.Fatalf("kinds not served are no evidence, not an error: %v", err)
			}
			if diff := cmp.Diff(tc.warnings, in.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			ev, infos, _ := in.Evidence(DefaultOptions(now))
			found := map[compliance.Source]bool{}
			for _, e := range ev {
				found[e.Source] = true
			}
			if found[compliance.SourceKubeBench] != tc.bench || found[compliance.SourceKubeHunter] != tc.hunts {
				t.Errorf("kube-bench evidence %v, kube-hunter evidence %v; want %v, %v", found[compliance.SourceKubeBench], found[compliance.SourceKubeHunter], tc.bench, tc.hunts)
			}
			for _, s := range infos {
				if (s.Source == compliance.SourceKubeBench && !tc.bench || s.Source == compliance.SourceKubeHunter && !tc.hunts) && s.Detail != "not provided" {
					t.Errorf("source %s: %+v, want not provided", s.Source, s)
				}
			}
		})
	}
}

// The summaries the scanner writes of the kube-bench and kube-hunter
// fixtures assess the controls as the fixtures do, where the summaries
// keep enough: the controls every check of a section bears on, and every
// finding's. The controls that single checks bear on see only the failing
// checks a summary lists: its passing ones are counted, not named.
func TestSummaries_AssessAsTheirJSONDoes(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fixtures, "cis", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files, err := ReadFiles([]string{filepath.Join(fixtures, "cis")}, KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for node, file := range map[string]string{"cp-1": "kube-bench-master.json", "worker-1": "kube-bench-node-nototals.json"} {
		r, err := kubebench.Parse(read(file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		s := kubebench.Summarize(r, kubebench.Limits{})
		objs = append(objs, &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: node},
			Status: v1alpha1.NodeBenchmarkStatus{Origin: jobOrigin("kube-bench-"+node, "kube-bench"), Summary: &s,
				Conditions: scanned(true, v1alpha1.InfraScanReasonSucceeded, "")}})
	}
	r, err := kubehunter.Parse(read("kube-hunter.json"))
	if err != nil {
		t.Fatal(err)
	}
	hs := kubehunter.Summarize(r, kubehunter.Limits{})
	objs = append(objs, &v1alpha1.PenetrationTest{ObjectMeta: metav1.ObjectMeta{Name: "cluster"},
		Status: v1alpha1.PenetrationTestStatus{Origin: jobOrigin("kube-hunter", "kube-hunter"), Summary: &hs,
			Conditions: scanned(true, v1alpha1.InfraScanReasonSucceeded, "")}})
	cluster, err := ReadCluster(context.Background(), fake.NewClientBuilder().WithScheme(infraScheme(t)).WithObjects(objs...).Build(),
		DefaultClusterSources(ClusterOptions{}))
	if err != nil {
		t.Fatal(err)
	}

	ev, infos, _ := files.Evidence(DefaultOptions(now))
	fromFiles := statuses(ev, infos)
	ev, infos, _ = cluster.Evidence(DefaultOptions(now))
	fromCluster := statuses(ev, infos)
	var same, differ []string
	for id, st := range fromFiles {
		if fromCluster[id] == st {
			same = append(same, id)
		} else {
			differ = append(differ, id+" "+string(st)+" from files, "+string(fromCluster[id])+" from summaries")
		}
	}
	sort.Strings(same)
	sort.Strings(differ)
	for _, id := range []string{"CM-2", "CM-6", "IA-2", "RA-5", "SI-4", "AU-2", "AU-12"} {
		if fromFiles[id] == compliance.StatusNotAssessed {
			t.Errorf("%s is not assessed from the fixtures: pick a control they bear on", id)
		}
		if fromCluster[id] != fromFiles[id] {
			t.Errorf("%s: %s from the summaries, %s from the JSON", id, fromCluster[id], fromFiles[id])
		}
	}
	// What the summaries cannot tell: 1.2.24 passes (SC-8 also sees 4.2.1
	// fail), 1.2.22, 1.2.27 and 1.1.1 pass (SC-12, SC-28, SI-7 see nothing),
	// 5.1.1 warns (the summary counts it in section 5, which no rule maps).
	wantDiffer := []string{
		"AC-3 partially-satisfied from files, not-assessed from summaries",
		"AC-6 partially-satisfied from files, not-assessed from summaries",
		"SC-12 satisfied from files, not-assessed from summaries",
		"SC-28 satisfied from files, not-assessed from summaries",
		"SC-8 partially-satisfied from files, not-satisfied from summaries",
		"SI-7 satisfied from files, not-assessed from summaries",
	}
	if diff := cmp.Diff(wantDiffer, differ); diff != "" {
		t.Errorf("controls the summaries assess differently (-want +got):\n%s\nthe same: %v", diff, same)
	}
}

// A summary the evidence cannot state (a negative count, a listed check
// without ID) is left out with a warning naming the field; the others are
// read.
func TestReadCluster_InfraScanSummariesTheEvidenceCannotState(t *testing.T) {
	objs := infraSummaries()
	objs[0].(*v1alpha1.NodeBenchmark).Status.Summary.Sections[1].Totals.Warn = -4
	objs[0].(*v1alpha1.NodeBenchmark).Status.Summary.Failures[0].ID = ""
	objs[4].(*v1alpha1.PenetrationTest).Status.Summary.Counts.Low = -1
	in, err := ReadCluster(context.Background(), fake.NewClientBuilder().WithScheme(infraScheme(t)).WithObjects(objs...).Build(),
		DefaultClusterSources(ClusterOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`cluster: NodeBenchmark "worker-1": status.summary.sections[1].totals.warn: -4 is negative; status.summary.failures[0].id: empty: left out`,
		`cluster: PenetrationTest "cluster": status.summary.counts.low: -1 is negative: left out`,
	}
	if diff := cmp.Diff(want, in.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	var names []string
	for _, nb := range in.NodeBenchmarks {
		names = append(names, nb.Bench.Name)
	}
	if diff := cmp.Diff([]string{"cp-1", "worker-2"}, names); diff != "" || len(in.PenetrationTests) != 0 || len(in.ClusterBenchmarks) != 1 {
		t.Errorf("read NodeBenchmarks %v, %d PenetrationTests, %d ClusterBenchmarks", names, len(in.PenetrationTests), len(in.ClusterBenchmarks))
	}
}

// benchAt and pentestAt are a node's NodeBenchmark and the cluster's
// PenetrationTest, as the scanner writes them, of scans that ran at at.
func benchAt(node string, at time.Time) *v1alpha1.NodeBenchmark {
	return &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: node}, Status: v1alpha1.NodeBenchmarkStatus{
		Origin: &v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceJob, Name: "kube-bench-" + node, ScanTime: metav1.NewTime(at)},
		Summary: &v1alpha1.BenchmarkSummary{Benchmark: "cis-1.10", NodeTypes: []string{"node"},
			Totals:   v1alpha1.BenchmarkTotals{Pass: 18, Fail: 1},
			Sections: []v1alpha1.BenchmarkSection{{ID: "4", Text: "Worker Node Security Configuration", NodeType: "node", Totals: v1alpha1.BenchmarkTotals{Pass: 18, Fail: 1}}},
			Failures: []v1alpha1.BenchmarkFailure{{ID: "4.2.1", Text: "Ensure that the --anonymous-auth argument is set to false", Scored: true}}},
		Conditions: scanned(true, v1alpha1.InfraScanReasonSucceeded, "")}}
}

func pentestAt(at time.Time) *v1alpha1.PenetrationTest {
	return &v1alpha1.PenetrationTest{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}, Status: v1alpha1.PenetrationTestStatus{
		Origin: &v1alpha1.InfraScanOrigin{Source: v1alpha1.InfraScanSourceJob, Name: "kube-hunter", ScanTime: metav1.NewTime(at)},
		Summary: &v1alpha1.PenetrationTestSummary{Nodes: 1, Services: 1, Counts: v1alpha1.PenetrationSeverityCounts{High: 1},
			Findings: []v1alpha1.PenetrationFinding{{ID: "KHV036", Name: "Anonymous Authentication", Severity: "high", Location: "10.0.0.21:10250"}}},
		Conditions: scanned(true, v1alpha1.InfraScanReasonSucceeded, "")}}
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// clusterEvidence reads objs as a cluster and returns its evidence at the
// report time of opts, as "source id result severity subjects" lines with
// their messages, and the kube-bench and kube-hunter source details.
func clusterEvidence(t *testing.T, opts Options, objs ...client.Object) ([]compliance.Evidence, map[string]string, map[compliance.Source]string) {
	t.Helper()
	in, err := ReadCluster(context.Background(), fake.NewClientBuilder().WithScheme(infraScheme(t)).WithObjects(objs...).Build(),
		DefaultClusterSources(ClusterOptions{PageSize: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Warnings) != 0 {
		t.Errorf("warnings: %q", in.Warnings)
	}
	ev, infos, _ := in.Evidence(opts)
	var infra []compliance.Evidence
	messages := map[string]string{}
	for _, e := range ev {
		if e.Source != compliance.SourceKubeBench && e.Source != compliance.SourceKubeHunter {
			continue
		}
		infra = append(infra, e)
		var subjects []string
		for _, s := range e.Subjects {
			subjects = append(subjects, s.String())
		}
		messages[strings.Join([]string{string(e.Source), e.ID, string(e.Result), string(e.Severity), strings.Join(subjects, ",")}, " ")] = e.Message
	}
	details := map[compliance.Source]string{}
	for _, s := range infos {
		if s.Source == compliance.SourceKubeBench || s.Source == compliance.SourceKubeHunter {
			details[s.Source] = s.Detail
		}
	}
	return infra, messages, details
}

// A summary is evidence while the scan it records ran within the limit
// (MaxBenchmarkAge, MaxPenTestAge) of the report's time; an older one
// assesses nothing: the report names it, its age and the limit instead.
func TestEvidence_InfraScanSummariesOlderThanTheLimitAreStale(t *testing.T) {
	opts := DefaultOptions(now)
	if opts.MaxBenchmarkAge != 72*time.Hour || opts.MaxPenTestAge != 21*24*time.Hour {
		t.Fatalf("default limits %v, %v: want three of the scanner's default intervals, 72h and 21 days", opts.MaxBenchmarkAge, opts.MaxPenTestAge)
	}
	old := now.Add(-(200*24*time.Hour + 5*time.Hour + 30*time.Minute))
	noTime := benchAt("worker-1", now)
	noTime.Status.Origin = nil
	failedOld := benchAt("worker-1", old)
	failedOld.Status.Conditions = scanned(false, v1alpha1.InfraScanReasonJobFailed, "container kube-bench exited with code 1")
	for _, tc := range []struct {
		name string
		opts Options
		objs []client.Object
		// want are the evidence lines and, when not empty, their messages.
		want    map[string]string
		details map[compliance.Source]string
		// status of CM-6 (the CIS checks, node coverage), SI-4 (the
		// kube-hunter run) and IA-2 (KHV036, section 4's 4.2.1 is not
		// mapped to it).
		status map[string]compliance.Status
	}{
		{name: "fresh summaries assess", opts: opts,
			objs: []client.Object{benchAt("worker-1", now.Add(-time.Hour)), pentestAt(now.Add(-time.Hour))},
			want: map[string]string{
				"kube-bench 4.2.1 fail unknown Node worker-1": "", "kube-bench 4 pass unknown Node worker-1": "",
				"kube-bench benchmark-run pass info Node worker-1": "", "kube-hunter KHV036 fail high Endpoint 10.0.0.21:10250": "",
				"kube-hunter hunter-run pass info ": ""},
			status: map[string]compliance.Status{"CM-6": compliance.StatusPartially, "SI-4": compliance.StatusSatisfied, "IA-2": compliance.StatusNotSatisfied}},
		{name: "at the limit, still fresh", opts: opts,
			objs: []client.Object{benchAt("worker-1", now.Add(-72*time.Hour)), pentestAt(now.Add(-21 * 24 * time.Hour))},
			want: map[string]string{
				"kube-bench 4.2.1 fail unknown Node worker-1": "", "kube-bench 4 pass unknown Node worker-1": "",
				"kube-bench benchmark-run pass info Node worker-1": "", "kube-hunter KHV036 fail high Endpoint 10.0.0.21:10250": "",
				"kube-hunter hunter-run pass info ": ""},
			status: map[string]compliance.Status{"CM-6": compliance.StatusPartially, "SI-4": compliance.StatusSatisfied, "IA-2": compliance.StatusNotSatisfied}},
		{name: "stale summaries are named and assess nothing", opts: opts,
			objs: []client.Object{benchAt("worker-1", old), pentestAt(old)},
			want: map[string]string{
				"kube-bench benchmark-age skip medium Node worker-1": "NodeBenchmark worker-1 was scanned on 2026-05-10T06:30:00Z, 200d5h before this report, more than the limit of 3d; " +
					"its 19 checks are not assessed (18 pass, 1 fail, 0 warn, 0 info): rescan the node",
				"kube-hunter hunter-age skip medium ": "PenetrationTest cluster was scanned on 2026-05-10T06:30:00Z, 200d5h before this report, more than the limit of 21d; " +
					"its 1 finding is not assessed (1 high, 0 medium, 0 low, 0 unknown): run kube-hunter again"},
			details: map[compliance.Source]string{
				compliance.SourceKubeBench:  "no run; 1 NodeBenchmark older than 3d, not assessed",
				compliance.SourceKubeHunter: "0 runs, 0 findings; 1 PenetrationTest older than 21d, not assessed"},
			status: map[string]compliance.Status{"CM-6": compliance.StatusNotAssessed, "SI-4": compliance.StatusNotAssessed, "IA-2": compliance.StatusNotAssessed}},
		{name: "a stale summary whose rescans fail is not evaluated", opts: opts,
			objs: []client.Object{failedOld},
			want: map[string]string{
				"kube-bench benchmark-age error medium Node worker-1": "NodeBenchmark worker-1 was scanned on 2026-05-10T06:30:00Z, 200d5h before this report, more than the limit of 3d; " +
					"its 19 checks are not assessed (18 pass, 1 fail, 0 warn, 0 info): rescan the node (the latest scan failed: JobFailed: container kube-bench exited with code 1)"},
			status: map[string]compliance.Status{"CM-6": compliance.StatusPartially, "SI-4": compliance.StatusNotAssessed, "IA-2": compliance.StatusNotAssessed}},
		{name: "a summary that does not say when it ran is stale", opts: opts,
			objs: []client.Object{noTime},
			want: map[string]string{
				"kube-bench benchmark-age skip medium Node worker-1": "NodeBenchmark worker-1 does not record when its scan ran (status.origin.scanTime), so its age cannot be shown to be within the limit of 3d; " +
					"its 19 checks are not assessed (18 pass, 1 fail, 0 warn, 0 info): rescan the node"},
			status: map[string]compliance.Status{"CM-6": compliance.StatusNotAssessed}},
		{name: "no limit", opts: Options{Now: now},
			objs: []client.Object{benchAt("worker-1", old), pentestAt(old)},
			want: map[string]string{
				"kube-bench 4.2.1 fail unknown Node worker-1": "", "kube-bench 4 pass unknown Node worker-1": "",
				"kube-bench benchmark-run pass info Node worker-1": "", "kube-hunter KHV036 fail high Endpoint 10.0.0.21:10250": "",
				"kube-hunter hunter-run pass info ": ""},
			status: map[string]compliance.Status{"CM-6": compliance.StatusPartially, "SI-4": compliance.StatusSatisfied}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, messages, details := clusterEvidence(t, tc.opts, tc.objs...)
			got := slices.Sorted(maps.Keys(messages))
			want := slices.Sorted(maps.Keys(tc.want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("evidence (-want +got):\n%s", diff)
			}
			for line, msg := range tc.want {
				if msg != "" && messages[line] != msg {
					t.Errorf("%s: message\n%q, want\n%q", line, messages[line], msg)
				}
			}
			for src, want := range tc.details {
				if details[src] != want {
					t.Errorf("source %s: detail %q, want %q", src, details[src], want)
				}
			}
			status := statuses(ev, nil)
			for id, want := range tc.status {
				if status[id] != want {
					t.Errorf("%s: %s, want %s", id, status[id], want)
				}
			}
		})
	}
}

// Read from a cluster, every node without a current NodeBenchmark (none,
// or a stale one) is a finding against the CIS configuration controls,
// naming the nodes, some of them when many.
func TestEvidence_NodesWithoutACurrentBenchmark(t *testing.T) {
	old := now.Add(-10 * 24 * time.Hour)
	pending := &v1alpha1.NodeBenchmark{ObjectMeta: metav1.ObjectMeta{Name: "worker-3"}}
	many := []client.Object{benchAt("worker-1", now)}
	for i := range 12 {
		many = append(many, node(fmt.Sprintf("gpu-%02d", i)))
	}
	for _, tc := range []struct {
		name string
		objs []client.Object
		// coverage is the node-coverage evidence line and its message;
		// empty when every node is covered.
		coverage, message, detail string
		cm6                       compliance.Status
	}{
		{name: "every node benchmarked",
			objs:   []client.Object{node("worker-1"), benchAt("worker-1", now)},
			detail: "1 run, 19 checks; node checks; Kubernetes (unknown) as detected; 1 from the scanner's NodeBenchmark summaries ((unknown)), which list failing checks only, up to a limit: 18 checks are counted per section, not listed; 1 of 1 node with a current NodeBenchmark",
			cm6:    compliance.StatusPartially},
		{name: "a node without, a node with a stale one, a node pending",
			objs: []client.Object{node("worker-1"), node("worker-2"), node("worker-3"), node("worker-4"), node("cp-1"),
				benchAt("worker-1", now), benchAt("worker-4", old), pending, benchAt("deleted-node", now)},
			coverage: "kube-bench node-coverage fail medium Node cp-1,Node worker-2,Node worker-4",
			message:  "3 of 5 nodes have no current CIS benchmark, so their configuration is not assessed; without a NodeBenchmark: cp-1, worker-2; with one older than 3d only: worker-4",
			detail: "2 runs, 38 checks; node checks; Kubernetes (unknown) as detected; 2 from the scanner's NodeBenchmark summaries ((unknown)), which list failing checks only, up to a limit: 36 checks are counted per section, not listed; " +
				"1 NodeBenchmark without a summary (scan pending or failed); 1 NodeBenchmark older than 3d, not assessed; 1 of 5 nodes with a current NodeBenchmark",
			cm6: compliance.StatusPartially},
		{name: "many nodes without",
			objs:     many,
			coverage: "kube-bench node-coverage fail medium Node gpu-00,Node gpu-01,Node gpu-02,Node gpu-03,Node gpu-04,Node gpu-05,Node gpu-06,Node gpu-07,Node gpu-08,Node gpu-09",
			message:  "12 of 12 nodes have no current CIS benchmark, so their configuration is not assessed; without a NodeBenchmark: gpu-00, gpu-01, gpu-02, gpu-03, gpu-04, gpu-05, gpu-06, gpu-07, gpu-08, gpu-09 and 2 more",
			detail: "1 run, 19 checks; node checks; Kubernetes (unknown) as detected; 1 from the scanner's NodeBenchmark summaries ((unknown)), which list failing checks only, up to a limit: 18 checks are counted per section, not listed; " +
				"0 of 12 nodes with a current NodeBenchmark",
			cm6: compliance.StatusPartially},
		{name: "no NodeBenchmark at all",
			objs:     []client.Object{node("worker-1")},
			coverage: "kube-bench node-coverage fail medium Node worker-1",
			message:  "1 of 1 node has no current CIS benchmark, so their configuration is not assessed; without a NodeBenchmark: worker-1",
			detail:   "no run; 0 of 1 node with a current NodeBenchmark",
			cm6:      compliance.StatusNotSatisfied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, messages, details := clusterEvidence(t, DefaultOptions(now), tc.objs...)
			var got []string
			for line := range messages {
				if strings.Contains(line, " node-coverage ") {
					got = append(got, line)
				}
			}
			var want []string
			if tc.coverage != "" {
				want = []string{tc.coverage}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("node coverage (-want +got):\n%s", diff)
			}
			if tc.coverage != "" && messages[tc.coverage] != tc.message {
				t.Errorf("message\n%q, want\n%q", messages[tc.coverage], tc.message)
			}
			if d := details[compliance.SourceKubeBench]; d != tc.detail {
				t.Errorf("kube-bench source detail\n%q, want\n%q", d, tc.detail)
			}
			if st := statuses(ev, nil)["CM-6"]; st != tc.cm6 {
				t.Errorf("CM-6: %s, want %s", st, tc.cm6)
			}
		})
	}
}

// Node coverage needs both lists: nodes the credentials may not list, or a
// cluster without the NodeBenchmark API (no scanner: kube-bench is not
// provided), give no finding.
func TestEvidence_NodeCoverageNeedsBothLists(t *testing.T) {
	forbidden := func(resource string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "", errors.New("RBAC: list denied"))
	}
	noMatch := &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: "NodeBenchmark"}, SearchedVersions: []string{"v1alpha1"}}
	for _, tc := range []struct {
		name string
		errs map[string]error
	}{
		{"nodes forbidden", map[string]error{"NodeList": forbidden("nodes")}},
		{"no NodeBenchmark API", map[string]error{"NodeBenchmarkList": noMatch}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := listErrors{Reader: fake.NewClientBuilder().WithScheme(infraScheme(t)).WithObjects(node("worker-1")).Build(), errs: tc.errs}
			in, err := ReadCluster(context.Background(), c, DefaultClusterSources(ClusterOptions{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Warnings) != 1 {
				t.Errorf("warnings %q: want one, for what was left out", in.Warnings)
			}
			ev, _, _ := in.Evidence(DefaultOptions(now))
			for _, e := range ev {
				if e.ID == "node-coverage" {
					t.Errorf("node coverage without both lists: %+v", e)
				}
			}
		})
	}
}

// listErrors fails the lists of some kinds, typed or unstructured.
type listErrors struct {
	client.Reader
	errs map[string]error // by list kind
}

func (l listErrors) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	kind := list.GetObjectKind().GroupVersionKind().Kind
	if err := l.errs[kind]; err != nil {
		return err
	}
	return l.Reader.List(ctx, list, opts...)
}

// Files do not say which nodes exist, nor when kube-bench and kube-hunter
// ran: their evidence is the same whatever the limits and the report's
// time, and names no node coverage.
func TestEvidence_FilesHaveNoNodeCoverageNorAge(t *testing.T) {
	in, err := ReadFiles([]string{fixtures}, KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	in.SortInputs()
	if in.NodesKnown || in.NodeBenchmarksKnown {
		t.Error("files cannot say which nodes exist")
	}
	ev, infos, _ := in.Evidence(DefaultOptions(now))
	late := DefaultOptions(now.AddDate(5, 0, 0))
	late.MaxBenchmarkAge, late.MaxPenTestAge = time.Minute, time.Minute
	lateEv, lateInfos, _ := in.Evidence(late)
	for _, e := range lateEv {
		switch e.ID {
		case "node-coverage", "benchmark-age", "hunter-age":
			t.Errorf("files give %s evidence: %+v", e.ID, e)
		}
	}
	infra := func(ev []compliance.Evidence) []compliance.Evidence {
		var out []compliance.Evidence
		for _, e := range ev {
			if e.Source == compliance.SourceKubeBench || e.Source == compliance.SourceKubeHunter {
				out = append(out, e)
			}
		}
		return out
	}
	if diff := cmp.Diff(infra(ev), infra(lateEv)); diff != "" {
		t.Errorf("kube-bench and kube-hunter evidence from files depends on the limits (-default +late):\n%s", diff)
	}
	if diff := cmp.Diff(infos, lateInfos); diff != "" {
		t.Errorf("sources from files depend on the limits (-default +late):\n%s", diff)
	}
}
