package mutate

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/statcan/daaas-guard/pkg/pipeline"
)

// Vault injects the Vault agent into pods annotated
// vault.hashicorp.com/agent-inject: "true", honouring the vault-k8s
// annotation set: an init container that renders the secrets before the
// pod's containers start and/or a sidecar that keeps them fresh, sharing
// an in-memory volume at /vault/secrets with the user's containers. It
// writes vault.hashicorp.com/agent-inject-status: injected in the same
// patch, so a pod is injected once, whatever reinvokes the webhook.
//
// Unlike HashiCorp's injector it knows the platform's pods: pipeline steps
// get only the init container (a sidecar keeps a step pod running,
// hashicorp/vault-k8s#120), notebooks only the sidecar (their Istio init
// containers leave other init containers without network), the user's
// containers are told from the pipeline engine's, and a pod without a
// mounted service account token authenticates with one projected for the
// agent.
type Vault struct {
	cfg VaultConfig
}

var _ Mutator = &Vault{}

// Name implements Mutator.
func (v *Vault) Name() string { return "vault" }

// Mutate implements Mutator.
func (v *Vault) Mutate(p *Pod) error {
	pod := p.Object()
	raw, ok := pod.Annotations[AnnotationAgentInject]
	if !ok {
		return nil
	}
	inject, err := strconv.ParseBool(raw)
	if err != nil {
		return deny(fmt.Sprintf("pod %s: annotation %s: %q is not a boolean (use \"true\" or \"false\")", p.Ref(), AnnotationAgentInject, raw))
	}
	switch {
	case !inject, pod.Annotations[AnnotationAgentInjectStatus] == StatusInjected:
		return nil
	case pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending:
		return nil // too late to add containers
	case pod.Labels[pipeline.LabelKFPCacheReused] == "true":
		return nil // a KFP cache hit: the step does not run
	case hasContainer(pod, agentContainer) || hasContainer(pod, agentInitContainer):
		p.Warn("pod %s already has Vault agent containers, so none was injected; set %s: %s to say they are wanted",
			p.Ref(), AnnotationAgentInjectStatus, StatusInjected)
		return nil
	}
	kind := kindOther
	switch p.Info().Kind {
	case pipeline.KindPipeline:
		kind = kindPipeline
	case pipeline.KindNotebook:
		kind = kindNotebook
	}
	spec, errs, unknown := parseAgent(pod, p.Namespace(), kind, &v.cfg)
	for _, k := range unknown {
		p.Warn("pod %s: annotation %s is not a Vault agent annotation and was ignored", p.Ref(), k)
	}
	if len(errs) > 0 {
		return deny(fmt.Sprintf("pod %s: Vault agent injection: %s", p.Ref(), strings.Join(errs, "; ")))
	}
	return v.inject(p, spec)
}

func hasContainer(pod *corev1.Pod, name string) bool {
	return findContainer(pod, name) != nil
}

// findContainer returns the container or init container named name.
func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func hasVolume(pod *corev1.Pod, name string) *corev1.Volume {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return &pod.Spec.Volumes[i]
		}
	}
	return nil
}

