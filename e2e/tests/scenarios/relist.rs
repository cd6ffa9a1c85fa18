//! Lists: every kind is listed streamed, in pages where the API server refuses that, and a
//! list again after the watch history was compacted notices what changed meanwhile.

use meshbaseline_e2e::{FaultConfig, Verb};
use serde_json::json;

use crate::faults::reconcile_barrier;
use crate::fixtures::*;

/// An object deleted while the operator's watches were down, with the watch history compacted
/// meanwhile (no DELETE event will come), is noticed by the re-list: the keys a list does not
/// see leave the cache, and the generated object is re-created, well before any resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_notices_what_was_deleted_while_the_watches_were_down() -> TestResult {
    let env = Env::start("outage").await?;
    let gate = env.cluster.gate();
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("outage", "outage", json!({})))
        .await?;
    env.wait_converged("outage").await?;
    env.wait_condition("outage", "Ready", "True", |_, _| true)
        .await?;
    reconcile_barrier(&env, 1).await?;
    let repairs = || {
        env.op
            .metric("meshbaseline_drift_repairs_total", "kind=\"NetworkPolicy\"")
    };
    let before = repairs();
    // The watches go down and cannot come back.
    gate.set_faults(FaultConfig {
        error_rate: 1.0,
        error_codes: vec![503],
        error_verbs: vec![Verb::Watch],
        ..FaultConfig::default()
    });
    gate.cut_watches();
    let mark = gate.mark();
    let np = (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some(a.as_str()),
        "meshbaseline-baseline",
    );
    env.cluster.delete(np.0, np.1, np.2, np.3).await?;
    // Give the operator time to have seen it, were a watch still open.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        env.cluster.get(np.0, np.1, np.2, np.3).await?.is_none(),
        "re-created while every watch was down"
    );
    // The history is compacted (in front of a real server, every resumed watch answers 410),
    // and the watches may come back: each lists its kind again.
    match env.cluster.sim() {
        Ok(sim) => {
            sim.compact();
            gate.clear_faults();
        }
        Err(_) => gate.set_faults(FaultConfig {
            watch_gone_rate: 1.0,
            ..FaultConfig::default()
        }),
    }
    env.cluster
        .wait_for("the NetworkPolicy re-created", WAIT, || async {
            Ok(env.cluster.get(np.0, np.1, np.2, np.3).await?.map(|_| ()))
        })
        .await?;
    gate.clear_faults();
    let log = gate.requests_since(mark);
    assert!(
        log.count(|r| r.resource == "networkpolicies" && r.streaming_list && r.code == 200) > 0,
        "NetworkPolicies listed again: {:?}",
        log.by_verb_resource()
    );
    env.cluster
        .wait_for("the repair counted", WAIT, || async {
            Ok((repairs() > before).then_some(()))
        })
        .await?;
    env.wait_converged("outage").await?;
    env.finish().await
}

/// Against an API server with the WatchList gate off (Kubernetes 1.27 to 1.31 and 1.33 by
/// default), every watcher lists in pages instead, converges, repairs and re-lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_in_pages_where_streaming_lists_are_refused() -> TestResult {
    let refused = FaultConfig {
        refuse_streaming_lists: true,
        ..FaultConfig::default()
    };
    let env = Env::start_with_faults("paged", refused).await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("paged", "paged", json!({}))).await?;
    env.wait_converged("paged").await?;
    let gate = env.cluster.gate();
    let log = gate.requests();
    let refused = log.count(|r| r.streaming_list && r.code == 422);
    assert!(
        refused >= 5,
        "streamed lists refused: {:?}",
        log.by_verb_resource()
    );
    for resource in [
        "namespaces",
        "pods",
        "networkpolicies",
        "peerauthentications",
    ] {
        assert!(
            log.count(|r| r.verb == Verb::List && r.resource == resource) > 0,
            "{resource} listed in pages: {:?}",
            log.by_verb_resource()
        );
        let series = format!("resource=\"{resource}\",method=\"pages\"");
        assert_eq!(
            env.op.metric("meshbaseline_watch_lists_total", &series),
            1.0
        );
        let streamed = format!("resource=\"{resource}\",method=\"streaming\"");
        assert_eq!(
            env.op.metric("meshbaseline_watch_lists_total", &streamed),
            0.0
        );
    }
    env.wait_condition("paged", "Ready", "True", |_, _| true)
        .await?;
    reconcile_barrier(&env, 1).await?;
    reconcile_barrier(&env, 2).await?;
    // A 410 (history compacted) lists again, in pages, and writes nothing.
    let mark = gate.mark();
    match env.cluster.sim() {
        Ok(sim) => sim.compact(),
        Err(_) => gate.set_faults(FaultConfig {
            refuse_streaming_lists: true,
            watch_gone_rate: 1.0,
            ..FaultConfig::default()
        }),
    }
    gate.cut_watches();
    env.cluster
        .wait_for("pods listed again", WAIT, || async {
            let relisted = env.op.metric(
                "meshbaseline_watch_lists_total",
                "resource=\"pods\",method=\"pages\"",
            );
            Ok((relisted >= 2.0).then_some(()))
        })
        .await?;
    gate.set_faults(FaultConfig {
        refuse_streaming_lists: true,
        ..FaultConfig::default()
    });
    reconcile_barrier(&env, 3).await?;
    let log = gate.requests_since(mark);
    assert_eq!(
        log.count(|r| r.streaming_list && r.code != 422),
        0,
        "still in pages"
    );
    assert_eq!(
        log.writes_by("meshbaseline"),
        0,
        "{:?}",
        log.by_verb_resource()
    );
    // Drift is repaired from the watch that follows the paged list.
    env.cluster
        .delete(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&a),
            "meshbaseline-baseline",
        )
        .await?;
    env.wait_converged("paged").await?;
    env.finish().await
}
