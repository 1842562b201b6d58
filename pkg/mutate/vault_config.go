package mutate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// The Vault agent's configuration, in the JSON form of its HCL (Vault's
// "Vault Agent" configuration documentation). Only what the annotations
// can set is modelled.
type agentConfig struct {
	AutoAuth               *autoAuth         `json:"auto_auth"`
	ExitAfterAuth          bool              `json:"exit_after_auth"`
	PidFile                string            `json:"pid_file"`
	Vault                  *vaultStanza      `json:"vault"`
	Templates              []*templateStanza `json:"template,omitempty"`
	Listeners              []*listener       `json:"listener,omitempty"`
	Cache                  *cacheStanza      `json:"cache,omitempty"`
	TemplateConfig         *templateConfig   `json:"template_config,omitempty"`
	DisableIdleConnections []string          `json:"disable_idle_connections,omitempty"`
	DisableKeepAlives      []string          `json:"disable_keep_alives,omitempty"`
	Telemetry              map[string]any    `json:"telemetry,omitempty"`
}

type autoAuth struct {
	Method *authMethod `json:"method"`
	Sinks  []*sink     `json:"sink"`
}

type authMethod struct {
	Type       string         `json:"type"`
	MountPath  string         `json:"mount_path"`
	Namespace  string         `json:"namespace,omitempty"`
	ExitOnErr  bool           `json:"exit_on_err,omitempty"`
	MinBackoff string         `json:"min_backoff,omitempty"`
	MaxBackoff string         `json:"max_backoff,omitempty"`
	Config     map[string]any `json:"config"`
}

type sink struct {
	Type   string         `json:"type"`
	Config map[string]any `json:"config"`
}

