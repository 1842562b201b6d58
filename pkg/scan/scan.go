// Package scan keeps an ImageScan verdict for every image digest the
// cluster runs. It discovers images from pods (pipeline and notebook pods
// first) and from Argo Workflows and Tekton PipelineRuns, resolves tags to
// digests with the pods' pull secrets, scans each digest once with a
// bounded number of scans running at a time, rescans when the
// vulnerability database is rebuilt or a jittered TTL expires, and ingests
// Starboard VulnerabilityReports and Trivy JSON reports into the same
// verdicts. Verdicts on images no longer in use are deleted after a
// retention period (retention.go).
//
// The scanning engine is an interface: the Trivy implementation lives in
// pkg/scan/trivy, so that this package, and the webhook's verdict lookup in
// pkg/scan/verdict, do not link Trivy.
package scan

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/statcan/daaas-guard/api/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/scan/images"
	"github.com/statcan/daaas-guard/pkg/scan/report"
)

// Engine scans one image.
type Engine interface {
	// Scan scans img, which repository@digest names.
	Scan(ctx context.Context, repository, digest string, img v1.Image) (*report.Report, error)
	// DB is the vulnerability database scans use now.
	DB() report.DB
	// Name is the scanner and its version, e.g. "Trivy v0.74.0".
	Name() string
}

// Registry resolves tags and opens images.
type Registry interface {
	// Resolve returns the digest ref names now.
	Resolve(ctx context.Context, ref images.Ref, kc authn.Keychain) (string, error)
	// Image opens repository@digest; layers may be read lazily.
	Image(ctx context.Context, repository, digest string, kc authn.Keychain) (v1.Image, error)
}

// SecretReader reads image pull secrets by name. The scanner gets them one
// at a time, when it pulls, rather than watching every Secret.
type SecretReader interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// Priority orders queued scans: images of pipeline and notebook pods (and
// explicit requests) first, then other pods, then rescans.
type Priority int

// Priorities, lowest first.
const (
	PriorityRescan Priority = iota
	PriorityNormal
	PriorityHigh
	numPriorities
)

func (p Priority) String() string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	}
	return "rescan"
}

// Job asks for a digest to be scanned.
type Job struct {
	Digest     string
	Repository string
	// Tags (repository:tag) seen resolving to Digest.
	Tags []string
	// PullSecrets give access to Repository.
	PullSecrets []v1alpha1.SecretReference
	Priority    Priority
}

// Defaults of Config.
const (
	DefaultConcurrency = 2
	DefaultTTL         = 24 * time.Hour
	DefaultJitter      = 0.1
	DefaultScanTimeout = 10 * time.Minute
	DefaultResolveTTL  = 5 * time.Minute
	DefaultRetryAfter  = 10 * time.Minute
)

// PodPriority says how urgently a pod's images need a verdict.
type PodPriority func(*corev1.Pod) Priority

// Pod labels that mark pipeline steps and notebooks.
var (
	pipelineLabels = []string{
		"workflows.argoproj.io/workflow", // Argo Workflows (and Kubeflow Pipelines on Argo)
		"tekton.dev/pipelineRun",         // Tekton Pipelines
		"tekton.dev/taskRun",
		"pipelines.kubeflow.org/v2_component", // Kubeflow Pipelines v2
	}
	notebookLabels = []string{"notebook-name"} // Kubeflow notebook controller
)

// DefaultPodPriority ranks pipeline and notebook pods, recognised by the
// labels their controllers set, above other pods.
func DefaultPodPriority(pod *corev1.Pod) Priority {
	for _, l := range append(pipelineLabels, notebookLabels...) {
		if _, ok := pod.Labels[l]; ok {
			return PriorityHigh
		}
	}
	return PriorityNormal
}
