#!/usr/bin/env bash
# make demo: shows what daaas-guard does today, step by step, and checks
# that each step has the expected outcome (the demo fails if one does not).
set -euo pipefail
cd "$(dirname "$0")/.."

GUARDCTL=${GUARDCTL:-bin/guardctl}
if [ -t 1 ]; then bold=$'\033[1m'; dim=$'\033[2m'; green=$'\033[32m'; red=$'\033[31m'; off=$'\033[0m'
else bold=; dim=; green=; red=; off=; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

n=0
step() { n=$((n + 1)); printf '\n%s%d. %s%s\n' "$bold" "$n" "$1" "$off"; }
say() { printf '%s   %s%s\n' "$dim" "$*" "$off"; }

# expect CODE CMD...: runs CMD, indents its output, and stops the demo
# unless it exits with CODE.
expect() {
  local want=$1; shift
  printf '   $ %s\n' "$*"
  set +e
  "$@" 2>&1 | sed 's/^/     /'
  local got=${PIPESTATUS[0]}
  set -e
  if [ "$got" != "$want" ]; then
    printf '   %sexpected exit %s, got %s%s\n' "$red" "$want" "$got" "$off"
    exit 1
  fi
  printf '   %sexit %s, as expected%s\n' "$green" "$got" "$off"
}

printf '%sdaaas-guard demo%s: Gatekeeper policies, tested and applied offline with guardctl.\n' "$bold" "$off"
say "Every step runs the real engine (the constraint framework with OPA) on files in this repository."

step "The platform's policy library passes its own test suites"
say "Each template ships gator-format suites with allowed and disallowed fixtures."
expect 0 "$GUARDCTL" test policies/

profile=policies/profiles/daaas
cluster=$profile/workloads/inventory.yaml
say "The platform profile ($profile) selects the constraints the platform runs, with its parameters;"
say "$cluster stands in for the cluster state that referential policies read."

step "The platform's real workloads are admitted by the profile (warnings are advice, not denials)"
expect 0 "$GUARDCTL" eval -p "$profile" --data "$cluster" $profile/workloads/admitted/

step "A privileged notebook is denied, with messages the data scientist can act on"
expect 1 "$GUARDCTL" eval -p "$profile" --data "$cluster" $profile/workloads/denied/notebook-privileged.yaml

step "A pipeline step on an unpinned public image is denied"
expect 1 "$GUARDCTL" eval -p "$profile" --data "$cluster" $profile/workloads/denied/pipeline-public-image.yaml

step "The suite's own manifests (kustomize output) pass the profile, Deployments checked through their Pods"
say "ExpansionTemplates in policies/expansion turn each Deployment's pod template into a Pod for review."
expect 0 "$GUARDCTL" eval -p "$profile" --data "$cluster" manifests/base/

# tolerations FILE: the tolerations section of a pod manifest.
tolerations() { awk '/^  tolerations:/ {on = 1; print; next} on && /^  [a-zA-Z]/ {exit} on' "$1"; }
mutated_tolerations() { "$GUARDCTL" mutate "$1" > "$work/mutated.yaml" && tolerations "$work/mutated.yaml"; }
# reviewed_after_mutation FILE: the profile's verdict on the pod as the
# mutating webhook leaves it.
reviewed_after_mutation() { "$GUARDCTL" mutate "$1" | "$GUARDCTL" eval -p "$profile" --data "$cluster" -; }

step "Mutating webhook: a GPU pipeline step gets the GPU node pools' tolerations"
sed -e 's/namespace: alice/namespace: bob-jones/' -e 's/limits: {cpu: "4", memory: 16Gi}/limits: {cpu: "4", memory: 16Gi, nvidia.com\/gpu: "1"}/' \
  $profile/workloads/admitted/pipeline-kfp.yaml > "$work/gpu-step.yaml"
say "The profile's KFP step, in the GPU-enabled profile bob-jones, asking for a GPU. Before, the"
say "tolerations the API server gives every pod:"
expect 0 tolerations "$work/gpu-step.yaml"
say "The webhook's patch (guardctl mutate runs the webhook's mutators offline), and the tolerations after it:"
expect 0 "$GUARDCTL" mutate -o patch "$work/gpu-step.yaml"
expect 0 mutated_tolerations "$work/gpu-step.yaml"

step "Mutating webhook: a pipeline step that asks Vault for a secret gets the init-only agent"
vault_step=$profile/workloads/mutation/pipeline.yaml
say "It carries vault-k8s annotations only; the platform defaults choose an init container (a step"
say "must terminate), the role profile-bob-jones and the registry's mirror of the Vault image:"
expect 0 grep '^    vault.hashicorp.com/' "$vault_step"
expect 0 "$GUARDCTL" mutate -o patch "$vault_step"
say "The mutated pod is admitted by the profile: the agent's image, limits, securityContext and volumes comply."
expect 0 reviewed_after_mutation "$vault_step"

step "Mutating webhook: an invalid Vault annotation is refused, naming it"
sed 's|^    vault.hashicorp.com/agent-inject: "true"|&\n    vault.hashicorp.com/agent-limits-cpu: lots|' "$vault_step" > "$work/vault-typo.yaml"
expect 1 "$GUARDCTL" mutate -o patch "$work/vault-typo.yaml"

step "Authoring mistakes stop at the author's desk, with file, line and field"
cp -r policies/pod-security-policy/privileged-containers "$work/"
sed -i 's|      - "k8scc01covidacr.azurecr.io/node-agent:\*"|      - 42|' "$work/privileged-containers/samples/no-privileged/constraint.yaml"
say "A constraint whose exemptImages holds a number instead of an image:"
expect 2 "$GUARDCTL" test "$work/privileged-containers"

step "Machine-readable reports for CI"
say "The same run as JUnit XML (also: -o json, -o tap):"
expect 0 "$GUARDCTL" test -o junit policies/general/container-allowed-images

printf '\n%sAll %d steps behaved as expected.%s\n' "$bold" "$n" "$off"
printf 'Next: policies/README.md (writing policies), README.md (architecture and commands).\n'
