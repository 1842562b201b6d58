package imagegate

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/verdict"
)

const (
	vulnDigest  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	fixedDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	newDigest   = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	otherDigest = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
	stubDigest  = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
	repo        = "registry.example.ca/team/etl"
)

// fakeVerdicts looks verdicts up by the exact image string.
type fakeVerdicts map[string]*verdict.Verdict

func (f fakeVerdicts) Lookup(image string) (*verdict.Verdict, error) {
	if _, err := images.Parse(image); err != nil {
		return nil, err
	}
	return f[image], nil
}

// Unscanned counts the entries without a verdict (verdicts() has two).
func (f fakeVerdicts) Unscanned() int {
	n := 0
	for _, v := range f {
		if v != nil && !v.Scanned {
			n++
		}
	}
	return n
}

type recorder struct {
	scans []string
	used  []string
}

func (r *recorder) RequestScan(digest, _ string) { r.scans = append(r.scans, digest) }
func (r *recorder) Used(name string)             { r.used = append(r.used, name) }

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func verdicts() fakeVerdicts {
	v := fakeVerdicts{
		repo + "@" + vulnDigest: {Scanned: true, Digest: vulnDigest, Repository: repo,
			Vulnerabilities: v1alpha1.SeverityCounts{Critical: 2, High: 1, Medium: 3},
			Fixable:         v1alpha1.SeverityCounts{Critical: 1, High: 1, Medium: 2},
			FixableCriticalHigh: []v1alpha1.FixableVulnerability{
				{ID: "CVE-2026-0001", Severity: "CRITICAL", Package: "libcrypto3", FixedVersion: "3.5.2-r0"},
				{ID: "CVE-2026-0002", Severity: "HIGH", Package: "busybox", FixedVersion: "1.37.0-r19"},
			}},
		repo + "@" + fixedDigest: {Scanned: true, Digest: fixedDigest, Repository: repo,
			Vulnerabilities: v1alpha1.SeverityCounts{Medium: 1}},
		repo + ":failed":        {Scanned: false, Digest: newDigest, Error: "pull failed"},
		repo + "@" + stubDigest: {Scanned: false, Digest: stubDigest, Repository: repo},
	}
	// The same findings under a tag, for a pod that runs the image twice.
	v[repo+":vuln"] = v[repo+"@"+vulnDigest]
	return v
}

func exception(name string, mod func(*v1alpha1.ImageExceptionSpec)) *Exception {
	ex := &v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ImageExceptionSpec{
		CVEIDs: []string{"CVE-2026-0001"}, Images: []string{"registry.example.ca/team/*"},
		Expires: metav1.NewTime(now.Add(time.Hour)), Reason: "fix ships next sprint"}}
	if mod != nil {
		mod(&ex.Spec)
	}
	e, err := CompileException(ex)
	if err != nil {
		panic(err)
	}
	return e
}

