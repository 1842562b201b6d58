// Package audit reviews the objects that already exist against every
// constraint, as Gatekeeper's audit does, and publishes what it finds:
// in each constraint's status (auditTimestamp, totalViolations and a
// capped, sorted violations list) and as wg-policy PolicyReports (one per
// namespace) and a ClusterPolicyReport, so that Policy Reporter and the
// suite's compliance reports read them.
//
// A pass lists each audited kind in chunks (limit and continue), in a
// fixed order (group, version, kind, then namespace and name as the API
// server returns them), and keeps only capped, sorted results, so memory
// is bounded by the chunk size and the caps, not by the cluster's size,
// and two passes over the same cluster publish the same results.
//
// Which kinds: every kind named in a constraint's spec.match.kinds, found
// through discovery in its preferred version. A constraint without kinds,
// or with "*", means every kind the API server can list, except Secrets
// (their data is never read unless a constraint names Secret itself),
// Events (transient) and the audit's own PolicyReports. A kind the
// scanner may not list is skipped: logged once if only "*" reached it,
// and a problem of the pass if a constraint named it.
//
// A pass that cannot list a kind (a timeout, an expired continue token,
// a server error, a named kind it may not list) is partial: the
// constraints that apply to that kind keep the status (and violations
// gauge) of the last pass that listed all their kinds, and reports that
// may hold findings on that kind are neither rewritten nor deleted, so
// that missing objects are never published as compliant ones. A group
// version that discovery fails for (an aggregated API server down) is
// treated the same way: its kinds are unknown, so every constraint whose
// match.kinds accept its group, and every report with findings in that
// group, counts as resting on an unlisted kind.
//
// Objects are reviewed as Gatekeeper's audit reviews them: the stored
// object with no operation and no user, at the audit enforcement point
// (scoped constraints report only if they list audit.gatekeeper.sh), with
// its Namespace for namespaceSelector, through ExpansionTemplates (results
// on the workload), and with data.inventory synced as the Config says.
// Namespaces excluded for the audit process by the Config, the suite's
// own and Options.ExcludedNamespaces are skipped, their Namespace objects
// too.
//
// Reports: a result's policy is the constraint kind (the template, which
// pkg/evidence maps to controls), its rule the constraint name; deny gives
// fail, warn gives warn (not scored), dryrun gives fail with
// properties.enforcementAction=dryrun (the object does violate the
// policy, which is only not enforced at admission). Severity is the
// template's guard.statcan.gc.ca/severity, category "ITSG-33 " and its
// guard.statcan.gc.ca/controls. The wg-policy CRDs belong to the platform
// (Policy Reporter, Kyverno): when they are absent the audit writes only
// constraint status, and says so once in its log.
package audit

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	DefaultInterval         = 10 * time.Minute
	DefaultChunkSize        = 500
	DefaultMaxViolations    = 20
	DefaultMaxReportResults = 1000
)

// ReportMode says what PolicyReports carry.
type ReportMode string

// Report modes.
const (
	// ReportFailures writes reports only for namespaces with findings, and
	// only the findings (the default: small reports, little etcd).
	ReportFailures ReportMode = "failures"
	// ReportAll also counts the objects that passed in each summary, and
	// writes a report for every audited namespace.
	ReportAll ReportMode = "all"
	// ReportNone writes no reports (constraint status only).
	ReportNone ReportMode = "none"
)

// Options configure the audit. The zero value of a field means its default.
type Options struct {
	// Namespace the suite runs in: never audited, and where the
	// Gatekeeper Config (named "config") is read from.
	Namespace string
	// Interval between the starts of two passes; the first pass runs as
	// soon as the policies present at start are loaded.
	Interval time.Duration
	// ChunkSize is the page size of each list call.
	ChunkSize int64
	// MaxViolations is the most violations a constraint's status lists;
	// totalViolations is always the true count.
	MaxViolations int
	// MaxReportResults is the most results one PolicyReport lists; its
	// summary always counts them all.
	MaxReportResults int
	// Reports is what PolicyReports carry (default ReportFailures).
	Reports ReportMode
	// ExcludedNamespaces (globs: prefix* or *suffix) are never audited, in
	// addition to Namespace and the Config's spec.match entries whose
	// processes include audit or *.
	ExcludedNamespaces []string
	// Metrics receives the series; nil means controller-runtime's registry.
	Metrics prometheus.Registerer
	Log     logr.Logger
	// now is the clock (tests).
	now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.MaxViolations == 0 {
		o.MaxViolations = DefaultMaxViolations
	}
	if o.MaxReportResults == 0 {
		o.MaxReportResults = DefaultMaxReportResults
	}
	if o.Reports == "" {
		o.Reports = ReportFailures
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("namespace: the namespace the suite runs in is required"))
	}
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: must be positive, got %v", o.Interval))
	}
	if o.ChunkSize < 0 {
		errs = append(errs, fmt.Errorf("chunk size: must be positive, got %d", o.ChunkSize))
	}
	if o.MaxViolations < 0 {
		errs = append(errs, fmt.Errorf("max violations: must be positive, got %d", o.MaxViolations))
	}
	if o.MaxReportResults < 0 {
		errs = append(errs, fmt.Errorf("max report results: must be positive, got %d", o.MaxReportResults))
	}
	switch o.Reports {
	case ReportFailures, ReportAll, ReportNone:
	default:
		errs = append(errs, fmt.Errorf("reports: %q is not one of failures, all, none", o.Reports))
	}
	return errors.Join(errs...)
}
