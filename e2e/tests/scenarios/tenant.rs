//! Tenant objects weaker than the baseline: reported, reverted, and fights reported.

use serde_json::json;

use crate::fixtures::*;

const PA: (&str, &str) = ("security.istio.io/v1", "PeerAuthentication");
const DR: (&str, &str) = ("networking.istio.io/v1", "DestinationRule");

async fn wait_finding(env: &Env, baseline: &str, rule: &str, ns: &str, name: &str) -> TestResult {
    env.cluster
        .wait_for(&format!("finding {rule} on {ns}/{name}"), WAIT, || async {
            let mb = env.baseline(baseline).await?;
            Ok(mb.filter(|mb| has_finding(mb, rule, ns, name)).map(|_| ()))
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_peer_authentication_is_reported() -> TestResult {
    let env = Env::start("pa-report").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("pa-report", "pa-report", json!({})))
        .await?;
    env.wait_converged("pa-report").await?;
    env.apply(&mk_peer_authentication(&a, "loose", "PERMISSIVE"))
        .await?;
    wait_finding(&env, "pa-report", "MB101", &a, "loose").await?;
    // Report mode leaves the tenant's object alone.
    let pa = env
        .cluster
        .get(PA.0, PA.1, Some(&a), "loose")
        .await?
        .ok_or("PA gone")?;
    assert_eq!(
        serde_json::to_value(&pa)?["spec"]["mtls"]["mode"],
        "PERMISSIVE"
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_peer_authentication_is_reverted_until_a_fight() -> TestResult {
    let env = Env::start("pa-revert").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline(
        "pa-revert",
        "pa-revert",
        json!({"tenantOverrides": "Revert"}),
    ))
    .await?;
    env.wait_converged("pa-revert").await?;
    env.apply(&mk_peer_authentication(&a, "loose", "PERMISSIVE"))
        .await?;
    let mode = |v: &serde_json::Value| v["spec"]["mtls"]["mode"].as_str().map(String::from);
    let get = || async {
        let o = env.cluster.get(PA.0, PA.1, Some(&a), "loose").await?;
        Ok::<_, meshbaseline_e2e::HarnessError>(o.map(|o| serde_json::to_value(&o)).transpose()?)
    };
    env.cluster
        .wait_for("PERMISSIVE reverted", WAIT, || async {
            Ok(get()
                .await?
                .filter(|v| mode(v).as_deref() == Some("STRICT")))
        })
        .await?;

    // Another manager (a GitOps tool) keeps setting it back.
    let mark = env.cluster.gate().mark();
    env.cluster
        .apply_as(
            "argocd",
            &mk_peer_authentication(&a, "loose", "PERMISSIVE"),
            true,
        )
        .await?;
    let mb = env
        .wait_condition("pa-revert", "Degraded", "True", |r, m| {
            r == "TenantOverrideFight" || m.contains("argocd")
        })
        .await?;
    let degraded = mb
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded");
    assert!(degraded.is_some_and(|c| c.message.contains("argocd")));
    // A barrier: a new namespace's objects mean at least one more full reconcile happened.
    env.add_namespace("b").await?;
    env.wait_converged("pa-revert").await?;
    let v = get().await?.ok_or("PA gone")?;
    assert_eq!(mode(&v).as_deref(), Some("PERMISSIVE"));
    let log = env.cluster.gate().requests_since(mark);
    let writes = log
        .count(|r| r.verb.is_write() && r.resource == "peerauthentications" && r.name == "loose");
    assert_eq!(writes, 0, "the operator kept reverting: {log:?}");
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_tls_is_reverted_and_load_balancer_survives() -> TestResult {
    let env = Env::start("dr").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("dr", "dr", json!({}))).await?;
    env.wait_converged("dr").await?;
    let host = format!("reviews.{a}.svc.cluster.local");
    env.apply(&mk_destination_rule(&a, "reviews", &host, "DISABLE"))
        .await?;
    wait_finding(&env, "dr", "MB201", &a, "reviews").await?;

    // Revert mode: only tls.mode changes.
    env.apply(&mk_baseline(
        "dr",
        "dr",
        json!({"tenantOverrides": "Revert"}),
    ))
    .await?;
    let reverted = env
        .cluster
        .wait_for("tls.mode reverted", WAIT, || async {
            let o = env.cluster.get(DR.0, DR.1, Some(&a), "reviews").await?;
            let v = o.map(|o| serde_json::to_value(&o)).transpose()?;
            Ok(v.filter(|v| v["spec"]["trafficPolicy"]["tls"]["mode"] != "DISABLE"))
        })
        .await?;
    let tp = &reverted["spec"]["trafficPolicy"];
    assert_eq!(tp["tls"]["mode"], "ISTIO_MUTUAL");
    assert_eq!(tp["loadBalancer"], json!({"simple": "LEAST_REQUEST"}));
    assert_eq!(
        tp["connectionPool"],
        json!({"tcp": {"maxConnections": 100}})
    );
    assert_eq!(reverted["spec"]["host"], host.as_str());
    assert_eq!(
        managers_of(&reverted, "f:loadBalancer"),
        vec!["tenant".to_string()]
    );
    assert_eq!(
        managers_of(&reverted, "f:mode"),
        vec!["meshbaseline".to_string()]
    );
    env.finish().await
}

/// A tenant's DestinationRule for all of a namespace's hosts replaces ours (two rules for one
/// host would make Istio drop one): ours goes when the tenant's comes, and comes back when it
/// goes. The compiler reads tenants' DestinationRules, so such an event recompiles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_rule_for_the_namespace_hosts_replaces_ours() -> TestResult {
    let env = Env::start("dr-cover").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("dr-cover", "dr-cover", json!({})))
        .await?;
    env.wait_converged("dr-cover").await?;
    let ours = || async {
        env.cluster
            .get(DR.0, DR.1, Some(&a), "meshbaseline-mtls")
            .await
    };
    assert!(ours().await?.is_some());
    let host = format!("*.{a}.svc.cluster.local");
    env.apply(&mk_destination_rule(&a, "team-tls", &host, "ISTIO_MUTUAL"))
        .await?;
    env.cluster
        .wait_for("our DestinationRule gone", WAIT, || async {
            Ok(ours().await?.is_none().then_some(()))
        })
        .await?;
    env.wait_converged("dr-cover").await?;
    env.cluster.delete(DR.0, DR.1, Some(&a), "team-tls").await?;
    env.cluster
        .wait_for("our DestinationRule back", WAIT, || async {
            Ok(ours().await?.map(|_| ()))
        })
        .await?;
    env.wait_converged("dr-cover").await?;
    env.finish().await
}
