package mutate

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	saMount  = "/var/run/secrets/kubernetes.io/serviceaccount"
	minioKey = "vault.hashicorp.com/agent-inject-secret-minio-standard"
)

func vaultAnnotations(extra ...string) map[string]string {
	a := map[string]string{
		"vault.hashicorp.com/agent-inject": "true",
		minioKey:                           "minio_standard/keys/profile-bob-jones",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "-" {
			delete(a, extra[i])
			continue
		}
		a[extra[i]] = extra[i+1]
	}
	return a
}

// argoVaultPod is a KFP v2 step on Argo that asks for a secret, with no
// service account token mounted.
func argoVaultPod(extra ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "train-1", Namespace: "bob-jones",
			Labels:      map[string]string{"workflows.argoproj.io/workflow": "train", "pipelines.kubeflow.org/v2_component": "true"},
			Annotations: vaultAnnotations(extra...),
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "pipeline-runner",
			AutomountServiceAccountToken: ptr(false),
			InitContainers:               []corev1.Container{{Name: "init", Image: "argoexec"}, {Name: "kfp-launcher", Image: "launcher"}},
			Containers:                   []corev1.Container{{Name: "wait", Image: "argoexec"}, {Name: "main", Image: "train"}},
			Volumes:                      []corev1.Volume{{Name: "var-run-argo", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

// notebookVaultPod is a notebook with Istio and the default token mount.
func notebookVaultPod(extra ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "analysis-0", Namespace: "alice",
			Labels:      map[string]string{"notebook-name": "analysis"},
			Annotations: vaultAnnotations(extra...),
		},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000))},
			InitContainers:  []corev1.Container{{Name: "istio-validation", Image: "proxyv2"}},
			Containers: []corev1.Container{
				{Name: "analysis", Image: "jupyterlab", VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-x", MountPath: saMount, ReadOnly: true}}},
				{Name: "istio-proxy", Image: "proxyv2", VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-x", MountPath: saMount, ReadOnly: true}}},
			},
			Volumes: []corev1.Volume{{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}},
		},
	}
}

func plainVaultPod(extra ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shiny", Annotations: vaultAnnotations(extra...)},
		Spec:       corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "web", Image: "shiny"}}},
	}
}

// vaultConfig decodes a container's VAULT_CONFIG.
func vaultConfigOf(t *testing.T, c *corev1.Container) map[string]any {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "VAULT_CONFIG" {
			raw, err := base64.StdEncoding.DecodeString(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("container %s has no VAULT_CONFIG", c.Name)
	return nil
}

func dig(m any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			l, _ := m.([]any)
			if k >= len(l) {
				return nil
			}
			m = l[k]
		}
	}
	return m
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func mountsOf(c *corev1.Container) map[string]string {
	m := map[string]string{}
	for _, vm := range c.VolumeMounts {
		m[vm.Name] = vm.MountPath
	}
	return m
}

func volumeNames(pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		out = append(out, v.Name)
	}
	return out
}

