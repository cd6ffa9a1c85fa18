#!/usr/bin/env bash
# The Kyverno peer benchmark, one command: builds the local control plane (e2e/testenv), Kyverno
# v1.19.1's admission and background controllers and the driver (e2e/peers/kyverno/build.sh),
# and `meshbaseline` in release mode, then runs the driver (peerbench). Every flag is passed to
# peerbench; the defaults are the full run (100, 1,000 and 5,000 namespaces, 10 idle minutes
# each), which takes hours. Results: e2e/peers/results/kyverno.json and kyverno.md unless
# --out / --table say otherwise.
#
#   e2e/peers/kyverno/run.sh                                   # the full run
#   e2e/peers/kyverno/run.sh --namespaces 50 --idle 30s ...    # a smaller one
#
# MESHBASELINE_BIN=path uses that binary instead of building the release one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
step() { printf '\n=== %s (%ss)\n' "$1" "$SECONDS" >&2; }

istio="${MESHBASELINE_ISTIO_CRDS:-}"
if [ -z "$istio" ]; then
  for candidate in "$root/../shared/istio/crds.yaml" "$root/../../shared/istio/crds.yaml"; do
    [ -f "$candidate" ] && istio="$candidate" && break
  done
fi
[ -f "$istio" ] || { echo "peers/kyverno: Istio's CRDs not found beside the repository: set MESHBASELINE_ISTIO_CRDS" >&2; exit 1; }

step "build the local control plane (e2e/testenv)"
e2e/testenv/build.sh "$root/target/testenv/bin" >&2
step "build Kyverno and the driver (e2e/peers/kyverno)"
e2e/peers/kyverno/build.sh "$root/target/peers/kyverno/bin" >&2
bin="${MESHBASELINE_BIN:-}"
if [ -z "$bin" ]; then
  step "build meshbaseline (release)"
  cargo build --release --locked -p meshbaseline >&2
  bin="$root/target/release/meshbaseline"
fi

kyverno_dir="$(cd e2e/peers/kyverno && go list -m -f '{{.Dir}}' github.com/kyverno/kyverno)"
kyverno_version="$(cd e2e/peers/kyverno && go list -m -f '{{.Version}}' github.com/kyverno/kyverno)"
kubernetes_version="$(cd e2e/testenv && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
meshbaseline_version="$("$bin" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"

step "peerbench"
exec "$root/target/peers/kyverno/bin/peerbench" \
  --testenv-bin "$root/target/testenv/bin" \
  --istio-crds "$istio" \
  --meshbaseline "$bin" \
  --meshbaseline-crd "$root/crds/meshbaselines.meshbaseline.dev.yaml" \
  --baseline "$root/e2e/peers/kyverno/baseline.yaml" \
  --policy "$root/e2e/peers/kyverno/policy.yaml" \
  --kyverno-bin "$root/target/peers/kyverno/bin" \
  --kyverno-crds "$kyverno_dir/config/crds" \
  --work "$root/target/peers/work" \
  --out "$root/e2e/peers/results/kyverno.json" \
  --table "$root/e2e/peers/results/kyverno.md" \
  --versions "meshbaseline=$meshbaseline_version,kyverno=$kyverno_version,kubernetes=$kubernetes_version,go=$(go env GOVERSION)" \
  "$@"
