// Package localenv runs daaas-guard on a local control plane: kube-apiserver
// and etcd built from Go module sources (hack/controlplane), the suite's
// CRDs, namespace, service accounts and RBAC from manifests/base, our
// binaries as processes that authenticate with their service accounts'
// tokens, and our webhook configurations pointed at them over TLS. The demo,
// `make up`, the load test and end-to-end tests share it, so what they show
// is the suite as a cluster would run it, minus the kubelet.
package localenv

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/statcan/daaas-guard/pkg/manifest"
	"github.com/statcan/daaas-guard/pkg/webhook"
)

// Namespace is where the suite runs, as in manifests/base.
const Namespace = "daaas-guard"

// Options say where things are.
type Options struct {
	// Root is the repository root: manifests/base is read from it.
	Root string
	// BinDir holds kube-apiserver and etcd (default Root/hack/controlplane/bin).
	BinDir string
	// WorkDir receives kubeconfigs, certificates and process logs; it must
	// exist.
	WorkDir string
	// CRDDirs are installed besides manifests/base/crds: CRDs the
	// platform has from other projects (wg-policy PolicyReports).
	CRDDirs []string
	Log     logr.Logger
}

// Env is a running local control plane with the suite's base objects.
type Env struct {
	// Config is the administrator's connection.
	Config *rest.Config
	// Client is an administrator client with the suite's types.
	Client client.Client
	// Kubeconfig is the administrator's kubeconfig file, for kubectl.
	Kubeconfig string
	// CAPEM is the CA of the serving certificate in WorkDir/certs, which
	// our webhooks serve with and the API server trusts.
	CAPEM []byte
	// CertDir holds tls.crt and tls.key for 127.0.0.1.
	CertDir string

	opts  Options
	env   *envtest.Environment
	procs []*Process
}

// Start starts the control plane and installs the CRDs, the namespace, the
// service accounts and the RBAC of manifests/base (webhook, scanner, audit,
// cluster scans).
func Start(ctx context.Context, o Options) (*Env, error) {
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Root, "hack", "controlplane", "bin")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, bin)); err != nil {
			return nil, fmt.Errorf("%s is missing from %s: run hack/controlplane/build.sh", bin, o.BinDir)
		}
	}
	base := filepath.Join(o.Root, "manifests", "base")
	e := &Env{opts: o, env: &envtest.Environment{
		BinaryAssetsDirectory: o.BinDir,
		CRDDirectoryPaths:     append([]string{filepath.Join(base, "crds")}, o.CRDDirs...),
		ErrorIfCRDPathMissing: true,
	}}
	cfg, err := e.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	e.Config = cfg
	if err := e.setUp(ctx, base); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) setUp(ctx context.Context, base string) error {
	var err error
	if e.Client, err = client.New(e.Config, client.Options{Scheme: webhook.Scheme()}); err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(e.opts.WorkDir, "kubeconfig")
	if err := writeKubeconfig(e.Kubeconfig, e.Config, "admin", e.Config.CertData, e.Config.KeyData, ""); err != nil {
		return err
	}
	e.CertDir = filepath.Join(e.opts.WorkDir, "certs")
	if e.CAPEM, err = WriteServingCert(e.CertDir); err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", Namespace, err)
	}
	for _, f := range []string{"serviceaccounts.yaml", "rbac.yaml", "rbac-scanner.yaml", "audit.yaml", "clusterscan.yaml", "compliance.yaml"} {
		if err := e.ApplyFile(ctx, filepath.Join(base, f)); err != nil {
			return err
		}
	}
	return nil
}

// ApplyFile creates every object in a manifest file.
func (e *Env) ApplyFile(ctx context.Context, path string) error {
	docs, err := manifest.ReadFile(path, manifest.Options{})
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := e.Client.Create(ctx, d.Object.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: creating %s %s: %w", d.Pos(), d.Object.GetKind(), d.Object.GetName(), err)
		}
	}
	return nil
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as a
// service account with a token from the TokenRequest API, as a pod's
// projected token would, and returns its path.
func (e *Env) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", namespace, name, err)
	}
	path := filepath.Join(e.opts.WorkDir, fmt.Sprintf("kubeconfig-%s-%s", namespace, name))
	return path, writeKubeconfig(path, e.Config, name, nil, nil, tr.Status.Token)
}

func writeKubeconfig(path string, cfg *rest.Config, user string, cert, key []byte, token string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key, Token: token}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	kc.CurrentContext = "local"
	return clientcmd.WriteToFile(*kc, path)
}

// RegisterWebhooks creates the webhook configurations in files (Validating
// or Mutating), each webhook pointed at https://127.0.0.1:port with the
// path its Service reference names, and the local CA. The API server picks
// new configurations up asynchronously; wait for that with a probe.
func (e *Env) RegisterWebhooks(ctx context.Context, port int, files ...string) error {
	return RegisterWebhooks(ctx, e.Client, port, e.CAPEM, files...)
}

// RegisterWebhooks is Env.RegisterWebhooks for a control plane started
// elsewhere, with the CA that signed the webhook's serving certificate.
func RegisterWebhooks(ctx context.Context, c client.Client, port int, caPEM []byte, files ...string) error {
	for _, f := range files {
		docs, err := manifest.ReadFile(f, manifest.Options{})
		if err != nil {
			return err
		}
		for _, d := range docs {
			u := d.Object.DeepCopy()
			if err := pointAtLocal(u, port, caPEM); err != nil {
				return fmt.Errorf("%s: %w", d.Pos(), err)
			}
			if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("%s: creating %s %s: %w", d.Pos(), u.GetKind(), u.GetName(), err)
			}
		}
	}
	return nil
}

// pointAtLocal rewrites each webhook's clientConfig from a Service to a
// loopback URL.
func pointAtLocal(u *unstructured.Unstructured, port int, caPEM []byte) error {
	hooks, _, err := unstructured.NestedSlice(u.Object, "webhooks")
	if err != nil {
		return fmt.Errorf("%s %s: webhooks: %w", u.GetKind(), u.GetName(), err)
	}
	for i, h := range hooks {
		hook, ok := h.(map[string]interface{})
		if !ok {
			return fmt.Errorf("%s %s: webhooks[%d] is not an object", u.GetKind(), u.GetName(), i)
		}
		path, _, _ := unstructured.NestedString(hook, "clientConfig", "service", "path")
		hook["clientConfig"] = map[string]interface{}{
			"url":      fmt.Sprintf("https://127.0.0.1:%d%s", port, path),
			"caBundle": base64.StdEncoding.EncodeToString(caPEM),
		}
	}
	return unstructured.SetNestedSlice(u.Object, hooks, "webhooks")
}

// Stop stops the processes started here, then the control plane.
func (e *Env) Stop() error {
	var errs []error
	for i := len(e.procs) - 1; i >= 0; i-- {
		errs = append(errs, e.procs[i].Stop())
	}
	if e.env != nil {
		errs = append(errs, e.env.Stop())
	}
	return errors.Join(errs...)
}

// permanent marks an error that retrying will not cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent wraps err so that WaitFor gives up at once.
func Permanent(err error) error { return permanent{err} }

// WaitFor polls f every 100 ms until it returns nil, a Permanent error, or
// timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
