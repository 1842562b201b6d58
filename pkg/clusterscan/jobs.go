package clusterscan

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Labels and annotations on the Jobs and their pods.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "daaas-guard-scanner"
	// LabelTool is kube-bench or kube-hunter.
	LabelTool = "app.kubernetes.io/name"
	// LabelRun carries the run ID.
	LabelRun = "guard.statcan.gc.ca/scan-run"
	// AnnotationNode and AnnotationNodeUID name the node a kube-bench Job
	// benchmarks (node names may be longer than a label value).
	AnnotationNode    = "guard.statcan.gc.ca/node"
	AnnotationNodeUID = "guard.statcan.gc.ca/node-uid"

	ToolKubeBench  = "kube-bench"
	ToolKubeHunter = "kube-hunter"

	// container names
	containerKubeBench  = "kube-bench"
	containerKubeHunter = "kube-hunter"
)

// runID names a run after the time it started.
func runID(t time.Time) string { return t.UTC().Format("20060102t150405") }

// benchJobName is short and unique per node and run: Job names become
// label values (at most 63 characters).
func benchJobName(node, run string) string {
	h := sha256.Sum256([]byte(node))
	return "kube-bench-" + hex.EncodeToString(h[:5]) + "-" + run
}

func hunterJobName(run string) string { return "kube-hunter-" + run }

func jobLabels(tool, run string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelTool: tool, LabelRun: run}
}

// hostMounts are the read-only host paths kube-bench's own Job mounts
// (aquasecurity/kube-bench:job.yaml, v0.10.4): the node's Kubernetes
// configuration, data directories, systemd units and binaries, so its
// checks can read file modes, owners and flags.
var hostMounts = []struct{ name, host, mount string }{
	{"var-lib-cni", "/var/lib/cni", "/var/lib/cni"},
	{"var-lib-etcd", "/var/lib/etcd", "/var/lib/etcd"},
	{"var-lib-kubelet", "/var/lib/kubelet", "/var/lib/kubelet"},
	{"var-lib-kube-scheduler", "/var/lib/kube-scheduler", "/var/lib/kube-scheduler"},
	{"var-lib-kube-controller-manager", "/var/lib/kube-controller-manager", "/var/lib/kube-controller-manager"},
	{"etc-systemd", "/etc/systemd", "/etc/systemd"},
	{"lib-systemd", "/lib/systemd", "/lib/systemd/"},
	{"srv-kubernetes", "/srv/kubernetes", "/srv/kubernetes/"},
	{"etc-kubernetes", "/etc/kubernetes", "/etc/kubernetes"},
	{"usr-bin", "/usr/bin", "/usr/local/mount-from-host/bin"},
	{"etc-cni-netd", "/etc/cni/net.d/", "/etc/cni/net.d/"},
	{"opt-cni-bin", "/opt/cni/bin/", "/opt/cni/bin/"},
}

// benchJob is the kube-bench Job for one node. It shares the host's PID
// namespace (kube-bench reads the components' command lines) and mounts
// host paths read-only; it runs as root, as the files it inspects are
// root's, but cannot escalate and has a read-only root filesystem. It runs
// once: a failure is recorded and the node waits for the next run.
func benchJob(o Options, node string, nodeUID types.UID, run string) *batchv1.Job {
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, m := range hostMounts {
		volumes = append(volumes, corev1.Volume{Name: m.name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: m.host}}})
		mounts = append(mounts, corev1.VolumeMount{Name: m.name, MountPath: m.mount, ReadOnly: true})
	}
	volumes = append(volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	mounts = append(mounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	pod := corev1.PodSpec{
		NodeName:      node,
		Tolerations:   o.KubeBench.Tolerations,
		HostPID:       true,
		RestartPolicy: corev1.RestartPolicyNever,
		// The token lets kube-bench ask the API server its version when it
		// cannot run kubectl or kubelet; the account has no permissions.
		ServiceAccountName:           o.KubeBench.ServiceAccount,
		AutomountServiceAccountToken: ptr.To(true),
		SecurityContext:              &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{
			Name:    containerKubeBench,
			Image:   o.KubeBench.Image,
			Command: []string{"kube-bench"},
			Args:    append([]string{"run", "--json"}, o.KubeBench.Args...),
			SecurityContext: &corev1.SecurityContext{
				RunAsUser:                ptr.To[int64](0),
				Privileged:               ptr.To(false),
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
			VolumeMounts: mounts,
			// kube-bench says why it failed on stderr; its report is only
			// written on success, so the log tail is safe to keep.
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}},
		Volumes: volumes,
	}
	j := job(o, ToolKubeBench, run, benchJobName(node, run), pod)
	j.Annotations = map[string]string{AnnotationNode: node, AnnotationNodeUID: string(nodeUID)}
	return j
}

// hunterJob is the kube-hunter Job: kube-hunter in pod mode probes the
// cluster from an ordinary pod, with an account that has no permissions,
// as an attacker in a compromised pod would. It needs no host access and
// runs as non-root.
func hunterJob(o Options, run string) *batchv1.Job {
	args := []string{"--pod", "--report", "json", "--log", "none"}
	if o.KubeHunter.Quick {
		args = append(args, "--quick")
	}
	pod := corev1.PodSpec{
		NodeSelector:                 o.KubeHunter.NodeSelector,
		Tolerations:                  o.KubeHunter.Tolerations,
		RestartPolicy:                corev1.RestartPolicyNever,
		ServiceAccountName:           o.KubeHunter.ServiceAccount,
		AutomountServiceAccountToken: ptr.To(true),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](65532),
			RunAsGroup:     ptr.To[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:    containerKubeHunter,
			Image:   o.KubeHunter.Image,
			Command: []string{"kube-hunter"},
			Args:    args,
			SecurityContext: &corev1.SecurityContext{
				Privileged:               ptr.To(false),
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
			},
			VolumeMounts:             []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		}},
		Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	return job(o, ToolKubeHunter, run, hunterJobName(run), pod)
}

func job(o Options, tool, run, name string, pod corev1.PodSpec) *batchv1.Job {
	l := jobLabels(tool, run)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: l},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](0),
			ActiveDeadlineSeconds: ptr.To(int64(o.JobTimeout / time.Second)),
			// The scanner deletes each Job once it has read it; this only
			// catches Jobs it never saw finish (it was down for a day).
			TTLSecondsAfterFinished: ptr.To[int32](24 * 3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       pod,
			},
		},
	}
}

// jobFinished reports whether a Job has finished and whether it succeeded,
// from its Complete and Failed conditions.
func jobFinished(j *batchv1.Job) (finished, succeeded bool, reason string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, true, ""
		case batchv1.JobFailed:
			reason = c.Reason
			if c.Message != "" {
				reason = strings.TrimSpace(c.Reason + ": " + c.Message)
			}
			return true, false, reason
		}
	}
	return false, false, ""
}
