package controllers

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	configv1alpha1 "github.com/statcan/daaas-guard/api/config/v1alpha1"
	"github.com/statcan/daaas-guard/pkg/admission"
)

// unservedMapper is the REST mapping of an API server that serves no kind
// at all; only RESTMapping is called by the reconciler.
type unservedMapper struct {
	meta.RESTMapper
	asked int
}

func (m *unservedMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	m.asked++
	return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
}

// A syncOnly kind whose CRD is not installed yet must be tried again later,
// not forgotten until the Config changes.
func TestConfigReconciler_RetriesKindsNotServedYet(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := configv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cfg := &configv1alpha1.Config{
		ObjectMeta: metav1.ObjectMeta{Name: configv1alpha1.ConfigName, Namespace: "daaas-guard"},
		Spec: configv1alpha1.ConfigSpec{Sync: configv1alpha1.SyncSpec{SyncOnly: []configv1alpha1.GVK{
			{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
		}}},
	}
	c := &unservedMapper{}
	r := &ConfigReconciler{
		Client:     fake.NewClientBuilder().WithScheme(scheme).WithObjects(cfg).Build(),
		Mapper:     c,
		Exemptions: &admission.Exemptions{Own: "daaas-guard"},
		Tracker:    NewTracker(),
		Namespace:  "daaas-guard",
		Log:        logr.Discard(),
		synced:     map[schema.GroupVersionKind]*syncedKind{},
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "daaas-guard", Name: configv1alpha1.ConfigName}}
	for attempt := 1; attempt <= 2; attempt++ {
		res, err := r.Reconcile(context.Background(), req)
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if res.RequeueAfter != syncRetry {
			t.Fatalf("attempt %d: RequeueAfter = %v, want %v", attempt, res.RequeueAfter, syncRetry)
		}
		if c.asked != attempt {
			t.Fatalf("attempt %d: the kind was looked up %d times", attempt, c.asked)
		}
	}
}
