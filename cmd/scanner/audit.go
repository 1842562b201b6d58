package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/statcan/daaas-guard/pkg/audit"
)

// defaultNamespace is the namespace manifests/base deploys the suite in.
const defaultNamespace = "daaas-guard"

// auditFlags are the flags of the audit of existing resources (pkg/audit).
type auditFlags struct {
	o        audit.Options
	enabled  bool
	reports  string
	excluded listFlag
}

func (f *auditFlags) bind(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "audit", true, "audit existing resources against every constraint")
	fs.DurationVar(&f.o.Interval, "audit-interval", audit.DefaultInterval, "time between the starts of audit passes; the first runs once the policies are loaded")
	fs.Int64Var(&f.o.ChunkSize, "audit-chunk-size", audit.DefaultChunkSize, "objects per list call during an audit")
	fs.IntVar(&f.o.MaxViolations, "audit-max-violations", audit.DefaultMaxViolations, "violations listed in each constraint's status (totalViolations counts all)")
	fs.IntVar(&f.o.MaxReportResults, "audit-max-report-results", audit.DefaultMaxReportResults, "results listed in each PolicyReport (its summary counts all)")
	fs.StringVar(&f.reports, "audit-reports", string(audit.ReportFailures), "PolicyReports: failures, all (also pass counts) or none")
	fs.Var(&f.excluded, "audit-excluded-namespace", "namespace (glob) never audited, besides the scanner's own and the Config's (repeatable)")
}

// options returns the audit's options once the flags are parsed.
func (f *auditFlags) options(namespace string) (audit.Options, error) {
	o := f.o
	o.Namespace = namespace
	if o.Namespace == "" {
		// The manifests' namespace, where the Config also lives; the
		// Deployment does not set POD_NAMESPACE yet.
		o.Namespace = defaultNamespace
	}
	o.Reports = audit.ReportMode(strings.TrimSpace(f.reports))
	o.ExcludedNamespaces = f.excluded
	// Zero means "default" in audit.Options; on the command line it is a
	// mistake.
	if o.Interval <= 0 {
		return o, fmt.Errorf("--audit-interval: must be positive, got %v", o.Interval)
	}
	if o.ChunkSize <= 0 || o.MaxViolations <= 0 || o.MaxReportResults <= 0 {
		return o, fmt.Errorf("--audit-chunk-size, --audit-max-violations and --audit-max-report-results must be positive")
	}
	return o, nil
}
