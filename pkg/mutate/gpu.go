package mutate

import (
	corev1 "k8s.io/api/core/v1"
)

// GPU adds tolerations to pods that ask for a GPU, so that they can land
// on the tainted GPU node pools. It improves on
// StatCan/gpu-toleration-injector, which looked only at the requests of
// regular containers and added its toleration even when one was there:
// init containers and limits count too, and a toleration is added only
// when no existing one covers it, so reinvocation and user-written
// tolerations never produce duplicates (kubernetes/kubernetes#111745).
type GPU struct {
	cfg GPUConfig
}

var _ Mutator = &GPU{}

// Name implements Mutator.
func (g *GPU) Name() string { return "gpu" }

// Mutate implements Mutator.
func (g *GPU) Mutate(p *Pod) error {
	used := g.requested(p.Object())
	if len(used) == 0 {
		return nil
	}
	want := append([]corev1.Toleration(nil), g.cfg.Tolerations...)
	if g.cfg.ResourceTolerations {
		// What the ExtendedResourceToleration admission plugin adds.
		for _, r := range used {
			want = append(want, corev1.Toleration{Key: string(r), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	for _, t := range want {
		if !tolerated(p.Object().Spec.Tolerations, t) {
			p.AddToleration(t)
		}
	}
	p.RequireNodeAffinity(g.cfg.NodeAffinity)
	return nil
}

// requested lists the configured GPU resources that any container or init
// container requests or limits, in configuration order. Limits count on
// their own: the API server defaults requests from limits only after
// mutating admission.
func (g *GPU) requested(pod *corev1.Pod) []corev1.ResourceName {
	var used []corev1.ResourceName
	for _, r := range g.cfg.Resources {
		if asks(pod.Spec.InitContainers, r) || asks(pod.Spec.Containers, r) {
			used = append(used, r)
		}
	}
	return used
}

func asks(cs []corev1.Container, r corev1.ResourceName) bool {
	for i := range cs {
		res := &cs[i].Resources
		if q, ok := res.Requests[r]; ok && !q.IsZero() {
			return true
		}
		if q, ok := res.Limits[r]; ok && !q.IsZero() {
			return true
		}
	}
	return false
}

// tolerated reports whether one of have already tolerates every taint
// that want tolerates.
func tolerated(have []corev1.Toleration, want corev1.Toleration) bool {
	for _, h := range have {
		if covers(h, want) {
			return true
		}
	}
	return false
}

// covers reports whether toleration h tolerates every taint w does, by
// Kubernetes' matching rules: an empty effect matches every effect, an
// empty key with Exists matches every key, Exists matches every value,
// Equal (or no operator) one value; a NoExecute toleration with
// tolerationSeconds tolerates only for that long.
func covers(h, w corev1.Toleration) bool {
	if h.Effect != "" && h.Effect != w.Effect {
		return false
	}
	if (w.Effect == "" || w.Effect == corev1.TaintEffectNoExecute) && h.TolerationSeconds != nil &&
		(w.TolerationSeconds == nil || *h.TolerationSeconds < *w.TolerationSeconds) {
		return false
	}
	if h.Key == "" {
		return h.Operator == corev1.TolerationOpExists
	}
	if h.Key != w.Key {
		return false
	}
	switch h.Operator {
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpEqual, "":
		return w.Operator != corev1.TolerationOpExists && h.Value == w.Value
	}
	return false
}
