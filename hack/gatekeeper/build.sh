#!/usr/bin/env bash
# Builds OPA Gatekeeper's manager (v3.23.1, the main package at the module
# root) from Go module sources into hack/gatekeeper/bin/gatekeeper, with its
# CRDs (the chart's crds directory) in hack/gatekeeper/bin/crds, unless they
# are there already. For the load test (make bench), which runs Gatekeeper's
# validating webhook on the same policies and reviews as ours; needs only Go
# and the module proxy (about 6 minutes cold on 2 cores).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/bin"
mkdir -p "$bin"

# A plain build of another project: no experiments, no cgo.
export GOEXPERIMENT= CGO_ENABLED=0 GOFLAGS=-mod=mod

if [ -x "$bin/gatekeeper" ]; then
  echo "gatekeeper: present ($bin/gatekeeper)"
else
  echo "gatekeeper: building github.com/open-policy-agent/gatekeeper/v3 (first time only; several minutes)..."
  start=$SECONDS
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin/gatekeeper.tmp" github.com/open-policy-agent/gatekeeper/v3)
  mv "$bin/gatekeeper.tmp" "$bin/gatekeeper"
  echo "gatekeeper: built in $((SECONDS - start))s"
fi
if [ ! -d "$bin/crds" ]; then
  src=$(cd "$here" && go list -m -f '{{.Dir}}' github.com/open-policy-agent/gatekeeper/v3)
  rm -rf "$bin/crds.tmp" && mkdir "$bin/crds.tmp"
  cp "$src"/charts/gatekeeper/crds/*.yaml "$bin/crds.tmp/"
  chmod u+w "$bin"/crds.tmp/*.yaml
  mv "$bin/crds.tmp" "$bin/crds"
fi
