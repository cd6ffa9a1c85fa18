//! A tenant deletes or edits generated objects: restored, with an event and a metric.

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
