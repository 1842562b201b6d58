package expansion

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func tmpl(name, fromGroup, fromKind, source, toKind string) *Template {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "expansion.gatekeeper.sh/v1alpha1",
		"kind":       "ExpansionTemplate",
		"metadata":   map[string]interface{}{"name": name},
		"spec": map[string]interface{}{
			"applyTo":        []interface{}{map[string]interface{}{"groups": []interface{}{fromGroup}, "versions": []interface{}{"v1"}, "kinds": []interface{}{fromKind}}},
			"templateSource": source,
			"generatedGVK":   map[string]interface{}{"group": groupOf(toKind), "version": "v1", "kind": toKind},
		},
	}}
	t, err := FromObject(u)
	if err != nil {
		panic(err)
	}
	return t
}

func groupOf(kind string) string {
	switch kind {
	case "Job", "CronJob":
		return "batch"
	case "A":
		return "example.com"
	}
	return ""
}

func cronJob() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "batch/v1",
		"kind":       "CronJob",
		"metadata":   map[string]interface{}{"name": "Nightly", "namespace": "alice"},
		"spec": map[string]interface{}{
			"jobTemplate": map[string]interface{}{
				"spec": map[string]interface{}{
					"template": map[string]interface{}{
						"metadata": map[string]interface{}{"labels": map[string]interface{}{"app": "etl"}},
						"spec":     map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "etl", "image": "x"}}},
					},
				},
			},
		},
	}}
}

func TestExpand_CronJobToJobToPod(t *testing.T) {
	set := NewSet(
		tmpl("expand-cronjobs", "batch", "CronJob", "spec.jobTemplate", "Job"),
		tmpl("expand-jobs", "batch", "Job", "spec.template", "Pod"),
	)
	got, err := set.Expand(cronJob(), "")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Template, Kind, Name, Namespace, Owner string }
	var rows []row
	for _, r := range got {
		owners := r.Object.GetOwnerReferences()
		rows = append(rows, row{r.Template, r.Object.GetKind(), r.Object.GetName(), r.Object.GetNamespace(), owners[0].Kind + "/" + owners[0].Name})
	}
	want := []row{
		{"expand-jobs", "Pod", "nightly-job-pod", "alice", "Job/nightly-job"},
		{"expand-cronjobs", "Job", "nightly-job", "alice", "CronJob/Nightly"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The source object is not changed by expansion.
	if _, found, _ := unstructured.NestedMap(cronJob().Object, "spec", "jobTemplate"); !found {
		t.Fatal("fixture broken")
	}
}

func TestNewSet_LeavesOutCycles(t *testing.T) {
	set := NewSet(
		tmpl("a-to-b", "example.com", "A", "spec.b", "B"),
		tmpl("b-to-a", "", "B", "spec.a", "A"),
		tmpl("jobs", "batch", "Job", "spec.template", "Pod"),
	)
	if diff := cmp.Diff([]string{"a-to-b", "b-to-a"}, set.Excluded); diff != "" {
		t.Errorf("excluded (-want +got):\n%s", diff)
	}
	if set.Len() != 1 {
		t.Errorf("Len() = %d, want 1", set.Len())
	}
}

func TestFromObject_Errors(t *testing.T) {
	base := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "expansion.gatekeeper.sh/v1alpha1", "kind": "ExpansionTemplate",
			"metadata": map[string]interface{}{"name": "x"},
			"spec": map[string]interface{}{
				"applyTo":        []interface{}{map[string]interface{}{"groups": []interface{}{"apps"}, "versions": []interface{}{"v1"}, "kinds": []interface{}{"Deployment"}}},
				"templateSource": "spec.template",
				"generatedGVK":   map[string]interface{}{"version": "v1", "kind": "Pod"},
			},
		}}
	}
	tests := []struct {
		name   string
		edit   func(u *unstructured.Unstructured)
		wantIn string
	}{
		{"no source", func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "templateSource") }, "templateSource"},
		{"no generated kind", func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "generatedGVK") }, "generatedGVK"},
		{"no applyTo", func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "applyTo") }, "applyTo"},
		{"generates what it applies to", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, map[string]interface{}{"group": "apps", "version": "v1", "kind": "Deployment"}, "spec", "generatedGVK")
		}, "also applies to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := base()
			tc.edit(u)
			_, err := FromObject(u)
			if err == nil || !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.wantIn)
			}
		})
	}
}

func TestExpand_MissingSourceIsAnError(t *testing.T) {
	set := NewSet(tmpl("jobs", "batch", "Job", "spec.template", "Pod"))
	job := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]interface{}{"name": "j"}}}
	if _, err := set.Expand(job, ""); err == nil || !strings.Contains(err.Error(), "has no spec.template") {
		t.Errorf("err = %v", err)
	}
}
