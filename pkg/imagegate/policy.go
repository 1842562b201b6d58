// Package imagegate decides, at admission, whether the images of a
// pipeline run may run given their vulnerability verdicts: the ImagePolicy
// says which findings deny and what happens to unscanned images,
// ImageExceptions accept named vulnerabilities for a while. It reads
// verdicts from the in-memory index (pkg/scan/verdict) and never calls the
// network on the admission path; scan requests and exception usage are
// written asynchronously.
package imagegate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/match"
)

// Defaults of an absent ImagePolicy field.
const (
	DefaultMinimumSeverity = v1alpha1.SeverityCritical
	DefaultUnscanned       = v1alpha1.UnscannedWarn
	DefaultRetryAfter      = 2 * time.Minute
)

// severityRank orders severities: lower is more severe.
var severityRank = map[string]int{
	v1alpha1.SeverityCritical: 0,
	v1alpha1.SeverityHigh:     1,
	v1alpha1.SeverityMedium:   2,
	v1alpha1.SeverityLow:      3,
}

// Policy is an ImagePolicy made ready for admission.
type Policy struct {
	Enforce     bool
	MinRank     int
	FixableOnly bool
	Rules       []UnscannedRule
	Default     string
	RetryAfter  time.Duration
	// ScanRegistries are spec.scanRegistries normalised as image
	// repositories are (docker.io is index.docker.io), without a trailing
	// "/"; empty allows any.
	ScanRegistries []string
}

// UnscannedRule is a compiled spec.unscanned entry.
type UnscannedRule struct {
	Selector labels.Selector
	Mode     string
}

// DefaultPolicy applies when there is no ImagePolicy.
func DefaultPolicy() *Policy {
	p, _ := CompilePolicy(&v1alpha1.ImagePolicySpec{})
	return p
}

// CompilePolicy checks spec and fills in defaults. Errors name the field.
func CompilePolicy(spec *v1alpha1.ImagePolicySpec) (*Policy, error) {
	p := &Policy{Enforce: true, MinRank: severityRank[DefaultMinimumSeverity], FixableOnly: true,
		Default: DefaultUnscanned, RetryAfter: DefaultRetryAfter}
	var errs []error
	if spec.Enforce != nil {
		p.Enforce = *spec.Enforce
	}
	if spec.FixableOnly != nil {
		p.FixableOnly = *spec.FixableOnly
	}
	if s := spec.MinimumSeverity; s != "" {
		r, ok := severityRank[s]
		if !ok {
			errs = append(errs, fmt.Errorf("spec.minimumSeverity: %q is not one of CRITICAL, HIGH, MEDIUM, LOW", s))
		}
		p.MinRank = r
	}
	if m := spec.DefaultUnscanned; m != "" {
		if !validMode(m) {
			errs = append(errs, fmt.Errorf("spec.defaultUnscanned: %q is not one of Deny, Warn, Allow", m))
		}
		p.Default = m
	}
	if spec.RetryAfter != nil {
		if spec.RetryAfter.Duration <= 0 {
			errs = append(errs, fmt.Errorf("spec.retryAfter: %v must be positive", spec.RetryAfter.Duration))
		}
		p.RetryAfter = spec.RetryAfter.Duration
	}
	for i, r := range spec.ScanRegistries {
		prefix, err := scanRegistry(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.scanRegistries[%d]: %w", i, err))
		}
		p.ScanRegistries = append(p.ScanRegistries, prefix)
	}
	for i, r := range spec.Unscanned {
		sel, err := metav1.LabelSelectorAsSelector(&r.NamespaceSelector)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.unscanned[%d].namespaceSelector: %w", i, err))
		}
		if !validMode(r.Mode) {
			errs = append(errs, fmt.Errorf("spec.unscanned[%d].mode: %q is not one of Deny, Warn, Allow", i, r.Mode))
		}
		p.Rules = append(p.Rules, UnscannedRule{Selector: sel, Mode: r.Mode})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// scanRegistry normalises a spec.scanRegistries entry as images.Parse
// normalises an image's repository, so that they compare as strings.
func scanRegistry(entry string) (string, error) {
	host, path, _ := strings.Cut(strings.TrimSuffix(entry, "/"), "/")
	// As in image references, the first component is a registry only if
	// it has a dot or a port, or is localhost: "team/etl" would be a
	// Docker Hub repository, which no image would ever match.
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return "", fmt.Errorf("%q does not start with a registry host (e.g. registry.example.ca or docker.io/library)", entry)
	}
	reg, err := name.NewRegistry(host, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("%q: %w", entry, err)
	}
	if path == "" {
		return reg.Name(), nil
	}
	prefix := reg.Name() + "/" + path
	// Only to check the path's characters (tags, digests and "*" fail):
	// the name it returns has library/ added to a one-component Docker
	// Hub path, which a prefix must not.
	if _, err := name.NewRepository(prefix, name.WeakValidation); err != nil {
		return "", fmt.Errorf("%q: want a registry host or repository prefix, without tag, digest or \"*\": %w", entry, err)
	}
	return prefix, nil
}

