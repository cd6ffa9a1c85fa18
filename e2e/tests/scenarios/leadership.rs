//! One writer at a time: two replicas on one simulator. The leader's renewals are
//! paused past the lease duration, the other takes over, the first resumes; every write is
//! counted per replica, and the old leader makes none after its local deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fixtures::*;

const DURATION: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_millis(100);
const MARGIN: Duration = Duration::from_millis(500);

fn replica(cluster: &meshbaseline_e2e::Cluster, name: &str, paused: &Arc<AtomicBool>) -> Operator {
    Operator::start_with(
        cluster,
        meshbaseline::controller::Config {
            pod_name: name.into(),
            leader_election: true,
            lease_namespace: "default".into(),
            lease_duration: DURATION,
            lease_renew: RENEW,
            lease_margin: MARGIN,
            lease_paused: Some(paused.clone()),
            ..test_config()
        },
    )
}

/// Every API write a replica made (its own metrics registry).
fn writes(op: &Operator) -> f64 {
    op.metrics_text()
        .lines()
        .filter(|l| l.starts_with("meshbaseline_api_writes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn leading(op: &Operator) -> bool {
    op.metric("meshbaseline_leader", "") == 1.0
}

async fn until(what: &str, f: impl Fn() -> bool) -> TestResult {
    let deadline = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_leader_writes_nothing_after_its_deadline() -> TestResult {
    let scenario = "lead";
    // Always on the simulator: the stall is a hook inside the operator (renewals held back),
    // so both replicas run in this process. Leadership is the clients' protocol on a Lease;
    // the server only stores it.
    let cluster = meshbaseline_e2e::Cluster::simulated().await?;
    Env::seed_root(&cluster).await?;
    let (pause_a, pause_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let a = replica(&cluster, "replica-a", &pause_a);
    until("replica-a leads", || leading(&a)).await?;
    let b = replica(&cluster, "replica-b", &pause_b);
    let env = Env {
        cluster,
        op: a,
        scenario: scenario.into(),
    };
    let ns = env.add_namespace("a").await?;
    env.apply(&mk_baseline(scenario, scenario, json!({})))
        .await?;
    env.wait_converged(scenario).await?;
    assert!(!leading(&b), "two leaders");
    assert_eq!(writes(&b), 0.0, "the follower wrote");

    // Replica A stalls: no renewals. Its deadline is at most DURATION - MARGIN after now.
    pause_a.store(true, Ordering::Release);
    let paused_at = Instant::now();
    tokio::time::sleep(DURATION - MARGIN).await;
    let a_at_deadline = writes(&env.op);
    until("replica-b takes over", || leading(&b)).await?;
    let took_over = paused_at.elapsed();
    // A's last renewal came at most one renew period before the pause, so the lease expired
    // no earlier than DURATION - RENEW after `paused_at`.
    assert!(
        took_over >= DURATION - RENEW,
        "took over after {took_over:?}, before the lease expired"
    );
    assert!(
        !leading(&env.op),
        "the stalled replica still claims leadership"
    );

    // Drift while B leads, before and after A resumes renewing: B repairs, A never writes.
    let np = (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "meshbaseline-baseline",
    );
    let mut repairs = 0;
    for round in 0..4 {
        if round == 2 {
            pause_a.store(false, Ordering::Release);
            // A renews again, finds B holding the lease, and stays a follower.
            tokio::time::sleep(RENEW * 5).await;
        }
        env.cluster.delete(np.0, np.1, Some(&ns), np.2).await?;
        env.wait_converged(scenario).await?;
        repairs += 1;
    }
    tokio::time::sleep(RENEW * 3).await;
    assert_eq!(
        writes(&env.op),
        a_at_deadline,
        "replica-a wrote after its lease deadline"
    );
    assert!(writes(&b) >= f64::from(repairs), "replica-b did not repair");
    assert!(leading(&b) && !leading(&env.op));
    eprintln!(
        "takeover after {took_over:?}; replica-a writes {a_at_deadline} (none after its deadline), replica-b {}",
        writes(&b)
    );
    b.stop().await?;
    env.finish().await
}
