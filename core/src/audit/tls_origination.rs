//! MB202: TLS origination to a host outside the mesh without verifying the server, the
//! analogue of Istio's IST0128 (destination level) and IST0129 (port level) in
//! `pkg/config/analysis/analyzers/destinationrule/ca-certificates.go`.
//!
//! As that analyzer: a `tls.mode` SIMPLE or MUTUAL without `caCertificates`, unless a
//! `credentialName` is set on a rule with a workloadSelector (sidecars read credentialName only
//! then). Current proxies then verify against their system CA bundle (Istio sets
//! `CaCertificatePath: system` in `cluster_tls.go`), so any publicly trusted certificate for the
//! name passes, and older proxies verify nothing. `insecureSkipVerify: true` turns verification
//! off whatever else is set. In-mesh hosts are MB201's (ISTIO_MUTUAL is expected there).

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule, Severity};
use crate::api::istio::{ClientTlsSettings, DestinationRule};
use crate::compile::hosts;
use crate::object::Kind;

const KIND: &str = "DestinationRule";

/// Whether a resolved host is a Service of the cluster (so not an origination to the outside).
fn in_cluster(host: &str, domain: &str) -> bool {
    let suffix = format!(".svc.{domain}");
    host == "*" || host.ends_with(&suffix) || host.ends_with(".svc")
}

/// What is wrong with one TLS setting, if anything, and how bad.
fn problem(tls: &ClientTlsSettings, selector: bool) -> Option<(String, Severity)> {
    let mode = tls.mode.as_deref()?;
    if mode != "SIMPLE" && mode != "MUTUAL" {
        return None;
    }
    if tls.insecure_skip_verify == Some(true) {
        return Some((
            format!("tls.mode {mode} with insecureSkipVerify: true, so the proxy accepts any certificate the server shows"),
            Severity::High,
        ));
    }
    let ca = tls
        .ca_certificates
        .as_deref()
        .is_some_and(|c| !c.is_empty());
    let credential = tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        && selector;
    if ca || credential {
        return None;
    }
    let why = if tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
    {
        "credentialName without a workloadSelector (sidecars read it only with one) and no caCertificates"
    } else {
        "no caCertificates (or credentialName)"
    };
    Some((
        format!("tls.mode {mode} with {why}, so the server is checked only against the proxy's system CA bundle (older proxies check nothing)"),
        Severity::Medium,
    ))
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let domain = &ctx.baseline.cluster_domain;
    for dr in &ctx.inventory.destination_rules {
        if ctx.is_ours(Kind::DestinationRule, &dr.metadata) {
            continue;
        }
        let (ns, name) = (ns_of(&dr.metadata), name_of(&dr.metadata));
        let reported = if ns == ctx.root() {
            ctx.owns_root()
        } else {
            ctx.applies(ns, Rule::MB202)
        };
        if !reported {
            continue;
        }
        let host = hosts::resolve(&dr.spec.host, ns, domain);
        if in_cluster(&host, domain) {
            continue;
        }
        if let Some(f) = finding(ctx, dr, ns, name, &host) {
            out.push(f);
        }
    }
}

fn finding(ctx: &Ctx, dr: &DestinationRule, ns: &str, name: &str, host: &str) -> Option<Finding> {
    let selector = dr.spec.workload_selector.is_some();
    let policy = dr.spec.traffic_policy.as_ref()?;
    let mut problems: Vec<(String, Severity)> = Vec::new();
    if let Some((p, s)) = policy.tls.as_ref().and_then(|t| problem(t, selector)) {
        problems.push((format!("trafficPolicy: {p}"), s));
    }
    for (i, pl) in policy.port_level_settings.iter().enumerate() {
        if let Some((p, s)) = pl.tls.as_ref().and_then(|t| problem(t, selector)) {
            let port = pl
                .port
                .as_ref()
                .and_then(|p| p.number)
                .map_or("?".to_string(), |n| n.to_string());
            problems.push((format!("portLevelSettings[{i}] (port {port}): {p}"), s));
        }
    }
    let severity = problems.iter().map(|(_, s)| *s).max()?;
    let mut f = ctx.finding(
        Rule::MB202,
        KIND,
        Some(ns),
        name,
        format!(
            "DestinationRule {ns}/{name} originates TLS to {host}, outside the mesh, without pinning who may answer: {}. {}",
            problems.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join("; "),
            if severity == Severity::High {
                "Whoever can answer for that name on the path (a DNS or network attacker) can read and change the traffic."
            } else {
                "Any certificate for the name from any CA the proxy trusts is accepted."
            }
        ),
        "Set caCertificates to the CA that issues the server's certificate (or credentialName, with a workloadSelector, to a Secret holding it), add subjectAltNames or sni for the expected name, and remove insecureSkipVerify.".to_string(),
    );
    f.severity = severity;
    Some(f)
}
