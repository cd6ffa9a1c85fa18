#!/usr/bin/env bash
# Builds the local control plane of the e2e suite into $1 (default: target/testenv/bin):
# testenv (this module: embedded etcd, PKI, kubeconfigs), and kube-apiserver and
# kube-controller-manager from the k8s.io/kubernetes module pinned in go.mod/go.sum.
# Go's build cache makes a rebuild with unchanged inputs a no-op (a few seconds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../target/testenv/bin}"

if ! command -v go >/dev/null 2>&1; then
  echo "testenv: the Go toolchain is not on PATH; it is needed to build kube-apiserver, kube-controller-manager and etcd" >&2
  exit 1
fi
cd "$here"
export GOFLAGS=-mod=readonly
if ! go mod download 2>/tmp/testenv-download.err; then
  echo "testenv: could not download the Go modules in e2e/testenv/go.mod (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY)):" >&2
  cat /tmp/testenv-download.err >&2
  exit 1
fi
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="${version#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
mkdir -p "$out"
go build -trimpath -ldflags "$ldflags" -o "$out/" \
  . k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
echo "testenv: built $out/{testenv,kube-apiserver,kube-controller-manager} (Kubernetes $version)"
