package evidence

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/compliance"
)

const (
	etlRepo = "registry.example.ca/daaas/etl"
	// etlDigest and otherDigest are image digests; etlConfig an image
	// config ID.
	etlDigest   = "sha256:64ec77741074de01d168b680d37c2bbe73062cfe6b0d238736c472b6049aadd2"
	otherDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	etlConfig   = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var (
	scanTime = time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC)
	dbTime   = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
)

// verdict is an ImageScan as the scanner writes it after a successful
// Trivy scan; edit changes it.
func verdict(digest string, edit func(*v1alpha1.ImageScan)) *v1alpha1.ImageScan {
	name, err := v1alpha1.ImageScanName(digest)
	if err != nil {
		panic(err)
	}
	at := metav1.NewTime(scanTime)
	is := &v1alpha1.ImageScan{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(scanTime.Add(-time.Minute))},
		Spec:       v1alpha1.ImageScanSpec{Digest: digest, Repository: etlRepo},
		Status: v1alpha1.ImageScanStatus{
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonScanSucceeded, LastTransitionTime: at}},
			Source:     v1alpha1.SourceTrivy, Scanner: "Trivy v0.74.0", ScannedAt: &at,
			DB:              &v1alpha1.VulnerabilityDB{SchemaVersion: 2, UpdatedAt: metav1.NewTime(dbTime)},
			Tags:            []string{etlRepo + ":2026.11"},
			Vulnerabilities: v1alpha1.SeverityCounts{Critical: 1, Medium: 2},
			Fixable:         v1alpha1.SeverityCounts{Critical: 1},
			FixableCriticalHigh: []v1alpha1.FixableVulnerability{
				{ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19"}},
		},
	}
	if edit != nil {
		edit(is)
	}
	return is
}

func failedScan(is *v1alpha1.ImageScan) {
	is.Status = v1alpha1.ImageScanStatus{ScannedAt: is.Status.ScannedAt, Error: "GET https://registry.example.ca/v2/: connection refused",
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionScanned, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonScanFailed}}}
}

// lines writes evidence as "id result severity: message", in order.
func lines(ev []compliance.Evidence) []string {
	var out []string
	for _, e := range ev {
		out = append(out, e.ID+" "+string(e.Result)+" "+string(e.Severity)+": "+e.Message)
	}
	return out
}

// A verdict the scanner wrote and a Trivy report of the same scan give the
// same evidence.
func TestScanEvidence_AnImageScanGivesWhatTheSameTrivyReportGives(t *testing.T) {
	created := scanTime
	report := &TrivyReport{Origin: ClusterOrigin, SchemaVersion: 2, CreatedAt: &created, ArtifactName: etlRepo + "@" + etlDigest,
		Trivy: &trivyGenerator{Version: "0.74.0"},
		Results: []trivyResult{{Target: "etl (alpine 3.22.1)", Vulnerabilities: []trivyVuln{
			{VulnerabilityID: "CVE-2099-0001", PkgName: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: "CRITICAL"},
			{VulnerabilityID: "CVE-2099-0002", PkgName: "zlib", InstalledVersion: "1.3", Severity: "MEDIUM"},
			{VulnerabilityID: "CVE-2099-0003", PkgName: "zlib", InstalledVersion: "1.3", Severity: "MEDIUM"},
		}}}}
	db := &TrivyDB{Origin: ClusterOrigin, Version: 2, UpdatedAt: dbTime}
	running := []RunningImage{{Image: etlRepo + "@" + etlDigest, Pods: []string{"bob/etl"}}, {Image: "python:3.12", Pods: []string{"bob/py"}}}
	opts := DefaultOptions(now)

	fromFile := ScanEvidence([]*TrivyReport{report}, nil, db, running, opts)
	fromCluster := ScanEvidence(nil, []ImageScan{{Scan: verdict(etlDigest, nil), Origin: ClusterOrigin}}, nil, running, opts)
	if diff := cmp.Diff(fromFile, fromCluster); diff != "" {
		t.Errorf("evidence from the ImageScan (-Trivy report +ImageScan):\n%s", diff)
	}
	want := []string{
		"scanned pass info: scanned on 2026-11-25T10:05:00Z: 3 vulnerabilities (1 critical, 0 high, 2 medium, 0 low), 1 fixable critical or high",
		"VULN-CRITICAL fail critical: 1 fixable critical vulnerabilities: CVE-2099-0001 (busybox 1.37.0-r18, fixed in 1.37.0-r19)",
		"VULN-HIGH pass high: none with a fix available",
		"db-age pass info: updated 2026-11-25T06:00:00Z",
		"unscanned fail high: no scan of this image; it runs in bob/py",
	}
	if diff := cmp.Diff(want, lines(fromCluster)); diff != "" {
		t.Errorf("evidence (-want +got):\n%s", diff)
	}
}

