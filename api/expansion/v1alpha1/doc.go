// Package v1alpha1 holds Gatekeeper's ExpansionTemplate
// (expansion.gatekeeper.sh/v1alpha1), which daaas-guard serves and reads as
// it is: it tells the webhook and the audit how to derive the Pods (or Jobs)
// a workload will create, so that pod policies apply to Deployments,
// CronJobs and the like before their Pods exist. The format is Gatekeeper's
// (website/docs/expansion.md); the types are the suite's.
//
// +kubebuilder:object:generate=true
// +groupName=expansion.gatekeeper.sh
package v1alpha1
