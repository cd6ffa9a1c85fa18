//! The rows: a request, what it must get with the baseline enforced and with it gone, and
//! the gap it is about. Configuration reaches the proxies asynchronously, so each request is
//! repeated (every 250 ms, for at most 20 s) until it gets what is expected; the last outcome
//! is what the row shows when it never does.

use std::time::Duration;

use meshbaseline_e2e::istio::{Error, Mesh, Outcome};

use super::{eventually, Addresses};

/// The series the documented Prometheus query reads, as the sidecar exposes it on :15090
/// (Istio's bootstrap turns the RBAC filter's shadow statistics into these labels).
pub const PROMETHEUS_SHADOW: &str = r#"envoy_http_rbac{authz_dry_run_action="deny",authz_dry_run_result="denied",http_conn_manager_prefix="inbound_0.0.0.0_8080"}"#;

/// Envoy names it `<listener prefix>.rbac.istio_dry_run_deny_.shadow_denied`.
const SHADOW_DENIED: &str = r"istio_dry_run_deny_\.shadow_denied";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// HTTP 200 from the application.
    Allowed,
    /// Anything else: a 403 from RBAC, a reset, a 502 from the blackhole.
    Refused,
}

impl Expect {
    pub fn name(self) -> &'static str {
        match self {
            Expect::Allowed => "allowed",
            Expect::Refused => "refused",
        }
    }

    fn met_by(self, o: &Outcome) -> bool {
        o.ok() == (self == Expect::Allowed)
    }
}

/// What one row showed in one phase.
struct Shown {
    row: &'static str,
    phase: &'static str,
    request: String,
    expected: Expect,
    got: Outcome,
}

pub struct Table {
    pub(super) at: Addresses,
    shown: Vec<Shown>,
    notes: Vec<String>,
    failures: Vec<String>,
}

const TENANT_ALLOW: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-callers, namespace: shop}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/checkout/sa/client]}}]
  - to: [{operation: {ports: ["8080"]}}]
"#;

const TENANT_DISABLE_DR: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: books-plaintext, namespace: checkout}
spec: {host: books.ledger.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}
"#;