// inject adds the agent described by s. Everything is checked before the
// first change, so a denied pod leaves no partial patch behind.
func (v *Vault) inject(p *Pod, s *agentSpec) error {
	pod := p.Object()
	ref := p.Ref()

	targets := p.Info().Containers
	if s.containers != nil {
		targets = s.containers
		for _, name := range targets {
			if !hasRegularContainer(pod, name) {
				return deny(fmt.Sprintf("pod %s: annotation %sagent-inject-containers names %q, which is not a container of the pod", ref, VaultPrefix, name))
			}
		}
	}
	if len(targets) == 0 {
		return deny(fmt.Sprintf("pod %s: Vault agent injection: the pod has no container of its own to give the secrets to; name one in %sagent-inject-containers", ref, VaultPrefix))
	}
	if s.initContainer && s.initFirst {
		// Init containers that run after the agent can read the secrets.
		targets = append(append([]string(nil), targets...), p.Info().InitContainers...)
	}
	for _, name := range targets {
		for _, m := range findContainer(pod, name).VolumeMounts {
			if m.MountPath == s.secretVolumePath {
				return deny(fmt.Sprintf("pod %s: container %q already mounts volume %q at %s, where the Vault agent writes the secrets; set %ssecret-volume-path",
					ref, name, m.Name, s.secretVolumePath, VaultPrefix))
			}
		}
	}

	tokenMount, tokenPath, tokenVol, err := v.token(p, s, targets)
	if err != nil {
		return err
	}
	var copied []corev1.VolumeMount
	if s.copyVolumeMounts != "" {
		c := findContainer(pod, s.copyVolumeMounts)
		if c == nil {
			return deny(fmt.Sprintf("pod %s: annotation %sagent-copy-volume-mounts names %q, which is not a container of the pod", ref, VaultPrefix, s.copyVolumeMounts))
		}
		copied = c.VolumeMounts
	}

	volumes := []corev1.Volume{memoryVolume(secretsVolume)}
	if s.initContainer {
		volumes = append(volumes, memoryVolume(homeInitVolume))
	}
	if s.sidecar {
		volumes = append(volumes, memoryVolume(homeSidecarVolume))
	}
	if tokenVol != nil {
		volumes = append(volumes, *tokenVol)
	}
	if s.configMap != "" {
		volumes = append(volumes, corev1.Volume{Name: configVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.configMap}}}})
	}
	if s.tlsSecret != "" {
		volumes = append(volumes, secretVolume(tlsVolume, s.tlsSecret))
	}
	if s.extraSecret != "" {
		volumes = append(volumes, secretVolume(extraSecretVolume, s.extraSecret))
	}
	persistCache := s.cacheEnable && s.initContainer && s.sidecar
	if persistCache {
		volumes = append(volumes, memoryVolume(cacheVolume))
	}
	for _, vol := range volumes {
		if hasVolume(pod, vol.Name) != nil {
			return deny(fmt.Sprintf("pod %s already has a volume named %q, which the Vault agent needs; rename it", ref, vol.Name))
		}
	}

	var containers []corev1.Container
	for _, init := range []bool{true, false} {
		if (init && !s.initContainer) || (!init && !s.sidecar) {
			continue
		}
		c, err := v.container(p, s, init, tokenMount, tokenPath, copied, persistCache)
		if err != nil {
			return err
		}
		containers = append(containers, c)
	}

	// Checked; now change the pod.
	for _, vol := range volumes {
		p.AddVolume(vol)
	}
	for _, name := range targets {
		if err := p.AddVolumeMount(name, corev1.VolumeMount{Name: secretsVolume, MountPath: s.secretVolumePath}); err != nil {
			return err
		}
	}
	for _, c := range containers {
		if c.Name == agentInitContainer {
			p.AddInitContainer(c, s.initFirst)
		} else {
			p.AddContainer(c)
		}
	}
	if s.shareProcessNamespace != nil {
		p.SetShareProcessNamespace(*s.shareProcessNamespace)
	}
	info := p.Info()
	if s.sidecar && info.IsPipeline() && info.Engine != pipeline.EngineTekton {
		// Argo's wait container stops injected sidecars with this command
		// (argo-workflows docs/sidecar-injection.md); the default, kill 1
		// in a shell, works too, but the signal should reach the agent.
		const killCmd = "workflows.argoproj.io/kill-cmd-" + agentContainer
		if _, set := pod.Annotations[killCmd]; !set {
			p.SetAnnotation(killCmd, `["sh", "-c", "kill -%d 1"]`)
		}
	}
	p.SetAnnotation(AnnotationAgentInjectStatus, StatusInjected)
	return nil
}

func hasRegularContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name && name != "" {
			return true
		}
	}
	return false
}

func memoryVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
}

func secretVolume(name, secret string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}
}

