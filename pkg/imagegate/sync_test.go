package imagegate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/statcan/daaas-guard/api/v1alpha1"
)

// storePolicy makes the stored ImagePolicy have spec, or deletes it (nil).
func storePolicy(t *testing.T, c client.Client, spec *v1alpha1.ImagePolicySpec) {
	t.Helper()
	ctx := context.Background()
	cur := &v1alpha1.ImagePolicy{}
	err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.ImagePolicyName}, cur)
	switch {
	case spec == nil && err == nil:
		err = c.Delete(ctx, cur)
	case spec == nil && apierrors.IsNotFound(err):
		err = nil
	case apierrors.IsNotFound(err):
		err = c.Create(ctx, &v1alpha1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.ImagePolicyName}, Spec: *spec})
	case err == nil:
		cur.Spec = *spec
		err = c.Update(ctx, cur)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestSyncer_InvalidPolicyAtStartIsNotReady(t *testing.T) {
	valid := &v1alpha1.ImagePolicySpec{Unscanned: []v1alpha1.UnscannedRule{{Mode: v1alpha1.UnscannedDeny,
		NamespaceSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"pb"}}}}}}}
	invalid := valid.DeepCopy()
	invalid.Unscanned[0].NamespaceSelector.MatchExpressions[0].Values = nil
	const notApplied = `ImagePolicy "default" cannot be applied: spec.unscanned[0].namespaceSelector: values: `

	// Each step stores a policy (nil: none), reloads, and expects the
	// readiness error ("" when ready) and, when ready, the mode of
	// unscanned images in a namespace labelled tier=pb.
	type step struct {
		spec     *v1alpha1.ImagePolicySpec
		wantErr  string
		wantMode string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{name: "invalid at start, then fixed", steps: []step{
			{spec: invalid, wantErr: notApplied},
			{spec: valid, wantMode: v1alpha1.UnscannedDeny},
		}},
		{name: "invalid at start, then deleted: the defaults", steps: []step{
			{spec: invalid, wantErr: notApplied},
			{spec: nil, wantMode: v1alpha1.UnscannedWarn},
		}},
		{name: "a valid policy stays when an invalid edit follows", steps: []step{
			{spec: valid, wantMode: v1alpha1.UnscannedDeny},
			{spec: invalid, wantMode: v1alpha1.UnscannedDeny},
			{spec: valid, wantMode: v1alpha1.UnscannedDeny},
		}},
		{name: "the defaults stay when an invalid policy is created", steps: []step{
			{spec: nil, wantMode: v1alpha1.UnscannedWarn},
			{spec: invalid, wantMode: v1alpha1.UnscannedWarn},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := v1alpha1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.ImagePolicy{}).Build()
			g := New(Config{Verdicts: fakeVerdicts{}, Log: logr.Discard()})
			s := &syncer{g: g, c: c, status: c, synced: []func() bool{func() bool { return true }}}
			for i, st := range tc.steps {
				storePolicy(t, c, st.spec)
				s.reload(context.Background())
				err := s.loaded()
				switch {
				case st.wantErr == "" && err != nil:
					t.Fatalf("step %d: not ready: %v", i, err)
				case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
					t.Fatalf("step %d: readiness error %v, want %q", i, err, st.wantErr)
				}
				if st.wantMode != "" {
					if got := g.Policy().UnscannedMode(map[string]string{"tier": "pb"}); got != st.wantMode {
						t.Errorf("step %d: unscanned mode %q, want %q", i, got, st.wantMode)
					}
				}
				if st.spec == invalid {
					pol := &v1alpha1.ImagePolicy{}
					if err := c.Get(context.Background(), client.ObjectKey{Name: v1alpha1.ImagePolicyName}, pol); err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(pol.Status.Error, "not applied") || !strings.Contains(pol.Status.Error, "spec.unscanned[0].namespaceSelector") {
						t.Errorf("step %d: status.error %q", i, pol.Status.Error)
					}
				}
			}
		})
	}
}

func TestSyncer_WaitsForTheInformers(t *testing.T) {
	synced := false
	s := &syncer{synced: []func() bool{func() bool { return true }, func() bool { return synced }}}
	if err := s.loaded(); !errors.Is(err, errWaiting) {
		t.Errorf("before the informers synced: %v, want %v", err, errWaiting)
	}
	synced = true
	if err := s.loaded(); err != nil {
		t.Errorf("synced without an ImagePolicy: %v", err)
	}
}
