//! The rows: a request, what it must get with the baseline enforced and with it gone, and
//! the gap it is about. Configuration reaches the proxies asynchronously, so each request is
//! repeated (at most 40 times in 20 s) until it gets what is expected; the last outcome is
//! what the row shows when it never does.

use std::time::Duration;

use meshbaseline_e2e::istio::{Error, Mesh, Outcome};

use super::eventually;

/// The series the documented Prometheus query reads, as the sidecar exposes it on :15090
/// (Istio's bootstrap turns the RBAC filter's shadow statistics into these labels).
pub const PROMETHEUS_SHADOW: &str = r#"envoy_http_rbac{authz_dry_run_action="deny",authz_dry_run_result="denied",http_conn_manager_prefix="inbound_0.0.0.0_8080"}"#;

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
    web: String,
    books: String,
    shown: Vec<Shown>,
    notes: Vec<String>,
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

const TENANT_DISABLE_DR: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
metadata: {name: books-plaintext, namespace: checkout}\n\
spec: {host: books.ledger.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}\n";

impl Table {
    pub fn new(web: &str, books: &str) -> Table {
        Table {
            web: web.into(),
            books: books.into(),
            shown: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Sends `url` from pod `from` until it gets `expected` or the time is up; records it.
    fn row(
        &mut self,
        mesh: &Mesh,
        row: &'static str,
        phase: &'static str,
        from: &str,
        url: &str,
        expected: Expect,
    ) -> Result<Outcome, Error> {
        let pod = mesh.get(from);
        let mut last = None;
        let met = eventually(Duration::from_secs(20), || {
            let o = pod.get(url);
            let met = expected.met_by(&o);
            last = Some(o.clone());
            Ok(met.then_some(o))
        })?;
        let got = met
            .or(last)
            .unwrap_or(Outcome::Failed(-1, "never sent".into()));
        self.shown.push(Shown {
            row,
            phase,
            request: format!("{from} -> {url}"),
            expected,
            got: got.clone(),
        });
        Ok(got)
    }

    fn plaintext_rows(
        &mut self,
        mesh: &Mesh,
        phase: &'static str,
        want: Expect,
    ) -> Result<(), Error> {
        let web = self.web.clone();
        self.row(
            mesh,
            "G1 plaintext, declared port",
            phase,
            "outside/plain",
            &format!("http://{}:8080/g1", super::WEB),
            want,
        )?;
        self.row(
            mesh,
            "G2 plaintext, undeclared port",
            phase,
            "outside/plain",
            &format!("http://{}:9090/g2", super::WEB),
            want,
        )?;
        self.row(
            mesh,
            "denyRules: sandbox to 8443",
            phase,
            "sandbox/client",
            &format!("http://{web}:8443/admin"),
            want,
        )?;
        self.row(
            mesh,
            "REGISTRY_ONLY: unregistered host",
            phase,
            "checkout/client",
            &format!("http://{}:8080/out", super::EXTERNAL),
            want,
        )?;
        Ok(())
    }

    /// The allowed rows, which hold in every phase.
    fn allowed_rows(&mut self, mesh: &Mesh, phase: &'static str) -> Result<(), Error> {
        let web = self.web.clone();
        let o = self.row(
            mesh,
            "mTLS, meshed client",
            phase,
            "checkout/client",
            &format!("http://{web}:8080/mtls"),
            Expect::Allowed,
        )?;
        if o.peer() != Some("spiffe://cluster.local/ns/checkout/sa/client") {
            self.notes.push(format!(
                "{phase}: the server saw peer {:?}, not checkout/client's SPIFFE id",
                o.peer()
            ));
        }
        self.row(
            mesh,
            "denyRules: sandbox to 8080",
            phase,
            "sandbox/client",
            &format!("http://{web}:8080/ok"),
            Expect::Allowed,
        )?;
        self.row(
            mesh,
            "denyRules: checkout to 8443",
            phase,
            "checkout/client",
            &format!("http://{web}:8443/admin"),
            Expect::Allowed,
        )?;
        self.row(
            mesh,
            "REGISTRY_ONLY: registered host",
            phase,
            "checkout/client",
            &format!("http://{web}:8080/in"),
            Expect::Allowed,
        )?;
        Ok(())
    }

    pub fn run_enforced(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        self.allowed_rows(mesh, "Enforce")?;
        self.plaintext_rows(mesh, "Enforce", Expect::Refused)?;
        self.g3(mesh, "Enforce", Expect::Refused)?;
        self.g9(mesh)
    }

    pub fn run_unprotected(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        self.allowed_rows(mesh, "Audit")?;
        self.plaintext_rows(mesh, "Audit", Expect::Allowed)?;
        self.g3(mesh, "Audit", Expect::Allowed)
    }

    pub fn run_enforced_again(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        self.allowed_rows(mesh, "Enforce again")?;
        self.plaintext_rows(mesh, "Enforce again", Expect::Refused)
    }

    /// G3: a tenant ALLOW that names a principal in one rule and, in another, admits port 8080
    /// from anyone. ALLOW rules add up; only the DENY keeps plaintext out.
    fn g3(&mut self, mesh: &Mesh, phase: &'static str, want: Expect) -> Result<(), Error> {
        mesh.kubectl.apply(TENANT_ALLOW)?;
        // The principal it names still gets in.
        let web = self.web.clone();
        self.row(
            mesh,
            "G3 tenant ALLOW: its principal",
            phase,
            "checkout/client",
            &format!("http://{web}:8080/g3"),
            Expect::Allowed,
        )?;
        self.row(
            mesh,
            "G3 tenant ALLOW: plaintext",
            phase,
            "outside/plain",
            &format!("http://{}:8080/g3", super::WEB),
            want,
        )?;
        mesh.kubectl
            .run(&["-n", "shop", "delete", "authorizationpolicy", "web-callers"])?;
        Ok(())
    }

    /// G9: a tenant DestinationRule with tls DISABLE for a STRICT service; the audit's MB201;
    /// with only the generated ISTIO_MUTUAL DestinationRule the call works.
    fn g9(&mut self, mesh: &Mesh) -> Result<(), Error> {
        let url = format!("http://{}:8080/g9", self.books);
        mesh.kubectl.apply(TENANT_DISABLE_DR)?;
        self.row(
            mesh,
            "G9 tenant DR tls DISABLE, STRICT server",
            "Enforce",
            "checkout/client",
            &url,
            Expect::Refused,
        )?;
        let finding = eventually(Duration::from_secs(30), || {
            let rules = mesh
                .kubectl
                .get("", "mb/default", "{.status.findings[*].rule}")?
                .unwrap_or_default();
            Ok(rules.split_whitespace().any(|r| r == "MB201").then_some(()))
        })?;
        if finding.is_none() {
            self.notes.push(
                "G9: the baseline's status has no MB201 finding for checkout/books-plaintext"
                    .into(),
            );
        }
        mesh.kubectl.run(&[
            "-n",
            "checkout",
            "delete",
            "destinationrule",
            "books-plaintext",
        ])?;
        self.row(
            mesh,
            "G9 only meshbaseline-mtls (ISTIO_MUTUAL), STRICT",
            "Enforce",
            "checkout/client",
            &url,
            Expect::Allowed,
        )?;
        Ok(())
    }

    /// The dry run: plaintext passes, and the server's sidecar counts a shadow denial for it.
    /// Plaintext passes without any policy too, so the request is repeated until the sidecar
    /// has the dry-run policy and counts it (the statistic appears with the policy).
    pub fn run_dry_run(&mut self, mesh: &mut Mesh) -> Result<(), Error> {
        // Envoy names it `<listener prefix>.rbac.istio_dry_run_deny_.shadow_denied`.
        let shadow = r"istio_dry_run_deny_\.shadow_denied";
        let url = format!("http://{}:8080/dry-run", super::WEB);
        let (plain, web) = (mesh.get("outside/plain"), mesh.get("shop/web"));
        let before = web.stat_sum(shadow)?;
        let mut last = Outcome::Failed(-1, "never sent".into());
        let counted = eventually(Duration::from_secs(30), || {
            last = plain.get(&url);
            let after = web.stat_sum(shadow)?;
            Ok((last.ok() && after > before).then_some(after))
        })?;
        self.shown.push(Shown {
            row: "G1 plaintext, dry-run DENY",
            phase: "Audit dry run",
            request: format!("outside/plain -> {url}"),
            expected: Expect::Allowed,
            got: last.clone(),
        });
        // What Prometheus scrapes from the sidecar (port 15090), for the documented query.
        let scraped = web.prometheus_matching(PROMETHEUS_SHADOW)?;
        if !scraped.iter().any(|l| !l.ends_with(" 0")) {
            self.notes.push(format!(
                "FAIL dry run: no non-zero {PROMETHEUS_SHADOW} on shop/web's :15090/stats/prometheus: {scraped:?}"
            ));
        }
        match counted {
            Some(after) => self.notes.push(format!(
                "dry run: {shadow} on shop/web's sidecar went from {before} to {after} while the plaintext request got {last}; Prometheus scrapes:\n{}",
                scraped.join("\n")
            )),
            None => self.notes.push(format!(
                "FAIL dry run: {shadow} stayed at {before} on shop/web's sidecar; its RBAC statistics:\n{}",
                web.stats_matching("rbac")?
            )),
        }
        self.allowed_rows(mesh, "Audit dry run")
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
        for n in &self.notes {
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
            .chain(
                self.notes
                    .iter()
                    .filter(|n| {
                        n.starts_with("FAIL")
                            || n.contains("no MB201")
                            || n.contains("not checkout")
                    })
                    .cloned(),
            )
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
pub fn wait_reason(mesh: &Mesh, reason: &str) -> Result<(), Error> {
    let path = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    eventually(Duration::from_secs(60), || {
        Ok(mesh
            .kubectl
            .get("", "mb/default", path)?
            .filter(|r| r == reason)
            .map(drop))
    })?
    .ok_or_else(|| {
        Error::Setup(format!(
            "the baseline's Ready reason did not become {reason} within 60s"
        ))
    })
}