// token finds the service account token the agent logs in with: the
// volume named by agent-service-account-token-volume-name, else a token
// an app container mounts (vault-k8s's discovery), else a token projected
// for the agent alone, which is what a pod with
// automountServiceAccountToken: false gets (hashicorp/vault-k8s#601). It
// returns the agent's mount, the token file, and the volume to add.
func (v *Vault) token(p *Pod, s *agentSpec, targets []string) (corev1.VolumeMount, string, *corev1.Volume, error) {
	pod := p.Object()
	mountOf := func(volume string) string {
		for _, name := range targets {
			for _, m := range findContainer(pod, name).VolumeMounts {
				if m.Name == volume {
					return m.MountPath
				}
			}
		}
		return defaultTokenMount
	}
	if s.authType != "kubernetes" && s.tokenVolume == "" {
		return corev1.VolumeMount{}, "", nil, nil
	}
	if s.tokenVolume != "" {
		vol := hasVolume(pod, s.tokenVolume)
		if vol == nil {
			return corev1.VolumeMount{}, "", nil, deny(fmt.Sprintf("pod %s: annotation %sagent-service-account-token-volume-name names %q, which is not a volume of the pod",
				p.Ref(), VaultPrefix, s.tokenVolume))
		}
		file := ""
		switch {
		case vol.Projected != nil:
			for _, src := range vol.Projected.Sources {
				if src.ServiceAccountToken != nil {
					file = src.ServiceAccountToken.Path
					break
				}
			}
		case vol.Secret != nil:
			file = "token"
		}
		if file == "" {
			return corev1.VolumeMount{}, "", nil, deny(fmt.Sprintf("pod %s: annotation %sagent-service-account-token-volume-name names volume %q, which holds no service account token (a projected serviceAccountToken or a token Secret)",
				p.Ref(), VaultPrefix, s.tokenVolume))
		}
		mount := mountOf(s.tokenVolume)
		return corev1.VolumeMount{Name: s.tokenVolume, MountPath: mount, ReadOnly: true}, path.Join(mount, file), nil, nil
	}
	for _, name := range targets {
		for _, m := range findContainer(pod, name).VolumeMounts {
			if strings.Contains(m.MountPath, "serviceaccount") {
				return corev1.VolumeMount{Name: m.Name, MountPath: m.MountPath, ReadOnly: true}, path.Join(m.MountPath, "token"), nil, nil
			}
		}
	}
	if pod.Spec.ServiceAccountName == "" {
		// The API server's ServiceAccount admission plugin names one
		// before webhooks run; without it no token can be projected.
		return corev1.VolumeMount{}, "", nil, deny(fmt.Sprintf("pod %s: the Vault agent needs a service account token, and the pod has neither spec.serviceAccountName nor a mounted token", p.Ref()))
	}
	expiration := v.cfg.TokenExpirationSeconds
	vol := &corev1.Volume{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Path: "token", ExpirationSeconds: &expiration, Audience: v.cfg.TokenAudience}}},
	}}}
	return corev1.VolumeMount{Name: tokenVolume, MountPath: defaultTokenMount, ReadOnly: true}, defaultTokenMount + "/token", vol, nil
}

// container builds the init agent or the sidecar.
func (v *Vault) container(p *Pod, s *agentSpec, init bool, tokenMount corev1.VolumeMount, tokenPath string, copied []corev1.VolumeMount, persistCache bool) (corev1.Container, error) {
	name, home := agentContainer, homeSidecarVolume
	if init {
		name, home = agentInitContainer, homeInitVolume
	}
	mounts := []corev1.VolumeMount{
		{Name: home, MountPath: homePath},
		{Name: secretsVolume, MountPath: s.secretVolumePath},
	}
	if tokenMount.Name != "" {
		mounts = append(mounts, tokenMount)
	}
	if s.configMap != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: configVolume, MountPath: configPath, ReadOnly: true})
	}
	if s.tlsSecret != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: tlsVolume, MountPath: tlsPath, ReadOnly: true})
	}
	if s.extraSecret != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: extraSecretVolume, MountPath: extraSecretPath, ReadOnly: true})
	}
	if persistCache {
		mounts = append(mounts, corev1.VolumeMount{Name: cacheVolume, MountPath: cachePath})
	}
	for _, m := range copied {
		if !mountClashes(mounts, m) {
			mounts = append(mounts, m)
		}
	}

	env := []corev1.EnvVar{
		fieldEnv("NAMESPACE", "metadata.namespace"),
		fieldEnv("HOST_IP", "status.hostIP"),
		fieldEnv("POD_IP", "status.podIP"),
		{Name: "VAULT_ADDR", Value: s.address},
		{Name: "VAULT_LOG_LEVEL", Value: s.logLevel},
		{Name: "VAULT_LOG_FORMAT", Value: s.logFormat},
	}
	for _, e := range []struct{ name, value string }{
		{"VAULT_CACERT", s.caCert}, {"VAULT_CAPATH", s.caKey}, {"VAULT_CLIENT_CERT", s.clientCert}, {"VAULT_CLIENT_KEY", s.clientKey},
		{"VAULT_TLS_SERVER_NAME", s.tlsServerName}, {"VAULT_CLIENT_TIMEOUT", s.clientTimeout}, {"VAULT_NAMESPACE", s.requestNamespace},
		{"GOMAXPROCS", s.goMaxProcs}, {"HTTPS_PROXY", s.proxyAddress},
	} {
		if e.value != "" {
			env = append(env, corev1.EnvVar{Name: e.name, Value: e.value})
		}
	}
	if s.tlsSkipVerify {
		env = append(env, corev1.EnvVar{Name: "VAULT_SKIP_VERIFY", Value: "true"})
	}
	if s.clientMaxRetries != nil {
		env = append(env, corev1.EnvVar{Name: "VAULT_MAX_RETRIES", Value: strconv.Itoa(*s.clientMaxRetries)})
	}
	// vault-k8s's command: the configuration travels base64-encoded in
	// VAULT_CONFIG and is written to the agent's in-memory home.
	script := "echo ${VAULT_CONFIG?} | base64 -d > " + homePath + "/config.json && vault agent -config=" + homePath + "/config.json"
	if s.configMap != "" {
		file := "config.hcl"
		if init {
			file = "config-init.hcl"
		}
		script = "vault agent -config=" + configPath + "/" + file
	} else {
		cfg, err := s.agentConfigJSON(init, tokenPath, persistCache)
		if err != nil {
			return corev1.Container{}, fmt.Errorf("pod %s: rendering the Vault agent configuration: %w", p.Ref(), err)
		}
		env = append(env, corev1.EnvVar{Name: "VAULT_CONFIG", Value: cfg})
	}

	c := corev1.Container{
		Name:         name,
		Image:        s.image,
		Command:      []string{"/bin/sh", "-ec"},
		Args:         []string{script},
		Env:          env,
		Resources:    *s.resources.DeepCopy(),
		VolumeMounts: mounts,
	}
	if len(c.Resources.Limits) == 0 {
		c.Resources.Limits = nil
	}
	if len(c.Resources.Requests) == 0 {
		c.Resources.Requests = nil
	}
	if s.setSecurityContext {
		sc, err := v.securityContext(p, s)
		if err != nil {
			return corev1.Container{}, err
		}
		c.SecurityContext = sc
	}
	if !init && s.revokeOnShutdown {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{
			"/bin/sh", "-c", fmt.Sprintf("sleep %d && VAULT_TOKEN=$(cat %s) vault token revoke -self", s.revokeGrace, tokenSink),
		}}}}
	}
	patch, annotation := s.jsonPatch, "agent-json-patch"
	if init {
		patch, annotation = s.initJSONPatch, "agent-init-json-patch"
	}
	if patch != nil {
		return patchContainer(p, c, patch, annotation)
	}
	return c, nil
}

