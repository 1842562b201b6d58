package mutate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// The vault-k8s annotation set (hashicorp/vault-k8s
// agent-inject/agent/annotations.go), so that pods written for HashiCorp's
// injector need no change. All start with VaultPrefix.
const (
	VaultPrefix = "vault.hashicorp.com/"

	AnnotationAgentInject       = VaultPrefix + "agent-inject"
	AnnotationAgentInjectStatus = VaultPrefix + "agent-inject-status"
	// StatusInjected is the status written with the injection; a pod that
	// carries it is not injected again.
	StatusInjected = "injected"

	annPrePopulate     = "agent-pre-populate"
	annPrePopulateOnly = "agent-pre-populate-only"
)

// Per-secret annotations end in -<name>. Longer prefixes come first: they
// are matched in this order, so "agent-inject-template-file-x" is not read
// as the template of a secret "file-x".
var perSecretPrefixes = []string{
	"agent-inject-template-file-",
	"agent-inject-template-",
	"agent-inject-secret-",
	"agent-inject-file-",
	"agent-inject-perms-",
	"agent-inject-command-",
	"agent-template-left-delim-",
	"agent-template-right-delim-",
	"error-on-missing-key-",
	"preserve-secret-case-",
}

// Annotations with a free suffix that are not per secret.
var mapPrefixes = []string{"auth-config-", "agent-telemetry-"}

// Names of the injected containers and volumes (vault-k8s's, so that
// tooling written for it finds them).
const (
	agentContainer     = "vault-agent"
	agentInitContainer = "vault-agent-init"
	secretsVolume      = "vault-secrets"
	homeInitVolume     = "home-init"
	homeSidecarVolume  = "home-sidecar"
	tokenVolume        = "vault-token"
	configVolume       = "vault-config"
	tlsVolume          = "vault-tls-secrets"
	extraSecretVolume  = "extra-secrets"
	cacheVolume        = "vault-agent-cache"

	homePath          = "/home/vault"
	configPath        = "/vault/configs"
	tlsPath           = "/vault/tls"
	extraSecretPath   = "/vault/custom"
	cachePath         = "/vault/agent-cache"
	defaultSecretPath = "/vault/secrets"
	// defaultTokenMount is where a service account token the agent finds
	// no mount for is mounted (vault-k8s's DefaultServiceAccountMount).
	defaultTokenMount = "/var/run/secrets/vault.hashicorp.com/serviceaccount"
)

// secret is one file the agent renders.
type secret struct {
	raw          string // the suffix as written in the annotations
	name         string
	path         string // Vault path (agent-inject-secret-)
	template     string
	templateFile string
	file         string
	perms        string
	command      string
	leftDelim    string
	rightDelim   string
	errOnMissing *bool
	preserveCase bool
}

// agentSpec is a pod's annotations, parsed, checked and completed with the
// platform's defaults.
type agentSpec struct {
	initContainer, sidecar bool
	initFirst              bool
	image                  string
	configMap              string
	containers             []string // set by agent-inject-containers
	requestNamespace       string
	jsonPatch              jsonpatch.Patch
	initJSONPatch          jsonpatch.Patch
	enableQuit             bool
	autoAuthExitOnErr      bool
	copyVolumeMounts       string
	shareProcessNamespace  *bool

	secrets         []*secret
	defaultTemplate string
	injectToken     bool

	resources          corev1.ResourceRequirements
	runAsUser          int64
	runAsGroup         int64
	runAsSameUser      bool
	setSecurityContext bool
	tokenVolume        string
	extraSecret        string
	revokeOnShutdown   bool
	revokeGrace        int64

	address          string
	vaultNamespace   string
	role             string
	authType         string
	authPath         string
	authConfig       map[string]any
	proxyAddress     string
	tlsSkipVerify    bool
	tlsSecret        string
	tlsServerName    string
	caCert           string
	caKey            string
	clientCert       string
	clientKey        string
	clientMaxRetries *int
	clientTimeout    string
	goMaxProcs       string
	logLevel         string
	logFormat        string
	secretVolumePath string
	authMinBackoff   string
	authMaxBackoff   string

	cacheEnable                bool
	cacheUseAutoAuthToken      string
	cacheListenerPort          int
	cacheExitOnErr             bool
	templateExitOnRetryFailure bool
	staticSecretRenderInterval string
	maxConnectionsPerHost      *int
	leaseRenewalThreshold      *float64
	disableIdleConnections     []string
	disableKeepAlives          []string
	telemetry                  map[string]any
}

