#!/usr/bin/env bash
# Regenerates the real kube-bench fixtures in pkg/kubebench/testdata (see
# the README there): kube-bench v0.10.4, built from its module sources, run
# against a local control plane (etcd and kube-apiserver from
# hack/controlplane, kube-scheduler and kube-controller-manager of the same
# Kubernetes release built from ./k8s). Everything runs in a private PID
# namespace, so kube-bench sees only these processes, not other control
# planes on the machine. Needs root (unshare, mount), openssl, curl, jq, Go and the module
# proxy; about 10 minutes cold on 2 cores. make fixtures-kubebench runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/pkg/kubebench/testdata
bin=$here/bin
mkdir -p "$bin" "$out"

# Plain builds of other projects: no experiments, no cgo. kube-bench's
# checksum is not in the checksum database (its version list is refused by
# the proxy), so this helper module alone skips the database for it.
export GOEXPERIMENT= CGO_ENABLED=0 GOFLAGS=-mod=mod
if [ ! -x "$bin/kube-bench" ]; then
  (cd "$here" && GONOSUMDB=github.com/aquasecurity/kube-bench go build -trimpath -o "$bin/kube-bench" github.com/aquasecurity/kube-bench)
fi
for c in kube-scheduler kube-controller-manager; do
  [ -x "$bin/$c" ] || (cd "$here/k8s" && go build -trimpath -ldflags "-s -w" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
done
"$root/hack/controlplane/build.sh"
cfg=$(cd "$here" && GONOSUMDB=github.com/aquasecurity/kube-bench go list -m -f '{{.Dir}}' github.com/aquasecurity/kube-bench)/cfg

if [ "${1:-}" != "--inside" ]; then
  exec unshare --pid --fork --mount-proc "$0" --inside
fi

# Inside the namespace a private tmpfs on /mnt holds the binaries, keys and
# data under neutral paths, and every process starts with an empty
# environment: kube-bench records command lines and process environments,
# which must not carry this machine's paths or variables into the fixtures.
mount -t tmpfs -o size=2g tmpfs /mnt
work=/mnt/fixtures
mkdir -p "$work/bin"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
cp "$root/hack/controlplane/bin/etcd" "$root/hack/controlplane/bin/kube-apiserver" \
  "$bin/kube-scheduler" "$bin/kube-controller-manager" "$bin/kube-bench" "$work/bin/"
cp -r "$cfg" "$work/cfg"
cp=$work/bin
cfg=$work/cfg
bin=$work/bin
pki=$work/pki
mkdir -p "$pki"
clean() { env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root "$@"; }

# A CA, the API server's serving certificate, a client certificate in
# system:masters for the scheduler and controller manager, and the
# service-account signing key.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fixtures-ca -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pki/san.ext"
openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 1 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=fixtures-admin" -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 1 -out "$pki/admin.crt" 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
chmod 600 "$pki"/*.key

# Inside the PID namespace the ports are still the host's: fixed, unusual ones.
clean "$cp/etcd" --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:42379 \
  --advertise-client-urls http://127.0.0.1:42379 --listen-peer-urls http://127.0.0.1:42380 \
  >"$work/etcd.log" 2>&1 &
clean "$cp/kube-apiserver" --advertise-address=127.0.0.1 --bind-address=127.0.0.1 --secure-port=46443 \
  --etcd-servers=http://127.0.0.1:42379 --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC --allow-privileged=true \
  --service-cluster-ip-range=10.0.0.0/24 --service-account-issuer=https://127.0.0.1:46443 \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --enable-admission-plugins=NodeRestriction --endpoint-reconciler-type=none >"$work/apiserver.log" 2>&1 &
for _ in $(seq 60); do
  if curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" https://127.0.0.1:46443/readyz >/dev/null; then break; fi
  sleep 1
done
curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" https://127.0.0.1:46443/readyz >/dev/null ||
  { echo "fixtures: the API server did not become ready" >&2; for f in "$work/etcd.log" "$work/apiserver.log"; do tail -n 20 "$f" >&2; done; exit 1; }

cat >"$work/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:46443", certificate-authority: "$pki/ca.crt"}}]
users: [{name: admin, user: {client-certificate: "$pki/admin.crt", client-key: "$pki/admin.key"}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
EOF
chmod 600 "$work/admin.kubeconfig"
clean "$bin/kube-scheduler" --kubeconfig="$work/admin.kubeconfig" --leader-elect=false --bind-address=127.0.0.1 \
  --secure-port=0 >"$work/scheduler.log" 2>&1 &
clean "$bin/kube-controller-manager" --kubeconfig="$work/admin.kubeconfig" --leader-elect=false --bind-address=127.0.0.1 \
  --secure-port=0 --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=true >"$work/controller-manager.log" 2>&1 &
sleep 10

run() { # output-file args...
  local file=$1
  shift
  # kube-bench logs to stderr; only stdout is the report.
  (cd "$work" && clean "$bin/kube-bench" run --config-dir "$cfg" --config "$cfg/config.yaml" --json "$@") \
    >"$out/$file.tmp" 2>"$work/$file.stderr" || { cat "$work/$file.stderr" >&2; return 1; }
  mv "$out/$file.tmp" "$out/$file"
  echo "fixtures: wrote $out/$file"
}
run kube-bench-master.json --targets master,etcd,controlplane,policies --benchmark cis-1.10
run kube-bench-master-nototals.json --targets master,etcd --benchmark cis-1.10 --nototals
# No kubelet runs here: the node checks find none of its files or flags.
run kube-bench-node.json --targets node --benchmark cis-1.10

# Starboard's CISKubeBenchReport for the same run, made the way Starboard
# makes it (starboard v0.10.3 pkg/kubebench: the Controls become sections,
# each check keeps test_number, test_desc, remediation, status and scored,
# the Totals become the summary).
jq '{apiVersion: "aquasecurity.github.io/v1alpha1", kind: "CISKubeBenchReport",
  metadata: {name: "starboard-node", labels: {"starboard.resource.kind": "Node", "starboard.resource.name": "starboard-node"}},
  report: {updateTimestamp: "2026-07-01T10:00:00Z", scanner: {name: "kube-bench", vendor: "Aqua Security", version: "v0.10.4"},
    summary: {passCount: .Totals.total_pass, infoCount: .Totals.total_info, warnCount: .Totals.total_warn, failCount: .Totals.total_fail},
    sections: [.Controls[] | {id, version, text, node_type, total_pass, total_fail, total_warn, total_info,
      tests: [.tests[] | {section, pass, fail, warn, info, desc,
        results: [.results[] | {test_number, test_desc, remediation, status, scored}]}]}]}}' \
  "$out/kube-bench-master.json" >"$out/starboard-ciskubebenchreport.json"
echo "fixtures: wrote $out/starboard-ciskubebenchreport.json"
