// Command scanner is daaas-guard's scanning and audit controller: it keeps
// an ImageScan verdict (guard.statcan.gc.ca) for every image digest pods,
// Argo Workflows and Tekton PipelineRuns run, scanning each digest once with
// Trivy in-process against an offline vulnerability database and ingesting
// Starboard VulnerabilityReports and Trivy JSON reports; runs kube-bench and
// kube-hunter and keeps their summaries (pkg/clusterscan); and audits
// existing resources against every constraint (pkg/audit); and refreshes
// ComplianceReports on their schedules (pkg/compliance/refresh). It serves
// /healthz, /readyz and /metrics; one replica at a time works (leader
// election).
package main

import (
	"flag"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/pkg/audit"
	"github.com/statcan/daaas-guard/pkg/clusterscan"
	"github.com/statcan/daaas-guard/pkg/compliance/refresh"
	"github.com/statcan/daaas-guard/pkg/evidence"
	"github.com/statcan/daaas-guard/pkg/scan"
	"github.com/statcan/daaas-guard/pkg/scanner"
	"github.com/statcan/daaas-guard/pkg/serving"
)

func main() {
	cfg := scanner.Config{}
	var scanImages bool
	flag.BoolVar(&scanImages, "scan-images", true, "scan images with Trivy (needs --db-dir); off, the scanner only audits and runs kube-bench and kube-hunter")
	flag.StringVar(&cfg.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace the scanner runs in, for its leader-election Lease (default $POD_NAMESPACE)")
	flag.BoolVar(&cfg.LeaderElection, "leader-elect", true, "let one replica at a time scan")
	flag.StringVar(&cfg.DBDir, "db-dir", "/var/lib/trivy/db", "directory of Trivy's offline vulnerability database (trivy.db and metadata.json, as in <trivy cache>/db); never downloaded by the scanner")
	flag.DurationVar(&cfg.DBCheckInterval, "db-check-interval", time.Minute, "how often the database is checked for a rebuild (its metadata's UpdatedAt) or, while --db-dir has none, for its arrival")
	flag.StringVar(&cfg.CacheDir, "cache-dir", "", "directory for Trivy's layer-analysis cache, kept across scans and restarts (default: in memory, per scan)")
	flag.StringVar(&cfg.ReportDir, "report-dir", "", "keep each scan's full Trivy JSON here and serve it on the metrics address under /reports/sha256-<hex>.json")
	flag.Int64Var(&cfg.ReportDirMaxBytes, "report-dir-max-bytes", 768<<20, "bound on the reports kept in --report-dir, oldest removed first; keep it below the volume's size (0: no bound)")
	flag.StringVar(&cfg.TrivyReportDir, "ingest-trivy-reports", "", "directory of Trivy JSON reports (trivy image -f json) to read into ImageScans")
	flag.DurationVar(&cfg.TrivyReportInterval, "ingest-interval", 5*time.Minute, "how often --ingest-trivy-reports is read again")
	flag.BoolVar(&cfg.Starboard, "ingest-starboard", true, "read Starboard VulnerabilityReports into ImageScans when their CRD exists")
	flag.BoolVar(&cfg.Workloads, "watch-workloads", true, "discover images from Argo Workflows and Tekton PipelineRuns when their CRDs exist")
	flag.BoolVar(&cfg.PullSecrets, "pull-secrets", true, "read pods' image pull secrets to resolve and pull private images")
	flag.IntVar(&cfg.Concurrency, "concurrency", scan.DefaultConcurrency, "scans running at once")
	flag.DurationVar(&cfg.TTL, "rescan-after", scan.DefaultTTL, "a verdict's lifetime before a rescan, less up to --rescan-jitter")
	flag.Float64Var(&cfg.Jitter, "rescan-jitter", scan.DefaultJitter, "fraction of --rescan-after taken off at random per image, to spread rescans")
	flag.DurationVar(&cfg.RetryAfter, "retry-after", scan.DefaultRetryAfter, "when a failed scan is tried again")
	flag.DurationVar(&cfg.ScanTimeout, "scan-timeout", scan.DefaultScanTimeout, "limit for pulling and scanning one image")
	flag.DurationVar(&cfg.ResolveTTL, "resolve-ttl", scan.DefaultResolveTTL, "how long a tag's digest is trusted before the registry is asked again")
	flag.DurationVar(&cfg.Retention, "retention", 7*24*time.Hour, "delete an ImageScan, and its kept report, once no pod, Workflow or PipelineRun has used its image for this long (0: keep them)")
	flag.DurationVar(&cfg.StubRetention, "stub-retention", 24*time.Hour, "delete an unused ImageScan that has no verdict (an admission request for an image that never scanned) after this long (0: only --retention applies)")
	flag.Int64Var(&cfg.MaxImageSize, "max-image-size", 0, "refuse images larger than this many uncompressed bytes (0: no limit)")
	flag.StringVar(&cfg.Platform, "platform", "linux/amd64", "platform scanned in multi-platform images")
	flag.StringVar(&cfg.HealthAddr, "health-addr", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", ":8080", "address of /metrics and /reports/ (0 disables it)")
	serving.BindMetricsFlags(flag.CommandLine, &cfg.MetricsSecure, &cfg.MetricsCertDir)
	flag.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 30*time.Second, "time running work gets to stop on shutdown")
	var complianceReports bool
	flag.BoolVar(&complianceReports, "compliance-reports", true, "refresh ComplianceReports on their schedules from the cluster's evidence")
	reportEvidence := evidence.DefaultOptions(time.Time{})
	flag.DurationVar(&reportEvidence.MaxBenchmarkAge, "compliance-max-benchmark-age", reportEvidence.MaxBenchmarkAge, "in ComplianceReports, a NodeBenchmark whose scan ran longer ago than this is stale and assesses nothing (0: never)")
	flag.DurationVar(&reportEvidence.MaxPenTestAge, "compliance-max-pentest-age", reportEvidence.MaxPenTestAge, "in ComplianceReports, a PenetrationTest whose run ran longer ago than this is stale and assesses nothing (0: never)")
	var scans clusterScanFlags
	scans.bind(flag.CommandLine)
	var audits auditFlags
	audits.bind(flag.CommandLine)
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()

	log := zap.New(zap.UseFlagOptions(&zopts)).WithName("scanner")
	ctrl.SetLogger(log)
	cfg.Log = log

	mgr, err := scanner.NewManager(ctrl.GetConfigOrDie(), cfg)
	if err != nil {
		log.Error(err, "creating the manager")
		os.Exit(1)
	}
	var s *scanner.Scanner
	if scanImages {
		if s, err = scanner.Setup(mgr, cfg); err != nil {
			log.Error(err, "setting up the image scans")
			os.Exit(1)
		}
	} else {
		_ = mgr.AddHealthzCheck("ping", healthz.Ping)
		_ = mgr.AddReadyzCheck("ping", healthz.Ping)
	}
	opts, err := scans.options()
	if err == nil {
		opts.Log = log.WithName("clusterscan")
		err = clusterscan.Setup(mgr, opts)
	}
	if err != nil {
		log.Error(err, "setting up the kube-bench and kube-hunter scans")
		os.Exit(1)
	}
	if audits.enabled {
		ao, err := audits.options(cfg.Namespace)
		if err == nil {
			ao.Log = log.WithName("audit")
			_, err = audit.Setup(mgr, ao)
		}
		if err != nil {
			log.Error(err, "setting up the audit")
			os.Exit(1)
		}
	}
	if complianceReports {
		if err := refresh.Setup(mgr, refresh.Options{Evidence: &reportEvidence, Log: log.WithName("compliance")}); err != nil {
			log.Error(err, "setting up the compliance report refresh")
			os.Exit(1)
		}
	}
	err = mgr.Start(ctrl.SetupSignalHandler())
	if s != nil {
		if cerr := s.Close(); cerr != nil {
			log.Error(cerr, "closing the vulnerability database")
		}
	}
	if err != nil {
		log.Error(err, "scanner stopped")
		os.Exit(1)
	}
}