// annotationParser reads the vault.hashicorp.com/ annotations of one pod
// and collects every problem, each naming its annotation.
type annotationParser struct {
	ann     map[string]string
	used    map[string]bool
	errs    []string
	unknown []string
}

func (a *annotationParser) get(key string) (string, bool) {
	v, ok := a.ann[VaultPrefix+key]
	if ok {
		a.used[VaultPrefix+key] = true
	}
	return v, ok
}

func (a *annotationParser) fail(key, value, format string, args ...any) {
	a.errs = append(a.errs, fmt.Sprintf("annotation %s%s: %q %s", VaultPrefix, key, value, fmt.Sprintf(format, args...)))
}

func (a *annotationParser) str(key string, def string) string {
	if v, ok := a.get(key); ok {
		return v
	}
	return def
}

func (a *annotationParser) boolean(key string, def bool) bool {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		a.fail(key, v, "is not a boolean (use \"true\" or \"false\")")
		return def
	}
	return b
}

// optBool is boolean for an annotation whose absence matters.
func (a *annotationParser) optBool(key string) *bool {
	if _, ok := a.ann[VaultPrefix+key]; !ok {
		return nil
	}
	b := a.boolean(key, false)
	return &b
}

func (a *annotationParser) integer(key string, def, lo, hi int64) int64 {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		a.fail(key, v, "is not an integer from %d to %d", lo, hi)
		return def
	}
	return n
}

func (a *annotationParser) optInt(key string, lo, hi int64) *int {
	if _, ok := a.ann[VaultPrefix+key]; !ok {
		return nil
	}
	n := int(a.integer(key, lo, lo, hi))
	return &n
}

func (a *annotationParser) duration(key string) string {
	v, ok := a.get(key)
	if !ok {
		return ""
	}
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		a.fail(key, v, "is not a duration (e.g. 30s, 5m)")
		return ""
	}
	return v
}

func (a *annotationParser) enum(key, def string, allowed ...string) string {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	if !oneOf(v, allowed...) {
		a.fail(key, v, "is not one of %s", strings.Join(allowed, ", "))
		return def
	}
	return v
}

func (a *annotationParser) absPath(key, def string) string {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	if !path.IsAbs(v) || path.Clean(v) != v || v == "/" {
		a.fail(key, v, "is not a clean absolute path")
		return def
	}
	return v
}

// name reads an annotation naming a Kubernetes object (ConfigMap,
// Secret, volume, container).
func (a *annotationParser) name(key, def string) string {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
		a.fail(key, v, "is not a valid name: %s", strings.Join(msgs, "; "))
		return def
	}
	return v
}

func (a *annotationParser) url(key, def string) string {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	if msg := vaultURL(v); msg != "" {
		a.fail(key, v, "is not a Vault address: %s", msg)
		return def
	}
	return v
}

func (a *annotationParser) list(key string, allowed ...string) []string {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if len(allowed) > 0 && !oneOf(item, allowed...) {
			a.fail(key, v, "lists %q, which is not one of %s", item, strings.Join(allowed, ", "))
			continue
		}
		out = append(out, item)
	}
	return out
}

func (a *annotationParser) patch(key string) jsonpatch.Patch {
	v, ok := a.get(key)
	if !ok || strings.TrimSpace(v) == "" {
		return nil
	}
	p, err := jsonpatch.DecodePatch([]byte(v))
	if err != nil {
		a.fail(key, v, "is not a JSON patch: %v", err)
		return nil
	}
	return p
}