func TestVault_Injects(t *testing.T) {
	tests := []struct {
		name  string
		pod   *corev1.Pod
		check func(t *testing.T, got *corev1.Pod)
	}{
		{
			name: "pipeline step: init only, secrets in main only, projected token for the agent",
			pod:  argoVaultPod(),
			check: func(t *testing.T, got *corev1.Pod) {
				if d := cmp.Diff([]string{"init", "kfp-launcher", "vault-agent-init"}, names(got.Spec.InitContainers)); d != "" {
					t.Errorf("init containers:\n%s", d)
				}
				if d := cmp.Diff([]string{"wait", "main"}, names(got.Spec.Containers)); d != "" {
					t.Errorf("containers (no sidecar in a pipeline pod):\n%s", d)
				}
				if d := cmp.Diff([]string{"var-run-argo", "vault-secrets", "home-init", "vault-token"}, volumeNames(got)); d != "" {
					t.Errorf("volumes:\n%s", d)
				}
				for _, c := range []string{"wait", "init", "kfp-launcher"} {
					if _, ok := mountsOf(findContainer(got, c))["vault-secrets"]; ok {
						t.Errorf("the engine's %s container got the secrets", c)
					}
				}
				if p := mountsOf(findContainer(got, "main"))["vault-secrets"]; p != "/vault/secrets" {
					t.Errorf("main mounts the secrets at %q", p)
				}
				agent := findContainer(got, "vault-agent-init")
				want := map[string]string{"home-init": "/home/vault", "vault-secrets": "/vault/secrets", "vault-token": defaultTokenMount}
				if d := cmp.Diff(want, mountsOf(agent)); d != "" {
					t.Errorf("agent mounts:\n%s", d)
				}
				tok := got.Spec.Volumes[3].Projected.Sources[0].ServiceAccountToken
				if tok == nil || tok.Path != "token" || *tok.ExpirationSeconds != 3600 || tok.Audience != "" {
					t.Errorf("token projection %+v", tok)
				}
				cfg := vaultConfigOf(t, agent)
				for _, c := range []struct {
					path []any
					want any
				}{
					{[]any{"exit_after_auth"}, true},
					{[]any{"vault", "address"}, DefaultVaultAddress},
					{[]any{"auto_auth", "method", "type"}, "kubernetes"},
					{[]any{"auto_auth", "method", "mount_path"}, "auth/kubernetes"},
					{[]any{"auto_auth", "method", "config", "role"}, "profile-bob-jones"},
					{[]any{"auto_auth", "method", "config", "token_path"}, defaultTokenMount + "/token"},
					{[]any{"template", 0, "destination"}, "/vault/secrets/minio-standard"},
					{[]any{"template_config", "exit_on_retry_failure"}, true},
				} {
					if got := dig(cfg, c.path...); got != c.want {
						t.Errorf("VAULT_CONFIG %v = %v, want %v", c.path, got, c.want)
					}
				}
				contents, _ := dig(cfg, "template", 0, "contents").(string)
				if !strings.Contains(contents, `with secret "minio_standard/keys/profile-bob-jones"`) || !strings.Contains(contents, "range $k, $v := .Data") {
					t.Errorf("default template %q", contents)
				}
				if got.Annotations[AnnotationAgentInjectStatus] != StatusInjected {
					t.Error("no injected status")
				}
				if _, ok := got.Annotations["workflows.argoproj.io/kill-cmd-vault-agent"]; ok {
					t.Error("a kill command for a sidecar that was not injected")
				}
			},
		},
		{
			name: "agent securityContext is restricted, resources are vault-k8s's",
			pod:  argoVaultPod(),
			check: func(t *testing.T, got *corev1.Pod) {
				agent := findContainer(got, "vault-agent-init")
				want := &corev1.SecurityContext{
					RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(1000)), RunAsNonRoot: ptr(true),
					ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false), Privileged: ptr(false),
					Capabilities:    &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault},
				}
				if d := cmp.Diff(want, agent.SecurityContext); d != "" {
					t.Errorf("securityContext:\n%s", d)
				}
				if d := cmp.Diff(DefaultVaultResources(), agent.Resources); d != "" {
					t.Errorf("resources:\n%s", d)
				}
				if agent.Image != DefaultVaultImage {
					t.Errorf("image %s", agent.Image)
				}
			},
		},
		{
			name: "notebook: sidecar only, token found where the notebook mounts it",
			pod:  notebookVaultPod(),
			check: func(t *testing.T, got *corev1.Pod) {
				if d := cmp.Diff([]string{"istio-validation"}, names(got.Spec.InitContainers)); d != "" {
					t.Errorf("init containers:\n%s", d)
				}
				if d := cmp.Diff([]string{"analysis", "istio-proxy", "vault-agent"}, names(got.Spec.Containers)); d != "" {
					t.Errorf("containers:\n%s", d)
				}
				if _, ok := mountsOf(findContainer(got, "istio-proxy"))["vault-secrets"]; ok {
					t.Error("istio-proxy got the secrets")
				}
				agent := findContainer(got, "vault-agent")
				want := map[string]string{"home-sidecar": "/home/vault", "vault-secrets": "/vault/secrets", "kube-api-access-x": saMount}
				if d := cmp.Diff(want, mountsOf(agent)); d != "" {
					t.Errorf("agent mounts:\n%s", d)
				}
				cfg := vaultConfigOf(t, agent)
				if dig(cfg, "exit_after_auth") != false || dig(cfg, "auto_auth", "method", "config", "token_path") != saMount+"/token" ||
					dig(cfg, "auto_auth", "method", "config", "role") != "profile-alice" {
					t.Errorf("sidecar configuration %v", cfg)
				}
				if d := cmp.Diff([]string{"kube-api-access-x", "vault-secrets", "home-sidecar"}, volumeNames(got)); d != "" {
					t.Errorf("volumes (no projected token when one is mounted):\n%s", d)
				}
			},
		},
		{
			name: "other pods: init and sidecar, as vault-k8s",
			pod:  plainVaultPod(),
			check: func(t *testing.T, got *corev1.Pod) {
				if d := cmp.Diff([]string{"vault-agent-init"}, names(got.Spec.InitContainers)); d != "" {
					t.Errorf("init containers:\n%s", d)
				}
				if d := cmp.Diff([]string{"web", "vault-agent"}, names(got.Spec.Containers)); d != "" {
					t.Errorf("containers:\n%s", d)
				}
				if d := cmp.Diff([]string{"vault-secrets", "home-init", "home-sidecar", "vault-token"}, volumeNames(got)); d != "" {
					t.Errorf("volumes:\n%s", d)
				}
				if dig(vaultConfigOf(t, findContainer(got, "vault-agent")), "auto_auth", "method", "config", "role") != "profile-shiny" {
					t.Error("role")
				}
			},
		},
		{
			name: "a pipeline that asks for the sidecar gets it, and Argo learns how to stop it",
			pod:  argoVaultPod("vault.hashicorp.com/agent-pre-populate", "false"),
			check: func(t *testing.T, got *corev1.Pod) {
				if d := cmp.Diff([]string{"wait", "main", "vault-agent"}, names(got.Spec.Containers)); d != "" {
					t.Errorf("containers:\n%s", d)
				}
				if len(got.Spec.InitContainers) != 2 {
					t.Errorf("init containers %v", names(got.Spec.InitContainers))
				}
				if got.Annotations["workflows.argoproj.io/kill-cmd-vault-agent"] != `["sh", "-c", "kill -%d 1"]` {
					t.Errorf("kill command %q", got.Annotations["workflows.argoproj.io/kill-cmd-vault-agent"])
				}
			},
		},
		{
			name: "a notebook that asks for init only gets it",
			pod:  notebookVaultPod("vault.hashicorp.com/agent-pre-populate-only", "true"),
			check: func(t *testing.T, got *corev1.Pod) {
				if d := cmp.Diff([]string{"istio-validation", "vault-agent-init"}, names(got.Spec.InitContainers)); d != "" {
					t.Errorf("init containers:\n%s", d)
				}
				if len(got.Spec.Containers) != 2 {
					t.Errorf("containers %v", names(got.Spec.Containers))
				}
			},
		},
		{
			name: "init first: the agent goes first and the user's init containers see the secrets",
			pod: func() *corev1.Pod {
				p := argoVaultPod("vault.hashicorp.com/agent-init-first", "true")
				p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "fetch-data", Image: "x"})
				return p
			}(),
			check: func(t *testing.T, got *corev1.Pod) {
				if d := cmp.Diff([]string{"vault-agent-init", "init", "kfp-launcher", "fetch-data"}, names(got.Spec.InitContainers)); d != "" {
					t.Errorf("init containers:\n%s", d)
				}
				if _, ok := mountsOf(findContainer(got, "fetch-data"))["vault-secrets"]; !ok {
					t.Error("fetch-data does not see the secrets")
				}
				if _, ok := mountsOf(findContainer(got, "init"))["vault-secrets"]; ok {
					t.Error("Argo's init sees the secrets")
				}
			},
		},
		{
			name: "agent-inject-containers chooses the containers",
			pod: func() *corev1.Pod {
				p := plainVaultPod("vault.hashicorp.com/agent-inject-containers", "api, worker")
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "api"}, corev1.Container{Name: "worker"})
				return p
			}(),
			check: func(t *testing.T, got *corev1.Pod) {
				for name, want := range map[string]bool{"web": false, "api": true, "worker": true} {
					if _, ok := mountsOf(findContainer(got, name))["vault-secrets"]; ok != want {
						t.Errorf("%s mounts the secrets: %v, want %v", name, ok, want)
					}
				}
			},
		},
		{
			name: "the service account token volume named by annotation",
			pod: func() *corev1.Pod {
				p := argoVaultPod("vault.hashicorp.com/agent-service-account-token-volume-name", "vault-sa")
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "vault-sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "sa-token", Audience: "vault"}}}}}})
				return p
			}(),
			check: func(t *testing.T, got *corev1.Pod) {
				agent := findContainer(got, "vault-agent-init")
				if mountsOf(agent)["vault-sa"] != defaultTokenMount {
					t.Errorf("agent mounts %v", mountsOf(agent))
				}
				if p := dig(vaultConfigOf(t, agent), "auto_auth", "method", "config", "token_path"); p != defaultTokenMount+"/sa-token" {
					t.Errorf("token_path %v", p)
				}
				if d := cmp.Diff([]string{"var-run-argo", "vault-sa", "vault-secrets", "home-init"}, volumeNames(got)); d != "" {
					t.Errorf("volumes:\n%s", d)
				}
			},
		},
		{
			name: "configuration from a ConfigMap",
			pod:  plainVaultPod("vault.hashicorp.com/agent-configmap", "web-agent-config"),
			check: func(t *testing.T, got *corev1.Pod) {
				for _, c := range []*corev1.Container{findContainer(got, "vault-agent-init"), findContainer(got, "vault-agent")} {
					for _, e := range c.Env {
						if e.Name == "VAULT_CONFIG" {
							t.Errorf("%s has VAULT_CONFIG with a ConfigMap", c.Name)
						}
					}
					if mountsOf(c)["vault-config"] != "/vault/configs" {
						t.Errorf("%s mounts %v", c.Name, mountsOf(c))
					}
				}
				if a := findContainer(got, "vault-agent-init").Args[0]; a != "vault agent -config=/vault/configs/config-init.hcl" {
					t.Errorf("init args %q", a)
				}
				if a := findContainer(got, "vault-agent").Args[0]; a != "vault agent -config=/vault/configs/config.hcl" {
					t.Errorf("sidecar args %q", a)
				}
			},
		},
		{
			name: "resources from annotations; a lowered limit lowers the default request",
			pod:  argoVaultPod("vault.hashicorp.com/agent-limits-cpu", "100m", "vault.hashicorp.com/agent-requests-mem", "32Mi", "vault.hashicorp.com/agent-limits-ephemeral", "1Gi"),
			check: func(t *testing.T, got *corev1.Pod) {
				want := corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{"cpu": resource.MustParse("100m"), "memory": resource.MustParse("128Mi"), "ephemeral-storage": resource.MustParse("1Gi")},
					Requests: corev1.ResourceList{"cpu": resource.MustParse("100m"), "memory": resource.MustParse("32Mi")},
				}
				if d := cmp.Diff(want, findContainer(got, "vault-agent-init").Resources); d != "" {
					t.Errorf("resources:\n%s", d)
				}
			},
		},
		{
			name: "run as the notebook's user",
			pod:  notebookVaultPod("vault.hashicorp.com/agent-run-as-same-user", "true"),
			check: func(t *testing.T, got *corev1.Pod) {
				if u := *findContainer(got, "vault-agent").SecurityContext.RunAsUser; u != 1000 {
					t.Errorf("runAsUser %d", u)
				}
			},
		},
		{
			name: "no security context when asked",
			pod:  plainVaultPod("vault.hashicorp.com/agent-set-security-context", "false"),
			check: func(t *testing.T, got *corev1.Pod) {
				if sc := findContainer(got, "vault-agent").SecurityContext; sc != nil {
					t.Errorf("securityContext %+v", sc)
				}
			},
		},
		{
			name: "agent-json-patch changes the sidecar, agent-init-json-patch the init container",
			pod: plainVaultPod(
				"vault.hashicorp.com/agent-json-patch", `[{"op":"add","path":"/env/-","value":{"name":"SIDE","value":"1"}}]`,
				"vault.hashicorp.com/agent-init-json-patch", `[{"op":"replace","path":"/resources/limits/memory","value":"256Mi"}]`),
			check: func(t *testing.T, got *corev1.Pod) {
				side := findContainer(got, "vault-agent")
				if e := side.Env[len(side.Env)-1]; e.Name != "SIDE" {
					t.Errorf("sidecar env %v", side.Env)
				}
				if m := findContainer(got, "vault-agent-init").Resources.Limits["memory"]; m.String() != "256Mi" {
					t.Errorf("init memory limit %s", m.String())
				}
			},
		},
		{
			name: "TLS: Secret mounted, CA and server name passed on",
			pod: plainVaultPod("vault.hashicorp.com/tls-secret", "vault-ca", "vault.hashicorp.com/ca-cert", "/vault/tls/ca.crt",
				"vault.hashicorp.com/tls-server-name", "vault.vault-system.svc", "vault.hashicorp.com/service", "https://vault.example:8200"),
			check: func(t *testing.T, got *corev1.Pod) {
				side := findContainer(got, "vault-agent")
				if mountsOf(side)["vault-tls-secrets"] != "/vault/tls" {
					t.Errorf("mounts %v", mountsOf(side))
				}
				cfg := vaultConfigOf(t, side)
				if dig(cfg, "vault", "ca_cert") != "/vault/tls/ca.crt" || dig(cfg, "vault", "tls_server_name") != "vault.vault-system.svc" ||
					dig(cfg, "vault", "address") != "https://vault.example:8200" {
					t.Errorf("vault stanza %v", cfg["vault"])
				}
			},
		},
		{
			name: "secret names are lower-cased unless preserved; templates, files, perms and delimiters",
			pod: plainVaultPod(minioKey, "-",
				"vault.hashicorp.com/agent-inject-secret-DB-Creds", "database/creds/web",
				"vault.hashicorp.com/agent-inject-template-DB-Creds", "[[ with secret \"database/creds/web\" ]][[ .Data.password ]][[ end ]]",
				"vault.hashicorp.com/agent-template-left-delim-DB-Creds", "[[",
				"vault.hashicorp.com/agent-template-right-delim-DB-Creds", "]]",
				"vault.hashicorp.com/agent-inject-perms-DB-Creds", "0400",
				"vault.hashicorp.com/agent-inject-secret-Config", "kv/data/web",
				"vault.hashicorp.com/preserve-secret-case-Config", "true",
				"vault.hashicorp.com/agent-inject-file-Config", "web/config.json",
				"vault.hashicorp.com/agent-inject-default-template", "json",
				"vault.hashicorp.com/error-on-missing-key-Config", "true",
				"vault.hashicorp.com/agent-inject-token", "true"),
			check: func(t *testing.T, got *corev1.Pod) {
				cfg := vaultConfigOf(t, findContainer(got, "vault-agent"))
				templates := dig(cfg, "template").([]any)
				if len(templates) != 2 {
					t.Fatalf("templates %v", templates)
				}
				// Sorted by the annotation suffix: Config, DB-Creds.
				if dig(templates, 0, "destination") != "/vault/secrets/web/config.json" || dig(templates, 0, "error_on_missing_key") != true ||
					!strings.Contains(dig(templates, 0, "contents").(string), ".Data | toJSON") {
					t.Errorf("Config template %v", templates[0])
				}
				if dig(templates, 1, "destination") != "/vault/secrets/db-creds" || dig(templates, 1, "perms") != "0400" ||
					dig(templates, 1, "left_delimiter") != "[[" || !strings.HasPrefix(dig(templates, 1, "contents").(string), "[[ with secret") {
					t.Errorf("DB-Creds template %v", templates[1])
				}
				if dig(cfg, "auto_auth", "sink", 1, "config", "path") != "/vault/secrets/token" {
					t.Errorf("token sink %v", dig(cfg, "auto_auth", "sink"))
				}
			},
		},
		{
			name: "cache shared by the init agent and the sidecar; quit endpoint",
			pod:  plainVaultPod("vault.hashicorp.com/agent-cache-enable", "true", "vault.hashicorp.com/agent-enable-quit", "true", "vault.hashicorp.com/agent-cache-listener-port", "8100"),
			check: func(t *testing.T, got *corev1.Pod) {
				side := vaultConfigOf(t, findContainer(got, "vault-agent"))
				if dig(side, "listener", 0, "address") != "127.0.0.1:8100" || dig(side, "listener", 0, "agent_api", "enable_quit") != true ||
					dig(side, "cache", "persist", "path") != "/vault/agent-cache" {
					t.Errorf("sidecar configuration %v", side)
				}
				init := vaultConfigOf(t, findContainer(got, "vault-agent-init"))
				if dig(init, "listener") != nil || dig(init, "cache", "persist", "keep_after_import") != false {
					t.Errorf("init configuration %v", init)
				}
				if mountsOf(findContainer(got, "vault-agent"))["vault-agent-cache"] != "/vault/agent-cache" {
					t.Error("no cache volume in the sidecar")
				}
			},
		},
		{
			name: "process namespace shared, revoke on shutdown, Vault connection settings",
			pod: plainVaultPod("vault.hashicorp.com/agent-share-process-namespace", "true",
				"vault.hashicorp.com/agent-revoke-on-shutdown", "true", "vault.hashicorp.com/agent-revoke-grace", "10",
				"vault.hashicorp.com/role", "web", "vault.hashicorp.com/auth-path", "auth/k8s-aaw", "vault.hashicorp.com/namespace", "statcan",
				"vault.hashicorp.com/auth-config-audience", "vault", "vault.hashicorp.com/client-max-retries", "3",
				"vault.hashicorp.com/log-level", "debug", "vault.hashicorp.com/go-max-procs", "2",
				"vault.hashicorp.com/agent-telemetry-prometheus_retention_time", "30s",
				"vault.hashicorp.com/agent-disable-keep-alives", "auto-auth,templating"),
			check: func(t *testing.T, got *corev1.Pod) {
				if got.Spec.ShareProcessNamespace == nil || !*got.Spec.ShareProcessNamespace {
					t.Error("process namespace not shared")
				}
				side := findContainer(got, "vault-agent")
				if side.Lifecycle == nil || !strings.HasPrefix(side.Lifecycle.PreStop.Exec.Command[2], "sleep 10 && ") {
					t.Errorf("preStop %+v", side.Lifecycle)
				}
				cfg := vaultConfigOf(t, side)
				for _, c := range []struct {
					path []any
					want any
				}{
					{[]any{"auto_auth", "method", "config", "role"}, "web"},
					{[]any{"auto_auth", "method", "config", "audience"}, "vault"},
					{[]any{"auto_auth", "method", "mount_path"}, "auth/k8s-aaw"},
					{[]any{"auto_auth", "method", "namespace"}, "statcan"},
					{[]any{"vault", "retry", "num_retries"}, 3.0},
					{[]any{"telemetry", "prometheus_retention_time"}, "30s"},
					{[]any{"disable_keep_alives", 1}, "templating"},
				} {
					if got := dig(cfg, c.path...); got != c.want {
						t.Errorf("VAULT_CONFIG %v = %v, want %v", c.path, got, c.want)
					}
				}
				env := map[string]string{}
				for _, e := range side.Env {
					env[e.Name] = e.Value
				}
				if env["VAULT_LOG_LEVEL"] != "debug" || env["GOMAXPROCS"] != "2" || env["VAULT_MAX_RETRIES"] != "3" {
					t.Errorf("env %v", env)
				}
			},
		},
	}
	h := newHandler(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := mutate(t, h, encode(t, tc.pod), tc.pod.Namespace)
			if !resp.Allowed {
				t.Fatalf("denied: %s", resp.Result.Message)
			}
			if len(resp.Patch) == 0 {
				t.Fatal("no patch")
			}
			if len(resp.Warnings) > 0 {
				t.Errorf("warnings: %v", resp.Warnings)
			}
			tc.check(t, decodePod(t, out))
		})
	}
}

