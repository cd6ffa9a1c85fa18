//! A tenant with `edit` in a protected namespace writes its own NetworkPolicies that allow all
//! egress, then all ingress. NetworkPolicies add up: what they reopen is shown on packets, and
//! the audit reports both (MB401, MB402). The Admin tier, which NetworkPolicies cannot
//! override, is generated (the cluster serves ClusterNetworkPolicy) but kube-router does not
//! enforce it: the last rows pin that, so the day the enforcer does, this test says so.

use std::time::Duration;

use serde_json::json;

use crate::mesh::{self, default_policies, Session};
use crate::rows::{self, Mode, Probe, Row, To};
use crate::{AnyError, TestResult};

use meshbaseline_e2e::dataplane::Protocol;

const O: bool = true;
const X: bool = false;

const fn row(from: &'static str, to: &'static str, probe: Probe, open: bool) -> Row {
    Row {
        from,
        to: To::Host(to),
        probe,
        open: [open; 3],
        gap: "G14",
    }
}

const WEB: &str = "payments/web";

/// What a tenant's allow-all egress policy reopens, and what it cannot.
const EGRESS_REOPENED: &[Row] = &[
    row(WEB, "internet", Probe::Udp(9000), O),
    row(WEB, "internet", Probe::Icmp, O),
    row(WEB, "internet", Probe::Tcp(443), O),
    row(WEB, "internet", Probe::Dns(Protocol::Udp), O),
    row(WEB, "nat64", Probe::Tcp(443), O),
    row(WEB, "checkout/api", Probe::Tcp(8080), O),
    row(WEB, "internet", Probe::UdpAsProxyUid(9000), O),
    // The destination's own policy still decides: istiod's (root namespace) and checkout's.
    row(WEB, "istio-system/istiod", Probe::Tcp(15010), X),
    row(WEB, "checkout/api", Probe::Udp(9000), X),
    // Ingress is another direction: still TCP only.
    row("sandbox/attacker", WEB, Probe::Udp(9000), X),
    row("sandbox/attacker", WEB, Probe::Icmp, X),
];

const INGRESS_REOPENED: &[Row] = &[
    row("sandbox/attacker", WEB, Probe::Udp(9000), O),
    row("sandbox/attacker", WEB, Probe::Icmp, O),
    row("internet", WEB, Probe::Udp(9000), O),
];

async fn check(session: &Session, table: &[Row], what: &str) -> TestResult {
    let seen = rows::run(&session.mesh, table).await?;
    println!("{what}\n{}", rows::table(&seen));
    let wrong = rows::mismatches(&seen, Mode::AllowList);
    if wrong.is_empty() {
        return Ok(());
    }
    let detail = format!("{} rows differ:\n{}", wrong.len(), wrong.join("\n"));
    Err(crate::failure(&session.mesh.node, what, detail))
}

/// Waits (up to 30 s) until the baseline's status lists `rule` for NetworkPolicy
/// payments/`name`.
async fn reported(session: &Session, rule: &str, name: &str) -> Result<(), AnyError> {
    for _ in 0..300 {
        let live = session
            .cluster
            .get("meshbaseline.dev/v1alpha1", "MeshBaseline", None, "default")
            .await?;
        let findings = live
            .map(|o| o.data["status"]["findings"].clone())
            .unwrap_or_default();
        let found = findings.as_array().into_iter().flatten().any(|f| {
            f["rule"] == rule
                && f["kind"] == "NetworkPolicy"
                && f["namespace"] == "payments"
                && f["name"] == name
        });
        if found {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no {rule} finding for NetworkPolicy payments/{name} after 30s").into())
}

fn allow_all(name: &str, direction: &str) -> serde_json::Value {
    let rules = if direction == "Egress" {
        "egress"
    } else {
        "ingress"
    };
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": "payments"},
           "spec": {"podSelector": {}, "policyTypes": [direction], rules: [{}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_allow_all_policy_reopens_its_namespace_and_is_reported() -> TestResult {
    let session = Session::start().await?;
    let result = async {
        // adminTier: Auto (the default); the cluster serves ClusterNetworkPolicy.
        let baseline = mesh::example_baseline(|_| {})?;
        mesh::apply_baseline(
            &session.cluster,
            &session.mesh,
            &baseline,
            "Enforced",
            &default_policies(),
        )
        .await?;
        let closed: Vec<Row> = EGRESS_REOPENED
            .iter()
            .map(|r| Row { open: [X; 3], ..*r })
            .collect();
        check(&session, &closed, "the baseline alone").await?;

        // The tenant (edit in payments) adds its own policy: allowed by RBAC and admission.
        session
            .cluster
            .apply_as("tenant", &allow_all("allow-all-egress", "Egress"), true)
            .await?;
        session.mesh.node.sync_policies().await?;
        check(
            &session,
            EGRESS_REOPENED,
            "a tenant's allow-all egress NetworkPolicy",
        )
        .await?;
        reported(&session, "MB401", "allow-all-egress").await?;
        reported(&session, "MB402", "allow-all-egress").await?;

        session
            .cluster
            .apply_as("tenant", &allow_all("allow-all-ingress", "Ingress"), true)
            .await?;
        session.mesh.node.sync_policies().await?;
        check(
            &session,
            INGRESS_REOPENED,
            "and its allow-all ingress NetworkPolicy",
        )
        .await?;
        reported(&session, "MB402", "allow-all-ingress").await?;

        // The Admin tier is there, and changes nothing on this enforcer.
        let admin_tier = session
            .cluster
            .get(
                "policy.networking.k8s.io/v1beta1",
                "ClusterNetworkPolicy",
                None,
                "meshbaseline-namespaces-default",
            )
            .await?;
        if admin_tier.is_none() {
            return Err("no Admin-tier ClusterNetworkPolicy generated".into());
        }
        Ok(())
    }
    .await;
    session.end(result).await
}