// quantity reads a resource annotation: a quantity, or "" to set none.
func (a *annotationParser) quantity(key string, list corev1.ResourceList, name corev1.ResourceName) (set bool) {
	v, ok := a.get(key)
	if !ok {
		return false
	}
	if v == "" {
		delete(list, name)
		return true
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() < 0 {
		a.fail(key, v, "is not a resource quantity (e.g. 250m, 64Mi)")
		return false
	}
	list[name] = q
	return true
}

// parseAgent reads pod's annotations. kind picks the platform default for
// the agent containers. The returned spec is usable only when errs is
// empty.
func parseAgent(pod *corev1.Pod, namespace string, kind podKind, cfg *VaultConfig) (*agentSpec, []string, []string) {
	a := &annotationParser{ann: pod.Annotations, used: map[string]bool{
		AnnotationAgentInject: true, AnnotationAgentInjectStatus: true}}
	s := &agentSpec{}

	// Which containers: the platform's mode for the kind of pod, unless
	// the pod's annotations say otherwise.
	mode := cfg.Modes[kind]
	prePop, only := mode != v1alpha1.VaultSidecar, mode == v1alpha1.VaultInitOnly
	prePopSet, onlySet := a.optBool(annPrePopulate), a.optBool(annPrePopulateOnly)
	switch {
	case prePopSet != nil && onlySet != nil:
		prePop, only = *prePopSet, *onlySet
		if only && !prePop {
			a.errs = append(a.errs, fmt.Sprintf("annotations %s%s: \"true\" and %s%s: \"false\" leave no agent to inject",
				VaultPrefix, annPrePopulateOnly, VaultPrefix, annPrePopulate))
		}
	case onlySet != nil:
		only = *onlySet
		prePop = prePop || only
	case prePopSet != nil:
		prePop = *prePopSet
		only = only && prePop
	}
	s.initContainer, s.sidecar = prePop, !only

	s.initFirst = a.boolean("agent-init-first", false)
	s.image = a.str("agent-image", cfg.Image)
	if s.image == "" || strings.ContainsAny(s.image, " \t\r\n") {
		a.fail("agent-image", s.image, "is not an image reference")
	}
	s.configMap = a.name("agent-configmap", "")
	s.containers = a.list("agent-inject-containers")
	s.requestNamespace = a.str("agent-request-namespace", "")
	s.jsonPatch = a.patch("agent-json-patch")
	s.initJSONPatch = a.patch("agent-init-json-patch")
	s.enableQuit = a.boolean("agent-enable-quit", false)
	s.autoAuthExitOnErr = a.boolean("agent-auto-auth-exit-on-err", false)
	s.copyVolumeMounts = a.str("agent-copy-volume-mounts", "")
	s.shareProcessNamespace = a.optBool("agent-share-process-namespace")

	s.defaultTemplate = a.enum("agent-inject-default-template", cfg.DefaultTemplate, "map", "json")
	s.injectToken = a.boolean("agent-inject-token", false)
	preserveAll := a.boolean("preserve-secret-case", false)

	s.resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	for k, v := range cfg.Resources.Limits {
		s.resources.Limits[k] = v
	}
	for k, v := range cfg.Resources.Requests {
		s.resources.Requests[k] = v
	}
	requestSet := map[corev1.ResourceName]bool{}
	for _, r := range []struct {
		suffix string
		name   corev1.ResourceName
	}{{"cpu", corev1.ResourceCPU}, {"mem", corev1.ResourceMemory}, {"ephemeral", corev1.ResourceEphemeralStorage}} {
		a.quantity("agent-limits-"+r.suffix, s.resources.Limits, r.name)
		requestSet[r.name] = a.quantity("agent-requests-"+r.suffix, s.resources.Requests, r.name)
	}
	for name, req := range s.resources.Requests {
		lim, ok := s.resources.Limits[name]
		if !ok || req.Cmp(lim) <= 0 {
			continue
		}
		if !requestSet[name] {
			// A lowered limit lowers the platform's default request with it.
			s.resources.Requests[name] = lim
			continue
		}
		suffix := map[corev1.ResourceName]string{corev1.ResourceCPU: "cpu", corev1.ResourceMemory: "mem", corev1.ResourceEphemeralStorage: "ephemeral"}[name]
		a.fail("agent-requests-"+suffix, req.String(), "exceeds the limit %s", lim.String())
	}

	s.runAsUser = a.integer("agent-run-as-user", cfg.RunAsUser, 0, 1<<31-1)
	s.runAsGroup = a.integer("agent-run-as-group", cfg.RunAsGroup, 0, 1<<31-1)
	s.runAsSameUser = a.boolean("agent-run-as-same-user", false)
	s.setSecurityContext = a.boolean("agent-set-security-context", true)
	s.tokenVolume = a.name("agent-service-account-token-volume-name", "")
	s.extraSecret = a.name("agent-extra-secret", "")
	s.revokeOnShutdown = a.boolean("agent-revoke-on-shutdown", false)
	s.revokeGrace = a.integer("agent-revoke-grace", 5, 0, 3600)

	s.address = a.url("service", cfg.Address)
	s.vaultNamespace = a.str("namespace", "")
	s.authType = a.str("auth-type", "kubernetes")
	if s.authType == "" || strings.ContainsAny(s.authType, " /\t") {
		a.fail("auth-type", s.authType, "is not an auth method type")
	}
	s.authPath = a.str("auth-path", cfg.AuthPath)
	if s.authPath == "" {
		a.fail("auth-path", s.authPath, "is empty")
	}
	s.role = a.str("role", "")
	if s.role == "" && s.authType == "kubernetes" {
		// The role the profile controller creates for each profile.
		s.role = cfg.RolePrefix + strings.ReplaceAll(namespace, "_", "-")
	}
	s.proxyAddress = a.str("proxy-address", "")
	if s.proxyAddress != "" {
		if u, err := url.Parse(s.proxyAddress); err != nil || u.Host == "" {
			a.fail("proxy-address", s.proxyAddress, "is not a URL")
		}
	}
	s.tlsSkipVerify = a.boolean("tls-skip-verify", false)
	s.tlsSecret = a.name("tls-secret", cfg.TLSSecret)
	s.tlsServerName = a.str("tls-server-name", "")
	s.caCert = a.absPath("ca-cert", cfg.CACert)
	s.caKey = a.absPath("ca-key", "")
	s.clientCert = a.absPath("client-cert", "")
	s.clientKey = a.absPath("client-key", "")
	s.clientMaxRetries = a.optInt("client-max-retries", 0, 100)
	s.clientTimeout = a.duration("client-timeout")
	if n := a.optInt("go-max-procs", 1, 1024); n != nil {
		s.goMaxProcs = strconv.Itoa(*n)
	}
	s.logLevel = a.enum("log-level", cfg.LogLevel, logLevels...)
	s.logFormat = a.enum("log-format", cfg.LogFormat, "standard", "json")
	s.secretVolumePath = a.absPath("secret-volume-path", defaultSecretPath)
	s.authMinBackoff = a.duration("auth-min-backoff")
	s.authMaxBackoff = a.duration("auth-max-backoff")

	s.cacheEnable = a.boolean("agent-cache-enable", false)
	s.cacheUseAutoAuthToken = a.enum("agent-cache-use-auto-auth-token", "true", "true", "force")
	s.cacheListenerPort = int(a.integer("agent-cache-listener-port", 8200, 1, 65535))
	s.cacheExitOnErr = a.boolean("agent-cache-exit-on-err", false)
	s.templateExitOnRetryFailure = a.boolean("template-config-exit-on-retry-failure", true)
	s.staticSecretRenderInterval = a.duration("template-static-secret-render-interval")
	s.maxConnectionsPerHost = a.optInt("template-max-connections-per-host", 1, 1<<16)
	if v, ok := a.get("template-lease-renewal-threshold"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			a.fail("template-lease-renewal-threshold", v, "is not a fraction above 0 and at most 1")
		} else {
			s.leaseRenewalThreshold = &f
		}
	}
	connections := []string{"auto-auth", "caching", "templating", "proxying"}
	s.disableIdleConnections = a.list("agent-disable-idle-connections", connections...)
	s.disableKeepAlives = a.list("agent-disable-keep-alives", connections...)

	s.authConfig, s.telemetry = map[string]any{}, map[string]any{}
	s.secrets = a.secrets(preserveAll, s)
	a.unknownKeys()
	return s, a.errs, a.unknown
}