func TestVault_LeavesAlone(t *testing.T) {
	injected := argoVaultPod("vault.hashicorp.com/agent-inject-status", "injected")
	running := argoVaultPod()
	running.Status.Phase = corev1.PodRunning
	cached := argoVaultPod()
	cached.Labels["pipelines.kubeflow.org/reused_from_cache"] = "true"
	present := argoVaultPod()
	present.Spec.InitContainers = append(present.Spec.InitContainers, corev1.Container{Name: "vault-agent-init", Image: "vault"})
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		warning string
	}{
		{name: "not annotated", pod: argoVaultPod("vault.hashicorp.com/agent-inject", "-")},
		{name: "agent-inject false", pod: argoVaultPod("vault.hashicorp.com/agent-inject", "false")},
		{name: "already injected", pod: injected},
		{name: "running", pod: running},
		{name: "a KFP cache hit", pod: cached},
		{name: "agent containers already there", pod: present, warning: "already has Vault agent containers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := newHandler(t, nil).Handle(t.Context(), createRequest(encode(t, tc.pod), tc.pod.Namespace))
			if !resp.Allowed || len(resp.Patch) > 0 {
				t.Fatalf("allowed=%v patch=%s", resp.Allowed, resp.Patch)
			}
			if tc.warning != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.warning)) {
				t.Errorf("warnings %q, want %q", resp.Warnings, tc.warning)
			}
		})
	}
}

