//! Convergence under API faults, and no writes in steady state.

use std::time::Duration;

use meshbaseline_e2e::{FaultConfig, Verb};
use serde_json::json;

use crate::fixtures::*;

/// The target: exact desired state within 30 s under faults.
const CONVERGE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_under_errors_cut_watches_gone_and_conflicts() -> TestResult {
    // The simulator injects the faults itself; on a real server the fault proxy does.
    let faults = FaultConfig {
        seed: 7,
        error_rate: 0.2,
        error_codes: vec![500, 503],
        watch_cut_after_events: Some(5),
        watch_cut_after: Some(Duration::from_millis(700)),
        watch_gone_rate: 0.3,
        apply_conflict_rate: 0.2,
        ..FaultConfig::default()
    };
    let mut env = Env::start_with_faults("faults", faults).await?;
    for i in 0..6 {
        env.add_namespace(&format!("n{i}")).await?;
    }
    let n0 = env.ns("n0");
    env.apply(&mk_destination_rule(
        &n0,
        "all",
        &format!("*.{n0}.svc.cluster.local"),
        "ISTIO_MUTUAL",
    ))
    .await?;
    env.apply(&mk_peer_authentication(
        &env.ns("n1"),
        "loose",
        "PERMISSIVE",
    ))
    .await?;
    env.apply(&mk_baseline(
        "faults",
        "faults",
        json!({"tenantOverrides": "Revert"}),
    ))
    .await?;
    env.wait_converged_within("faults", CONVERGE).await?;
    // Changes while the faults go on: drift, a namespace leaving, one joining.
    env.cluster
        .delete(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&env.ns("n2")),
            "meshbaseline-baseline",
        )
        .await?;
    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &env.ns("n3"),
            &json!({"metadata": {"labels": {SCENARIO_LABEL: null}}}),
        )
        .await?;
    env.add_namespace("n6").await?;
    let objects = env.wait_converged_within("faults", CONVERGE).await?;
    // The tenant's DestinationRule for the namespace wildcard replaces ours.
    assert!(!objects.contains_key(&(
        "DestinationRule".into(),
        n0.clone(),
        "meshbaseline-mtls".into()
    )));
    env.cluster
        .wait_for("PERMISSIVE reverted under faults", WAIT, || async {
            let pa = env
                .cluster
                .get(
                    "security.istio.io/v1",
                    "PeerAuthentication",
                    Some(&env.ns("n1")),
                    "loose",
                )
                .await?;
            let mode = pa.and_then(|p| p.data["spec"]["mtls"]["mode"].as_str().map(String::from));
            Ok((mode.as_deref() == Some("STRICT")).then_some(()))
        })
        .await?;
    let gate = env.cluster.gate();
    let log = gate.requests();
    assert!(log.count(|r| r.code >= 500) > 0, "no faults were injected");
    assert!(
        log.count(|r| r.code == 409) > 0,
        "no conflicts were injected"
    );
    gate.clear_faults();
    env.wait_condition("faults", "Ready", "True", |_, _| true)
        .await?;
    assert!(env.op.alive(), "the operator stopped");
    env.finish().await
}

