"""Helm lint of a chart with its defaults and with each ci/*-values.yaml, through helm-sdkpy.

helm-sdkpy's Lint takes a chart path only (no values argument), so each values file is deep-merged
into a temporary copy of the chart's values.yaml. helm-sdkpy offers no `template` action, so
nothing is rendered to a file here.
"""

import asyncio
import copy
import pathlib
import shutil
import sys
import tempfile

import helm_sdkpy
import yaml

# helm.sh/helm/v4/pkg/chart/v2/lint/support: 1 info, 2 warning, 3 error.
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
FAIL_AT = 2


def merge(base, override):
    """Helm's values merge: maps merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


async def lint(config, chart: pathlib.Path, label: str) -> int:
    result = await helm_sdkpy.Lint(config).run(str(chart))
    failures = 0
    for message in result.get("Messages") or []:
        severity = message.get("Severity", 0)
        # The Go error value does not survive helm-sdkpy's JSON encoding; keep whatever text it has.
        err = message.get("Err")
        detail = f": {err}" if err not in (None, {}, "") else ""
        print(f"  [{SEVERITY.get(severity, severity)}] {message.get('Path')}{detail}")
        if severity >= FAIL_AT:
            failures += 1
    verdict = "FAILED" if failures else "ok"
    print(f"helm lint {label}: {verdict} ({len(result.get('Messages') or [])} messages)")
    return failures


async def main(chart: pathlib.Path) -> int:
    if not (chart / "Chart.yaml").is_file():
        print(f"{chart}: not a chart (no Chart.yaml)", file=sys.stderr)
        return 2
    print(f"helm-sdkpy {helm_sdkpy.__version__} ({helm_sdkpy.get_version()})")
    config = helm_sdkpy.Configuration(namespace="meshbaseline-system")
    failures = await lint(config, chart, "defaults")
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    for values_file in sorted((chart / "ci").glob("*-values.yaml")):
        override = yaml.safe_load(values_file.read_text()) or {}
        with tempfile.TemporaryDirectory() as tmp:
            copy_dir = pathlib.Path(tmp) / chart.name
            shutil.copytree(chart, copy_dir)
            merged = merge(defaults, override)
            (copy_dir / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
            failures += await lint(config, copy_dir, f"with {values_file.relative_to(chart)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(pathlib.Path(sys.argv[1]).resolve())))
