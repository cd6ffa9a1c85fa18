//! Pod events: a pod that changes only its own findings is re-audited alone. The status
//! follows it both ways, and nothing but the status (and events) is written: no generated
//! object is compared or rewritten because a pod came or went.

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
    let audits = |scope: &str| {
        env.op
            .metric("meshbaseline_audits_total", &format!("scope=\"{scope}\""))
    };
    // The audit that follows convergence (generated objects appeared) settles first.
    let mut full0 = audits("full");
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = audits("full");
        if now == full0 {
            break;
        }
        full0 = now;
    }
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
