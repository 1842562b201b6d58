package match

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(ns string, lbls map[string]string) Object {
	return Object{Kind: "Pod", Name: "web-0", Namespace: ns, Labels: lbls}
}

func namespace(name string, lbls map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func TestMatches(t *testing.T) {
	kubeflow := namespace("alice", map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"})
	tests := []struct {
		name    string
		m       Match
		target  Target
		want    bool
		wantErr bool
	}{
		{name: "empty match accepts everything", m: Match{}, target: Target{Object: pod("a", nil)}, want: true},

		// kinds
		{name: "kind listed", m: Match{Kinds: []Kinds{{APIGroups: []string{""}, Kinds: []string{"Pod"}}}}, target: Target{Object: pod("a", nil)}, want: true},
		{name: "kind not listed", m: Match{Kinds: []Kinds{{APIGroups: []string{""}, Kinds: []string{"Service"}}}}, target: Target{Object: pod("a", nil)}, want: false},
		{name: "group must match too", m: Match{Kinds: []Kinds{{APIGroups: []string{"apps"}, Kinds: []string{"Pod"}}}}, target: Target{Object: pod("a", nil)}, want: false},
		{name: "wildcard group and kind", m: Match{Kinds: []Kinds{{APIGroups: []string{"*"}, Kinds: []string{"*"}}}}, target: Target{Object: pod("a", nil)}, want: true},
		{name: "empty lists accept any", m: Match{Kinds: []Kinds{{}}}, target: Target{Object: pod("a", nil)}, want: true},
		{name: "any entry may match", m: Match{Kinds: []Kinds{
			{APIGroups: []string{"apps"}, Kinds: []string{"Deployment"}},
			{APIGroups: []string{""}, Kinds: []string{"Pod"}},
		}}, target: Target{Object: pod("a", nil)}, want: true},

		// scope
		{name: "namespaced scope accepts a pod", m: Match{Scope: ScopeNamespaced}, target: Target{Object: pod("a", nil)}, want: true},
		{name: "cluster scope rejects a pod", m: Match{Scope: ScopeCluster}, target: Target{Object: pod("a", nil)}, want: false},
		{name: "cluster scope accepts a Namespace", m: Match{Scope: ScopeCluster}, target: Target{Object: Object{Kind: "Namespace", Name: "a"}}, want: true},
		{name: "namespaced scope rejects a Namespace", m: Match{Scope: ScopeNamespaced}, target: Target{Object: Object{Kind: "Namespace", Name: "a"}}, want: false},
		{name: "cluster scope accepts a ClusterRole", m: Match{Scope: ScopeCluster}, target: Target{Object: Object{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "x"}}, want: true},
		{name: "a known Namespace makes the object namespaced", m: Match{Scope: ScopeCluster}, target: Target{Object: Object{Kind: "Pod", Name: "x"}, Namespace: kubeflow}, want: false},

		// namespaces
		{name: "namespace listed", m: Match{Namespaces: []Glob{"alice"}}, target: Target{Object: pod("alice", nil)}, want: true},
		{name: "namespace not listed", m: Match{Namespaces: []Glob{"bob"}}, target: Target{Object: pod("alice", nil)}, want: false},
		{name: "prefix glob", m: Match{Namespaces: []Glob{"kube-*"}}, target: Target{Object: pod("kube-system", nil)}, want: true},
		{name: "suffix glob", m: Match{Namespaces: []Glob{"*-system"}}, target: Target{Object: pod("gatekeeper-system", nil)}, want: true},
		{name: "suffix glob misses", m: Match{Namespaces: []Glob{"*-system"}}, target: Target{Object: pod("system-x", nil)}, want: false},
		{name: "both-ends glob is a substring", m: Match{Namespaces: []Glob{"*data*"}}, target: Target{Object: pod("big-data-team", nil)}, want: true},
		{name: "namespaces also match cluster-scoped objects (Gatekeeper gotcha)", m: Match{Namespaces: []Glob{"alice"}}, target: Target{Object: Object{Kind: "ClusterRole", Group: "rbac.authorization.k8s.io", Name: "x"}}, want: true},
		{name: "a Namespace matches by its own name", m: Match{Namespaces: []Glob{"alice"}}, target: Target{Object: Object{Kind: "Namespace", Name: "alice"}}, want: true},
		{name: "the known Namespace wins over metadata", m: Match{Namespaces: []Glob{"alice"}}, target: Target{Object: pod("bob", nil), Namespace: kubeflow}, want: true},

		// excludedNamespaces
		{name: "excluded namespace", m: Match{ExcludedNamespaces: []Glob{"kube-*"}}, target: Target{Object: pod("kube-system", nil)}, want: false},
		{name: "not excluded", m: Match{ExcludedNamespaces: []Glob{"kube-*"}}, target: Target{Object: pod("alice", nil)}, want: true},
		{name: "exclusion does not apply to cluster-scoped objects", m: Match{ExcludedNamespaces: []Glob{"*"}}, target: Target{Object: Object{Kind: "ClusterRole", Group: "rbac.authorization.k8s.io"}}, want: true},
		{name: "excluded Namespace object", m: Match{ExcludedNamespaces: []Glob{"kube-system"}}, target: Target{Object: Object{Kind: "Namespace", Name: "kube-system"}}, want: false},

		// labelSelector
		{name: "label selector matches", m: Match{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}, target: Target{Object: pod("a", map[string]string{"app": "web"})}, want: true},
		{name: "label selector misses", m: Match{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}, target: Target{Object: pod("a", nil)}, want: false},
		{name: "label selector expression", m: Match{LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "data.statcan.gc.ca/classification", Operator: metav1.LabelSelectorOpIn, Values: []string{"protected-b"}},
		}}}, target: Target{Object: pod("a", map[string]string{"data.statcan.gc.ca/classification": "protected-b"})}, want: true},

		// namespaceSelector
		{name: "namespace selector on the known Namespace", m: Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/part-of": "kubeflow-profile"}}},
			target: Target{Object: pod("alice", nil), Namespace: kubeflow}, want: true},
		{name: "namespace selector misses", m: Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}},
			target: Target{Object: pod("alice", nil), Namespace: kubeflow}, want: false},
		{name: "namespace selector on a Namespace uses its own labels", m: Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}},
			target: Target{Object: Object{Kind: "Namespace", Name: "n", Labels: map[string]string{"team": "x"}}}, want: true},
		{name: "namespace selector ignores cluster-scoped objects", m: Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}},
			target: Target{Object: Object{Kind: "ClusterRole", Group: "rbac.authorization.k8s.io"}}, want: true},
		{name: "namespace selector without the Namespace cannot decide", m: Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}},
			target: Target{Object: pod("alice", nil)}, wantErr: true},

		// name
		{name: "name exact", m: Match{Name: "web-0"}, target: Target{Object: pod("a", nil)}, want: true},
		{name: "name prefix", m: Match{Name: "web-*"}, target: Target{Object: pod("a", nil)}, want: true},
		{name: "name misses", m: Match{Name: "db-*"}, target: Target{Object: pod("a", nil)}, want: false},
		{name: "generateName matches an open-ended prefix", m: Match{Name: "run-*"}, target: Target{Object: Object{Kind: "Pod", GenerateName: "run-abc-"}}, want: true},
		{name: "generateName cannot match a suffix glob", m: Match{Name: "*-x"}, target: Target{Object: Object{Kind: "Pod", GenerateName: "run-"}}, want: false},

		// source
		{name: "source defaults to All", m: Match{}, target: Target{Object: pod("a", nil), Source: SourceGenerated}, want: true},
		{name: "source Original matches original", m: Match{Source: SourceOriginal}, target: Target{Object: pod("a", nil), Source: SourceOriginal}, want: true},
		{name: "source Generated skips original", m: Match{Source: SourceGenerated}, target: Target{Object: pod("a", nil), Source: SourceOriginal}, want: false},
		{name: "source set but review source unknown", m: Match{Source: SourceOriginal}, target: Target{Object: pod("a", nil)}, wantErr: true},
		{name: "invalid source", m: Match{Source: "Bogus"}, target: Target{Object: pod("a", nil), Source: SourceOriginal}, wantErr: true},

		// all criteria are ANDed
		{name: "all criteria must hold", m: Match{
			Kinds:              []Kinds{{APIGroups: []string{""}, Kinds: []string{"Pod"}}},
			Namespaces:         []Glob{"alice"},
			ExcludedNamespaces: []Glob{"alice"},
		}, target: Target{Object: pod("alice", nil)}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.m)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			target := tc.target
			got, err := c.Matches(&target)
			if tc.wantErr {
				if !errors.Is(err, ErrMatch) {
					t.Fatalf("Matches() error = %v, want ErrMatch", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Matches() error = %v", err)
			}
			if got != tc.want {
				t.Errorf("Matches() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompile_RejectsBadSelector(t *testing.T) {
	_, err := Compile(Match{LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "a", Operator: "Sometimes"},
	}}})
	if err == nil {
		t.Fatal("Compile accepted an unknown selector operator")
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"ab*", "abcd", true},
		{"*cd", "abcd", true},
		{"*bc*", "abcd", true},
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "x", false},
		{"*x", "y", false},
	}
	for _, tc := range tests {
		if got := Glob(tc.glob).Matches(tc.s); got != tc.want {
			t.Errorf("Glob(%q).Matches(%q) = %v, want %v", tc.glob, tc.s, got, tc.want)
		}
	}
}
