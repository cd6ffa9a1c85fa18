//! Issue 6: the chart's RBAC grants exactly what the operator uses. The main scenario runs
//! with leader election on (Revert, drift repair with events, deletes, status, the CRD watch),
//! every request of the operator's client is mapped to the RBAC check a real API server makes,
//! and the set is compared with the chart's ClusterRole and Role.

#[path = "../../../operator/tests/support/chart_rbac.rs"]
#[allow(dead_code)]
mod chart_rbac;

use std::collections::BTreeSet;

use chart_rbac::{chart_dir, request_grant, ChartRbac, Grant};
use meshbaseline_e2e::{RequestRecord, Verb};
use serde_json::json;

use crate::fixtures::*;

const LEASE_NAMESPACE: &str = "default";

/// The request line a real client sent for a recorded request (versions do not matter to
/// RBAC). Server-side apply is a PATCH; the simulator records it as `Apply`.
fn request_line(r: &RequestRecord) -> (&'static str, String) {
    let base = if r.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/v1", r.group)
    };
    let ns = if r.namespace.is_empty() {
        String::new()
    } else {
        format!("/namespaces/{}", r.namespace)
    };
    let (resource, sub) = match r.resource.split_once('/') {
        Some((res, sub)) => (res, Some(sub)),
        None => (r.resource.as_str(), None),
    };
    let mut path = format!("{base}{ns}/{resource}");
    if !r.name.is_empty() {
        path.push('/');
        path.push_str(&r.name);
    }
    if let Some(sub) = sub {
        path.push('/');
        path.push_str(sub);
    }
    let method = match r.verb {
        Verb::Get | Verb::List => "GET",
        Verb::Watch => {
            path.push_str("?watch=true");
            "GET"
        }
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Apply | Verb::MergePatch | Verb::StrategicPatch | Verb::JsonPatch => "PATCH",
        Verb::Delete | Verb::DeleteCollection => "DELETE",
    };
    (method, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_what_the_operator_uses() -> TestResult {
    let cluster = meshbaseline_e2e::Cluster::start().await?;
    if cluster
        .sim_or_skip("chart_rbac_grants_exactly_what_the_operator_uses")
        .is_none()
    {
        return Ok(());
    }
    Env::seed_root(&cluster).await?;
    let config = meshbaseline::controller::Config {
        leader_election: true,
        lease_namespace: LEASE_NAMESPACE.into(),
        // Renewals (patch) within the scenario's few seconds.
        lease_duration: std::time::Duration::from_secs(3),
        lease_renew: std::time::Duration::from_millis(200),
        lease_margin: std::time::Duration::from_millis(500),
        ..test_config()
    };
    let op = Operator::start_with(&cluster, config);
    let env = Env {
        cluster,
        op,
        scenario: "rbac".into(),
    };
    let sim = env.cluster.sim()?;
    let a = env.add_namespace("a").await?;
    let b = env.add_namespace("b").await?;
    env.apply(&mk_peer_authentication(&a, "loose", "PERMISSIVE"))
        .await?;
    env.apply(&mk_baseline(
        "rbac",
        "rbac",
        json!({"tenantOverrides": "Revert"}),
    ))
    .await?;
    env.wait_converged("rbac").await?;
    env.cluster
        .wait_for("PERMISSIVE reverted", WAIT, || async {
            let pa = env
                .cluster
                .get(
                    "security.istio.io/v1",
                    "PeerAuthentication",
                    Some(&a),
                    "loose",
                )
                .await?;
            Ok(pa
                .filter(|p| p.data["spec"]["mtls"]["mode"] == "STRICT")
                .map(|_| ()))
        })
        .await?;
    // The same drift twice: the second event is a repeat, recorded as a series (patch).
    for round in 1..=2 {
        env.cluster
            .delete(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                Some(&b),
                "meshbaseline-baseline",
            )
            .await?;
        env.wait_converged("rbac").await?;
        let metric = ("meshbaseline_drift_repairs_total", "kind=\"NetworkPolicy\"");
        env.cluster
            .wait_for("repair counted", WAIT, || async {
                Ok((env.op.metric(metric.0, metric.1) >= f64::from(round)).then_some(()))
            })
            .await?;
    }
    // A tenant edit of each kind: repaired by replace (update).
    for (api, kind, ns, name) in [
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            b.as_str(),
            "meshbaseline-baseline",
        ),
        (
            "security.istio.io/v1",
            "AuthorizationPolicy",
            b.as_str(),
            "meshbaseline-deny-plaintext",
        ),
        (
            "networking.istio.io/v1",
            "DestinationRule",
            b.as_str(),
            "meshbaseline-mtls",
        ),
        (
            "security.istio.io/v1",
            "PeerAuthentication",
            ROOT,
            "meshbaseline-mesh-mtls",
        ),
        (
            "networking.istio.io/v1",
            "Sidecar",
            ROOT,
            "meshbaseline-registry-only",
        ),
    ] {
        let patch = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}});
        env.cluster
            .merge_patch(api, kind, Some(ns), name, &patch)
            .await?;
        env.wait_converged("rbac").await?;
    }
    // The root namespace moves: every root object is deleted from the old one.
    let root = env.add_namespace("root").await?;
    env.apply(&mk_baseline(
        "rbac",
        "rbac",
        json!({"tenantOverrides": "Revert", "rootNamespace": root}),
    ))
    .await?;
    env.wait_converged("rbac").await?;
    // A namespace leaving: its objects are deleted by the operator.
    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &b,
            &json!({"metadata": {"labels": {SCENARIO_LABEL: null}}}),
        )
        .await?;
    env.wait_converged("rbac").await?;
    env.wait_condition("rbac", "Ready", "True", |_, _| true)
        .await?;
    env.cluster
        .wait_for("events recorded", WAIT, || async {
            let log = sim.requests();
            Ok((log.count(|r| r.resource == "events" && r.verb.is_write()) >= 3).then_some(()))
        })
        .await?;
    let log = sim.requests();
    env.finish().await?;

    let rbac = ChartRbac::read(&chart_dir())?;
    let mut used_cluster = BTreeSet::new();
    let mut used_namespaced = BTreeSet::new();
    for r in log.records() {
        let (method, path) = request_line(r);
        let Some((grant, ns)) = request_grant(method, &path)? else {
            continue;
        };
        // Leases are the only namespaced grant (the Role in the operator's namespace).
        if grant.resource == "leases" {
            assert_eq!(ns.as_deref(), Some(LEASE_NAMESPACE), "{method} {path}");
            used_namespaced.insert(grant);
        } else {
            used_cluster.insert(grant);
        }
    }
    let missing: Vec<String> = used_cluster
        .difference(&rbac.cluster)
        .chain(used_namespaced.difference(&rbac.namespaced))
        .map(Grant::to_string)
        .collect();
    assert!(missing.is_empty(), "used but not granted: {missing:?}");

    // Grants a real API server checks that the simulator cannot show in its request log.
    let mut explained: BTreeSet<Grant> = BTreeSet::new();
    // Server-side apply creating an object needs `create` as well as `patch` on a real API
    // server; the simulator records the apply as a patch.
    for (group, resource) in [
        ("networking.k8s.io", "networkpolicies"),
        ("security.istio.io", "peerauthentications"),
        ("security.istio.io", "authorizationpolicies"),
        ("networking.istio.io", "destinationrules"),
        ("networking.istio.io", "sidecars"),
    ] {
        explained.insert(Grant::new(group, resource, "create"));
    }
    let unused: Vec<String> = rbac
        .cluster
        .difference(&used_cluster)
        .chain(rbac.namespaced.difference(&used_namespaced))
        .filter(|g| !explained.contains(*g))
        .map(Grant::to_string)
        .collect();
    assert!(unused.is_empty(), "granted but never used: {unused:?}");
    Ok(())
}
