"""A loopback stand-in for the Kubernetes API, just enough for `helm install` to render a chart.

helm-sdkpy has no `template` action. Its `Install` renders the chart with Helm's own engine and
then talks to a cluster: /version, discovery, CRD creation (waiting for Established), a GET per
object (404: nothing to adopt) and a POST per object. This server answers those from memory on
127.0.0.1 and keeps what was posted; the release (with HELM_DRIVER=memory) holds the manifest.
It validates nothing: Helm's lint, the values schema and the Rust tests do that.
"""

import datetime
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (group, version, plural, kind, namespaced) the chart may create.
RESOURCES = [
    ("", "v1", "namespaces", "Namespace", False),
    ("", "v1", "serviceaccounts", "ServiceAccount", True),
    ("", "v1", "services", "Service", True),
    ("", "v1", "configmaps", "ConfigMap", True),
    ("", "v1", "secrets", "Secret", True),
    ("apps", "v1", "deployments", "Deployment", True),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
    ("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor", True),
    ("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule", True),
    ("meshbaseline.dev", "v1alpha1", "meshbaselines", "MeshBaseline", False),
]
PLURALS = {r[2] for r in RESOURCES}


def _not_found(what):
    return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                 "code": 404, "message": f"{what} not found"}


def _discovery(path):
    if path == "/version":
        return 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}
    if path == "/api":
        return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if path == "/apis":
        groups = {}
        for group, version, *_ in RESOURCES:
            if group:
                groups.setdefault(group, version)
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
            for g, v in groups.items()]}
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                 "groupVersion": f"{group}/{version}" if group else version,
                 "resources": [
                     {"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
                      "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                     for g, v, plural, kind, namespaced in RESOURCES if (g, v) == (group, version)]}


class FakeKubeApi:
    """`with FakeKubeApi() as api:` serves on 127.0.0.1 (a free port) until the block ends."""

    def __init__(self):
        self.objects = {}  # request path of the object -> object
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0].rstrip("/")
                answer = _discovery(path)
                if answer is None:
                    with api.lock:
                        if path in api.objects:
                            answer = 200, api.objects[path]
                        elif path.rsplit("/", 1)[-1] in PLURALS:
                            items = [o for k, o in api.objects.items() if k.rsplit("/", 1)[0] == path]
                            answer = 200, {"kind": "List", "apiVersion": "v1",
                                           "metadata": {"resourceVersion": "1"}, "items": items}
                        else:
                            answer = _not_found(path)
                self.reply(*answer)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                meta = body.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta["resourceVersion"] = "1"
                meta["creationTimestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                if body.get("kind") == "CustomResourceDefinition":
                    body["status"] = {"acceptedNames": body["spec"]["names"], "conditions": [
                        {"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}
                path = self.path.split("?")[0].rstrip("/") + "/" + meta.get("name", "")
                with api.lock:
                    api.objects[path] = body
                self.reply(201, body)

            def do_PATCH(self):
                self.reply(*_not_found(self.path))

            do_PUT = do_PATCH
            do_DELETE = do_PATCH

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def kubeconfig(self, namespace):
        host, port = self.server.server_address[:2]
        return (
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: fake, cluster: {{server: 'http://{host}:{port}'}}}}]\n"
            f"contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {namespace}}}}}]\n"
            "users: [{name: fake, user: {token: fake}}]\ncurrent-context: fake\n"
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        return False
