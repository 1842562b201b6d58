// Package clusterscan runs and reads the cluster's infrastructure scans:
// kube-bench (CIS Kubernetes benchmark, one Job per node) and kube-hunter
// (penetration test, one Job per cluster). On a schedule it creates the
// Jobs, at most a few at a time; when a Job finishes it reads the tool's
// JSON from the pod log, keeps a compact summary (NodeBenchmark,
// ClusterBenchmark, PenetrationTest in guard.statcan.gc.ca) and deletes the
// Job. Starboard's CISKubeBenchReports and KubeHunterReports, where
// Starboard is installed, are summarised the same way.
//
// The Jobs run in their own namespace, which must admit what kube-bench
// needs (the host's PID namespace and read-only host paths): see
// manifests/base/clusterscan.yaml.
package clusterscan

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Defaults.
const (
	DefaultNamespace         = "daaas-guard-scans"
	DefaultKubeBenchImage    = "docker.io/aquasec/kube-bench:v0.10.4"
	DefaultKubeHunterImage   = "docker.io/aquasec/kube-hunter:0.6.8"
	DefaultKubeBenchAccount  = "daaas-guard-kube-bench"
	DefaultKubeHunterAccount = "daaas-guard-kube-hunter"
	DefaultMaxConcurrentJobs = 5
	DefaultJobTimeout        = 10 * time.Minute
	DefaultMaxLogBytes       = 16 << 20
	// DefaultKubeBenchInterval and DefaultKubeHunterInterval are the
	// scanner's default schedule (cmd/scanner). The compliance report's
	// default evidence ages (pkg/evidence) follow from them.
	DefaultKubeBenchInterval  = 24 * time.Hour
	DefaultKubeHunterInterval = 7 * 24 * time.Hour
	// ClusterObjectName names the ClusterBenchmark and the PenetrationTest.
	ClusterObjectName = "cluster"
)

// Options configure the scans. The zero value of a field means its
// default; an Interval of zero disables that tool's scheduled Jobs (its
// Starboard reports are still read).
type Options struct {
	// Namespace the Jobs run in.
	Namespace  string
	KubeBench  KubeBenchOptions
	KubeHunter KubeHunterOptions
	// MaxConcurrentJobs bounds the kube-bench Jobs running at once; a
	// finished Job no longer counts, whether or not it is deleted yet.
	MaxConcurrentJobs int
	// JobTimeout is each Job's activeDeadlineSeconds.
	JobTimeout time.Duration
	// MaxLogBytes is the most read from a pod log; a longer log is an error.
	MaxLogBytes int64
	// MaxFailures and MaxFindings bound the failing checks a NodeBenchmark
	// lists and the findings a PenetrationTest lists; MaxCommonFailures the
	// checks a ClusterBenchmark lists (defaults 50, 50, 10).
	MaxFailures       int
	MaxFindings       int
	MaxCommonFailures int
	// Starboard reads CISKubeBenchReports and KubeHunterReports when their
	// CRDs exist at start-up.
	Starboard bool
	// Logs reads pod logs; by default the API server's pods/log.
	Logs LogSource
	// Metrics receives the series; nil means controller-runtime's registry.
	Metrics prometheus.Registerer
	Log     logr.Logger
	// now is the clock (tests).
	now func() time.Time
}

// KubeBenchOptions configure the kube-bench Jobs.
type KubeBenchOptions struct {
	// Interval between runs; 0 runs none.
	Interval time.Duration
	Image    string
	// Args are added to "kube-bench run --json", e.g. --benchmark=cis-1.10
	// (by default kube-bench detects the version).
	Args []string
	// Nodes selects the nodes benchmarked (default all).
	Nodes labels.Selector
	// Tolerations of the Jobs' pods (default: tolerate every taint, so
	// control-plane and GPU nodes are benchmarked too).
	Tolerations    []corev1.Toleration
	ServiceAccount string
}

// KubeHunterOptions configure the kube-hunter Job.
type KubeHunterOptions struct {
	// Interval between runs; 0 runs none.
	Interval time.Duration
	Image    string
	// Quick limits the subnet scan (kube-hunter --quick).
	Quick bool
	// NodeSelector and Tolerations place the pod.
	NodeSelector   map[string]string
	Tolerations    []corev1.Toleration
	ServiceAccount string
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.KubeBench.Image == "" {
		o.KubeBench.Image = DefaultKubeBenchImage
	}
	if o.KubeBench.ServiceAccount == "" {
		o.KubeBench.ServiceAccount = DefaultKubeBenchAccount
	}
	if o.KubeBench.Nodes == nil {
		o.KubeBench.Nodes = labels.Everything()
	}
	if o.KubeBench.Tolerations == nil {
		o.KubeBench.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	if o.KubeHunter.Image == "" {
		o.KubeHunter.Image = DefaultKubeHunterImage
	}
	if o.KubeHunter.ServiceAccount == "" {
		o.KubeHunter.ServiceAccount = DefaultKubeHunterAccount
	}
	if o.MaxConcurrentJobs <= 0 {
		o.MaxConcurrentJobs = DefaultMaxConcurrentJobs
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = DefaultJobTimeout
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = DefaultMaxLogBytes
	}
	if o.MaxCommonFailures <= 0 {
		o.MaxCommonFailures = 10
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.KubeBench.Interval < 0 {
		errs = append(errs, fmt.Errorf("kube-bench interval %v is negative", o.KubeBench.Interval))
	}
	if o.KubeHunter.Interval < 0 {
		errs = append(errs, fmt.Errorf("kube-hunter interval %v is negative", o.KubeHunter.Interval))
	}
	if i := o.KubeBench.Interval; i > 0 && i < o.JobTimeout {
		errs = append(errs, fmt.Errorf("kube-bench interval %v is shorter than the Job timeout %v", i, o.JobTimeout))
	}
	if i := o.KubeHunter.Interval; i > 0 && i < o.JobTimeout {
		errs = append(errs, fmt.Errorf("kube-hunter interval %v is shorter than the Job timeout %v", i, o.JobTimeout))
	}
	// The CRDs cap these lists (MaxItems), so larger limits would fail
	// every status update.
	if o.MaxFailures > 500 || o.MaxFindings > 500 || o.MaxCommonFailures > 100 {
		errs = append(errs, fmt.Errorf("at most 500 failures, 500 findings and 100 common failures can be kept"))
	}
	return errors.Join(errs...)
}