// secrets groups the per-secret annotations by secret and reads the free
// suffix maps (auth-config-, agent-telemetry-).
func (a *annotationParser) secrets(preserveAll bool, s *agentSpec) []*secret {
	byRaw := map[string]*secret{}
	var keys []string
	for k := range a.ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, full := range keys {
		key, ok := strings.CutPrefix(full, VaultPrefix)
		if !ok || a.used[full] {
			continue
		}
		v := a.ann[full]
		if m, ok := cutAny(key, mapPrefixes); ok {
			a.used[full] = true
			if m.rest == "" {
				a.fail(key, v, "needs a parameter name after %s", m.prefix)
				continue
			}
			if m.prefix == "auth-config-" {
				s.authConfig[m.rest] = v
			} else {
				s.telemetry[strings.ReplaceAll(m.rest, "-", "_")] = scalar(v)
			}
			continue
		}
		m, ok := cutAny(key, perSecretPrefixes)
		if !ok {
			continue
		}
		a.used[full] = true
		if m.rest == "" {
			a.fail(key, v, "needs a secret name after %s", m.prefix)
			continue
		}
		sec := byRaw[m.rest]
		if sec == nil {
			sec = &secret{raw: m.rest}
			byRaw[m.rest] = sec
		}
		switch m.prefix {
		case "agent-inject-secret-":
			sec.path = v
		case "agent-inject-template-":
			sec.template = v
		case "agent-inject-template-file-":
			sec.templateFile = v
		case "agent-inject-file-":
			if path.IsAbs(v) || path.Clean(v) != v || strings.HasPrefix(v, "..") || v == "." {
				a.fail(key, v, "is not a relative file name inside the secrets volume")
			}
			sec.file = v
		case "agent-inject-perms-":
			if n, err := strconv.ParseUint(v, 8, 32); err != nil || n > 0o777 {
				a.fail(key, v, "is not an octal file mode such as 0440")
			}
			sec.perms = v
		case "agent-inject-command-":
			sec.command = v
		case "agent-template-left-delim-":
			sec.leftDelim = v
		case "agent-template-right-delim-":
			sec.rightDelim = v
		case "error-on-missing-key-":
			b, err := strconv.ParseBool(v)
			if err != nil {
				a.fail(key, v, "is not a boolean (use \"true\" or \"false\")")
			}
			sec.errOnMissing = &b
		case "preserve-secret-case-":
			b, err := strconv.ParseBool(v)
			if err != nil {
				a.fail(key, v, "is not a boolean (use \"true\" or \"false\")")
			}
			sec.preserveCase = b
		}
	}
	var out []*secret
	byName := map[string]string{}
	byFile := map[string]string{}
	raws := make([]string, 0, len(byRaw))
	for raw := range byRaw {
		raws = append(raws, raw)
	}
	sort.Strings(raws)
	for _, raw := range raws {
		sec := byRaw[raw]
		if sec.path == "" && sec.template == "" && sec.templateFile == "" {
			a.errs = append(a.errs, fmt.Sprintf("annotations for secret %q name no secret: add %sagent-inject-secret-%s (a Vault path) or %sagent-inject-template-%s",
				raw, VaultPrefix, raw, VaultPrefix, raw))
			continue
		}
		if sec.template != "" && sec.templateFile != "" {
			a.errs = append(a.errs, fmt.Sprintf("annotations %sagent-inject-template-%s and %sagent-inject-template-file-%s are both set; keep one",
				VaultPrefix, raw, VaultPrefix, raw))
		}
		sec.name = raw
		if !preserveAll && !sec.preserveCase {
			sec.name = strings.ToLower(raw)
		}
		if other, dup := byName[sec.name]; dup {
			a.errs = append(a.errs, fmt.Sprintf("secrets %q and %q both render to %q; rename one or set %spreserve-secret-case", other, raw, sec.name, VaultPrefix))
			continue
		}
		byName[sec.name] = raw
		if sec.file == "" {
			sec.file = sec.name
		}
		if other, dup := byFile[sec.file]; dup {
			a.errs = append(a.errs, fmt.Sprintf("secrets %q and %q are both written to the file %q; set %sagent-inject-file-<name>", other, raw, sec.file, VaultPrefix))
			continue
		}
		byFile[sec.file] = raw
		out = append(out, sec)
	}
	return out
}

// unknownKeys records vault.hashicorp.com/ annotations nothing read: a
// misspelt annotation should not go unnoticed.
func (a *annotationParser) unknownKeys() {
	for k := range a.ann {
		if strings.HasPrefix(k, VaultPrefix) && !a.used[k] {
			a.unknown = append(a.unknown, k)
		}
	}
	sort.Strings(a.unknown)
}

type cut struct{ prefix, rest string }

func cutAny(key string, prefixes []string) (cut, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(key, p); ok {
			return cut{p, rest}, true
		}
	}
	return cut{}, false
}

// scalar reads a telemetry value as a JSON number or boolean when it is
// one, else as a string.
func scalar(v string) any {
	if v == "true" || v == "false" {
		return v == "true"
	}
	var n json.Number
	if err := json.Unmarshal([]byte(v), &n); err == nil {
		return n
	}
	return v
}
