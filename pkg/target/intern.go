package target

import "github.com/open-policy-agent/opa/v1/ast"

// internedJSONStrings are shared terms for the field names and values that
// Kubernetes objects repeat: a parsed pod then allocates for what is its
// own (names, images, labels) and not for "containers" or "IfNotPresent".
// Terms are immutable once built, so sharing them between reviews is safe,
// as OPA does with its own interned terms.
var internedJSONStrings = func() map[string]*ast.Term {
	m := make(map[string]*ast.Term, len(commonJSONStrings))
	for _, s := range commonJSONStrings {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

// StringTerm is s as a Rego string term, shared when it is one of the
// strings Kubernetes objects repeat.
func StringTerm(s string) *ast.Term {
	if t, ok := internedJSONStrings[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

var commonJSONStrings = []string{
	// Object metadata and admission requests.
	"apiVersion", "kind", "metadata", "name", "namespace", "generateName", "uid", "resourceVersion",
	"generation", "creationTimestamp", "deletionTimestamp", "labels", "annotations", "ownerReferences",
	"controller", "blockOwnerDeletion", "finalizers", "managedFields", "manager", "operation", "time",
	"fieldsType", "fieldsV1", "subresource", "spec", "status", "v1", "Pod", "apps/v1", "Deployment",
	"StatefulSet", "ReplicaSet", "Job", "CronJob", "Namespace", "Service", "ConfigMap", "Secret",
	"requestKind", "requestResource", "group", "version", "resource", "userInfo", "username", "groups",
	"extra", "object", "oldObject", "dryRun", "options", "CREATE", "UPDATE", "DELETE", "CONNECT",
	"Update", "Apply", "FieldsV1",
	// Pod spec.
	"containers", "initContainers", "ephemeralContainers", "image", "imagePullPolicy", "command", "args",
	"workingDir", "ports", "containerPort", "hostPort", "protocol", "TCP", "UDP", "env", "envFrom",
	"value", "valueFrom", "fieldRef", "fieldPath", "resourceFieldRef", "secretKeyRef", "configMapKeyRef",
	"key", "optional", "resources", "limits", "requests", "cpu", "memory", "ephemeral-storage",
	"nvidia.com/gpu", "volumeMounts", "mountPath", "subPath", "readOnly", "volumes", "emptyDir",
	"medium", "Memory", "sizeLimit", "configMap", "secret", "secretName", "defaultMode", "items", "path",
	"persistentVolumeClaim", "claimName", "projected", "sources", "serviceAccountToken",
	"expirationSeconds", "audience", "downwardAPI", "hostPath", "type", "csi", "driver",
	"livenessProbe", "readinessProbe", "startupProbe", "httpGet", "tcpSocket", "exec", "port", "scheme",
	"HTTP", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold",
	"failureThreshold", "lifecycle", "terminationMessagePath", "/dev/termination-log",
	"terminationMessagePolicy", "File", "FallbackToLogsOnError", "Always", "IfNotPresent", "Never",
	"OnFailure", "securityContext", "privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem",
	"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "fsGroupChangePolicy", "supplementalGroups",
	"capabilities", "add", "drop", "ALL", "NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW", "SYS_ADMIN",
	"seccompProfile", "appArmorProfile", "RuntimeDefault", "Localhost", "Unconfined", "localhostProfile",
	"seLinuxOptions", "procMount", "Default", "sysctls", "stdin", "tty", "restartPolicy",
	"terminationGracePeriodSeconds", "dnsPolicy", "ClusterFirst", "serviceAccountName",
	"serviceAccount", "automountServiceAccountToken", "nodeName", "nodeSelector", "hostNetwork",
	"hostPID", "hostIPC", "shareProcessNamespace", "schedulerName", "default-scheduler",
	"tolerations", "operator", "effect", "Exists", "Equal", "NoSchedule", "NoExecute",
	"PreferNoSchedule", "tolerationSeconds", "node.kubernetes.io/not-ready",
	"node.kubernetes.io/unreachable", "affinity", "nodeAffinity", "podAffinity", "podAntiAffinity",
	"requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution",
	"nodeSelectorTerms", "matchExpressions", "matchLabels", "values", "In", "NotIn", "weight",
	"priority", "priorityClassName", "preemptionPolicy", "PreemptLowerPriority", "enableServiceLinks",
	"imagePullSecrets", "hostname", "subdomain", "topologySpreadConstraints", "hostAliases",
	"overhead", "runtimeClassName", "os", "linux", "template", "selector", "replicas", "strategy",
	// Workload and platform labels.
	"app", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
	"app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "app.kubernetes.io/version",
	"notebook-name", "statefulset", "statefulset.kubernetes.io/pod-name", "controller-revision-hash",
	"pod-template-hash", "workflows.argoproj.io/workflow", "workflows.argoproj.io/completed",
	"workflows.argoproj.io/node-id", "workflows.argoproj.io/node-name", "workflows.argoproj.io/template",
	"pipelines.kubeflow.org/v2_component", "pipelines.kubeflow.org/kfp_sdk_version",
	"pipeline/runid", "tekton.dev/pipelineRun", "tekton.dev/taskRun", "main", "wait", "init",
	"true", "false", "istio-proxy", "istio-init", "istio-validation", "sidecar.istio.io/inject",
	"sidecar.istio.io/status", "security.istio.io/tlsMode", "istio",
	"data.statcan.gc.ca/classification", "unclassified", "protected-b",
	"vault.hashicorp.com/agent-inject", "vault.hashicorp.com/role",
	"vault.hashicorp.com/agent-inject-status", "injected",
}
