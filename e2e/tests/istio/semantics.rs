//! Rows for what reading Istio's source found about the generated objects: an HTTP deny rule
//! on a TCP port, a pod that narrows its inbound capture, a tenant Sidecar that replaces the
//! root REGISTRY_ONLY one. Each shows the data plane and the finding or refusal that now
//! reports or prevents it, and each has a request that goes the other way without the fix.

use meshbaseline_e2e::istio::{Error, Mesh};

use super::rows::{Expect, Table};

/// A deny rule with a path, scoped to the HTTP port as the API now requires.
const PATH_RULE: &str = r#"{"spec":{"authorization":{"denyRules":[
  {"name":"sandbox-admin","from":[{"namespaces":["sandbox"]}],"to":[{"ports":["8443"]}]},
  {"name":"sandbox-admin-paths","from":[{"namespaces":["sandbox"]}],"to":[{"paths":["/admin/*"],"ports":["8080"]}]}]}}}"#;

/// The same rule without `ports`, which the API server now refuses.
const PATH_RULE_WITHOUT_PORTS: &str = r#"{"spec":{"authorization":{"denyRules":[
  {"name":"sandbox-admin","from":[{"namespaces":["sandbox"]}],"to":[{"ports":["8443"]}]},
  {"name":"sandbox-admin-paths","from":[{"namespaces":["sandbox"]}],"to":[{"paths":["/admin/*"]}]}]}}}"#;

/// What the operator generated from that rule before: a root DENY with paths and no ports.
const UNSCOPED_PATH_POLICY: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: unscoped-paths, namespace: istio-system}
spec:
  action: DENY
  rules:
  - from: [{source: {namespaces: [sandbox]}}]
    to: [{operation: {paths: ["/admin/*"]}}]
"#;

/// A tenant Sidecar that says nothing about outbound traffic.
const TENANT_SIDECAR: &str = r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: checkout}
spec:
  egress:
  - hosts: ["./*", "shop/*", "istio-system/*"]
"#;

const TENANT_SIDECAR_REGISTRY_ONLY: &str = r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: checkout}
spec:
  egress:
  - hosts: ["./*", "shop/*", "istio-system/*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;

/// A classic ingress gateway in a protected namespace, routing to shop/web.
pub const GATEWAY: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: storefront}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: storefront}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - route: [{destination: {host: web.shop.svc.cluster.local, port: {number: 8080}}}]
"#;

/// examples/baseline.yaml's exemption, and storefront's from mtls.
const EXEMPT_STOREFRONT: &str = r#"{"spec":{"exemptions":[
  {"namespace":"legacy-billing","controls":["mtls"],"reason":"Batch clients without sidecars until the Q3 migration, ticket OPS-1234","expires":"2030-09-30T00:00:00Z"},
  {"namespace":"storefront","controls":["mtls"],"reason":"ingress gateway serving external clients","expires":"2030-09-30T00:00:00Z"}]}}"#;
const EXEMPTIONS_BACK: &str = r#"{"spec":{"exemptions":[
  {"namespace":"legacy-billing","controls":["mtls"],"reason":"Batch clients without sidecars until the Q3 migration, ticket OPS-1234","expires":"2030-09-30T00:00:00Z"}]}}"#;

impl Table {
    pub async fn run_istio_semantics(&mut self, mesh: &Mesh) -> Result<(), Error> {
        self.gateway_in_protected_namespace(mesh).await?;
        self.http_deny_rule_on_tcp(mesh).await?;
        self.include_inbound_ports(mesh).await?;
        self.tenant_sidecar(mesh).await
    }

    /// The selector-less DENY attaches to the gateway too: its external clients have no
    /// principal and are refused. Istio has no way to leave a gateway out, so it is reported
    /// (MB304); exempting the namespace from mtls lets the gateway serve.
    async fn gateway_in_protected_namespace(&mut self, mesh: &Mesh) -> Result<(), Error> {
        self.expect_finding(mesh, "MB304", "storefront/ingress")
            .await?;
        mesh.kubectl.run(&[
            "patch",
            "mb",
            "default",
            "--type=merge",
            "-p",
            EXEMPT_STOREFRONT,
        ])?;
        let call = ("outside/plain", self.gateway_url("/exempt"));
        let o = self
            .row(
                mesh,
                "gateway in a namespace exempt from mtls: external plaintext client",
                "Enforce",
                call,
                Expect::Allowed,
            )
            .await?;
        if o.ok() && o.peer() != Some("spiffe://cluster.local/ns/storefront/sa/ingress") {
            self.fail(format!(
                "the gateway did not call shop/web with its own identity: {o}"
            ));
        }
        mesh.kubectl.run(&[
            "patch",
            "mb",
            "default",
            "--type=merge",
            "-p",
            EXEMPTIONS_BACK,
        ])?;
        let call = ("outside/plain", self.gateway_url("/protected-again"));
        self.row(
            mesh,
            "gateway in a protected namespace, exemption removed",
            "Enforce",
            call,
            Expect::Refused,
        )
        .await?;
        Ok(())
    }

