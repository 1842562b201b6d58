package clusterscan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestBenchJob_RunsOnceOnItsNodeWithReadOnlyHostPaths(t *testing.T) {
	o := Options{KubeBench: KubeBenchOptions{Args: []string{"--benchmark=cis-1.10"}}}.withDefaults()
	node := "aks-gpupool-12345678-vmss00000a.canadacentral.cloudapp.azure.com.very-long-node-name"
	j := benchJob(o, node, "uid-1", "20260701t100000")

	if errs := validation.IsDNS1123Label(j.Name); len(errs) > 0 {
		t.Errorf("Job name %q: %v", j.Name, errs)
	}
	if j.Namespace != DefaultNamespace || j.Annotations[AnnotationNode] != node || j.Annotations[AnnotationNodeUID] != "uid-1" {
		t.Errorf("Job %s/%s annotations %v", j.Namespace, j.Name, j.Annotations)
	}
	want := map[string]string{LabelManagedBy: ManagedBy, LabelTool: ToolKubeBench, LabelRun: "20260701t100000"}
	if d := cmp.Diff(want, j.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, j.Spec.Template.Labels); d != "" {
		t.Errorf("pod labels (-want +got):\n%s", d)
	}
	if *j.Spec.BackoffLimit != 0 || *j.Spec.ActiveDeadlineSeconds != 600 || j.Spec.TTLSecondsAfterFinished == nil {
		t.Errorf("Job spec %+v", j.Spec)
	}
	p := j.Spec.Template.Spec
	if p.NodeName != node || !p.HostPID || p.RestartPolicy != corev1.RestartPolicyNever || p.ServiceAccountName != DefaultKubeBenchAccount {
		t.Errorf("pod spec %+v", p)
	}
	if d := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, p.Tolerations); d != "" {
		t.Errorf("tolerations (-want +got):\n%s", d)
	}
	c := p.Containers[0]
	if d := cmp.Diff([]string{"run", "--json", "--benchmark=cis-1.10"}, c.Args); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	if c.Image != DefaultKubeBenchImage || *c.SecurityContext.Privileged || *c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("container %+v", c)
	}
	hostPaths := map[string]bool{}
	for _, v := range p.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = true
		}
	}
	mounted := 0
	for _, m := range c.VolumeMounts {
		if hostPaths[m.Name] {
			mounted++
			if !m.ReadOnly {
				t.Errorf("host path %s is mounted writable", m.Name)
			}
		}
	}
	if mounted != len(hostMounts) || mounted != len(hostPaths) {
		t.Errorf("%d host paths mounted of %d volumes, want %d", mounted, len(hostPaths), len(hostMounts))
	}
}

func TestHunterJob_RunsUnprivilegedInPodMode(t *testing.T) {
	o := Options{KubeHunter: KubeHunterOptions{NodeSelector: map[string]string{"agentpool": "system"}}}.withDefaults()
	j := hunterJob(o, "20260701t100000")
	if j.Name != "kube-hunter-20260701t100000" || j.Labels[LabelTool] != ToolKubeHunter {
		t.Errorf("Job %s labels %v", j.Name, j.Labels)
	}
	p := j.Spec.Template.Spec
	c := p.Containers[0]
	if d := cmp.Diff([]string{"--pod", "--report", "json", "--log", "none"}, c.Args); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	if p.HostPID || p.HostNetwork || len(p.Volumes) != 1 || p.Volumes[0].HostPath != nil || p.NodeSelector["agentpool"] != "system" {
		t.Errorf("pod spec %+v", p)
	}
	if !*p.SecurityContext.RunAsNonRoot || *c.SecurityContext.AllowPrivilegeEscalation || c.SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Errorf("security %+v %+v", p.SecurityContext, c.SecurityContext)
	}
	o.KubeHunter.Quick = true
	if args := hunterJob(o, "r").Spec.Template.Spec.Containers[0].Args; args[len(args)-1] != "--quick" {
		t.Errorf("quick args %v", args)
	}
}

func TestJobFinished(t *testing.T) {
	cond := func(typ batchv1.JobConditionType, st corev1.ConditionStatus, reason, msg string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: typ, Status: st, Reason: reason, Message: msg}
	}
	for _, tc := range []struct {
		name                string
		conds               []batchv1.JobCondition
		finished, succeeded bool
		why                 string
	}{
		{"running", nil, false, false, ""},
		{"suspended", []batchv1.JobCondition{cond(batchv1.JobSuspended, corev1.ConditionTrue, "", "")}, false, false, ""},
		{"complete", []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, "", ""), cond(batchv1.JobComplete, corev1.ConditionTrue, "", "")}, true, true, ""},
		{"failing but not failed", []batchv1.JobCondition{cond(batchv1.JobFailureTarget, corev1.ConditionTrue, "DeadlineExceeded", "")}, false, false, ""},
		{"deadline", []batchv1.JobCondition{cond(batchv1.JobFailed, corev1.ConditionTrue, "DeadlineExceeded", "Job was active longer than specified deadline")}, true, false, "DeadlineExceeded: Job was active longer than specified deadline"},
		{"condition false", []batchv1.JobCondition{cond(batchv1.JobComplete, corev1.ConditionFalse, "", "")}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s, why := jobFinished(&batchv1.Job{Status: batchv1.JobStatus{Conditions: tc.conds}})
			if f != tc.finished || s != tc.succeeded || why != tc.why {
				t.Errorf("jobFinished = %v, %v, %q; want %v, %v, %q", f, s, why, tc.finished, tc.succeeded, tc.why)
			}
		})
	}
}

func TestOptions_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"daily", Options{KubeBench: KubeBenchOptions{Interval: 24 * time.Hour}, KubeHunter: KubeHunterOptions{Interval: 7 * 24 * time.Hour}}, true},
		{"negative", Options{KubeBench: KubeBenchOptions{Interval: -time.Hour}}, false},
		{"shorter than a Job", Options{KubeHunter: KubeHunterOptions{Interval: time.Minute}}, false},
		{"too many failures", Options{MaxFailures: 501}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.withDefaults().validate()
			if (err == nil) != tc.ok {
				t.Errorf("validate() = %v", err)
			}
		})
	}
}

func TestRunIDAndJobNames(t *testing.T) {
	run := runID(time.Date(2026, 7, 1, 10, 0, 0, 0, time.FixedZone("EDT", -4*3600)))
	if run != "20260701t140000" {
		t.Errorf("runID = %q", run)
	}
	if a, b := benchJobName("node-a", run), benchJobName("node-b", run); a == b || len(a) > 63 {
		t.Errorf("names %q and %q", a, b)
	}
	if finishTime(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.Unix(5, 0)}}).Unix() != 5 {
		t.Error("a Job without completion time is dated by its creation")
	}
}