func TestScanEvidence_ImageScanVerdicts(t *testing.T) {
	opts := DefaultOptions(now) // 2026-11-26T12:00Z
	etl := []RunningImage{{Image: etlRepo + "@" + etlDigest, Pods: []string{"bob/etl"}}}
	for _, tc := range []struct {
		name    string
		scan    *v1alpha1.ImageScan
		running []RunningImage
		want    []string
	}{
		{"clean", verdict(etlDigest, func(is *v1alpha1.ImageScan) {
			is.Status.Vulnerabilities = v1alpha1.SeverityCounts{Low: 1, Unknown: 1}
			is.Status.Fixable, is.Status.FixableCriticalHigh = v1alpha1.SeverityCounts{}, nil
		}), nil, []string{
			"scanned pass info: scanned on 2026-11-25T10:05:00Z: 2 vulnerabilities (0 critical, 0 high, 0 medium, 1 low), 0 fixable critical or high",
			"VULN-CRITICAL pass critical: none with a fix available",
			"VULN-HIGH pass high: none with a fix available",
			"db-age pass info: updated 2026-11-25T06:00:00Z",
		}},
		{"more fixable than listed", verdict(etlDigest, func(is *v1alpha1.ImageScan) {
			is.Status.Vulnerabilities = v1alpha1.SeverityCounts{Critical: 3, High: 4}
			is.Status.Fixable = v1alpha1.SeverityCounts{Critical: 3, High: 2}
			is.Status.FixableCriticalHigh = []v1alpha1.FixableVulnerability{
				{ID: "CVE-1", Severity: "CRITICAL", Package: "a", InstalledVersion: "1", FixedVersion: "2"},
				{ID: "CVE-2", Severity: "CRITICAL", Package: "b", FixedVersion: "2"},
				{ID: "CVE-3", Severity: "CRITICAL", Package: "c", InstalledVersion: "1", FixedVersion: "2"},
				{ID: "CVE-4", Severity: "HIGH", Package: "d", InstalledVersion: "1", FixedVersion: "2"},
			}
			is.Status.FixableNotListed = 1
		}), nil, []string{
			"scanned pass info: scanned on 2026-11-25T10:05:00Z: 7 vulnerabilities (3 critical, 4 high, 0 medium, 0 low), 5 fixable critical or high",
			"VULN-CRITICAL fail critical: 3 fixable critical vulnerabilities: CVE-1 (a 1, fixed in 2), CVE-2 (b, fixed in 2), CVE-3 (c 1, fixed in 2)",
			"VULN-HIGH fail high: 2 fixable high vulnerabilities: CVE-4 (d 1, fixed in 2) and 1 more",
			"db-age pass info: updated 2026-11-25T06:00:00Z",
		}},
		{"stale scan and database", verdict(etlDigest, func(is *v1alpha1.ImageScan) {
			old := metav1.NewTime(now.Add(-10 * 24 * time.Hour))
			is.Status.ScannedAt, is.Status.DB.UpdatedAt = &old, old
			is.Status.Vulnerabilities, is.Status.Fixable, is.Status.FixableCriticalHigh = v1alpha1.SeverityCounts{}, v1alpha1.SeverityCounts{}, nil
		}), nil, []string{
			"scanned pass info: scanned on 2026-11-16T12:00:00Z: 0 vulnerabilities (0 critical, 0 high, 0 medium, 0 low), 0 fixable critical or high",
			"VULN-CRITICAL pass critical: none with a fix available",
			"VULN-HIGH pass high: none with a fix available",
			"scan-age warn medium: scanned on 2026-11-16T12:00:00Z, more than 168h0m0s before this report: rescan",
			"db-age warn medium: updated 2026-11-16T12:00:00Z, more than 72h0m0s before this report: scans miss newer advisories",
		}},
		{"rescan failed: the earlier verdict stands, flagged", verdict(etlDigest, func(is *v1alpha1.ImageScan) {
			is.Status.Conditions[0].Reason = v1alpha1.ReasonRescanFailed
			is.Status.Error = "pulling the image: 401 Unauthorized"
			is.Status.Vulnerabilities, is.Status.Fixable, is.Status.FixableCriticalHigh = v1alpha1.SeverityCounts{}, v1alpha1.SeverityCounts{}, nil
		}), nil, []string{
			"scanned pass info: scanned before 2026-11-25T10:05:00Z: 0 vulnerabilities (0 critical, 0 high, 0 medium, 0 low), 0 fixable critical or high",
			"VULN-CRITICAL pass critical: none with a fix available",
			"VULN-HIGH pass high: none with a fix available",
			"scan-age warn medium: the latest rescan, on 2026-11-25T10:05:00Z, failed (pulling the image: 401 Unauthorized); this verdict is an earlier scan's",
			"db-age pass info: updated 2026-11-25T06:00:00Z",
		}},
		{"ingested from a Starboard report, without a DB", verdict(etlDigest, func(is *v1alpha1.ImageScan) {
			is.Status.Source, is.Status.Scanner, is.Status.DB = v1alpha1.SourceStarboard, "Trivy 0.58.1", nil
			is.Status.Vulnerabilities, is.Status.Fixable, is.Status.FixableCriticalHigh = v1alpha1.SeverityCounts{}, v1alpha1.SeverityCounts{}, nil
		}), nil, []string{
			"scanned pass info: scanned on 2026-11-25T10:05:00Z: 0 vulnerabilities (0 critical, 0 high, 0 medium, 0 low), 0 fixable critical or high",
			"VULN-CRITICAL pass critical: none with a fix available",
			"VULN-HIGH pass high: none with a fix available",
		}},
		{"failed, of a running image: unscanned, saying why", verdict(etlDigest, failedScan), etl, []string{
			"unscanned fail high: no verdict: the scan on 2026-11-25T10:05:00Z failed (GET https://registry.example.ca/v2/: connection refused); it runs in bob/etl",
		}},
		{"pending, of a running image: unscanned, saying why", verdict(etlDigest, func(is *v1alpha1.ImageScan) { is.Status = v1alpha1.ImageScanStatus{} }), etl, []string{
			"unscanned fail high: no verdict yet: the scan is pending, requested on 2026-11-25T10:04:00Z; it runs in bob/etl",
		}},
		{"failed, of an image no pod runs: a warning", verdict(etlDigest, failedScan), nil, []string{
			"scanned warn medium: no verdict: the scan on 2026-11-25T10:05:00Z failed (GET https://registry.example.ca/v2/: connection refused)",
		}},
		{"pending, of an image no pod runs: a warning", verdict(etlDigest, func(is *v1alpha1.ImageScan) { is.Status = v1alpha1.ImageScanStatus{} }), nil, []string{
			"scanned warn medium: no verdict yet: the scan is pending, requested on 2026-11-25T10:04:00Z",
		}},
		{"scanned, running", verdict(etlDigest, func(is *v1alpha1.ImageScan) { is.Status.DB = nil }), etl, []string{
			"scanned pass info: scanned on 2026-11-25T10:05:00Z: 3 vulnerabilities (1 critical, 0 high, 2 medium, 0 low), 1 fixable critical or high",
			"VULN-CRITICAL fail critical: 1 fixable critical vulnerabilities: CVE-2099-0001 (busybox 1.37.0-r18, fixed in 1.37.0-r19)",
			"VULN-HIGH pass high: none with a fix available",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := ScanEvidence(nil, []ImageScan{{Scan: tc.scan, Origin: ClusterOrigin}}, nil, tc.running, opts)
			if diff := cmp.Diff(tc.want, lines(ev)); diff != "" {
				t.Errorf("evidence (-want +got):\n%s", diff)
			}
			for _, e := range ev {
				if len(e.Subjects) != 1 || e.Subjects[0] != (compliance.Ref{Kind: "Image", Name: etlRepo + "@" + etlDigest}) && e.ID != "db-age" || e.Origin != ClusterOrigin {
					t.Errorf("%s: subjects %v, origin %q", e.ID, e.Subjects, e.Origin)
				}
			}
		})
	}
}

