#!/usr/bin/env bash
# TEST-ONLY. Builds kube-router, the NetworkPolicy enforcer of the e2e data-plane suite, into $1
# (default: target/dataplane/bin) from the module pinned in go.mod and go.sum (v2.1.0), with
# two upstream fixes applied to a copy of the module (the module cache stays untouched):
#
#   ipv6-ipset-names.patch    v2.1.0 writes ip6tables rules that name its IPv6 ipsets without
#                             their `inet6:` prefix, so ip6tables-restore fails and no IPv6
#                             NetworkPolicy is ever enforced (cloudnativelabs/kube-router#1653).
#   dual-stack-ipsets.patch   each family's ipset handler restores the other family's sets too,
#                             with their content from the end of the previous sync: in a
#                             dual-stack node an IPv4 set change is undone at random
#                             (cloudnativelabs/kube-router#1665, fixed upstream by #1666).
#
# k3s ships both fixes in the kube-router it embeds. A third v2.1.0 bug needs no patch: it
# drops a pod's ICMPv6 neighbour discovery under an egress policy (#1895); the harness gives
# pods static IPv6 neighbours instead.
#
# The binary runs only inside network namespaces the suite creates; it is never shipped.
# Go's build cache makes a rebuild with unchanged inputs take seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../../target/dataplane/bin}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
module=github.com/cloudnativelabs/kube-router/v2

for tool in go git python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kube-router build: $tool is not on PATH" >&2; exit 1; }
done
cd "$here"
export GOFLAGS=-mod=readonly
if ! errors="$(go mod download 2>&1)"; then
  echo "kube-router build: cannot download the modules of $here/go.mod (Go module proxy reachable? GOPROXY=$(go env GOPROXY)):" >&2
  echo "$errors" >&2
  exit 1
fi
src="$(go list -m -f '{{.Dir}}' "$module")"
version="$(go list -m -f '{{.Version}}' "$module")"
# The patched copy replaces the pinned module through a Go workspace (`go build -overlay`
# refuses files in the module cache). Every other module comes from go.mod and go.sum.
work="$out/kube-router-src"
rm -rf "$work" && cp -r "$src" "$work" && chmod -R u+w "$work"
for patch in ipv6-ipset-names.patch dual-stack-ipsets.patch; do
  (cd "$work" && git apply -p1 "$here/$patch")
done
go_version="$(go mod edit -json | python3 -c 'import json, sys; print(json.load(sys.stdin)["Go"])')"
printf 'go %s\n\nuse (\n\t%s\n\t%s\n)\n' "$go_version" "$here" "$work" >"$out/kube-router.go.work"
GOWORK="$out/kube-router.go.work" go build -trimpath -ldflags "-s -w" -o "$out/kube-router" "$module/cmd/kube-router"
echo "kube-router build: $out/kube-router ($version + ipv6-ipset-names.patch, dual-stack-ipsets.patch)"
