//! Ownership cannot be faked: a tenant object carrying our label, our name prefix or
//! an ownerReference to the baseline is audited like any tenant object and reported as MB801;
//! the operator never writes a tenant's object (except the one field Revert mode owns), and
//! never deletes one, counted by the simulator's request accounting.

use std::time::Duration;

use meshbaseline_e2e::Verb;
use serde_json::{json, Value};

use crate::fixtures::*;

async fn wait_findings(env: &Env, baseline: &str, want: &[(&str, &str, &str)]) -> TestResult {
    env.cluster
        .wait_for(&format!("findings {want:?}"), WAIT, || async {
            let mb = env.baseline(baseline).await?;
            Ok(mb
                .filter(|mb| want.iter().all(|(r, ns, n)| has_finding(mb, r, ns, n)))
                .map(|_| ()))
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonating_tenant_objects_are_audited_and_never_touched() -> TestResult {
    let scenario = "own";
    let env = Env::start(scenario).await?;
    let sim = env.cluster.gate();
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline(scenario, scenario, json!({})))
        .await?;
    env.wait_converged(scenario).await?;
    let uid = env
        .baseline(scenario)
        .await?
        .and_then(|b| b.metadata.uid)
        .ok_or("baseline uid")?;
    let mark = sim.mark();
    // A tenant's DISABLE labelled as ours.
    let mut fake_pa = mk_peer_authentication(&a, "fake-disable", "DISABLE");
    fake_pa["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "meshbaseline",
        "meshbaseline.dev/baseline": scenario});
    env.apply(&fake_pa).await?;
    // A NetworkPolicy with our prefix and a copied ownerReference naming the baseline's uid.
    let forged_np = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "meshbaseline-extra", "namespace": a,
            "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                "name": scenario, "uid": uid, "controller": true}]},
        "spec": {"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]},
    });
    env.apply(&forged_np).await?;
    // An AuthorizationPolicy the same way: the operator keeps its own AuthorizationPolicies
    // untyped (the audit skips them), so this one is parsed only once found not to be ours.
    let forged_ap = json!({
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "meshbaseline-allow-all", "namespace": a,
            "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                "name": scenario, "uid": uid, "controller": true}]},
        "spec": {"action": "ALLOW", "rules": [{}]},
    });
    env.apply(&forged_ap).await?;
    // A DestinationRule the same way, with our labels too: the operator keeps the labels of
    // such objects apart from their typed copy, and gives them back once one is not ours.
    let forged_dr = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "meshbaseline-tls-off", "namespace": a,
            "labels": {"app.kubernetes.io/managed-by": "meshbaseline",
                "meshbaseline.dev/baseline": scenario},
            "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                "name": scenario, "uid": uid, "controller": true}]},
        "spec": {"host": format!("web.{a}.svc.cluster.local"),
            "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
    });
    env.apply(&forged_dr).await?;
    // A plain tenant object next to them.
    let plain = json!({
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "allow-web", "namespace": a},
        "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/x/sa/y"]}}]}]},
    });
    env.apply(&plain).await?;
    wait_findings(
        &env,
        scenario,
        &[
            ("MB101", &a, "fake-disable"),
            ("MB801", &a, "fake-disable"),
            ("MB401", &a, "meshbaseline-extra"),
            ("MB801", &a, "meshbaseline-extra"),
            ("MB301", &a, "meshbaseline-allow-all"),
            ("MB801", &a, "meshbaseline-allow-all"),
            ("MB201", &a, "meshbaseline-tls-off"),
            ("MB801", &a, "meshbaseline-tls-off"),
        ],
    )
    .await?;
    let status = env.baseline(scenario).await?.and_then(|b| b.status);
    let claim = status
        .iter()
        .flat_map(|s| &s.findings)
        .find(|f| f.rule == "MB801" && f.name == "meshbaseline-tls-off")
        .ok_or("MB801 for the DestinationRule")?;
    assert!(
        claim
            .message
            .contains("the label app.kubernetes.io/managed-by=meshbaseline"),
        "{}",
        claim.message
    );
    let tenant_names = [
        "fake-disable",
        "meshbaseline-extra",
        "meshbaseline-allow-all",
        "meshbaseline-tls-off",
        "allow-web",
    ];
    let touched = |since: u64| {
        sim.requests_since(since).count(|r| {
            r.verb.is_write()
                && r.field_manager == "meshbaseline"
                && r.namespace == a
                && tenant_names.contains(&r.name.as_str())
        })
    };
    assert_eq!(touched(mark), 0, "Report mode wrote a tenant object");

    // Revert mode: the single weak field of the fake PeerAuthentication, by apply, and nothing
    // else of any tenant object.
    let mark = sim.mark();
    env.apply(&mk_baseline(
        scenario,
        scenario,
        json!({"tenantOverrides": "Revert"}),
    ))
    .await?;
    env.cluster
        .wait_for("fake PeerAuthentication reverted", WAIT, || async {
            let pa = env
                .cluster
                .get(
                    "security.istio.io/v1",
                    "PeerAuthentication",
                    Some(&a),
                    "fake-disable",
                )
                .await?;
            Ok(pa
                .filter(|p| p.data["spec"]["mtls"]["mode"] == "STRICT")
                .map(|_| ()))
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = sim.requests_since(mark);
    let writes: Vec<_> = log
        .records()
        .iter()
        .filter(|r| r.verb.is_write() && r.field_manager == "meshbaseline" && r.namespace == a)
        .filter(|r| tenant_names.contains(&r.name.as_str()))
        .collect();
    // The forged DestinationRule is a tenant's too: its TLS mode is reverted like any other.
    assert!(
        writes.iter().all(
            |r| ["fake-disable", "meshbaseline-tls-off"].contains(&r.name.as_str())
                && r.verb == Verb::Apply
        ),
        "{writes:?}"
    );
    assert_eq!(writes.len(), 2, "{writes:?}");
    // It carries our labels, which the final check of generated objects goes by.
    assert!(
        env.cluster
            .delete(
                "networking.istio.io/v1",
                "DestinationRule",
                Some(&a),
                "meshbaseline-tls-off"
            )
            .await?
    );

    // The namespace leaves: our objects are deleted, the forged one is not.
    let mark = sim.mark();
    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &a,
            &json!({"metadata": {"labels": {SCENARIO_LABEL: null}}}),
        )
        .await?;
    env.wait_converged(scenario).await?;
    let np = env
        .cluster
        .get(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&a),
            "meshbaseline-extra",
        )
        .await?;
    assert!(np.is_some(), "the forged NetworkPolicy was deleted");
    let gone = env
        .cluster
        .get(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&a),
            "meshbaseline-baseline",
        )
        .await?;
    assert!(gone.is_none(), "the generated NetworkPolicy stayed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(touched(mark), 0, "a tenant object was written or deleted");
    let spec: Value = serde_json::to_value(np)?;
    assert_eq!(spec["spec"]["egress"], json!([{}]));
    env.finish().await
}
