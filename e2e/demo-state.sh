#!/usr/bin/env bash
# The demo state on the cluster of KUBECONFIG (the local control plane: run inside `testenv run`):
#   e2e/demo-state.sh crds   Istio's CRDs (../shared/istio/crds.yaml or MESHBASELINE_ISTIO_CRDS),
#                            the Gateway API's (pinned Go module sigs.k8s.io/gateway-api) and ours;
#   e2e/demo-state.sh mesh   the sample mesh of examples/mesh, its tenant namespaces labelled
#                            for examples/baseline.yaml, and that baseline.
# Without an argument, both. Used by e2e/demo.sh and by the snippet test (.ci/snippets.py);
# neither starts the operator here.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
k() { "${MESHBASELINE_KUBECTL:-kubectl}" "$@"; }
say() { printf '\n\033[1m## %s\033[0m\n' "$1"; }
: "${KUBECONFIG:?run inside target/testenv/bin/testenv run (KUBECONFIG names the cluster)}"

crds() {
  local istio_crds="${MESHBASELINE_ISTIO_CRDS:-$root/../shared/istio/crds.yaml}" gateway_api
  # The waypoint of examples/mesh is a Gateway API Gateway: its CRDs come from the Go module
  # sigs.k8s.io/gateway-api (pinned here), through the Go module proxy.
  gateway_api="$(cd e2e/testenv && go mod download -json sigs.k8s.io/gateway-api@v1.4.0 \
    | "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')/config/crd/standard"
  say "CRDs: Istio's ($istio_crds), the Gateway API's (v1.4.0) and MeshBaseline's"
  k apply --server-side -f "$istio_crds" -f crds/ \
    -f "$gateway_api/gateway.networking.k8s.io_gatewayclasses.yaml" \
    -f "$gateway_api/gateway.networking.k8s.io_gateways.yaml" >/dev/null
  k wait --for=condition=Established --timeout=60s crd --all >/dev/null
}

mesh() {
  say "The sample mesh (examples/mesh), its tenant namespaces labelled for examples/baseline.yaml"
  local namespaces tenants
  namespaces="$(mktemp)"
  "${PYTHON:-python3}" - examples/mesh "$namespaces" <<'PY'
import pathlib, sys, yaml
docs = [d for f in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text()) if d and d.get("kind") == "Namespace"]
pathlib.Path(sys.argv[2]).write_text(yaml.safe_dump_all(docs))
PY
  k apply -f "$namespaces" >/dev/null
  tenants=$(k get -f "$namespaces" -o name | grep -v -E '/(istio-system|kube-system)$')
  rm -f "$namespaces"
  k label --overwrite $tenants mesh.example.com/protected=true >/dev/null
  for ns in $tenants; do
    until k -n "${ns#namespace/}" get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
  done
  k apply -f examples/mesh/ >/dev/null
  k apply -f examples/baseline.yaml
  k get namespaces -L mesh.example.com/protected -L istio.io/dataplane-mode -L istio-injection
}

case "${1:-all}" in
  crds) crds ;;
  mesh) mesh ;;
  all) crds; mesh ;;
  *) echo "usage: $0 [crds|mesh]" >&2; exit 2 ;;
esac
