package evidence

import (
	"context"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/compliance"
	"github.com/statcan/daaas-guard/pkg/policy"
	"github.com/statcan/daaas-guard/pkg/policyreport"
)

// ClusterOrigin is the origin of evidence read from the cluster.
const ClusterOrigin = "cluster"

// ClusterSource reads one kind of input from a cluster.
type ClusterSource struct {
	// Name says what is read, for warnings ("ConstraintTemplates").
	Name string
	Read func(ctx context.Context, c client.Reader, in *Inputs) error
}

// ClusterOptions select what is read from a cluster.
type ClusterOptions struct {
	// WebhookSelector selects the webhook configurations to assess; nil
	// selects those labelled app.kubernetes.io/part-of=daaas-guard.
	WebhookSelector labels.Selector
	// PageSize bounds each list call, so that memory stays bounded on
	// large clusters.
	PageSize int64
}

// DefaultClusterSources reads templates and constraints, webhook
// configurations, PolicyReports and ClusterPolicyReports, the scanner's
// ImageScan verdicts, the images pods run (for scan coverage), the
// scanner's kube-bench and kube-hunter summaries (NodeBenchmarks, the
// ClusterBenchmark, the PenetrationTest) and the nodes' names (for
// benchmark coverage).
func DefaultClusterSources(opts ClusterOptions) []ClusterSource {
	if opts.WebhookSelector == nil {
		opts.WebhookSelector = labels.SelectorFromSet(labels.Set{"app.kubernetes.io/part-of": "daaas-guard"})
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	return []ClusterSource{
		{Name: "ConstraintTemplates and constraints", Read: opts.readPolicies},
		{Name: "webhook configurations", Read: opts.readWebhooks},
		{Name: "PolicyReports", Read: opts.readReports},
		{Name: "ImageScans", Read: opts.readImageScans},
		{Name: "pods (running images)", Read: opts.readPods},
		{Name: "NodeBenchmarks", Read: opts.readNodeBenchmarks},
		{Name: "nodes (benchmark coverage)", Read: opts.readNodes},
		{Name: "ClusterBenchmarks", Read: opts.readClusterBenchmarks},
		{Name: "PenetrationTests", Read: opts.readPenetrationTests},
	}
}

// ReadCluster runs each source. A source whose API is not installed, or
// that the credentials may not read, is left out with a warning; any
// other failure stops the read.
func ReadCluster(ctx context.Context, c client.Reader, sources []ClusterSource) (*Inputs, error) {
	in := NewInputs()
	for _, s := range sources {
		err := s.Read(ctx, c, in)
		switch {
		case err == nil:
		case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
			in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %s: the API is not installed, left out", s.Name))
		case apierrors.IsForbidden(err):
			in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %s: not permitted (%v), left out", s.Name, err))
		default:
			return nil, fmt.Errorf("cluster: reading %s: %w", s.Name, err)
		}
	}
	in.SortInputs()
	return in, nil
}

// NewClient connects to the cluster a kubeconfig names (empty: the
// default loading rules, KUBECONFIG or ~/.kube/config) and returns the
// name of the context's cluster.
func NewClient(kubeconfig, context string) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	name := ""
	if raw, err := cc.RawConfig(); err == nil {
		ctxName := raw.CurrentContext
		if context != "" {
			ctxName = context
		}
		if kc := raw.Contexts[ctxName]; kc != nil {
			name = kc.Cluster
		}
	}
	c, err := NewClientFor(cfg)
	return c, name, err
}