/// Waits until a full reconcile happened after this point: a new namespace the baseline does
/// not select changes the inventory, which re-reconciles every baseline (after the debounce)
/// without changing anything the baseline cares about. (A label that selects nothing would
/// not do: such changes are not reconciled at all.)
pub(crate) async fn reconcile_barrier(env: &Env, tick: u32) -> TestResult {
    let before = env.op.successful_reconciles();
    env.apply(&mk_namespace(&env.ns(&format!("tick-{tick}")), None))
        .await?;
    // Callers make sure no reconcile is in flight (the state is converged and quiet), so the
    // next one to finish started after the change.
    env.cluster
        .wait_for("a reconcile after the barrier", WAIT, || async {
            Ok((env.op.successful_reconciles() > before).then_some(()))
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_and_watch_restarts_write_nothing() -> TestResult {
    let env = Env::start("quiet").await?;
    let gate = env.cluster.gate();
    let a = env.add_namespace("a").await?;
    env.add_namespace("b").await?;
    env.apply(&mk_peer_authentication(&a, "loose", "PERMISSIVE"))
        .await?;
    env.apply(&mk_baseline("quiet", "quiet", json!({}))).await?;
    env.wait_converged("quiet").await?;
    env.wait_condition("quiet", "Ready", "True", |_, _| true)
        .await?;
    // Every kind was listed once, streamed (the real API server serves WatchList).
    for resource in [
        "namespaces",
        "pods",
        "networkpolicies",
        "peerauthentications",
    ] {
        let series = format!("resource=\"{resource}\",method=\"streaming\"");
        assert_eq!(
            env.op.metric("meshbaseline_watch_lists_total", &series),
            1.0,
            "{series}: {}",
            env.op.metrics_text()
        );
    }
    // Flush whatever was still in flight after convergence.
    reconcile_barrier(&env, 1).await?;
    reconcile_barrier(&env, 2).await?;

    // Quiet period: a bookmark on every watch, then a full reconcile.
    let mark = gate.mark();
    // The simulator sends a bookmark on every watch now; a real server sends them on its own.
    if let Ok(sim) = env.cluster.sim() {
        sim.bookmark_now();
    }
    reconcile_barrier(&env, 3).await?;
    let log = gate.requests_since(mark);
    assert_eq!(
        log.writes(),
        0,
        "writes while quiet: {:?}",
        log.by_verb_resource()
    );

    // Watch restarts: cut every stream, and once with the history compacted (410 -> relist):
    // the simulator compacts; in front of a real server the proxy answers every resumed watch
    // with 410 Gone, as the server does for a compacted resourceVersion.
    for (i, compact) in [false, true].into_iter().enumerate() {
        let mark = gate.mark();
        if compact {
            match env.cluster.sim() {
                Ok(sim) => sim.compact(),
                Err(_) => gate.set_faults(FaultConfig {
                    watch_gone_rate: 1.0,
                    ..FaultConfig::default()
                }),
            }
        }
        gate.cut_watches();
        // Every watched resource was watched again (re-listed after a 410).
        let resources = [
            "namespaces",
            "pods",
            "services",
            "networkpolicies",
            "peerauthentications",
            "meshbaselines",
        ];
        env.cluster
            .wait_for("watches restarted", WAIT, || async {
                let log = gate.requests_since(mark);
                let again =
                    |res: &str, verb| log.count(|r| r.resource == res && r.verb == verb) > 0;
                // A watch already at the newest resourceVersion resumes without a 410.
                // The others list again, streamed.
                let relisted = !compact || log.count(|r| r.streaming_list && r.code == 200) > 0;
                Ok((relisted && resources.iter().all(|res| again(res, Verb::Watch))).then_some(()))
            })
            .await
            .map_err(|e| {
                format!(
                    "{e} (compact: {compact}): {:?}",
                    gate.requests_since(mark).by_verb_resource()
                )
            })?;
        gate.clear_faults();
        reconcile_barrier(&env, 4 + i as u32).await?;
        let log = gate.requests_since(mark);
        assert_eq!(
            log.writes(),
            0,
            "writes after a watch restart: {:?}",
            log.by_verb_resource()
        );
    }
    env.finish().await
}

/// A write that keeps failing does not freeze the status: it says Degraded, names the object
/// and the API's answer, and recovers once the write goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_writes_are_named_in_a_degraded_status() -> TestResult {
    let env = Env::start("failwrite").await?;
    let sim = env.cluster.gate();
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline("failwrite", "failwrite", json!({})))
        .await?;
    env.wait_converged("failwrite").await?;
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        error_codes: vec![403],
        error_verbs: vec![Verb::Update],
        ..FaultConfig::default()
    });
    env.cluster
        .merge_patch(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            Some(&a),
            "meshbaseline-deny-plaintext",
            &json!({"spec": {"selector": {"matchLabels": {"nothing": "matches"}}}}),
        )
        .await?;
    let object = format!("AuthorizationPolicy {a}/meshbaseline-deny-plaintext");
    env.wait_condition("failwrite", "Degraded", "True", |reason, message| {
        reason == "WriteFailed" && message.contains(&object) && message.contains("403")
    })
    .await?;
    sim.clear_faults();
    env.wait_converged("failwrite").await?;
    env.wait_condition("failwrite", "Degraded", "False", |_, _| true)
        .await?;
    env.finish().await
}

/// The periodic full resync re-plans everything from the caches and, with nothing changed,
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_resyncs_write_nothing_in_steady_state() -> TestResult {
    let cluster = meshbaseline_e2e::Cluster::start().await?;
    Env::seed_root(&cluster).await?;
    let config = meshbaseline::controller::Config {
        resync: Some(Duration::from_millis(100)),
        ..test_config()
    };
    let op = Operator::start_with(&cluster, config);
    let env = Env {
        cluster,
        op,
        scenario: "resync".into(),
    };
    env.add_namespace("a").await?;
    env.add_namespace("b").await?;
    // With the admission policies (which the API server fills with defaults) and, on the
    // real server, the Admin tier: every generated kind must compare equal after a resync.
    let admission = json!({"admission": {"guard": true, "tenantObjects": "Deny"}});
    env.apply(&mk_baseline("resync", "resync", admission))
        .await?;
    env.wait_converged("resync").await?;
    env.wait_condition("resync", "Ready", "True", |_, _| true)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sim = env.cluster.gate();
    let mark = sim.mark();
    let before = env.op.successful_reconciles();
    // `meshbaseline run --resync` takes whole seconds: the operator process on a real server
    // resyncs every second, the in-process one every 100 ms.
    let window = if env.cluster.is_simulated() {
        1000
    } else {
        4500
    };
    tokio::time::sleep(Duration::from_millis(window)).await;
    let resyncs = env.op.successful_reconciles() - before;
    assert!(
        resyncs >= 3.0,
        "only {resyncs} reconciles in {window} ms of resyncs"
    );
    let log = sim.requests_since(mark);
    assert_eq!(log.writes_by("meshbaseline"), 0, "{log:?}");

    // A restart writes nothing either: no status, and no Event announcing the admission API
    // as missing before discovery has answered.
    let Env {
        cluster,
        op,
        scenario,
    } = env;
    op.stop().await?;
    let mark = cluster.gate().mark();
    let op = Operator::start(&cluster);
    let env = Env {
        cluster,
        op,
        scenario,
    };
    env.cluster
        .wait_for("the new operator reconciled", WAIT, || async {
            Ok((env.op.successful_reconciles() >= 1.0).then_some(()))
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = env.cluster.gate().requests_since(mark);
    assert_eq!(log.writes_by("meshbaseline"), 0, "{log:?}");
    env.finish().await
}