// MayScan reports whether the scanner may be asked to pull repository
// (normalised, as images.Parse returns it): it is one of ScanRegistries or
// under one, on a path boundary (registry.example.ca does not allow
// registry.example.ca.evil.io). It is called at admission and allocates
// nothing.
func (p *Policy) MayScan(repository string) bool {
	if len(p.ScanRegistries) == 0 {
		return true
	}
	for _, prefix := range p.ScanRegistries {
		if strings.HasPrefix(repository, prefix) && (len(repository) == len(prefix) || repository[len(prefix)] == '/') {
			return true
		}
	}
	return false
}

func validMode(m string) bool {
	return m == v1alpha1.UnscannedDeny || m == v1alpha1.UnscannedWarn || m == v1alpha1.UnscannedAllow
}

// UnscannedMode is the mode for a namespace with the given labels.
func (p *Policy) UnscannedMode(nsLabels map[string]string) string {
	for _, r := range p.Rules {
		if r.Selector.Matches(labels.Set(nsLabels)) {
			return r.Mode
		}
	}
	return p.Default
}

// Exception is an ImageException made ready for admission.
type Exception struct {
	Name       string
	CVEs       []string // sorted
	Images     []match.Glob
	Namespaces []match.Glob
	Expires    time.Time
}

// CompileException checks an ImageException. Errors name it and the field.
func CompileException(ex *v1alpha1.ImageException) (*Exception, error) {
	e := &Exception{Name: ex.Name, Expires: ex.Spec.Expires.Time}
	var errs []error
	if len(ex.Spec.CVEIDs) == 0 {
		errs = append(errs, errors.New("spec.cveIDs: at least one ID is required"))
	}
	for i, id := range ex.Spec.CVEIDs {
		if id = strings.TrimSpace(id); id == "" {
			errs = append(errs, fmt.Errorf("spec.cveIDs[%d]: empty", i))
			continue
		}
		e.CVEs = append(e.CVEs, id)
	}
	slices.Sort(e.CVEs)
	if len(ex.Spec.Images) == 0 {
		errs = append(errs, errors.New("spec.images: at least one pattern is required"))
	}
	for i, g := range ex.Spec.Images {
		if err := checkGlob(g); err != nil {
			errs = append(errs, fmt.Errorf("spec.images[%d]: %w", i, err))
		}
		e.Images = append(e.Images, match.Glob(g))
	}
	for i, g := range ex.Spec.Namespaces {
		if err := checkGlob(g); err != nil {
			errs = append(errs, fmt.Errorf("spec.namespaces[%d]: %w", i, err))
		}
		e.Namespaces = append(e.Namespaces, match.Glob(g))
	}
	if e.Expires.IsZero() {
		errs = append(errs, errors.New("spec.expires: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ImageException %s: %w", ex.Name, err)
	}
	return e, nil
}

// checkGlob accepts the patterns match.Glob understands: "*" only at the
// start or end.
func checkGlob(g string) error {
	inner := strings.TrimSuffix(strings.TrimPrefix(g, "*"), "*")
	if g == "" || strings.Contains(inner, "*") {
		return fmt.Errorf("pattern %q: want a name with \"*\" only at its start or end", g)
	}
	return nil
}

// Covers reports whether the exception, unexpired at now, accepts cve in
// repository (registry/repository) in namespace.
func (e *Exception) Covers(cve, repository, namespace string, now time.Time) bool {
	return now.Before(e.Expires) && e.Applies(cve, repository, namespace)
}

// Applies is Covers without the expiry.
func (e *Exception) Applies(cve, repository, namespace string) bool {
	if _, ok := slices.BinarySearch(e.CVEs, cve); !ok {
		return false
	}
	if len(e.Namespaces) > 0 && !slices.ContainsFunc(e.Namespaces, func(g match.Glob) bool { return g.Matches(namespace) }) {
		return false
	}
	return slices.ContainsFunc(e.Images, func(g match.Glob) bool { return g.Matches(repository) })
}
