#!/usr/bin/env bash
# Builds the Kyverno peer into $1 (default: target/peers/kyverno/bin): Kyverno's admission
# controller (`kyverno`) and background controller (`background-controller`) from the
# github.com/kyverno/kyverno module pinned in go.mod/go.sum (v1.19.1), the way Kyverno's own
# Makefile builds them (CGO off, version stamped), and the benchmark driver (`peerbench`).
# Go's build cache makes a rebuild with unchanged inputs a no-op (a few seconds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../../target/peers/kyverno/bin}"

if ! command -v go >/dev/null 2>&1; then
  echo "peers/kyverno: the Go toolchain is not on PATH; it is needed to build Kyverno and the driver" >&2
  exit 1
fi
cd "$here"
export GOFLAGS=-mod=readonly CGO_ENABLED=0
if ! go mod download 2>/tmp/kyverno-peer-download.err; then
  echo "peers/kyverno: could not download the Go modules in e2e/peers/kyverno/go.mod (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY)):" >&2
  cat /tmp/kyverno-peer-download.err >&2
  exit 1
fi
version="$(go list -m -f '{{.Version}}' github.com/kyverno/kyverno)"
mkdir -p "$out"
go build -trimpath -ldflags "-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=$version" -o "$out/" \
  github.com/kyverno/kyverno/cmd/kyverno github.com/kyverno/kyverno/cmd/background-controller
go build -trimpath -o "$out/" ./peerbench
echo "peers/kyverno: built $out/{kyverno,background-controller,peerbench} (Kyverno $version)"
