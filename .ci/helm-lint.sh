#!/usr/bin/env bash
# Lints charts/meshbaseline with Helm's own lint (Helm v4's Go library, shipped by the PyPI
# package helm-sdkpy): once with the chart's defaults and once per charts/meshbaseline/ci/*-values.yaml.
# Lint renders every template, parses the result as Kubernetes YAML and validates the values
# against values.schema.json. Exits non-zero on any lint warning or error.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="${1:-$root/charts/meshbaseline}"
py="${PYTHON:-python3}"

# helm-sdkpy declares Python >= 3.12 but runs on 3.11 (it is a cffi wrapper around a Go .so).
if ! "$py" -c 'import helm_sdkpy, yaml, sys; sys.exit(helm_sdkpy.__version__ != "0.1.32")' 2>/dev/null; then
  "$py" -m pip install --quiet --disable-pip-version-check --ignore-requires-python \
    'helm-sdkpy==0.1.32' 'pyyaml>=6,<7'
fi

exec "$py" "$root/.ci/helm_lint.py" "$chart"
