#!/usr/bin/env bash
# The 50-namespace smoke run of the Kyverno peer benchmark: that the script keeps working, both
# peers converge (peerbench --require-convergence) and the table is produced with both peers'
# figures. It checks no timing. Uses MESHBASELINE_BIN (default: the debug build) so that no
# release build is needed. Results: target/peers/smoke.{json,md}.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
if [ -z "${MESHBASELINE_BIN:-}" ]; then
  cargo build --locked -p meshbaseline >&2
  export MESHBASELINE_BIN="$root/target/debug/meshbaseline"
fi
table="$root/target/peers/smoke.md"
rm -f "$table" "$root/target/peers/smoke.json"
e2e/peers/kyverno/run.sh --namespaces 50 --repairs 10 --new-namespaces 3 \
  --idle 20s --settle 5s --repair-timeout 30s --tamper-timeout 15s --converge-timeout 10m \
  --require-convergence --work "$root/target/peers/smoke-work" \
  --out "$root/target/peers/smoke.json" --table "$table"
cat "$table"
# Both peers have a convergence figure, and the tamper table has a row for every attack.
grep -Eq '^\| 50 \| convergence: policy applied → last object present \| [0-9.]+ s \| [0-9.]+ s \|' "$table" \
  || { echo "smoke: the table lacks a convergence time for both peers" >&2; exit 1; }
rows="$(grep -c '^| \(AuthorizationPolicy\|NetworkPolicy\): ' "$table" || true)"
[ "$rows" -eq 24 ] || { echo "smoke: the tamper table has $rows rows, want 24" >&2; exit 1; }
echo "smoke: both peers converged; table in $table"
