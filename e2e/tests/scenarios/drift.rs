//! A tenant deletes or edits generated objects: restored, with an event and a metric.

use std::time::Duration;

use serde_json::json;

use crate::fixtures::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_network_policy_is_restored() -> TestResult {
    let env = Env::start("drift-np").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("drift-np", "drift-np", json!({})))
        .await?;
    env.wait_converged("drift-np").await?;

    let np = (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "meshbaseline-baseline",
    );
    assert!(env.cluster.delete(np.0, np.1, Some(&a), np.2).await?);
    env.wait_converged("drift-np").await?;
    let metric = ("meshbaseline_drift_repairs_total", "kind=\"NetworkPolicy\"");
    env.cluster
        .wait_for("drift repair metric", WAIT, || async {
            Ok((env.op.metric(metric.0, metric.1) >= 1.0).then_some(()))
        })
        .await?;
    let note = format!("restored NetworkPolicy {a}/meshbaseline-baseline");
    env.cluster
        .wait_for("DriftRepaired event", WAIT, || async {
            let evs = events(&env.cluster, "DriftRepaired").await?;
            Ok(evs.iter().any(|e| e["note"] == note.as_str()).then_some(()))
        })
        .await?;
    env.wait_condition("drift-np", "Ready", "True", |_, _| true)
        .await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_authorization_policy_rule_is_restored() -> TestResult {
    let env = Env::start("drift-ap").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("drift-ap", "drift-ap", json!({})))
        .await?;
    env.wait_converged("drift-ap").await?;

    // The tenant opens the policy up: a merge patch as the tenant's manager.
    let edited = env
        .cluster
        .merge_patch(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            Some(&a),
            "meshbaseline-deny-plaintext",
            &json!({"spec": {"rules": [{"from": [{"source": {"notPrincipals": ["cluster.local/ns/x/sa/y"]}}]}]}}),
        )
        .await?;
    assert_eq!(
        managers_of(&serde_json::to_value(&edited)?, "f:rules"),
        vec!["tenant".to_string()]
    );
    let objects = env.wait_converged("drift-ap").await?;
    let restored = &objects[&(
        "AuthorizationPolicy".to_string(),
        a.clone(),
        "meshbaseline-deny-plaintext".to_string(),
    )];
    assert_eq!(
        restored["spec"]["rules"],
        json!([{"from": [{"source": {"notPrincipals": ["*"]}}]}])
    );
    let metric = (
        "meshbaseline_drift_repairs_total",
        "kind=\"AuthorizationPolicy\"",
    );
    env.cluster
        .wait_for("drift repair metric", WAIT, || async {
            Ok((env.op.metric(metric.0, metric.1) >= 1.0).then_some(()))
        })
        .await?;
    let note = format!("restored AuthorizationPolicy {a}/meshbaseline-deny-plaintext");
    env.cluster
        .wait_for("DriftRepaired event", WAIT, || async {
            let evs = events(&env.cluster, "DriftRepaired").await?;
            Ok(evs.iter().any(|e| e["note"] == note.as_str()).then_some(()))
        })
        .await?;
    let mb = env
        .wait_condition("drift-ap", "Ready", "True", |_, _| true)
        .await?;
    assert!(mb.status.unwrap_or_default().drift_repairs >= 1);
    env.finish().await
}

/// A long plan (every namespace's NetworkPolicy changes, at 5 requests a second) is written in
/// passes of a bounded time; a repair goes first in the next pass instead of waiting for the
/// whole plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_plan_does_not_hold_up_a_repair() -> TestResult {
    let cluster = meshbaseline_e2e::Cluster::start().await?;
    Env::seed_root(&cluster).await?;
    let config = meshbaseline::controller::Config {
        qps: 5,
        burst: 1,
        write_batch: Duration::from_millis(300),
        ..test_config()
    };
    let op = Operator::start_with(&cluster, config);
    let env = Env {
        cluster,
        op,
        scenario: "batches".into(),
    };
    let mut namespaces = Vec::new();
    for i in 0..12 {
        namespaces.push(env.add_namespace(&format!("n{i:02}")).await?);
    }
    env.apply(&mk_baseline("batches", "batches", json!({})))
        .await?;
    env.wait_converged_within("batches", Duration::from_secs(90))
        .await?;

    let np = (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "meshbaseline-baseline",
    );
    let cidr = "198.51.100.0/24";
    let updated = || async {
        let mut n = 0;
        for ns in &namespaces {
            let obj = env.cluster.get(np.0, np.1, Some(ns), np.2).await?;
            let text = obj.map(|o| serde_json::to_string(&o)).transpose()?;
            n += usize::from(text.is_some_and(|t| t.contains(cidr)));
        }
        Ok::<usize, meshbaseline_e2e::HarnessError>(n)
    };
    env.apply(&mk_baseline(
        "batches",
        "batches",
        json!({"network": {"egress": {"allowCidrs": [cidr]}}}),
    ))
    .await?;
    env.cluster
        .wait_for("the first NetworkPolicy updated", WAIT, || async {
            Ok((updated().await? > 0).then_some(()))
        })
        .await?;
    // The mesh-wide PeerAuthentication sorts after every NetworkPolicy, and the new spec
    // leaves it as it was: its repair goes first in the next pass.
    let pa = (
        "security.istio.io/v1",
        "PeerAuthentication",
        "meshbaseline-mesh-mtls",
    );
    assert!(env.cluster.delete(pa.0, pa.1, Some(ROOT), pa.2).await?);
    env.cluster
        .wait_for("the PeerAuthentication restored", WAIT, || async {
            let back = env.cluster.get(pa.0, pa.1, Some(ROOT), pa.2).await?;
            Ok(back.map(|_| ()))
        })
        .await?;
    let done = updated().await?;
    assert!(
        done < namespaces.len(),
        "the repair waited for the whole plan ({done} of {} NetworkPolicies updated first)",
        namespaces.len()
    );
    env.wait_converged_within("batches", Duration::from_secs(60))
        .await?;
    env.finish().await
}
