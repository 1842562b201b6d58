package mutate

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/statcan/daaas-guard/pkg/pipeline"
)

// Operation is one RFC 6902 operation. Value has no omitempty: "", false,
// 0 and {} are values to add, and an "add" without a value is invalid.
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// pointerEscaper escapes a key for a JSON pointer (RFC 6901): "~" becomes
// "~0" and "/" becomes "~1", in one pass so that neither is escaped twice.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// EscapePointer escapes key for use as one segment of a JSON pointer.
func EscapePointer(key string) string { return pointerEscaper.Replace(key) }

// Pod is a pod being mutated. Mutators read it through Object and change
// it only through its methods, which change the pod and record the JSON
// patch that makes the same change to the pod the API server sent, so the
// two never disagree.
//
// The patch applies to the request's JSON as the API server encodes it:
// an empty list or map is absent, null or empty there, so the first
// element is added as a whole list or map (RFC 6902 "add" needs the parent
// to exist and replaces a null or empty one); later ones are appended with
// "/-" or added by key. The pod must have at least one container or init
// container, which guarantees that spec exists.
type Pod struct {
	obj       *corev1.Pod
	info      pipeline.Info
	namespace string
	ops       []Operation
	warnings  []string
}

// NewPod starts mutating obj, a pod created in namespace.
func NewPod(obj *corev1.Pod, namespace string) *Pod {
	if namespace == "" {
		namespace = obj.Namespace
	}
	return &Pod{obj: obj, info: pipeline.Classify(obj), namespace: namespace}
}

// Object is the pod with the changes made so far. Do not modify it.
func (p *Pod) Object() *corev1.Pod { return p.obj }

// Info classifies the pod as it was sent.
func (p *Pod) Info() pipeline.Info { return p.info }

// Namespace the pod is created in.
func (p *Pod) Namespace() string { return p.namespace }

// Ref names the pod in messages: namespace/name, or namespace/prefix* for
// a pod whose name the API server will generate.
func (p *Pod) Ref() string {
	name := p.obj.Name
	if name == "" && p.obj.GenerateName != "" {
		name = p.obj.GenerateName + "*"
	}
	return p.namespace + "/" + name
}

// Patch is the JSON patch of every change made.
func (p *Pod) Patch() []Operation { return p.ops }

// Warnings are messages for the user who created the pod.
func (p *Pod) Warnings() []string { return p.warnings }

