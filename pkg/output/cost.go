package output

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/statcan/daaas-guard/pkg/eval"
)

// CostText prints template costs, slowest first, with their share of the
// total.
func CostText(w io.Writer, costs []eval.Cost, baseline time.Duration, objects int) error {
	var b strings.Builder
	var total time.Duration
	for _, c := range costs {
		total += c.PerReview
	}
	fmt.Fprintf(&b, "%-40s %12s %7s %11s %8s\n", "template (kind)", "per review", "share", "constraints", "results")
	for _, c := range costs {
		share := 0.0
		if total > 0 {
			share = 100 * float64(c.PerReview) / float64(total)
		}
		fmt.Fprintf(&b, "%-40s %12s %6.1f%% %11d %8d\n", c.Kind, round(c.PerReview), share, c.Constraints, c.Results)
	}
	fmt.Fprintf(&b, "%d objects; decoding a request and starting the evaluator costs %s; all templates together about %s per review\n",
		objects, round(baseline), round(total+baseline))
	_, err := io.WriteString(w, b.String())
	return err
}