// NewClientFor returns a client for rest config cfg.
func NewClientFor(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// listAll lists every object of a kind, a page at a time.
func (o ClusterOptions) listAll(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind, opts []client.ListOption, each func(*unstructured.Unstructured) error) error {
	return eachPage(ctx, c, o.PageSize, opts, func() *unstructured.UnstructuredList {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		return list
	}, func(list *unstructured.UnstructuredList) error {
		for i := range list.Items {
			if err := each(&list.Items[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachPage lists into a fresh list from newList, pageSize objects at a
// time, and hands each page to page.
func eachPage[L client.ObjectList](ctx context.Context, c client.Reader, pageSize int64, opts []client.ListOption, newList func() L, page func(L) error) error {
	cont := ""
	for {
		list := newList()
		if err := c.List(ctx, list, append([]client.ListOption{client.Limit(pageSize), client.Continue(cont)}, opts...)...); err != nil {
			return err
		}
		if err := page(list); err != nil {
			return err
		}
		if cont = list.GetContinue(); cont == "" {
			return nil
		}
	}
}

func (o ClusterOptions) readPolicies(ctx context.Context, c client.Reader, in *Inputs) error {
	var templates []*policy.Template
	err := o.listAll(ctx, c, schema.GroupVersionKind{Group: policy.TemplateGroup, Version: "v1", Kind: "ConstraintTemplate"}, nil,
		func(u *unstructured.Unstructured) error {
			t, err := policy.NewTemplate(u, nil)
			if err != nil {
				in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %v: left out", err))
				return nil
			}
			templates = append(templates, t)
			in.AddTemplate(t, ClusterOrigin)
			return nil
		})
	if err != nil {
		return err
	}
	for _, t := range templates {
		err := o.listAll(ctx, c, schema.GroupVersionKind{Group: policy.ConstraintGroup, Version: "v1beta1", Kind: t.Kind}, nil,
			func(u *unstructured.Unstructured) error {
				in.Constraints = append(in.Constraints, Constraint{Object: u.DeepCopy(), Origin: ClusterOrigin})
				return nil
			})
		// A new template's constraint CRD may not be served yet.
		if err != nil && !meta.IsNoMatchError(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("constraints of kind %s: %w", t.Kind, err)
		}
	}
	return nil
}

func (o ClusterOptions) readWebhooks(ctx context.Context, c client.Reader, in *Inputs) error {
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		err := o.listAll(ctx, c, schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: kind},
			[]client.ListOption{client.MatchingLabelsSelector{Selector: o.WebhookSelector}},
			func(u *unstructured.Unstructured) error {
				u.SetAPIVersion("admissionregistration.k8s.io/v1")
				u.SetKind(kind)
				ws, err := DecodeWebhooks(u, ClusterOrigin)
				if err != nil {
					return err
				}
				in.Webhooks = append(in.Webhooks, ws...)
				in.origin(compliance.SourceWebhookConfig, ClusterOrigin)
				return nil
			})
		if err != nil {
			return err
		}
	}
	return nil
}

func (o ClusterOptions) readReports(ctx context.Context, c client.Reader, in *Inputs) error {
	var errs []error
	for _, kind := range []string{"PolicyReport", "ClusterPolicyReport"} {
		err := o.listAll(ctx, c, policyreport.GroupVersion.WithKind(kind), nil, func(u *unstructured.Unstructured) error {
			u.SetAPIVersion(policyreport.GroupVersion.String())
			u.SetKind(kind)
			r, err := policyreport.FromUnstructured(u)
			if err != nil {
				in.Warnings = append(in.Warnings, fmt.Sprintf("cluster: %v: left out", err))
				return nil
			}
			in.Reports = append(in.Reports, Report{Report: r, Origin: ClusterOrigin})
			in.origin(compliance.SourceAudit, ClusterOrigin)
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (o ClusterOptions) readPods(ctx context.Context, c client.Reader, in *Inputs) error {
	images := map[string]*RunningImage{}
	err := eachPage(ctx, c, o.PageSize, nil, func() *corev1.PodList { return &corev1.PodList{} }, func(pods *corev1.PodList) error {
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			ids := map[string]string{}
			for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
				ids[st.Name] = st.ImageID
			}
			for _, ctr := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
				key := ctr.Image + "\x00" + ids[ctr.Name]
				img := images[key]
				if img == nil {
					img = &RunningImage{Image: ctr.Image, ImageID: ids[ctr.Name]}
					images[key] = img
				}
				if len(img.Pods) < maxListed {
					img.Pods = appendUnique(img.Pods, p.Namespace+"/"+p.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(images))
	for k := range images {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Running = append(in.Running, *images[k])
	}
	in.RunningKnown = true
	return nil
}