impl Table {
    pub fn new(at: Addresses) -> Table {
        Table {
            at,
            shown: Vec::new(),
            notes: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub(super) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub(super) fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }

    /// Waits (30 s at most) for the baseline's status to list finding `rule` on `at`
    /// (`namespace/name`).
    pub(super) async fn expect_finding(
        &mut self,
        mesh: &Mesh,
        rule: &str,
        at: &str,
    ) -> Result<(), Error> {
        let path = "{range .status.findings[*]}{.rule} {.namespace}/{.name}{\"\\n\"}{end}";
        let want = format!("{rule} {at}");
        let found = eventually(Duration::from_secs(30), || async {
            let list = mesh
                .kubectl
                .get("", "mb/default", path)?
                .unwrap_or_default();
            Ok(list.lines().any(|l| l.trim() == want).then_some(()))
        })
        .await?;
        match found {
            Some(()) => self.notes.push(format!(
                "finding {rule} on {at}: listed in the baseline's status"
            )),
            None => self.failures.push(format!(
                "finding {rule} on {at}: not in the baseline's status"
            )),
        }
        Ok(())
    }

    /// Sends `url` from pod `from` until it gets `expected` or the time is up; records it.
    pub(super) async fn row(
        &mut self,
        mesh: &Mesh,
        row: &'static str,
        phase: &'static str,
        (from, url): (&str, String),
        expected: Expect,
    ) -> Result<Outcome, Error> {
        let pod = mesh.get(from);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let last = loop {
            let o = pod.get(&url).await;
            if expected.met_by(&o) || std::time::Instant::now() >= deadline {
                break o;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        self.shown.push(Shown {
            row,
            phase,
            request: format!("{from} -> {url}"),
            expected,
            got: last.clone(),
        });
        Ok(last)
    }

    pub(super) fn gateway_url(&self, path: &str) -> String {
        format!("http://{}:8080{path}", self.at.gateway_pod)
    }

    pub(super) fn web(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.at.web)
    }

    fn web_pod(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.at.web_pod)
    }

    /// The rows the baseline refuses, as `want` says for this phase.
    async fn refused_rows(
        &mut self,
        mesh: &Mesh,
        phase: &'static str,
        want: Expect,
    ) -> Result<(), Error> {
        let g1 = ("outside/plain", self.web_pod(8080, "/g1"));
        self.row(mesh, "G1 plaintext to a declared port", phase, g1, want)
            .await?;
        let g2 = ("outside/plain", self.web_pod(9090, "/g2"));
        self.row(
            mesh,
            "G2 plaintext to a port no Service declares",
            phase,
            g2,
            want,
        )
        .await?;
        let deny = ("sandbox/client", self.web(8443, "/admin"));
        self.row(mesh, "denyRules: sandbox to 8443", phase, deny, want)
            .await?;
        let gateway = ("outside/plain", self.gateway_url("/shop"));
        self.row(
            mesh,
            "ingress gateway in a protected namespace: external plaintext client",
            phase,
            gateway,
            want,
        )
        .await?;
        let out = (
            "checkout/client",
            format!("http://{}:8080/out", self.at.external),
        );
        self.row(
            mesh,
            "REGISTRY_ONLY: a host in no registry",
            phase,
            out,
            want,
        )
        .await?;
        Ok(())
    }

    /// The allowed rows, which hold in every phase.
    async fn allowed_rows(&mut self, mesh: &Mesh, phase: &'static str) -> Result<(), Error> {
        let mtls = ("checkout/client", self.web(8080, "/mtls"));
        let o = self
            .row(
                mesh,
                "mTLS from a meshed client",
                phase,
                mtls,
                Expect::Allowed,
            )
            .await?;
        let want = "spiffe://cluster.local/ns/checkout/sa/client";
        if o.ok() && o.peer() != Some(want) {
            self.failures.push(format!(
                "{phase}: the server saw peer {:?}, not {want}",
                o.peer()
            ));
        }
        let other = ("sandbox/client", self.web(8080, "/ok"));
        self.row(
            mesh,
            "denyRules: sandbox to 8080",
            phase,
            other,
            Expect::Allowed,
        )
        .await?;
        let admin = ("checkout/client", self.web(8443, "/admin"));
        self.row(
            mesh,
            "denyRules: checkout to 8443",
            phase,
            admin,
            Expect::Allowed,
        )
        .await?;
        let registered = ("checkout/client", self.web(8080, "/in"));
        self.row(
            mesh,
            "REGISTRY_ONLY: a registered host",
            phase,
            registered,
            Expect::Allowed,
        )
        .await?;
        Ok(())
    }

    pub async fn run_enforced(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        self.allowed_rows(mesh, "Enforce").await?;
        self.refused_rows(mesh, "Enforce", Expect::Refused).await?;
        self.g3(mesh, "Enforce", Expect::Refused).await?;
        self.g9(mesh).await?;
        self.run_istio_semantics(mesh).await
    }

    pub async fn run_unprotected(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        self.allowed_rows(mesh, "Audit").await?;
        self.refused_rows(mesh, "Audit", Expect::Allowed).await?;
        self.g3(mesh, "Audit", Expect::Allowed).await
    }

    pub async fn run_enforced_again(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        self.allowed_rows(mesh, "Enforce again").await?;
        self.refused_rows(mesh, "Enforce again", Expect::Refused)
            .await?;
        self.dry_run_annotation_is_drift(mesh).await
    }

    /// `istio.io/dry-run: "true"` added to the enforcing DENY switches it off without touching
    /// its spec (the admission guard is off in this suite, as after a tenant got past it). The
    /// operator owns the annotation and repairs it; plaintext is refused again.
    async fn dry_run_annotation_is_drift(&mut self, mesh: &Mesh) -> Result<(), Error> {
        mesh.kubectl.run(&[
            "-n",
            "shop",
            "annotate",
            "--overwrite",
            "authorizationpolicies.security.istio.io/meshbaseline-deny-plaintext",
            "istio.io/dry-run=true",
        ])?;
        let path = "{.status.conditions[?(@.type==\"DriftDetected\")].message}";
        let repaired = eventually(Duration::from_secs(30), || async {
            let message = mesh
                .kubectl
                .get("", "mb/default", path)?
                .unwrap_or_default();
            let back = super::annotation_of(mesh, "shop", "meshbaseline-deny-plaintext")?;
            Ok((message.contains("shop/meshbaseline-deny-plaintext")
                && back.as_deref() == Some("false"))
            .then_some(message))
        })
        .await?;
        match repaired {
            Some(m) => self.notes.push(format!("istio.io/dry-run=true on shop/meshbaseline-deny-plaintext: repaired ({m})")),
            None => self.failures.push(
                "istio.io/dry-run=true on shop/meshbaseline-deny-plaintext was not repaired within 30s".into(),
            ),
        }
        let plain = ("outside/plain", self.web_pod(8080, "/after-annotation"));
        self.row(
            mesh,
            "G1 plaintext after a tenant's dry-run annotation",
            "Enforce again",
            plain,
            Expect::Refused,
        )
        .await?;
        Ok(())
    }

    /// G3: a tenant ALLOW that names a principal in one rule and, in another, admits port 8080
    /// from anyone. ALLOW rules add up; only the DENY keeps plaintext out.
    async fn g3(&mut self, mesh: &Mesh, phase: &'static str, want: Expect) -> Result<(), Error> {
        mesh.kubectl.apply(TENANT_ALLOW)?;
        let named = ("checkout/client", self.web(8080, "/g3"));
        self.row(
            mesh,
            "G3 tenant ALLOW: the principal it names",
            phase,
            named,
            Expect::Allowed,
        )
        .await?;
        let plain = ("outside/plain", self.web_pod(8080, "/g3"));
        self.row(mesh, "G3 tenant ALLOW: plaintext", phase, plain, want)
            .await?;
        mesh.kubectl
            .run(&["-n", "shop", "delete", "authorizationpolicy", "web-callers"])?;
        Ok(())
    }

    /// G9: a tenant DestinationRule with tls DISABLE for a STRICT service; the audit's MB201;
    /// with only the generated ISTIO_MUTUAL DestinationRule the call works.
    async fn g9(&mut self, mesh: &Mesh) -> Result<(), Error> {
        let url = format!("http://{}:8080/g9", self.at.books);
        mesh.kubectl.apply(TENANT_DISABLE_DR)?;
        let call = ("checkout/client", url.clone());
        self.row(
            mesh,
            "G9 tenant DestinationRule tls DISABLE, STRICT server",
            "Enforce",
            call,
            Expect::Refused,
        )
        .await?;
        self.expect_finding(mesh, "MB201", "checkout/books-plaintext")
            .await?;
        mesh.kubectl.run(&[
            "-n",
            "checkout",
            "delete",
            "destinationrule",
            "books-plaintext",
        ])?;
        let call = ("checkout/client", url);
        self.row(
            mesh,
            "G9 only meshbaseline-mtls (ISTIO_MUTUAL), STRICT server",
            "Enforce",
            call,
            Expect::Allowed,
        )
        .await?;
        Ok(())
    }

    /// The dry run: plaintext passes, and the server's sidecar counts a shadow denial for it.
    /// Plaintext passes without any policy too, so the request is repeated until the sidecar
    /// has the dry-run policy and counts it.
    pub async fn run_dry_run(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        let url = self.web_pod(8080, "/dry-run");
        let (plain, web) = (mesh.get("outside/plain"), mesh.get("shop/web"));
        let before = web.stat_sum(SHADOW_DENIED).await?;
        let mut last = Outcome::Failed("never sent".into());
        let mut after = before;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            last = plain.get(&url).await;
            after = web.stat_sum(SHADOW_DENIED).await?;
            if last.ok() && after > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.shown.push(Shown {
            row: "G1 plaintext under the dry-run DENY",
            phase: "Audit dry run",
            request: format!("outside/plain -> {url}"),
            expected: Expect::Allowed,
            got: last.clone(),
        });
        if after > before {
            self.notes.push(format!(
                "dry run: shop/web's sidecar counted {} shadow denials ({before} -> {after})",
                after - before
            ));
        } else {
            self.failures.push(format!(
                "dry run: shop/web's sidecar counted no shadow denial; its RBAC statistics:\n{}",
                web.stats_matching("rbac").await?
            ));
        }
        // What Prometheus scrapes from the sidecar (port 15090), for the documented query.
        let scraped = web.prometheus_matching(PROMETHEUS_SHADOW).await?;
        if scraped.iter().any(|l| !l.ends_with(" 0")) {
            self.notes.push(format!(
                "Prometheus scrapes from shop/web: {}",
                scraped.join("; ")
            ));
        } else {
            self.failures.push(format!(
                "dry run: no non-zero {PROMETHEUS_SHADOW} on shop/web's :15090/stats/prometheus: {scraped:?}"
            ));
        }
        self.allowed_rows(mesh, "Audit dry run").await
    }

    pub fn render(&self) -> String {
        let mut out =
            String::from("| phase | row | request | expected | got |\n|---|---|---|---|---|\n");
        for s in &self.shown {
            let mark = if s.expected.met_by(&s.got) {
                ""
            } else {
                " **FAIL**"
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {}{mark} |\n",
                s.phase,
                s.row,
                s.request,
                s.expected.name(),
                s.got.to_string().replace('|', "/").replace('\n', " ")
            ));
        }
        for n in self.notes.iter().chain(&self.failures) {
            out.push_str(&format!("\n{n}"));
        }
        out
    }

    pub fn verdict(&self) -> Result<(), Error> {
        let failed: Vec<String> = self
            .shown
            .iter()
            .filter(|s| !s.expected.met_by(&s.got))
            .map(|s| {
                format!(
                    "{} / {}: expected {}, got {}",
                    s.phase,
                    s.row,
                    s.expected.name(),
                    s.got
                )
            })
            .chain(self.failures.iter().cloned())
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "{} rows failed:\n{}",
                failed.len(),
                failed.join("\n")
            )))
        }
    }
}

/// Waits until the baseline's Ready condition has `reason`.
pub async fn wait_reason(mesh: &Mesh, reason: &str) -> Result<(), Error> {
    let path = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    eventually(Duration::from_secs(60), || async {
        Ok(mesh
            .kubectl
            .get("", "mb/default", path)?
            .filter(|r| r == reason)
            .map(drop))
    })
    .await?
    .ok_or_else(|| {
        Error::Setup(format!(
            "the baseline's Ready reason did not become {reason} within 60s"
        ))
    })
}
