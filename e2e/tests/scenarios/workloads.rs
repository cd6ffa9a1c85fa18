//! Pod events: a pod that changes only its own findings is re-audited alone. The status
//! follows it both ways, and nothing but the status (and events) is written: no generated
//! object is compared or rewritten because a pod came or went. Namespace labels that no
//! baseline reads (cost centres, GitOps bookkeeping) cost no reconcile at all.

use meshbaseline_e2e::Verb;
use serde_json::{json, Value};

use crate::fixtures::*;

fn mk_pod(ns: &str, name: &str, uid: Option<i64>) -> Value {
    let mut app = json!({"name": "app", "image": "example/app:1"});
    if let Some(uid) = uid {
        app["securityContext"] = json!({"runAsUser": uid});
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"containers": [app, {"name": "istio-proxy", "image": "example/proxyv2:1"}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_event_reaudits_that_pod_and_writes_only_status() -> TestResult {
    let env = Env::start("pods").await?;
    let a = env.add_namespace("a").await?;
    for name in ["web-1", "web-2"] {
        env.apply(&mk_pod(&a, name, None)).await?;
    }
    env.apply(&mk_baseline("pods", "pods", json!({}))).await?;
    env.wait_converged("pods").await?;
    let gate = env.cluster.gate();
    let audits = |scope: &str| audits(&env, scope);
    let full0 = settled_full_audits(&env).await;
    let pod0 = audits("pod");
    let mark = gate.mark();

    // A third pod, running as the proxy's UID: its finding appears.
    env.apply(&mk_pod(&a, "as-proxy", Some(1337))).await?;
    env.cluster
        .wait_for("finding MB501 on the new pod", WAIT, || async {
            let mb = env.baseline("pods").await?;
            Ok(mb
                .filter(|mb| has_finding(mb, "MB501", &a, "as-proxy"))
                .map(|_| ()))
        })
        .await?;
    // Gone with the pod; the other pods' state is untouched.
    env.cluster
        .delete("v1", "Pod", Some(&a), "as-proxy")
        .await?;
    env.cluster
        .wait_for("finding MB501 gone with the pod", WAIT, || async {
            let mb = env.baseline("pods").await?;
            Ok(mb
                .filter(|mb| !has_finding(mb, "MB501", &a, "as-proxy"))
                .map(|_| ()))
        })
        .await?;
    // The namespace already had pods: both events were the new pod's alone.
    assert!(
        audits("pod") >= pod0 + 2.0,
        "pod audits {pod0} -> {}",
        audits("pod")
    );
    assert_eq!(
        audits("full"),
        full0,
        "a pod event audited the whole inventory"
    );
    let log = gate.requests_since(mark);
    let other_writes: Vec<_> = log
        .records()
        .iter()
        .filter(|r| r.verb.is_write() && r.verb != Verb::Watch)
        .filter(|r| r.resource != "meshbaselines/status" && r.resource != "events")
        .filter(|r| r.resource != "leases")
        .map(|r| format!("{:?} {} {}/{}", r.verb, r.resource, r.namespace, r.name))
        .collect();
    assert!(
        other_writes.is_empty(),
        "a pod event wrote more than the status: {other_writes:?}"
    );
    env.finish().await
}

fn audits(env: &Env, scope: &str) -> f64 {
    env.op
        .metric("meshbaseline_audits_total", &format!("scope=\"{scope}\""))
}

/// Full audits once the audit that follows convergence (generated objects appeared) is done.
async fn settled_full_audits(env: &Env) -> f64 {
    let mut full = audits(env, "full");
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = audits(env, "full");
        if now == full {
            break;
        }
        full = now;
    }
    full
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_label_no_baseline_reads_reconciles_nothing() -> TestResult {
    let env = Env::start("nslabel").await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("nslabel", "nslabel", json!({})))
        .await?;
    env.wait_converged("nslabel").await?;
    let full0 = settled_full_audits(&env).await;
    let reconciles0 = env.op.successful_reconciles();
    let gate = env.cluster.gate();
    let mark = gate.mark();
    for i in 0..5 {
        let patch = json!({"metadata": {"labels": {"cost-center": format!("cc-{i}")}}});
        env.cluster
            .merge_patch("v1", "Namespace", None, &a, &patch)
            .await?;
    }
    // Ten debounce periods: a reconcile the labels caused would have finished.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        audits(&env, "full"),
        full0,
        "a bookkeeping label audited everything"
    );
    assert_eq!(env.op.successful_reconciles(), reconciles0);
    let log = gate.requests_since(mark);
    assert!(
        log.records()
            .iter()
            .all(|r| !r.verb.is_write() || r.resource == "namespaces" || r.resource == "leases"),
        "writes after a bookkeeping label: {:?}",
        log.by_verb_resource()
    );

    // A label the data plane reads does matter: the namespace's findings are redone.
    let patch = json!({"metadata": {"labels": {"istio-injection": "disabled"}}});
    env.cluster
        .merge_patch("v1", "Namespace", None, &a, &patch)
        .await?;
    env.cluster
        .wait_for("a full audit after the injection label", WAIT, || async {
            Ok((audits(&env, "full") > full0).then_some(()))
        })
        .await?;
    env.finish().await
}
