// Command scanner is daaas-guard's scanning and audit controller: Trivy
// image verdicts for the images pipeline runs use, kube-bench and
// kube-hunter report summaries, audits of existing resources and ITSG-33
// compliance reports. This build runs the kube-bench and kube-hunter scans
// (pkg/clusterscan) and the audit (pkg/audit) in a controller-runtime
// manager with leader election, health, readiness and metrics.
package main

import (
	"flag"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/audit"
	"github.com/statcan/daaas-guard/pkg/clusterscan"
)

func main() {
	var namespace, healthAddr, metricsAddr string
	var leaderElect bool
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace the scanner runs in, for its leader-election Lease (default $POD_NAMESPACE)")
	flag.BoolVar(&leaderElect, "leader-elect", true, "let one replica at a time run the scans")
	flag.StringVar(&healthAddr, "health-addr", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&metricsAddr, "metrics-addr", ":8080", "address of /metrics (0 disables it)")
	var scans clusterScanFlags
	scans.bind(flag.CommandLine)
	var audits auditFlags
	audits.bind(flag.CommandLine)
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()

	log := zap.New(zap.UseFlagOptions(&zopts)).WithName("scanner")
	ctrl.SetLogger(log)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme, Logger: log,
		HealthProbeBindAddress: healthAddr,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		LeaderElection:         leaderElect, LeaderElectionID: "daaas-guard-scanner", LeaderElectionNamespace: namespace,
	})
	if err != nil {
		log.Error(err, "creating the manager")
		os.Exit(1)
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
		ao, err := audits.options(namespace)
		if err == nil {
			ao.Log = log.WithName("audit")
			_, err = audit.Setup(mgr, ao)
		}
		if err != nil {
			log.Error(err, "setting up the audit")
			os.Exit(1)
		}
	}
	_ = mgr.AddHealthzCheck("ping", healthz.Ping)
	_ = mgr.AddReadyzCheck("ping", healthz.Ping)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "scanner stopped")
		os.Exit(1)
	}
}
