// Command webhook is daaas-guard's admission webhook server: validating
// admission against Gatekeeper ConstraintTemplates and constraints, and
// mutating admission that adds GPU tolerations and Vault agents to pipeline
// and notebook pods. This build serves its operational endpoints (health,
// readiness, metrics); admission endpoints are added on top of them.
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
	log := zap.New(zap.UseFlagOptions(&zopts)).WithName("webhook")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Info("daaas-guard webhook: operational endpoints only in this build; admission endpoints are not served yet")
	probes := &serving.Probes{}
	probes.SetReady(true)
	if err := serving.Serve(ctx, log, *addr, probes.Handler(serving.NewRegistry()), *grace, nil); err != nil {
		fmt.Fprintf(os.Stderr, "webhook: %v\n", err)
		os.Exit(1)
	}
}
