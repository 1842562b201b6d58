// Command webhook is daaas-guard's admission webhook server: it enforces
// Gatekeeper ConstraintTemplates and constraints cluster-wide (validating
// admission on /v1/admit), guards the namespace exemption label
// (/v1/admitlabel), adds GPU tolerations and the Vault agent to pods
// (mutating admission on /v1/mutate, configured by the MutationConfig
// named default, checked on /v1/admitmutationconfig), checks the image
// gate's ImagePolicy (/v1/admitimagepolicy), keeps referential data in
// step with the cluster, and serves /healthz, /readyz and /metrics.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/pkg/imagegate"
	"github.com/statcan/daaas-guard/pkg/serving"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	cfg := webhook.Config{}
	var mayIgnore listFlag
	flag.StringVar(&cfg.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace the webhook runs in (default $POD_NAMESPACE); never reviewed")
	flag.StringVar(&cfg.PodID, "pod-name", os.Getenv("POD_NAME"), "this replica's name in status.byPod (default $POD_NAME)")
	flag.StringVar(&cfg.ServiceAccount, "service-account", "", "the webhook's own username, always allowed (default system:serviceaccount:<namespace>:daaas-guard-webhook)")
	flag.IntVar(&cfg.Port, "port", 8443, "HTTPS port of the admission endpoints")
	flag.BoolVar(&cfg.HTTP2, "enable-http2", false, "offer HTTP/2 on the admission endpoints (default: HTTP/1.1 only)")
	flag.StringVar(&cfg.CertDir, "cert-dir", "/certs", "directory of tls.crt and tls.key")
	flag.BoolVar(&cfg.DisableCertRotation, "disable-cert-rotation", false, "use certificates provided in --cert-dir (for example by cert-manager) instead of generating them")
	flag.StringVar(&cfg.ServiceName, "service-name", "daaas-guard-webhook", "Service in front of the webhook (certificate DNS name)")
	flag.StringVar(&cfg.CertSecret, "cert-secret", "daaas-guard-webhook-cert", "Secret holding the generated certificates")
	flag.StringVar(&cfg.WebhookConfigName, "webhook-config", "daaas-guard-validating", "ValidatingWebhookConfiguration that receives the CA bundle")
	flag.StringVar(&cfg.MutatingWebhookConfigName, "mutating-webhook-config", "daaas-guard-mutating", "MutatingWebhookConfiguration that receives the CA bundle (empty: none)")
	flag.Var(&mayIgnore, "exempt-namespace", "namespace (glob: kube-*, *-system) allowed to carry admission.gatekeeper.sh/ignore (repeatable)")
	flag.IntVar(&cfg.MaxInFlight, "max-serving-threads", 0, "reviews evaluated at once; more wait (default: the CPUs the process may use, as evaluation never waits on I/O)")
	procs := serving.DefaultProcessors
	flag.IntVar(&procs.Network, "network-procs", procs.Network, "Go processors added beyond the evaluating ones while reviews queue, so that requests are read as they arrive (GOMAXPROCS wins when set; 0 adds none)")
	flag.IntVar(&cfg.ReviewCache, "review-cache", 256, "recent policy runs kept to answer a review that would repeat one, e.g. a Deployment's replicas (0: off)")
	flag.IntVar(&cfg.MaxUnscannedImages, "max-unscanned-images", imagegate.DefaultMaxUnscanned, "ImageScans without a verdict (pending scan requests, failed scans) that may exist before the image gate stops requesting scans, its denials saying the scan queue is full (0: the default)")
	flag.DurationVar(&cfg.EvalTimeout, "eval-timeout", 2500*time.Millisecond, "deadline for one review; keep it below the webhook timeoutSeconds")
	flag.StringVar(&cfg.HealthAddr, "health-addr", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", ":8080", "address of /metrics (0 disables)")
	serving.BindMetricsFlags(flag.CommandLine, &cfg.MetricsSecure, &cfg.MetricsCertDir)
	flag.StringVar(&cfg.PprofAddr, "pprof-addr", "", "address of Go's /debug/pprof profiling endpoints, e.g. 127.0.0.1:6060 (empty: off)")
	drain := &serving.Drain{}
	flag.DurationVar(&drain.Delay, "shutdown-delay", 10*time.Second, "time the webhook keeps answering reviews after SIGTERM while reporting not ready, as the API server may send them until the Service drops the pod (0: stop at once; a second signal ends the delay)")
	flag.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 25*time.Second, "time in-flight reviews get to finish once the webhook stops, after --shutdown-delay")
	mem := serving.DefaultMemory
	flag.IntVar(&mem.GCPercent, "gc-percent", mem.GCPercent, "garbage collector target percentage (GOGC wins when set; 0 keeps Go's default)")
	flag.Float64Var(&mem.LimitFraction, "memory-limit-fraction", mem.LimitFraction, "fraction of the container memory limit used as the Go soft memory limit (GOMEMLIMIT wins when set; 0 disables)")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	cfg.MayIgnore = mayIgnore

	log := zap.New(zap.UseFlagOptions(&zopts)).WithName("webhook")
	ctrl.SetLogger(log)
	cfg.Log = log
	drain.Log = log
	cfg.ShuttingDown = drain.Draining
	mem.Tune(log)
	scaler := procs.Scaler(log)
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = scaler.Compute()
	}
	cfg.Queued = scaler.Queued
	if cfg.ServiceAccount == "" && cfg.Namespace != "" {
		cfg.ServiceAccount = fmt.Sprintf("system:serviceaccount:%s:daaas-guard-webhook", cfg.Namespace)
	}
	if cfg.PodID == "" {
		cfg.PodID, _ = os.Hostname()
	}

	mgr, err := webhook.NewManager(ctrl.GetConfigOrDie(), cfg)
	if err != nil {
		log.Error(err, "creating the manager")
		os.Exit(1)
	}
	if _, err := webhook.Setup(mgr, cfg); err != nil {
		log.Error(err, "setting up the webhook")
		os.Exit(1)
	}
	if err := mgr.Add(scaler); err != nil {
		log.Error(err, "adding the processor scaler")
		os.Exit(1)
	}
	if err := mgr.Start(drain.SignalContext()); err != nil {
		log.Error(err, "webhook stopped")
		os.Exit(1)
	}
}