func mountClashes(have []corev1.VolumeMount, m corev1.VolumeMount) bool {
	for _, h := range have {
		if h.Name == m.Name || h.MountPath == m.MountPath {
			return true
		}
	}
	return false
}

func fieldEnv(name, fieldPath string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath}}}
}

// securityContext is the restricted Pod Security Standard's, with the
// configured or annotated user and group.
func (v *Vault) securityContext(p *Pod, s *agentSpec) (*corev1.SecurityContext, error) {
	uid := s.runAsUser
	if s.runAsSameUser {
		pod := p.Object()
		var same *int64
		if len(p.Info().Containers) > 0 {
			if sc := findContainer(pod, p.Info().Containers[0]).SecurityContext; sc != nil {
				same = sc.RunAsUser
			}
		}
		if same == nil && pod.Spec.SecurityContext != nil {
			same = pod.Spec.SecurityContext.RunAsUser
		}
		if same == nil {
			return nil, deny(fmt.Sprintf("pod %s: annotation %sagent-run-as-same-user: the pod's containers set no runAsUser to copy", p.Ref(), VaultPrefix))
		}
		uid = *same
	}
	if uid == 0 {
		return nil, deny(fmt.Sprintf("pod %s: the Vault agent would run as root (UID 0); set %sagent-run-as-user to a non-root UID", p.Ref(), VaultPrefix))
	}
	gid := s.runAsGroup
	t, f := true, false
	return &corev1.SecurityContext{
		RunAsUser:                &uid,
		RunAsGroup:               &gid,
		RunAsNonRoot:             &t,
		ReadOnlyRootFilesystem:   &t,
		AllowPrivilegeEscalation: &f,
		Privileged:               &f,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		AppArmorProfile:          &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault},
	}, nil
}

// patchContainer applies the JSON patch of agent-json-patch or
// agent-init-json-patch (hashicorp/vault-k8s#399) to the generated
// container.
func patchContainer(p *Pod, c corev1.Container, patch interface {
	Apply([]byte) ([]byte, error)
}, annotation string) (corev1.Container, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	out, err := patch.Apply(raw)
	if err != nil {
		return c, deny(fmt.Sprintf("pod %s: annotation %s%s does not apply to the agent container: %v", p.Ref(), VaultPrefix, annotation, err))
	}
	var patched corev1.Container
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(out, &patched); err != nil {
		return c, deny(fmt.Sprintf("pod %s: annotation %s%s makes the agent container invalid: %v", p.Ref(), VaultPrefix, annotation, err))
	}
	if patched.Name != c.Name {
		return c, deny(fmt.Sprintf("pod %s: annotation %s%s must not rename the agent container %q", p.Ref(), VaultPrefix, annotation, c.Name))
	}
	return patched, nil
}