// Coverage: a running image is scanned when a verdict names its digest; by
// tag only when its digest is unknown; never by a verdict not given.
func TestScanEvidence_CoverageOfRunningImages(t *testing.T) {
	tagged := func(tag string) func(*v1alpha1.ImageScan) {
		return func(is *v1alpha1.ImageScan) { is.Status.Tags = []string{tag} }
	}
	pipelineBase, err := DecodeTrivy("pipeline-base.json", []byte(`{"SchemaVersion": 2, "ArtifactName": "k8scc01covidacr.azurecr.io/pipeline-base:3.9",
		"Metadata": {"ImageID": "`+etlConfig+`", "RepoTags": ["k8scc01covidacr.azurecr.io/pipeline-base:3.9"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		scans    []*v1alpha1.ImageScan
		reports  []*TrivyReport
		image    RunningImage
		uncovers bool
	}{
		{"pinned digest", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil, RunningImage{Image: etlRepo + "@" + etlDigest}, false},
		{"tag and digest", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil, RunningImage{Image: etlRepo + ":2026.11@" + etlDigest}, false},
		{"digest the runtime recorded", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil,
			RunningImage{Image: "registry.example.ca/daaas/etl:latest", ImageID: "registry.example.ca/daaas/etl@" + etlDigest}, false},
		{"by digest from another repository (same content)", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil, RunningImage{Image: "mirror.example.ca/etl@" + etlDigest}, false},
		{"another digest", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil, RunningImage{Image: etlRepo + "@" + otherDigest}, true},
		{"tag not yet pulled, as the scanner resolved it", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil, RunningImage{Image: etlRepo + ":2026.11"}, false},
		{"tag of Docker Hub, written short", []*v1alpha1.ImageScan{verdict(etlDigest, tagged("index.docker.io/library/python:3.12"))}, nil,
			RunningImage{Image: "python:3.12"}, false},
		{"tag that ran another digest", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil,
			RunningImage{Image: etlRepo + ":2026.11", ImageID: "docker-pullable://" + etlRepo + "@" + otherDigest}, true},
		{"another tag", []*v1alpha1.ImageScan{verdict(etlDigest, nil)}, nil, RunningImage{Image: etlRepo + ":2026.12"}, true},
		{"failed scan", []*v1alpha1.ImageScan{verdict(etlDigest, failedScan)}, nil, RunningImage{Image: etlRepo + "@" + etlDigest}, true},
		{"pending scan", []*v1alpha1.ImageScan{verdict(etlDigest, func(is *v1alpha1.ImageScan) { is.Status = v1alpha1.ImageScanStatus{} })}, nil,
			RunningImage{Image: etlRepo + "@" + etlDigest}, true},
		{"Trivy report of the tag", nil, []*TrivyReport{pipelineBase}, RunningImage{Image: "k8scc01covidacr.azurecr.io/pipeline-base:3.9"}, false},
		{"Trivy report of the config ID Docker recorded", nil, []*TrivyReport{pipelineBase},
			RunningImage{Image: "k8scc01covidacr.azurecr.io/pipeline-base:3.9", ImageID: "docker://" + etlConfig}, false},
		{"Trivy report of the tag, another digest ran", nil, []*TrivyReport{pipelineBase},
			RunningImage{Image: "k8scc01covidacr.azurecr.io/pipeline-base:3.9", ImageID: "k8scc01covidacr.azurecr.io/pipeline-base@" + otherDigest}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var verdicts []ImageScan
			for _, is := range tc.scans {
				verdicts = append(verdicts, ImageScan{Scan: is, Origin: ClusterOrigin})
			}
			tc.image.Pods = []string{"ns/p"}
			var got []string
			for _, e := range ScanEvidence(tc.reports, verdicts, nil, []RunningImage{tc.image}, DefaultOptions(now)) {
				if e.ID == "unscanned" {
					got = append(got, e.Subjects[0].Name)
				}
			}
			var want []string
			if tc.uncovers {
				want = []string{tc.image.Image}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("unscanned (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeImageScan_NamesTheObjectAndField(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"bad digest", func(o map[string]any) { o["spec"].(map[string]any)["digest"] = "sha256:abc" },
			`ImageScan "sha256-64ec77741074de01d168b680d37c2bbe73062cfe6b0d238736c472b6049aadd2": spec.digest: image digest "sha256:abc"`},
		{"negative count", func(o map[string]any) {
			o["status"].(map[string]any)["vulnerabilities"].(map[string]any)["critical"] = int64(-1)
		}, "status.vulnerabilities.critical: -1 is negative"},
		{"negative fixable", func(o map[string]any) { o["status"].(map[string]any)["fixable"].(map[string]any)["high"] = int64(-2) }, "status.fixable.high: -2 is negative"},
		{"fixable of a medium severity", func(o map[string]any) {
			o["status"].(map[string]any)["fixableCriticalHigh"].([]any)[0].(map[string]any)["severity"] = "MEDIUM"
		}, `status.fixableCriticalHigh[0].severity: "MEDIUM" is not CRITICAL or HIGH`},
		{"wrong type", func(o map[string]any) { o["status"].(map[string]any)["scannedAt"] = "yesterday" }, `ImageScan "sha256-64ec`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := toUnstructured(t, verdict(etlDigest, nil))
			tc.edit(u.Object)
			_, err := DecodeImageScan(u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := DecodeImageScan(toUnstructured(t, verdict(etlDigest, nil))); err != nil {
		t.Errorf("a valid ImageScan: %v", err)
	}
}

func toUnstructured(t testing.TB, is *v1alpha1.ImageScan) *unstructured.Unstructured {
	t.Helper()
	is = is.DeepCopy()
	is.APIVersion, is.Kind = v1alpha1.GroupVersion.String(), "ImageScan"
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(is)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

// pager serves lists a page at a time, as the API server does with limit
// and continue (the fake client returns everything at once).
type pager struct {
	client.Reader
	calls map[string]int // by list kind
}

func (p *pager) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if u, ok := list.(*unstructured.UnstructuredList); ok {
		p.calls[u.GetKind()]++
	}
	o := (&client.ListOptions{}).ApplyOptions(opts)
	if err := p.Reader.List(ctx, list, &client.ListOptions{LabelSelector: o.LabelSelector}); err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	start := 0
	if o.Continue != "" {
		if start, err = strconv.Atoi(o.Continue); err != nil {
			return err
		}
	}
	end := len(items)
	if o.Limit > 0 && start+int(o.Limit) < end {
		end = start + int(o.Limit)
	}
	if err := meta.SetList(list, items[start:end]); err != nil {
		return err
	}
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	list.(metav1.ListInterface).SetContinue(next)
	return nil
}

func TestReadCluster_ImageScansReachTheEvidence(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	bad := verdict(otherDigest, func(is *v1alpha1.ImageScan) { is.Status.Fixable.Critical = -1 })
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bob", Name: "etl"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: etlRepo + "@" + etlDigest}, {Name: "side", Image: "python:3.12"}}}}
	pending := verdict("sha256:"+strings.Repeat("3", 64), func(is *v1alpha1.ImageScan) { is.Status = v1alpha1.ImageScanStatus{} })
	c := &pager{Reader: fake.NewClientBuilder().WithScheme(scheme).WithObjects(verdict(etlDigest, nil), bad, pending, pod).Build(), calls: map[string]int{}}
	in, err := ReadCluster(context.Background(), c, DefaultClusterSources(ClusterOptions{PageSize: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.calls["ImageScanList"]; n != 3 {
		t.Errorf("%d list calls for 3 ImageScans, 1 a page: want 3", n)
	}
	if diff := cmp.Diff([]string{`cluster: ImageScan "sha256-1111111111111111111111111111111111111111111111111111111111111111": status.fixable.critical: -1 is negative: left out`}, in.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	ev, infos, _ := in.Evidence(DefaultOptions(now))
	var got []string
	for _, e := range ev {
		if e.Source == compliance.SourceImageScan {
			got = append(got, e.ID+" "+string(e.Result)+" "+e.Subjects[0].Name)
		}
	}
	want := []string{
		"scanned pass " + etlRepo + "@" + etlDigest,
		"VULN-CRITICAL fail " + etlRepo + "@" + etlDigest,
		"VULN-HIGH pass " + etlRepo + "@" + etlDigest,
		"db-age pass trivy-db v2",
		"unscanned fail python:3.12",
		"scanned warn " + etlRepo + "@sha256:" + strings.Repeat("3", 64),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("image-scan evidence (-want +got):\n%s", diff)
	}
	var info compliance.SourceInfo
	for _, s := range infos {
		if s.Source == compliance.SourceImageScan {
			info = s
		}
	}
	wantInfo := compliance.SourceInfo{Source: compliance.SourceImageScan, Origin: ClusterOrigin, Tool: "trivy", Version: "0.74.0",
		DBVersion: "trivy-db v2", DBUpdatedAt: &dbTime, ProducedAt: &scanTime,
		Detail: "1 image scanned; 1 ImageScan without a verdict (pending or failed); 1 of 2 running images scanned"}
	if diff := cmp.Diff(wantInfo, info); diff != "" {
		t.Errorf("image-scan source (-want +got):\n%s", diff)
	}

	// The verdicts map to the controls as a Trivy report's do.
	r := compliance.Build(compliance.DefaultModel(), ev, compliance.Meta{GeneratedAt: now, Sources: infos})
	status := map[string]compliance.Status{}
	for _, ctl := range r.Controls {
		status[ctl.ID] = ctl.Status
	}
	if status["RA-5"] != compliance.StatusNotSatisfied || status["SI-2"] != compliance.StatusNotSatisfied {
		t.Errorf("RA-5 %s, SI-2 %s; want both not satisfied (a fixable critical vulnerability)", status["RA-5"], status["SI-2"])
	}
}

// FuzzDecodeImageScan feeds arbitrary ImageScan content to the decoder and
// the evidence: an error or evidence, never a panic.
func FuzzDecodeImageScan(f *testing.F) {
	for _, is := range []*v1alpha1.ImageScan{verdict(etlDigest, nil), verdict(etlDigest, failedScan),
		verdict(etlDigest, func(is *v1alpha1.ImageScan) { is.Status.Conditions[0].Reason = v1alpha1.ReasonRescanFailed })} {
		b, err := json.Marshal(toUnstructured(f, is).Object)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unstructured.Unstructured{}
		if err := utiljson.Unmarshal(data, &u.Object); err != nil || u.Object == nil {
			return
		}
		is, err := DecodeImageScan(u)
		if err != nil {
			return
		}
		ScanEvidence(nil, []ImageScan{{Scan: is, Origin: ClusterOrigin}}, nil,
			[]RunningImage{{Image: is.Spec.Repository + "@" + is.Spec.Digest}, {Image: "python:3.12"}}, DefaultOptions(now))
	})
}
