#!/usr/bin/env bash
# Lints, installs, upgrades and uninstalls charts/meshbaseline with Helm v4's Go library (shipped by the PyPI package
# helm-sdkpy): with the chart's defaults and with each charts/meshbaseline/ci/*-values.yaml.
# Rendered manifests go to target/helm/ (or $2). Exits non-zero on any lint warning or error,
# render error or failed check of the rendered objects. See .ci/helm_lint.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="${1:-$root/charts/meshbaseline}"
out="${2:-$root/target/helm}"
py="${PYTHON:-python3}"

# helm-sdkpy declares Python >= 3.12 but runs on 3.11 (it is a cffi wrapper around a Go .so).
if ! "$py" -c 'import helm_sdkpy, yaml, sys; sys.exit(helm_sdkpy.__version__ != "0.1.32")' 2>/dev/null; then
  "$py" -m pip install --quiet --disable-pip-version-check --ignore-requires-python \
    'helm-sdkpy==0.1.32' 'pyyaml>=6,<7'
fi

# Releases are recorded as Helm records them in a cluster (Secrets, the default driver).
exec "$py" "$root/.ci/helm_lint.py" "$chart" "$out"
