"""Helm lint and render of a chart, through helm-sdkpy (Helm v4's Go library).

For the chart's defaults and for each ci/*-values.yaml:
- lint: helm-sdkpy's Lint takes a chart path only, so each values file is deep-merged into a
  temporary copy of values.yaml. Lint renders every template, checks the YAML and the metadata,
  and validates the values against values.schema.json. Warnings and errors fail.
- install: the chart is installed for real into the API server of MESHBASELINE_HELM_KUBECONFIG
  (the local control plane of e2e/testenv in CI) and the release's manifest is written to <out>/meshbaseline-<values>.yaml.
  Every object of the manifest must then exist on the server; the defaults are upgraded
  (replicas, dashboards) and checked again; each release is uninstalled and its objects must
  be gone. The API server validates everything: the CRD (structural schema, CEL cost), the
  MeshBaseline of defaultBaseline against it, RBAC objects, the Deployment.
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

import subprocess

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


KUBECTL = os.environ.get("MESHBASELINE_KUBECTL", "kubectl")
# The Prometheus Operator's kinds, as stand-ins with open schemas: its CRDs are not shipped by
# any package registry this CI reaches. The ServiceMonitor and PrometheusRule of the all-on
# values are stored as written; their own schemas are not checked here.
MONITORING_CRDS = pathlib.Path(__file__).with_name("monitoring-crds.yaml")


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def prepare_cluster(kubeconfig: str) -> None:
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(MONITORING_CRDS))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(MONITORING_CRDS))
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-",
            stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n")


def present(kubeconfig: str, manifest: str) -> list[str]:
    """`kind/name` of every object of the manifest found on the server."""
    out = kubectl(kubeconfig, "get", "--ignore-not-found", "-o", "name", "-f", "-", stdin=manifest)
    return sorted(line for line in out.splitlines() if line)


async def render(chart: pathlib.Path, values: dict, label: str, kubeconfig: str) -> str | None:
    config = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=kubeconfig)
    try:
        release = await helm_sdkpy.Install(config).run(
            RELEASE, str(chart), values=values or None, create_namespace=True, wait=False, timeout=60)
        manifest = release["manifest"]
        docs = [d for d in yaml.safe_load_all(manifest) if d]
        found = present(kubeconfig, manifest)
        if len(found) != len(docs):
            print(f"helm install ({label}): FAILED, {len(found)} of {len(docs)} objects on the server: {found}")
            return None
        if label == "defaults":
            upgraded = merge(values, {"replicaCount": 3, "dashboards": {"enabled": True}})
            after = await helm_sdkpy.Upgrade(config).run(RELEASE, str(chart), values=upgraded, wait=False, timeout=60)
            replicas = kubectl(kubeconfig, "-n", NAMESPACE, "get", "deployment", RELEASE,
                               "-o", "jsonpath={.spec.replicas}")
            dashboards = kubectl(kubeconfig, "get", "configmap", "-A", "-l", "grafana_dashboard=1", "-o", "name")
            if replicas != "3" or not dashboards.strip():
                print(f"helm upgrade ({label}): FAILED, replicas {replicas!r}, dashboards {dashboards!r}")
                return None
            removed = after.get("manifest") or ""
        else:
            removed = manifest
        await helm_sdkpy.Uninstall(config).run(RELEASE, wait=False, timeout=60)
        left = present(kubeconfig, removed) + present(kubeconfig, manifest)
        if left:
            print(f"helm uninstall ({label}): FAILED, still on the server: {left}")
            return None
        print(f"helm install, uninstall ({label}): ok, {len(docs)} objects created and removed")
    except (helm_sdkpy.HelmError, RuntimeError) as err:
        print(f"helm install ({label}): FAILED\n  {err}")
        return None
    return manifest


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
    kubeconfig = os.environ.get("MESHBASELINE_HELM_KUBECONFIG")
    if not kubeconfig:
        print("MESHBASELINE_HELM_KUBECONFIG must name a kubeconfig: the chart is installed for real "
              "(target/testenv/bin/testenv run -- env MESHBASELINE_HELM_KUBECONFIG=\\$KUBECONFIG .ci/helm-lint.sh)",
              file=sys.stderr)
        return 2
    prepare_cluster(kubeconfig)
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
        manifest = await render(chart, override, label, kubeconfig)
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