func TestReview(t *testing.T) {
	bools := func(b bool) *bool { return &b }
	vulnImage := repo + "@" + vulnDigest
	tests := []struct {
		name       string
		policy     v1alpha1.ImagePolicySpec
		exceptions []*Exception
		image      string
		// also is the image of a third container, when set.
		also   string
		dryRun bool
		// deniedElsewhere is Subject.DeniedElsewhere.
		deniedElsewhere bool
		// maxUnscanned is Config.MaxUnscanned (0: the default).
		maxUnscanned int
		nsLabels     map[string]string
		wantDeny     []string // substrings, one per deny message in order
		wantWarn     []string
		outcome      string
		wantScans    []string
		wantUsed     []string
	}{
		{
			name: "fixable critical denied naming CVE, package and fixed version", image: vulnImage,
			wantDeny: []string{"[image-vulnerabilities] image " + vulnImage + ": CVE-2026-0001 (libcrypto3 fixed in 3.5.2-r0); ask for an ImageException or use a fixed image"},
			outcome:  OutcomeDenied,
		},
		{
			name: "HIGH threshold lists high findings too", image: vulnImage,
			policy:   v1alpha1.ImagePolicySpec{MinimumSeverity: "HIGH"},
			wantDeny: []string{"CVE-2026-0001 (libcrypto3 fixed in 3.5.2-r0), CVE-2026-0002 (busybox fixed in 1.37.0-r19);"},
			outcome:  OutcomeDenied,
		},
		{
			name: "MEDIUM threshold counts the unlisted ones", image: vulnImage,
			policy:   v1alpha1.ImagePolicySpec{MinimumSeverity: "MEDIUM"},
			wantDeny: []string{"CVE-2026-0002 (busybox fixed in 1.37.0-r19), 2 more fixable vulnerabilities at or above MEDIUM;"},
			outcome:  OutcomeDenied,
		},
		{
			name: "without fixableOnly unfixed criticals count", image: vulnImage,
			policy:   v1alpha1.ImagePolicySpec{FixableOnly: bools(false)},
			wantDeny: []string{"CVE-2026-0001 (libcrypto3 fixed in 3.5.2-r0), 1 more vulnerability at or above CRITICAL;"},
			outcome:  OutcomeDenied,
		},
		{
			name: "enforce false admits", image: vulnImage, policy: v1alpha1.ImagePolicySpec{Enforce: bools(false)},
			outcome: OutcomeAllowed,
		},
		{
			name: "fixed digest admitted", image: repo + "@" + fixedDigest, outcome: OutcomeAllowed,
		},
		{
			name: "exception admits with a warning and is recorded", image: vulnImage,
			exceptions: []*Exception{exception("etl-openssl", nil)},
			wantWarn:   []string{"[image-vulnerabilities] image " + vulnImage + ": 1 vulnerability at or above CRITICAL admitted under ImageException etl-openssl"},
			outcome:    OutcomeExcepted, wantUsed: []string{"etl-openssl"},
		},
		{
			name: "expired exception ignored and named", image: vulnImage,
			exceptions: []*Exception{exception("old", func(s *v1alpha1.ImageExceptionSpec) { s.Expires = metav1.NewTime(now.Add(-time.Second)) })},
			wantDeny:   []string{"CVE-2026-0001 (libcrypto3 fixed in 3.5.2-r0); ask for an ImageException or use a fixed image (expired ImageException old ignored)"},
			outcome:    OutcomeDenied,
		},
		{
			name: "exception for another namespace ignored", image: vulnImage,
			exceptions: []*Exception{exception("bob-only", func(s *v1alpha1.ImageExceptionSpec) { s.Namespaces = []string{"bob"} })},
			wantDeny:   []string{"CVE-2026-0001"}, outcome: OutcomeDenied,
		},
		{
			name: "exception namespace glob matches", image: vulnImage,
			exceptions: []*Exception{exception("ali", func(s *v1alpha1.ImageExceptionSpec) { s.Namespaces = []string{"ali*"} })},
			wantWarn:   []string{"ImageException ali"}, outcome: OutcomeExcepted, wantUsed: []string{"ali"},
		},
		{
			name: "exception for another image ignored", image: vulnImage,
			exceptions: []*Exception{exception("other", func(s *v1alpha1.ImageExceptionSpec) { s.Images = []string{"docker.io/library/*"} })},
			wantDeny:   []string{"CVE-2026-0001"}, outcome: OutcomeDenied,
		},
		{
			name: "exception of one CVE leaves the other open and is not recorded", image: vulnImage,
			policy:     v1alpha1.ImagePolicySpec{MinimumSeverity: "HIGH"},
			exceptions: []*Exception{exception("etl-openssl", nil)},
			wantDeny:   []string{": CVE-2026-0002 (busybox fixed in 1.37.0-r19); ask"}, outcome: OutcomeDenied,
		},
		{
			name: "two exceptions together cover both", image: vulnImage,
			policy: v1alpha1.ImagePolicySpec{MinimumSeverity: "HIGH"},
			exceptions: []*Exception{exception("b", nil),
				exception("a", func(s *v1alpha1.ImageExceptionSpec) { s.CVEIDs = []string{"CVE-2026-0002"} })},
			wantWarn: []string{"2 vulnerabilities at or above HIGH admitted under ImageException a, b"},
			outcome:  OutcomeExcepted, wantUsed: []string{"a", "b"},
		},
		{
			name: "an exception admitting two images is used once", image: vulnImage, also: repo + ":vuln",
			exceptions: []*Exception{exception("etl-openssl", nil)},
			wantWarn:   []string{"image " + vulnImage + ": 1 vulnerability", "image " + repo + ":vuln: 1 vulnerability"},
			outcome:    OutcomeExcepted, wantUsed: []string{"etl-openssl"},
		},
		{
			name: "an exception is not used when another image is denied", image: vulnImage, also: repo + ":new",
			policy:     v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			exceptions: []*Exception{exception("etl-openssl", nil)},
			wantDeny:   []string{"image " + repo + ":new has not been scanned"},
			wantWarn:   []string{"admitted under ImageException etl-openssl"},
			outcome:    OutcomeDenied,
		},
		{
			name: "unscanned default warns", image: repo + ":new",
			wantWarn: []string{"[image-vulnerabilities] image " + repo + ":new has not been scanned yet; it is admitted and will be scanned once it runs"},
			outcome:  OutcomeWarned,
		},
		{
			name: "a failed scan counts as unscanned", image: repo + ":failed",
			wantWarn: []string{"has not been scanned yet"}, outcome: OutcomeWarned,
		},
		{
			name: "unscanned allow is silent", image: repo + ":new",
			policy:  v1alpha1.ImagePolicySpec{DefaultUnscanned: "Allow"},
			outcome: OutcomeUnscanned,
		},
		{
			name: "unscanned deny on a digest requests a scan and says when to retry", image: repo + "@" + newDigest,
			policy: v1alpha1.ImagePolicySpec{Unscanned: []v1alpha1.UnscannedRule{{
				NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}, Mode: "Deny"}},
				RetryAfter: &metav1.Duration{Duration: 90 * time.Second}},
			nsLabels:  map[string]string{"tier": "prod"},
			wantDeny:  []string{"has not been scanned and namespace alice admits only scanned images; a scan has been requested: retry in 1m30s"},
			outcome:   OutcomeDenied,
			wantScans: []string{newDigest},
		},
		{
			name: "a dry run requests no scan", image: repo + "@" + newDigest, dryRun: true,
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny: []string{"has not been scanned and namespace alice admits only scanned images; a dry run requests no scan"},
			outcome:  OutcomeDenied,
		},
		{
			name: "a request denied by a constraint too requests no scan", image: repo + "@" + newDigest, deniedElsewhere: true,
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny: []string{"has not been scanned and namespace alice admits only scanned images; no scan was requested as the request is denied for other reasons too"},
			outcome:  OutcomeDenied,
		},
		{
			// verdicts() holds two ImageScans without a verdict.
			name: "below the cap of unscanned images a scan is requested", image: repo + "@" + newDigest, maxUnscanned: 3,
			policy:    v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny:  []string{"a scan has been requested: retry in 2m0s"},
			outcome:   OutcomeDenied,
			wantScans: []string{newDigest},
		},
		{
			name: "at the cap of unscanned images no scan is requested", image: repo + "@" + newDigest, maxUnscanned: 2,
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny: []string{"has not been scanned and namespace alice admits only scanned images; the scan queue is full, so no scan was requested: retry later"},
			outcome:  OutcomeDenied,
		},
		{
			name: "the cap counts the scans the same review requested", image: repo + "@" + newDigest, also: repo + "@" + otherDigest, maxUnscanned: 3,
			policy:    v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny:  []string{"image " + repo + "@" + newDigest + " has not been scanned", "image " + repo + "@" + otherDigest + " has not been scanned and namespace alice admits only scanned images; the scan queue is full"},
			outcome:   OutcomeDenied,
			wantScans: []string{newDigest},
		},
		{
			name: "an image whose stub exists is queued already, at the cap too", image: repo + "@" + stubDigest, maxUnscanned: 2,
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny: []string{"has not been scanned and namespace alice admits only scanned images; a scan has been requested: retry in 2m0s"},
			outcome:  OutcomeDenied,
		},
		{
			name: "unscanned deny on a tag asks for a digest", image: repo + ":new",
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny"},
			wantDeny: []string{"pin it by digest (" + repo + "@sha256:…) to have it scanned, then retry in 2m0s"},
			outcome:  OutcomeDenied,
		},
		{
			name: "a digest in a listed registry gets its scan", image: repo + "@" + newDigest,
			policy:    v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"quay.io", "registry.example.ca/"}},
			wantDeny:  []string{"a scan has been requested: retry in 2m0s"},
			outcome:   OutcomeDenied,
			wantScans: []string{newDigest},
		},
		{
			name: "a digest under a listed repository prefix gets its scan", image: repo + "@" + newDigest,
			policy:    v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"registry.example.ca/team"}},
			wantDeny:  []string{"a scan has been requested: retry in 2m0s"},
			outcome:   OutcomeDenied,
			wantScans: []string{newDigest},
		},
		{
			name: "a digest outside the listed registries gets no scan", image: repo + "@" + newDigest,
			policy: v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"quay.io", "registry.example.ca/other"}},
			wantDeny: []string{"image " + repo + "@" + newDigest + " has not been scanned and namespace alice admits only scanned images; " +
				"its registry is not one the scanner pulls from (ImagePolicy spec.scanRegistries), so no scan can be requested"},
			outcome: OutcomeDenied,
		},
		{
			name: "a listed registry matches on a path boundary only", image: repo + "@" + newDigest,
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"registry.example", "registry.example.ca/te"}},
			wantDeny: []string{"its registry is not one the scanner pulls from"},
			outcome:  OutcomeDenied,
		},
		{
			name: "docker.io lists Docker Hub's images", image: "python@" + newDigest,
			policy:    v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"docker.io/library"}},
			wantDeny:  []string{"a scan has been requested"},
			outcome:   OutcomeDenied,
			wantScans: []string{newDigest},
		},
		{
			name: "a tag outside the listed registries is not told to pin its digest", image: repo + ":new",
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"quay.io"}},
			wantDeny: []string{"its registry is not one the scanner pulls from"},
			outcome:  OutcomeDenied,
		},
		{
			name: "an image whose stub exists is queued already, outside the listed registries too", image: repo + "@" + stubDigest,
			policy:   v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", ScanRegistries: []string{"quay.io"}},
			wantDeny: []string{"a scan has been requested: retry in 2m0s"},
			outcome:  OutcomeDenied,
		},
		{
			name: "the listed registries do not change Warn", image: repo + "@" + newDigest,
			policy:   v1alpha1.ImagePolicySpec{ScanRegistries: []string{"quay.io"}},
			wantWarn: []string{"has not been scanned yet; it is admitted"},
			outcome:  OutcomeWarned,
		},
		{
			name: "first matching namespace rule wins over the default", image: repo + ":new",
			policy: v1alpha1.ImagePolicySpec{DefaultUnscanned: "Deny", Unscanned: []v1alpha1.UnscannedRule{
				{NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "dev"}}, Mode: "Allow"},
				{NamespaceSelector: metav1.LabelSelector{}, Mode: "Warn"}}},
			nsLabels: map[string]string{"tier": "dev"},
			outcome:  OutcomeUnscanned,
		},
		{
			name: "an unparsable image is denied naming the container", image: "UPPER/case:x",
			wantDeny: []string{"[image-vulnerabilities] container main: image reference"},
			outcome:  OutcomeDenied,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			reg := prometheus.NewRegistry()
			g := New(Config{Verdicts: verdicts(), Scans: rec, Usage: rec, Metrics: NewMetrics(reg), MaxUnscanned: tc.maxUnscanned,
				Now: func() time.Time { return now }})
			p, err := CompilePolicy(&tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			g.SetPolicy(p)
			g.SetExceptions(tc.exceptions)
			cs := []images.Container{{Name: "main", Image: tc.image}, {Name: "wait", Image: tc.image}}
			if tc.also != "" {
				cs = append(cs, images.Container{Name: "sidecar", Image: tc.also})
			}
			res := g.Review(Subject{Namespace: "alice", NamespaceLabels: tc.nsLabels, Containers: cs, DryRun: tc.dryRun,
				DeniedElsewhere: tc.deniedElsewhere})
			check := func(kind string, got, want []string) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s = %q, want %d matching %q", kind, got, len(want), want)
				}
				for i := range want {
					if !strings.Contains(got[i], want[i]) {
						t.Errorf("%s[%d] = %q, want it to contain %q", kind, i, got[i], want[i])
					}
				}
			}
			check("denies", res.Denies, tc.wantDeny)
			check("warnings", res.Warnings, tc.wantWarn)
			if res.Outcome != tc.outcome {
				t.Errorf("outcome = %s, want %s", res.Outcome, tc.outcome)
			}
			if diff := cmp.Diff(tc.wantScans, rec.scans); diff != "" {
				t.Errorf("scan requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUsed, res.Used); diff != "" {
				t.Errorf("exceptions used (-want +got):\n%s", diff)
			}
			if len(rec.used) > 0 {
				t.Errorf("Review recorded exception use %q; only the caller may, once the request is admitted", rec.used)
			}
			if n := testutil.ToFloat64(g.cfg.Metrics.Decisions.WithLabelValues(tc.outcome)); n != 1 {
				t.Errorf("decisions{outcome=%s} = %v, want 1", tc.outcome, n)
			}
		})
	}
}