// Warn adds a message for the user who created the pod.
func (p *Pod) Warn(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

func (p *Pod) add(path string, v any) {
	p.ops = append(p.ops, Operation{Op: "add", Path: path, Value: v})
}

// SetAnnotation sets an annotation unless it has that value already.
func (p *Pod) SetAnnotation(key, value string) {
	if cur, ok := p.obj.Annotations[key]; ok && cur == value {
		return
	}
	switch {
	case len(p.obj.Annotations) > 0:
		p.add("/metadata/annotations/"+EscapePointer(key), value)
	case reflect.DeepEqual(p.obj.ObjectMeta, metav1.ObjectMeta{}):
		// Nothing shows that metadata exists in the request: add it whole.
		p.add("/metadata", map[string]any{"annotations": map[string]string{key: value}})
	default:
		p.add("/metadata/annotations", map[string]string{key: value})
	}
	if p.obj.Annotations == nil {
		p.obj.Annotations = map[string]string{}
	}
	p.obj.Annotations[key] = value
}

// appendOp adds v at the end of the list at path, which has n elements.
func (p *Pod) appendOp(path string, n int, v any) {
	if n == 0 {
		p.add(path, []any{v})
		return
	}
	p.add(path+"/-", v)
}

// AddToleration appends a toleration.
func (p *Pod) AddToleration(t corev1.Toleration) {
	p.appendOp("/spec/tolerations", len(p.obj.Spec.Tolerations), t)
	p.obj.Spec.Tolerations = append(p.obj.Spec.Tolerations, t)
}

// AddVolume appends a volume.
func (p *Pod) AddVolume(v corev1.Volume) {
	p.appendOp("/spec/volumes", len(p.obj.Spec.Volumes), v)
	p.obj.Spec.Volumes = append(p.obj.Spec.Volumes, v)
}

// AddContainer appends a container.
func (p *Pod) AddContainer(c corev1.Container) {
	p.appendOp("/spec/containers", len(p.obj.Spec.Containers), c)
	p.obj.Spec.Containers = append(p.obj.Spec.Containers, c)
}

// AddInitContainer appends an init container, or inserts it before the
// others when first is set.
func (p *Pod) AddInitContainer(c corev1.Container, first bool) {
	n := len(p.obj.Spec.InitContainers)
	if !first || n == 0 {
		p.appendOp("/spec/initContainers", n, c)
		p.obj.Spec.InitContainers = append(p.obj.Spec.InitContainers, c)
		return
	}
	// "add" at an index inserts (RFC 6902 4.1): the other init containers
	// are not rewritten.
	p.add("/spec/initContainers/0", c)
	p.obj.Spec.InitContainers = append([]corev1.Container{c}, p.obj.Spec.InitContainers...)
}

// AddVolumeMount appends a volume mount to the container or init
// container named container.
func (p *Pod) AddVolumeMount(container string, m corev1.VolumeMount) error {
	if container == "" {
		return fmt.Errorf("pod %s: cannot mount into a container without a name", p.Ref())
	}
	for i := range p.obj.Spec.Containers {
		if c := &p.obj.Spec.Containers[i]; c.Name == container {
			p.appendOp(fmt.Sprintf("/spec/containers/%d/volumeMounts", i), len(c.VolumeMounts), m)
			c.VolumeMounts = append(c.VolumeMounts, m)
			return nil
		}
	}
	for i := range p.obj.Spec.InitContainers {
		if c := &p.obj.Spec.InitContainers[i]; c.Name == container {
			p.appendOp(fmt.Sprintf("/spec/initContainers/%d/volumeMounts", i), len(c.VolumeMounts), m)
			c.VolumeMounts = append(c.VolumeMounts, m)
			return nil
		}
	}
	return fmt.Errorf("pod %s has no container %q", p.Ref(), container)
}

// SetShareProcessNamespace sets spec.shareProcessNamespace.
func (p *Pod) SetShareProcessNamespace(share bool) {
	if cur := p.obj.Spec.ShareProcessNamespace; cur != nil && *cur == share {
		return
	}
	p.add("/spec/shareProcessNamespace", share) // "add" replaces an existing member
	p.obj.Spec.ShareProcessNamespace = &share
}

// RequireNodeAffinity makes reqs required of the pod's node: they are
// added to every node selector term that lacks them, or become the only
// term. Terms with no requirement at all match no node and are left so.
func (p *Pod) RequireNodeAffinity(reqs []corev1.NodeSelectorRequirement) {
	if len(reqs) == 0 {
		return
	}
	term := corev1.NodeSelectorTerm{MatchExpressions: append([]corev1.NodeSelectorRequirement(nil), reqs...)}
	selector := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}
	spec := &p.obj.Spec
	switch {
	case spec.Affinity == nil:
		a := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: selector}}
		p.add("/spec/affinity", a)
		spec.Affinity = a
		return
	case spec.Affinity.NodeAffinity == nil:
		na := &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: selector}
		p.add("/spec/affinity/nodeAffinity", na)
		spec.Affinity.NodeAffinity = na
		return
	case spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil:
		p.add("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution", selector)
		spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = selector
		return
	}
	required := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	const termsPath = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"
	if len(required.NodeSelectorTerms) == 0 {
		p.add(termsPath, selector.NodeSelectorTerms)
		required.NodeSelectorTerms = selector.NodeSelectorTerms
		return
	}
	for i := range required.NodeSelectorTerms {
		t := &required.NodeSelectorTerms[i]
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue
		}
		for _, r := range reqs {
			if hasRequirement(t.MatchExpressions, r) {
				continue
			}
			p.appendOp(fmt.Sprintf("%s/%d/matchExpressions", termsPath, i), len(t.MatchExpressions), r)
			t.MatchExpressions = append(t.MatchExpressions, r)
		}
	}
}

func hasRequirement(have []corev1.NodeSelectorRequirement, r corev1.NodeSelectorRequirement) bool {
	for _, h := range have {
		if h.Key == r.Key && h.Operator == r.Operator && slices.Equal(h.Values, r.Values) {
			return true
		}
	}
	return false
}
