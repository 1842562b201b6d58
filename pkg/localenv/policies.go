package localenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/statcan/daaas-guard/pkg/eval"
	"github.com/statcan/daaas-guard/pkg/kustomize"
	"github.com/statcan/daaas-guard/pkg/manifest"
)

// PolicyCounts says what ApplyPolicies created.
type PolicyCounts struct {
	Templates, Constraints, Other int
}

func (c PolicyCounts) String() string {
	return fmt.Sprintf("%d templates, %d constraints, %d other objects", c.Templates, c.Constraints, c.Other)
}

// ApplyPolicies creates a policy directory's objects (kustomize output when
// it has a kustomization): templates first, then, once the webhook has
// created each template's constraint CRD, the constraints and the rest.
func (e *Env) ApplyPolicies(ctx context.Context, dir string, timeout time.Duration) (PolicyCounts, error) {
	var counts PolicyCounts
	docs, err := kustomize.Build(dir, manifest.Options{AllowUntyped: true, KeepLists: true})
	if err != nil {
		return counts, err
	}
	var later []*unstructured.Unstructured
	for _, d := range docs {
		if d.Object.GroupVersionKind().Group != "templates.gatekeeper.sh" {
			later = append(later, d.Object)
			continue
		}
		if err := e.Client.Create(ctx, d.Object.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			return counts, fmt.Errorf("creating ConstraintTemplate %s: %w", d.Object.GetName(), err)
		}
		counts.Templates++
	}
	for _, u := range later {
		gvk := u.GroupVersionKind()
		isConstraint := gvk.Group == "constraints.gatekeeper.sh"
		if isConstraint {
			if err := e.waitForCRD(ctx, strings.ToLower(gvk.Kind)+".constraints.gatekeeper.sh", timeout); err != nil {
				return counts, err
			}
			counts.Constraints++
		} else {
			counts.Other++
		}
		err := WaitFor(ctx, timeout, func() error {
			err := e.Client.Create(ctx, u.DeepCopy())
			if err == nil || apierrors.IsAlreadyExists(err) {
				return nil
			}
			// Discovery can lag a CRD that was just established.
			if isConstraint && strings.Contains(err.Error(), "no matches for kind") {
				return err
			}
			return Permanent(err)
		})
		if err != nil {
			return counts, fmt.Errorf("creating %s %s: %w", gvk.Kind, u.GetName(), err)
		}
	}
	// A constraint is enforced shortly after its creation returns; wait
	// until the webhook says so for each, so that what follows sees the
	// whole profile.
	for _, u := range later {
		if u.GroupVersionKind().Group != "constraints.gatekeeper.sh" {
			continue
		}
		if err := e.waitEnforced(ctx, u, timeout); err != nil {
			return counts, err
		}
	}
	return counts, nil
}

// waitEnforced waits until a constraint's status has a replica reporting
// it enforced.
func (e *Env) waitEnforced(ctx context.Context, c *unstructured.Unstructured, timeout time.Duration) error {
	return WaitFor(ctx, timeout, func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(c.GroupVersionKind())
		if err := e.Client.Get(ctx, client.ObjectKey{Name: c.GetName()}, u); err != nil {
			return err
		}
		pods, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
		for _, p := range pods {
			if m, ok := p.(map[string]interface{}); ok && m["enforced"] == true {
				return nil
			}
		}
		return fmt.Errorf("%s %s is not enforced yet (status.byPod: %v)", c.GetKind(), c.GetName(), pods)
	})
}

func (e *Env) waitForCRD(ctx context.Context, name string, timeout time.Duration) error {
	return WaitFor(ctx, timeout, func() error {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return fmt.Errorf("CRD %s: %w", name, err)
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("CRD %s is not established", name)
	})
}

// ApplyClusterState creates the objects of an inventory fixture (the
// cluster state referential policies read) that belong to the given
// namespaces, the Namespaces themselves included. Kinds this API server
// does not serve (Kubeflow Profiles, Istio objects) are skipped.
func (e *Env) ApplyClusterState(ctx context.Context, file string, namespaces ...string) error {
	docs, err := eval.ReadManifests([]string{file}, nil)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range namespaces {
		want[n] = true
	}
	for _, d := range docs {
		u := d.Object
		if !want[u.GetNamespace()] && !(u.GetKind() == "Namespace" && want[u.GetName()]) {
			continue
		}
		err := e.Client.Create(ctx, u.DeepCopy())
		if err != nil && !apierrors.IsAlreadyExists(err) && !strings.Contains(err.Error(), "no matches for kind") {
			return fmt.Errorf("%s: creating %s %s: %w", d.Pos(), u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}
