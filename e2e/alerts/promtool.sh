#!/usr/bin/env bash
# The chart's alerts against Prometheus' own rule engine (promtool, Debian package
# `prometheus`): `promtool check rules` on the PrometheusRule the chart renders with every
# option on, then `promtool test rules` with e2e/alerts/meshbaseline.test.yaml, where each alert
# has input series that make it fire and series that leave it silent.
# Usage: e2e/alerts/promtool.sh [RENDERED_MANIFEST] (default: target/helm/meshbaseline-all-on-values.yaml,
# written by .ci/helm-lint.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
manifest="${1:-$root/target/helm/meshbaseline-all-on-values.yaml}"
out="$root/target/alerts"

command -v promtool >/dev/null || {
  echo "promtool not found: apt-get install prometheus (Debian's package ships it)" >&2; exit 2; }
[ -f "$manifest" ] || { echo "$manifest: not found (run .ci/helm-lint.sh first)" >&2; exit 2; }
mkdir -p "$out"
# The rule groups of the PrometheusRule, as a Prometheus rule file.
"${PYTHON:-python3}" - "$manifest" "$out/meshbaseline.rules.yaml" <<'PY'
import sys, yaml
rules = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
if len(rules) != 1:
    sys.exit(f"{sys.argv[1]}: {len(rules)} PrometheusRules, expected 1")
yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
PY
cp "$root/e2e/alerts/meshbaseline.test.yaml" "$out/"
promtool check rules "$out/meshbaseline.rules.yaml"
promtool test rules "$out/meshbaseline.test.yaml"