    /// A deny rule with `paths` cuts only HTTP requests to those paths on the ports it names.
    /// Without `ports` (refused now), Istio drops the paths on TCP chains and cuts every
    /// connection from the source.
    async fn http_deny_rule_on_tcp(&mut self, mesh: &Mesh) -> Result<(), Error> {
        let phase = "Enforce";
        match mesh.kubectl.run(&[
            "patch",
            "mb",
            "default",
            "--type=merge",
            "-p",
            PATH_RULE_WITHOUT_PORTS,
        ]) {
            Err(Error::Kubectl(e)) if e.contains("must name ports") => {
                self.note("paths without ports: refused by the API server (CEL)".into())
            }
            other => self.fail(format!(
                "a deny rule with paths and no ports was not refused: {other:?}"
            )),
        }
        mesh.kubectl
            .run(&["patch", "mb", "default", "--type=merge", "-p", PATH_RULE])?;
        let admin = ("sandbox/client", self.web(8080, "/admin/x"));
        self.row(
            mesh,
            "deny rule paths+ports: the path",
            phase,
            admin,
            Expect::Refused,
        )
        .await?;
        let other = ("sandbox/client", self.web(8080, "/public"));
        self.row(
            mesh,
            "deny rule paths+ports: another path",
            phase,
            other,
            Expect::Allowed,
        )
        .await?;
        let tcp = ("sandbox/client", self.web(9000, "/admin/x"));
        self.row(
            mesh,
            "deny rule paths+ports: a TCP port",
            phase,
            tcp.clone(),
            Expect::Allowed,
        )
        .await?;
        // What the unscoped rule did: on the TCP port, every connection from sandbox is cut.
        mesh.kubectl.apply(UNSCOPED_PATH_POLICY)?;
        self.row(
            mesh,
            "deny rule paths, no ports (before): a TCP port",
            phase,
            tcp,
            Expect::Refused,
        )
        .await?;
        mesh.kubectl.run(&[
            "-n",
            "istio-system",
            "delete",
            "authorizationpolicy",
            "unscoped-paths",
        ])?;
        Ok(())
    }

    /// `includeInboundPorts: "8080"`: the other ports are not captured and take plaintext past
    /// STRICT and the DENY policy alike. Reported as MB506.
    async fn include_inbound_ports(&mut self, mesh: &Mesh) -> Result<(), Error> {
        let phase = "Enforce";
        let pod = self.at.legacy_pod.clone();
        let captured = ("outside/plain", format!("http://{pod}:8080/captured"));
        self.row(
            mesh,
            "includeInboundPorts 8080: plaintext to 8080",
            phase,
            captured,
            Expect::Refused,
        )
        .await?;
        let uncaptured = ("outside/plain", format!("http://{pod}:9090/uncaptured"));
        self.row(
            mesh,
            "includeInboundPorts 8080: plaintext to 9090 (not captured)",
            phase,
            uncaptured,
            Expect::Allowed,
        )
        .await?;
        self.expect_finding(mesh, "MB506", "shop/legacy").await
    }

    /// A tenant Sidecar without `outboundTrafficPolicy` replaces the root REGISTRY_ONLY one for
    /// its namespace and falls back to the mesh default (ALLOW_ANY). Reported as MB403.
    async fn tenant_sidecar(&mut self, mesh: &Mesh) -> Result<(), Error> {
        let phase = "Enforce";
        let out = format!("http://{}:8080/out", self.at.external);
        mesh.kubectl.apply(TENANT_SIDECAR)?;
        let call = ("checkout/client", out.clone());
        self.row(
            mesh,
            "tenant Sidecar without outboundTrafficPolicy: a host in no registry",
            phase,
            call,
            Expect::Allowed,
        )
        .await?;
        self.expect_finding(mesh, "MB403", "checkout/default")
            .await?;
        mesh.kubectl.apply(TENANT_SIDECAR_REGISTRY_ONLY)?;
        let call = ("checkout/client", out);
        self.row(
            mesh,
            "tenant Sidecar with REGISTRY_ONLY: a host in no registry",
            phase,
            call,
            Expect::Refused,
        )
        .await?;
        mesh.kubectl
            .run(&["-n", "checkout", "delete", "sidecar", "default"])?;
        Ok(())
    }
}