type vaultStanza struct {
	Address       string `json:"address"`
	CACert        string `json:"ca_cert,omitempty"`
	CAPath        string `json:"ca_path,omitempty"`
	ClientCert    string `json:"client_cert,omitempty"`
	ClientKey     string `json:"client_key,omitempty"`
	TLSSkipVerify bool   `json:"tls_skip_verify,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	Retry         *retry `json:"retry,omitempty"`
}

type retry struct {
	NumRetries int `json:"num_retries"`
}

type templateStanza struct {
	Destination       string `json:"destination"`
	Contents          string `json:"contents,omitempty"`
	Source            string `json:"source,omitempty"`
	LeftDelim         string `json:"left_delimiter,omitempty"`
	RightDelim        string `json:"right_delimiter,omitempty"`
	Command           string `json:"command,omitempty"`
	Perms             string `json:"perms,omitempty"`
	ErrorOnMissingKey *bool  `json:"error_on_missing_key,omitempty"`
}

type listener struct {
	Type       string    `json:"type"`
	Address    string    `json:"address"`
	TLSDisable bool      `json:"tls_disable"`
	AgentAPI   *agentAPI `json:"agent_api,omitempty"`
}

type agentAPI struct {
	EnableQuit bool `json:"enable_quit"`
}

type cacheStanza struct {
	UseAutoAuthToken string   `json:"use_auto_auth_token"`
	Persist          *persist `json:"persist,omitempty"`
}

type persist struct {
	Type            string `json:"type"`
	Path            string `json:"path"`
	ExitOnErr       bool   `json:"exit_on_err"`
	KeepAfterImport bool   `json:"keep_after_import"`
}

type templateConfig struct {
	ExitOnRetryFailure         bool     `json:"exit_on_retry_failure"`
	StaticSecretRenderInterval string   `json:"static_secret_render_interval,omitempty"`
	MaxConnectionsPerHost      *int     `json:"max_connections_per_host,omitempty"`
	LeaseRenewalThreshold      *float64 `json:"lease_renewal_threshold,omitempty"`
}

// tokenSink is where auto-auth writes the agent's own token.
const tokenSink = homePath + "/.vault-token"

// agentConfigJSON renders the configuration of the init agent (which
// exits once the secrets are written) or of the sidecar, base64-encoded
// for VAULT_CONFIG.
func (s *agentSpec) agentConfigJSON(init bool, tokenPath string, persistCache bool) (string, error) {
	method := &authMethod{
		Type: s.authType, MountPath: s.authPath, Namespace: s.vaultNamespace,
		ExitOnErr: s.autoAuthExitOnErr, MinBackoff: s.authMinBackoff, MaxBackoff: s.authMaxBackoff,
		Config: map[string]any{},
	}
	for k, v := range s.authConfig {
		method.Config[k] = v
	}
	if s.role != "" {
		method.Config["role"] = s.role
	}
	if s.authType == "kubernetes" {
		method.Config["token_path"] = tokenPath
	}
	sinks := []*sink{{Type: "file", Config: map[string]any{"path": tokenSink}}}
	if s.injectToken {
		sinks = append(sinks, &sink{Type: "file", Config: map[string]any{"path": path.Join(s.secretVolumePath, "token")}})
	}
	cfg := &agentConfig{
		AutoAuth:      &autoAuth{Method: method, Sinks: sinks},
		ExitAfterAuth: init,
		PidFile:       homePath + "/.pid",
		Vault: &vaultStanza{
			Address: s.address, CACert: s.caCert, CAPath: s.caKey, ClientCert: s.clientCert, ClientKey: s.clientKey,
			TLSSkipVerify: s.tlsSkipVerify, TLSServerName: s.tlsServerName,
		},
		TemplateConfig: &templateConfig{
			ExitOnRetryFailure:         s.templateExitOnRetryFailure,
			StaticSecretRenderInterval: s.staticSecretRenderInterval,
			MaxConnectionsPerHost:      s.maxConnectionsPerHost,
			LeaseRenewalThreshold:      s.leaseRenewalThreshold,
		},
		DisableIdleConnections: s.disableIdleConnections,
		DisableKeepAlives:      s.disableKeepAlives,
	}
	if len(s.telemetry) > 0 {
		cfg.Telemetry = s.telemetry
	}
	if s.clientMaxRetries != nil {
		cfg.Vault.Retry = &retry{NumRetries: *s.clientMaxRetries}
	}
	for _, sec := range s.secrets {
		cfg.Templates = append(cfg.Templates, s.template(sec))
	}
	// The sidecar serves the cache and the quit endpoint on loopback; the
	// init agent exits at once and serves nothing.
	if !init && (s.cacheEnable || s.enableQuit) {
		l := &listener{Type: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", s.cacheListenerPort), TLSDisable: true}
		if s.enableQuit {
			l.AgentAPI = &agentAPI{EnableQuit: true}
		}
		cfg.Listeners = []*listener{l}
	}
	if s.cacheEnable {
		cfg.Cache = &cacheStanza{UseAutoAuthToken: s.cacheUseAutoAuthToken}
		if persistCache {
			// The init agent leaves its tokens and leases for the sidecar.
			cfg.Cache.Persist = &persist{Type: "kubernetes", Path: cachePath, ExitOnErr: s.cacheExitOnErr, KeepAfterImport: !init}
		}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// template renders one secret. Without a template annotation, the secret
// is written as key: value lines (map) or as JSON (json), as vault-k8s's
// default templates do.
func (s *agentSpec) template(sec *secret) *templateStanza {
	t := &templateStanza{
		Destination: path.Join(s.secretVolumePath, sec.file),
		LeftDelim:   sec.leftDelim, RightDelim: sec.rightDelim,
		Command: sec.command, Perms: sec.perms, ErrorOnMissingKey: sec.errOnMissing,
	}
	switch {
	case sec.templateFile != "":
		t.Source = sec.templateFile
	case sec.template != "":
		t.Contents = sec.template
	default:
		left, right := "{{", "}}"
		if sec.leftDelim != "" {
			left = sec.leftDelim
		}
		if sec.rightDelim != "" {
			right = sec.rightDelim
		}
		quoted, _ := json.Marshal(sec.path)
		body := left + " range $k, $v := .Data " + right + left + " $k " + right + ": " + left + " $v " + right + "\n" + left + " end " + right
		if s.defaultTemplate == "json" {
			body = left + " .Data | toJSON " + right
		}
		t.Contents = strings.Join([]string{left + " with secret " + string(quoted) + " " + right, body, left + " end " + right}, "")
	}
	return t
}
