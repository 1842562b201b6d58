// Command scanner is daaas-guard's scanning and audit controller: Trivy
// image verdicts for the images pipeline runs use, kube-bench and
// kube-hunter report summaries, audits of existing resources and ITSG-33
// compliance reports. This build serves its operational endpoints (health,
// readiness, metrics); controllers are added on top of them.
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
	os.Exit(serving.RunOperational("scanner", "daaas-guard scanner: operational endpoints only in this build; scan and audit controllers are not running yet", f))
}
