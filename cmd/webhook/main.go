// Command webhook is daaas-guard's admission webhook server: validating
// admission against Gatekeeper ConstraintTemplates and constraints, and
// mutating admission that adds GPU tolerations and Vault agents to pipeline
// and notebook pods. This build serves its operational endpoints (health,
// readiness, metrics); admission endpoints are added on top of them.
package main

import (
	"flag"
	"os"

	"github.com/statcan/daaas-guard/pkg/serving"
)

func main() {
	var f serving.Flags
	f.Bind(flag.CommandLine)
	flag.Parse()
	os.Exit(serving.RunOperational("webhook", "daaas-guard webhook: operational endpoints only in this build; admission endpoints are not served yet", f))
}
