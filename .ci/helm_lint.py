"""Helm lint and render of a chart, through helm-sdkpy (Helm v4's Go library).

For the chart's defaults and for each ci/*-values.yaml:
- lint: helm-sdkpy's Lint takes a chart path only, so each values file is deep-merged into a
  temporary copy of values.yaml. Lint renders every template, checks the YAML and the metadata,
  and validates the values against values.schema.json. Warnings and errors fail.
- render: helm-sdkpy has no `template` action, so the chart is installed (HELM_DRIVER=memory)
  against FakeKubeApi on 127.0.0.1 and the release's manifest is written to
  <out>/meshbaseline-<values>.yaml. Errors carry Helm's messages (file:line), unlike lint's.
Then the rendered objects are checked: the ones each values set must produce, and RBAC rules
identical to templates/clusterrole.yaml and templates/role.yaml (which the Rust tests read).
"""

import asyncio
import copy
import os
import pathlib
import shutil
import sys
import tempfile

import helm_sdkpy
import yaml

from fake_kube_api import FakeKubeApi

# helm.sh/helm/v4/pkg/chart/v2/lint/support: 1 info, 2 warning, 3 error.
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
FAIL_AT = 2
NAMESPACE = "meshbaseline-system"
RELEASE = "meshbaseline"
ALWAYS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
          "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
OPTIONAL = {"ServiceMonitor", "PrometheusRule", "ConfigMap", "MeshBaseline"}


def merge(base, override):
    """Helm's values merge: maps merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


async def lint(chart: pathlib.Path, label: str) -> int:
    config = helm_sdkpy.Configuration(namespace=NAMESPACE)
    result = await helm_sdkpy.Lint(config).run(str(chart))
    messages = result.get("Messages") or []
    failures = 0
    for message in messages:
        severity = message.get("Severity", 0)
        # The Go error value does not survive helm-sdkpy's JSON encoding; the render step below
        # reports template errors with their text.
        print(f"  [{SEVERITY.get(severity, severity)}] {message.get('Path')}")
        failures += severity >= FAIL_AT
    print(f"helm lint ({label}): {'FAILED' if failures else 'ok'}, {len(messages)} messages")
    return failures


async def render(chart: pathlib.Path, values: dict, label: str) -> str | None:
    with FakeKubeApi() as api:
        config = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=api.kubeconfig(NAMESPACE))
        try:
            release = await helm_sdkpy.Install(config).run(
                RELEASE, str(chart), values=values or None, wait=False, timeout=30)
        except helm_sdkpy.HelmError as err:
            print(f"helm template ({label}): FAILED\n  {err}")
            return None
    return release["manifest"]


def rules(path: pathlib.Path):
    """The `rules` of a Role template, which must hold no template logic (operator/tests/chart.rs)."""
    text = path.read_text()
    start = text.find("\nrules:")
    if start < 0 or "{{" in text[start:]:
        return None
    return yaml.safe_load(text[start + 1:])["rules"]


def check(chart: pathlib.Path, manifest: str, values: dict, label: str) -> list[str]:
    problems = []
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    kinds = {}
    for doc in docs:
        meta = doc.get("metadata") or {}
        if not (doc.get("apiVersion") and doc.get("kind") and meta.get("name")):
            problems.append(f"object without apiVersion/kind/metadata.name: {str(doc)[:120]}")
            continue
        kinds.setdefault(doc["kind"], []).append(doc)
    expected = set(ALWAYS)
    if values["metrics"]["serviceMonitor"]["enabled"]:
        expected.add("ServiceMonitor")
    if values["prometheusRule"]["enabled"]:
        expected.add("PrometheusRule")
    if values["dashboards"]["enabled"]:
        expected.add("ConfigMap")
    if values["defaultBaseline"]["enabled"]:
        expected.add("MeshBaseline")
    if not values["podDisruptionBudget"]["enabled"]:
        expected.discard("PodDisruptionBudget")
    if not values["networkPolicy"]["enabled"]:
        expected.discard("NetworkPolicy")
    if not values["serviceAccount"]["create"]:
        expected.discard("ServiceAccount")
    if set(kinds) != expected:
        problems.append(f"kinds {sorted(kinds)}, expected {sorted(expected)}")
    for kind, template in (("ClusterRole", "clusterrole.yaml"), ("Role", "role.yaml")):
        rendered = [d.get("rules") for d in kinds.get(kind, [])]
        static = rules(chart / "templates" / template)
        if static is None:
            problems.append(f"templates/{template}: no `rules:` or template logic inside it")
        elif rendered != [static]:
            problems.append(f"rendered {kind} rules differ from templates/{template}")
    for doc in kinds.get("ConfigMap", []):
        if doc["metadata"]["labels"].get("grafana_dashboard") != "1":
            problems.append("dashboard ConfigMap without label grafana_dashboard=1")
    for problem in problems:
        print(f"  {problem}")
    print(f"helm template ({label}): {'FAILED' if problems else 'ok'}, {len(docs)} objects")
    return problems


async def main(chart: pathlib.Path, out: pathlib.Path) -> int:
    if not (chart / "Chart.yaml").is_file():
        print(f"{chart}: not a chart (no Chart.yaml)", file=sys.stderr)
        return 2
    if os.environ.get("HELM_DRIVER") != "memory":
        print("HELM_DRIVER=memory must be set before helm-sdkpy loads", file=sys.stderr)
        return 2
    print(f"helm-sdkpy {helm_sdkpy.__version__}")
    out.mkdir(parents=True, exist_ok=True)
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    sets = [("defaults", {})]
    for values_file in sorted((chart / "ci").glob("*-values.yaml")):
        sets.append((values_file.stem, yaml.safe_load(values_file.read_text()) or {}))

    failures = 0
    for label, override in sets:
        if override:
            with tempfile.TemporaryDirectory() as tmp:
                copy_dir = pathlib.Path(tmp) / chart.name
                shutil.copytree(chart, copy_dir)
                (copy_dir / "values.yaml").write_text(yaml.safe_dump(merge(defaults, override), sort_keys=False))
                failures += await lint(copy_dir, label)
        else:
            failures += await lint(chart, label)
        manifest = await render(chart, override, label)
        if manifest is None:
            failures += 1
            continue
        target = out / f"{chart.name}-{label}.yaml"
        target.write_text(manifest)
        print(f"  rendered to {target}")
        failures += len(check(chart, manifest, merge(defaults, override), label))
    print(f"helm: {'FAILED' if failures else 'ok'} ({len(sets)} values sets)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve())))
