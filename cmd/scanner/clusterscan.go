package main

import (
	"flag"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/statcan/daaas-guard/pkg/clusterscan"
)

// clusterScanFlags are the flags of the kube-bench and kube-hunter scans
// (pkg/clusterscan). Their names are prefixed so that they never clash
// with the image scanner's.
type clusterScanFlags struct {
	o             clusterscan.Options
	benchArgs     listFlag
	benchNodes    string
	tolerateAll   bool
	hunterNodeSel string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (f *clusterScanFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.o.Namespace, "infra-scan-namespace", clusterscan.DefaultNamespace, "namespace of the kube-bench and kube-hunter Jobs")
	fs.IntVar(&f.o.MaxConcurrentJobs, "infra-scan-jobs", clusterscan.DefaultMaxConcurrentJobs, "kube-bench Jobs running at once")
	fs.DurationVar(&f.o.JobTimeout, "infra-scan-job-timeout", clusterscan.DefaultJobTimeout, "limit for one kube-bench or kube-hunter Job")
	fs.BoolVar(&f.o.Starboard, "ingest-starboard-infra-reports", true, "read Starboard CISKubeBenchReports and KubeHunterReports when their CRDs exist")
	fs.DurationVar(&f.o.KubeBench.Interval, "kube-bench-interval", clusterscan.DefaultKubeBenchInterval, "time between kube-bench runs over every node (0: none)")
	fs.StringVar(&f.o.KubeBench.Image, "kube-bench-image", clusterscan.DefaultKubeBenchImage, "kube-bench image")
	fs.Var(&f.benchArgs, "kube-bench-arg", "argument added to 'kube-bench run --json', e.g. --benchmark=cis-1.10 (repeatable)")
	fs.StringVar(&f.benchNodes, "kube-bench-nodes", "", "label selector of the nodes benchmarked (default: all)")
	fs.BoolVar(&f.tolerateAll, "kube-bench-tolerate-all", true, "run kube-bench on tainted nodes too (control plane, GPU pools)")
	fs.DurationVar(&f.o.KubeHunter.Interval, "kube-hunter-interval", clusterscan.DefaultKubeHunterInterval, "time between kube-hunter runs (0: none)")
	fs.StringVar(&f.o.KubeHunter.Image, "kube-hunter-image", clusterscan.DefaultKubeHunterImage, "kube-hunter image")
	fs.BoolVar(&f.o.KubeHunter.Quick, "kube-hunter-quick", false, "scan only the pod's /24 subnet (kube-hunter --quick)")
	fs.StringVar(&f.hunterNodeSel, "kube-hunter-node-selector", "", "node labels (k=v,...) for the kube-hunter pod")
}

// options returns the scans' options once the flags are parsed.
func (f *clusterScanFlags) options() (clusterscan.Options, error) {
	o := f.o
	o.KubeBench.Args = f.benchArgs
	if f.benchNodes != "" {
		sel, err := labels.Parse(f.benchNodes)
		if err != nil {
			return o, fmt.Errorf("--kube-bench-nodes: %w", err)
		}
		o.KubeBench.Nodes = sel
	}
	if !f.tolerateAll {
		o.KubeBench.Tolerations = []corev1.Toleration{}
	}
	if f.hunterNodeSel != "" {
		sel, err := labels.ConvertSelectorToLabelsMap(f.hunterNodeSel)
		if err != nil {
			return o, fmt.Errorf("--kube-hunter-node-selector: %w", err)
		}
		o.KubeHunter.NodeSelector = sel
	}
	return o, nil
}
