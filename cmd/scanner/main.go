// Command scanner is daaas-guard's scanning and audit controller: Trivy
// image verdicts for the images pipeline runs use, kube-bench and
// kube-hunter report summaries, audits of existing resources and ITSG-33
// compliance reports. This build serves its operational endpoints (health,
// readiness, metrics); controllers are added on top of them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/statcan/daaas-guard/pkg/serving"
)

func main() {
	addr := flag.String("health-addr", ":8081", "address for /healthz, /readyz and /metrics")
	grace := flag.Duration("shutdown-grace", 10*time.Second, "time in-flight requests get to finish on shutdown")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	log := zap.New(zap.UseFlagOptions(&zopts)).WithName("scanner")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Info("daaas-guard scanner: operational endpoints only in this build; scan and audit controllers are not running yet")
	probes := &serving.Probes{}
	probes.SetReady(true)
	if err := serving.Serve(ctx, log, *addr, probes.Handler(serving.NewRegistry()), *grace, nil); err != nil {
		fmt.Fprintf(os.Stderr, "scanner: %v\n", err)
		os.Exit(1)
	}
}