func TestVault_UnknownAnnotationWarns(t *testing.T) {
	pod := plainVaultPod("vault.hashicorp.com/agent-limit-cpu", "100m")
	resp, _ := mutate(t, newHandler(t, nil), encode(t, pod), pod.Namespace)
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "vault.hashicorp.com/agent-limit-cpu is not a Vault agent annotation") {
		t.Errorf("allowed=%v warnings=%q", resp.Allowed, resp.Warnings)
	}
}

func TestVault_DeniesInvalidAnnotations(t *testing.T) {
	withVolume := func(p *corev1.Pod, name string) *corev1.Pod {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		return p
	}
	mountedAtSecrets := plainVaultPod()
	mountedAtSecrets.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "creds", MountPath: "/vault/secrets"}}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"agent-inject not a boolean", plainVaultPod("vault.hashicorp.com/agent-inject", "yes please"),
			`pod shiny/web: annotation vault.hashicorp.com/agent-inject: "yes please" is not a boolean`},
		{"a quantity", plainVaultPod("vault.hashicorp.com/agent-limits-cpu", "lots"),
			`annotation vault.hashicorp.com/agent-limits-cpu: "lots" is not a resource quantity`},
		{"request above limit", plainVaultPod("vault.hashicorp.com/agent-requests-mem", "1Gi"),
			`annotation vault.hashicorp.com/agent-requests-mem: "1Gi" exceeds the limit 128Mi`},
		{"contradictory modes", plainVaultPod("vault.hashicorp.com/agent-pre-populate", "false", "vault.hashicorp.com/agent-pre-populate-only", "true"),
			`leave no agent to inject`},
		{"a boolean", plainVaultPod("vault.hashicorp.com/agent-init-first", "sometimes"),
			`annotation vault.hashicorp.com/agent-init-first: "sometimes" is not a boolean`},
		{"perms", plainVaultPod("vault.hashicorp.com/agent-inject-perms-minio-standard", "999"),
			`annotation vault.hashicorp.com/agent-inject-perms-minio-standard: "999" is not an octal file mode`},
		{"file outside the volume", plainVaultPod("vault.hashicorp.com/agent-inject-file-minio-standard", "../../etc/passwd"),
			`annotation vault.hashicorp.com/agent-inject-file-minio-standard: "../../etc/passwd" is not a relative file name`},
		{"modifier of no secret", plainVaultPod("vault.hashicorp.com/agent-inject-perms-minio", "0400"),
			`annotations for secret "minio" name no secret`},
		{"two secrets, one file", plainVaultPod("vault.hashicorp.com/agent-inject-secret-MINIO-standard", "x"),
			`render to "minio-standard"`},
		{"service", plainVaultPod("vault.hashicorp.com/service", "vault:8200"),
			`annotation vault.hashicorp.com/service: "vault:8200" is not a Vault address`},
		{"log level", plainVaultPod("vault.hashicorp.com/log-level", "loud"),
			`annotation vault.hashicorp.com/log-level: "loud" is not one of trace, debug, info, warn, error`},
		{"port", plainVaultPod("vault.hashicorp.com/agent-cache-listener-port", "70000"),
			`annotation vault.hashicorp.com/agent-cache-listener-port: "70000" is not an integer from 1 to 65535`},
		{"duration", plainVaultPod("vault.hashicorp.com/client-timeout", "soon"),
			`annotation vault.hashicorp.com/client-timeout: "soon" is not a duration`},
		{"secret volume path", plainVaultPod("vault.hashicorp.com/secret-volume-path", "secrets"),
			`annotation vault.hashicorp.com/secret-volume-path: "secrets" is not a clean absolute path`},
		{"missing target container", plainVaultPod("vault.hashicorp.com/agent-inject-containers", "api"),
			`annotation vault.hashicorp.com/agent-inject-containers names "api", which is not a container of the pod`},
		{"missing token volume", plainVaultPod("vault.hashicorp.com/agent-service-account-token-volume-name", "vault-sa"),
			`names "vault-sa", which is not a volume of the pod`},
		{"token volume without a token", withVolume(plainVaultPod("vault.hashicorp.com/agent-service-account-token-volume-name", "scratch"), "scratch"),
			`names volume "scratch", which holds no service account token`},
		{"root", plainVaultPod("vault.hashicorp.com/agent-run-as-user", "0"), `would run as root`},
		{"no service account", func() *corev1.Pod { p := plainVaultPod(); p.Spec.ServiceAccountName = ""; return p }(),
			`the pod has neither spec.serviceAccountName nor a mounted token`},
		{"same user without one", plainVaultPod("vault.hashicorp.com/agent-run-as-same-user", "true"), `set no runAsUser to copy`},
		{"JSON patch syntax", plainVaultPod("vault.hashicorp.com/agent-json-patch", `{"op":`), `annotation vault.hashicorp.com/agent-json-patch: "{\"op\":" is not a JSON patch`},
		{"JSON patch that does not apply", plainVaultPod("vault.hashicorp.com/agent-init-json-patch", `[{"op":"remove","path":"/nothing"}]`),
			`annotation vault.hashicorp.com/agent-init-json-patch does not apply`},
		{"JSON patch renaming the agent", plainVaultPod("vault.hashicorp.com/agent-json-patch", `[{"op":"replace","path":"/name","value":"x"}]`),
			`must not rename the agent container "vault-agent"`},
		{"volume name taken", withVolume(plainVaultPod(), "vault-secrets"), `already has a volume named "vault-secrets"`},
		{"secrets path taken", mountedAtSecrets, `container "web" already mounts volume "creds" at /vault/secrets`},
		{"several problems are all reported",
			plainVaultPod("vault.hashicorp.com/agent-limits-cpu", "lots", "vault.hashicorp.com/log-format", "xml"),
			`"lots" is not a resource quantity (e.g. 250m, 64Mi); annotation vault.hashicorp.com/log-format: "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := newHandler(t, nil).Handle(t.Context(), createRequest(encode(t, tc.pod), tc.pod.Namespace))
			if resp.Allowed {
				t.Fatalf("admitted with patch %s", resp.Patch)
			}
			if resp.Result.Code != 403 || !strings.Contains(resp.Result.Message, tc.want) {
				t.Errorf("denial %d %q\nwant it to contain %q", resp.Result.Code, resp.Result.Message, tc.want)
			}
			if len(resp.Patch) > 0 {
				t.Error("a denial carries a patch")
			}
		})
	}
}
