//! Scope and lifecycle: namespaces joining and leaving, exemptions expiring, baseline
//! deletion, Audit mode, invalid specs, overlapping baselines, Istio CRDs arriving late.

use std::time::Duration;

use serde_json::json;

use crate::fixtures::*;

fn has_ns(objects: &Objects, ns: &str) -> bool {
    objects.keys().any(|(_, n, _)| n == ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_gains_and_loses_the_label() -> TestResult {
    let env = Env::start("label").await?;
    let a = env.add_namespace("a").await?;
    let late = env.ns("late");
    env.apply(&mk_namespace(&late, None)).await?;
    env.apply(&mk_baseline("label", "label", json!({}))).await?;
    let objects = env.wait_converged("label").await?;
    assert!(has_ns(&objects, &a) && !has_ns(&objects, &late));

    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &late,
            &json!({"metadata": {"labels": {SCENARIO_LABEL: "label"}}}),
        )
        .await?;
    let objects = env.wait_converged("label").await?;
    assert_eq!(objects.keys().filter(|(_, n, _)| *n == late).count(), 3);

    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &a,
            &json!({"metadata": {"labels": {SCENARIO_LABEL: null}}}),
        )
        .await?;
    let objects = env.wait_converged("label").await?;
    assert!(!has_ns(&objects, &a) && has_ns(&objects, &late));
    // The status follows the objects; wait for the count rather than the first Ready.
    env.cluster
        .wait_for("one protected namespace in status", WAIT, || async {
            let mb = env.baseline("label").await?;
            Ok(mb
                .and_then(|m| m.status)
                .filter(|s| s.namespaces.protected == 1)
                .map(|_| ()))
        })
        .await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemption_expires_without_polling() -> TestResult {
    let env = Env::start("exempt").await?;
    let a = env.add_namespace("a").await?;
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    let expires = jiff::Timestamp::from_second(expires.as_second() + 1)?;
    let spec = json!({"exemptions": [{
        "namespace": a, "controls": ["network"], "reason": "e2e", "expires": expires.to_string()
    }]});
    env.apply(&mk_baseline("exempt", "exempt", spec)).await?;
    let objects = env.wait_converged("exempt").await?;
    let np = (
        "NetworkPolicy".to_string(),
        a.clone(),
        "meshbaseline-baseline".to_string(),
    );
    assert!(
        !objects.contains_key(&np),
        "exempt namespace has a NetworkPolicy"
    );
    let mb = env
        .wait_condition("exempt", "Ready", "True", |_, _| true)
        .await?;
    assert_eq!(mb.status.unwrap_or_default().namespaces.exempt, 1);

    // Nothing changes in the cluster: only the requeue at the expiry brings the policy.
    env.cluster
        .wait_for(
            "NetworkPolicy after the expiry",
            Duration::from_secs(15),
            || async {
                let objects = env.generated("exempt").await?;
                Ok(objects.contains_key(&np).then_some(()))
            },
        )
        .await?;
    assert!(jiff::Timestamp::now() >= expires);
    env.wait_converged("exempt").await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_baseline_garbage_collects_its_objects() -> TestResult {
    let env = Env::start("gc").await?;
    env.add_namespace("a").await?;
    env.apply(&mk_baseline("gc", "gc", json!({}))).await?;
    assert!(!env.wait_converged("gc").await?.is_empty());
    env.cluster
        .delete(MB_API, "MeshBaseline", None, "gc")
        .await?;
    env.cluster
        .wait_for("generated objects gone", WAIT, || async {
            Ok(env.generated("gc").await?.is_empty().then_some(()))
        })
        .await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_writes_only_status() -> TestResult {
    let cluster = meshbaseline_e2e::Cluster::start().await?;
    Env::seed_root(&cluster).await?;
    let mark = cluster.gate().mark();
    let op = Operator::start(&cluster);
    let env = Env {
        cluster,
        op,
        scenario: "audit".into(),
    };
    let a = env.add_namespace("a").await?;
    env.apply(&mk_peer_authentication(&a, "loose", "DISABLE"))
        .await?;
    env.apply(&mk_baseline(
        "audit",
        "audit",
        json!({"mode": "Audit", "tenantOverrides": "Revert"}),
    ))
    .await?;
    env.wait_condition("audit", "Ready", "True", |r, _| r == "AuditOnly")
        .await?;
    env.cluster
        .wait_for("the PeerAuthentication finding", WAIT, || async {
            let mb = env.baseline("audit").await?;
            let found = mb.and_then(|mb| mb.status).is_some_and(|s| {
                s.findings
                    .iter()
                    .any(|f| f.rule == "MB101" && f.name == "loose")
            });
            Ok(found.then_some(()))
        })
        .await?;
    assert!(env.generated("audit").await?.is_empty());
    let log = env.cluster.gate().requests_since(mark);
    // A SelfSubjectReview at start-up asks who the operator is; it stores nothing.
    let other = log.count(|r| {
        r.verb.is_write()
            && r.resource != "meshbaselines/status"
            && r.resource != "selfsubjectreviews"
    });
    assert_eq!(
        other,
        0,
        "writes besides status: {:?}",
        log.by_verb_resource()
    );
    assert!(log.count(|r| r.resource == "meshbaselines/status") >= 1);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_keeps_the_last_good_objects() -> TestResult {
    let env = Env::start("invalid").await?;
    env.add_namespace("a").await?;
    env.apply(&mk_baseline("invalid", "invalid", json!({})))
        .await?;
    let before = env.wait_converged("invalid").await?;
    env.wait_condition("invalid", "Ready", "True", |_, _| true)
        .await?;
    let mark = env.cluster.gate().mark();
    let bad = mk_baseline(
        "invalid",
        "invalid",
        json!({"network": {"egress": {"allowCidrs": ["10.0.0.0/33"]}}}),
    );
    // The schema cannot tell a bad CIDR from a good one: the operator must.
    env.apply(&bad).await?;
    let mb = env
        .wait_condition("invalid", "Invalid", "True", |_, m| {
            m.contains("spec.network.egress.allowCidrs[0]")
        })
        .await?;
    let ready = mb
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready");
    assert!(ready.is_some_and(|c| c.status == "False"));
    let after = env.generated("invalid").await?;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (k, v) in &before {
        assert_eq!(v["spec"], after[k]["spec"], "{k:?} changed");
    }
    let log = env.cluster.gate().requests_since(mark);
    let other = log.count(|r| {
        r.verb.is_write() && r.resource != "meshbaselines/status" && r.resource != "events"
    });
    assert_eq!(
        other,
        0,
        "writes besides status and events: {:?}",
        log.by_verb_resource()
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_baselines_older_wins() -> TestResult {
    let env = Env::start("overlap").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("overlap-a", "overlap", json!({})))
        .await?;
    env.wait_converged("overlap-a").await?;
    // Created later (same second at worst: the name breaks the tie), selects the same.
    env.apply(&mk_baseline("overlap-b", "overlap", json!({})))
        .await?;
    let mb = env
        .wait_condition("overlap-b", "Degraded", "True", |r, m| {
            r == "BaselineOverlap" && m.contains("overlap-a")
        })
        .await?;
    assert_eq!(mb.status.unwrap_or_default().namespaces.protected, 0);
    assert!(env.generated("overlap-b").await?.is_empty());
    let objects = env.wait_converged("overlap-a").await?;
    assert!(has_ns(&objects, &a));
    let older = env
        .wait_condition("overlap-a", "Degraded", "False", |_, _| true)
        .await?;
    assert_eq!(older.status.unwrap_or_default().namespaces.protected, 1);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_crds_installed_late() -> TestResult {
    // Always on the simulator: removing Istio's CRDs from a shared real cluster would delete
    // every Istio object in it. Runtime discovery is client-side behaviour either way.
    let cluster = meshbaseline_e2e::Cluster::simulated().await?;
    let sim = cluster.sim()?;
    for crd in meshbaseline_e2e::sim::istio_crds() {
        let name = crd["metadata"]["name"]
            .as_str()
            .ok_or("CRD name")?
            .to_string();
        sim.uninstall_crd(&name)?;
    }
    Env::seed_root(&cluster).await?;
    let op = Operator::start(&cluster);
    let env = Env {
        cluster,
        op,
        scenario: "late".into(),
    };
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("late", "late", json!({}))).await?;
    env.wait_condition("late", "Degraded", "True", |r, _| r == "IstioCRDsMissing")
        .await?;
    let np = (
        "NetworkPolicy".to_string(),
        a.clone(),
        "meshbaseline-baseline".to_string(),
    );
    env.cluster
        .wait_for("NetworkPolicies without Istio", WAIT, || async {
            let objects = env.generated("late").await?;
            Ok(objects.contains_key(&np).then_some(objects))
        })
        .await?;

    let sim = env.cluster.sim()?;
    for crd in meshbaseline_e2e::sim::istio_crds() {
        sim.install_crd(&crd)?;
    }
    let objects = env.wait_converged("late").await?;
    assert!(objects
        .keys()
        .any(|(k, n, _)| k == "AuthorizationPolicy" && *n == a));
    env.wait_condition("late", "Degraded", "False", |_, _| true)
        .await?;
    env.finish().await
}
