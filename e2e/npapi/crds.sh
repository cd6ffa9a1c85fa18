#!/usr/bin/env bash
# Prints the path of the ClusterNetworkPolicy CRD (standard channel) of the pinned
# sigs.k8s.io/network-policy-api, downloading the module through the Go module proxy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v go >/dev/null || { echo "e2e/npapi/crds.sh: Go is not installed" >&2; exit 1; }
dir="$(go mod download -json sigs.k8s.io/network-policy-api | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
  || { echo "e2e/npapi/crds.sh: cannot download sigs.k8s.io/network-policy-api (Go module proxy reachable?)" >&2; exit 1; }
crd="$dir/config/crd/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml"
[ -f "$crd" ] || { echo "e2e/npapi/crds.sh: $crd missing" >&2; exit 1; }
echo "$crd"