func TestCompilePolicy_ErrorsNameTheField(t *testing.T) {
	_, err := CompilePolicy(&v1alpha1.ImagePolicySpec{MinimumSeverity: "SEVERE", DefaultUnscanned: "Maybe",
		RetryAfter: &metav1.Duration{}, ScanRegistries: []string{"team/etl", "registry.example.ca/etl:1", "registry.example.ca/*"},
		Unscanned: []v1alpha1.UnscannedRule{{Mode: "deny",
			NamespaceSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}}}})
	for _, want := range []string{"spec.minimumSeverity", "spec.defaultUnscanned", "spec.retryAfter", "spec.unscanned[0].namespaceSelector", "spec.unscanned[0].mode",
		`spec.scanRegistries[0]: "team/etl" does not start with a registry host`, `spec.scanRegistries[1]: "registry.example.ca/etl:1": want a registry host or repository prefix`,
		`spec.scanRegistries[2]: "registry.example.ca/*"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestCompileException_ErrorsNameTheObjectAndField(t *testing.T) {
	_, err := CompileException(&v1alpha1.ImageException{ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec: v1alpha1.ImageExceptionSpec{CVEIDs: []string{" "}, Images: []string{"a*b"}, Namespaces: []string{""}}})
	for _, want := range []string{"ImageException bad", "spec.cveIDs[0]", "spec.images[0]", "spec.namespaces[0]", "spec.expires"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestCompilePolicy_ScanRegistries(t *testing.T) {
	p, err := CompilePolicy(&v1alpha1.ImagePolicySpec{ScanRegistries: []string{
		"docker.io/library", "registry.example.ca/", "localhost:5000/team", "index.docker.io"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"index.docker.io/library", "registry.example.ca", "localhost:5000/team", "index.docker.io"}
	if diff := cmp.Diff(want, p.ScanRegistries); diff != "" {
		t.Errorf("normalised scanRegistries (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		repository string
		want       bool
	}{
		{"index.docker.io/library/python", true},
		{"registry.example.ca", true},
		{"registry.example.ca/team/etl", true},
		{"registry.example.ca.evil.io/team/etl", false},
		{"localhost:5000/team/etl", true},
		{"localhost:5000/teams/etl", false},
		{"localhost:5001/team/etl", false},
		{"quay.io/team/etl", false},
	} {
		if got := p.MayScan(tc.repository); got != tc.want {
			t.Errorf("MayScan(%q) = %v, want %v", tc.repository, got, tc.want)
		}
	}
	// It runs at admission.
	if n := testing.AllocsPerRun(100, func() { p.MayScan("quay.io/team/etl") }); n != 0 {
		t.Errorf("MayScan allocates %v times", n)
	}
	if !DefaultPolicy().MayScan("quay.io/team/etl") {
		t.Error("without scanRegistries a registry is refused")
	}
}
