//! The scale run's phases after convergence: drift repairs, churn, and a re-list of every kind.

use std::time::{Duration, Instant};

use meshbaseline_e2e::sim::{RequestLog, Verb};
use meshbaseline_e2e::SimHandle;
use serde_json::json;

use crate::measure::{cpu_time, memory, percentile};
use crate::{Args, Result};

pub fn run_pod(sim: &SimHandle, ns: &str, name: &str, app: usize) -> Result<usize> {
    run_pod_as(sim, ns, name, app, None)
}

/// `run_pod`, with the app container's `runAsUser` (1337 makes an MB501 finding).
fn run_pod_as(
    sim: &SimHandle,
    ns: &str,
    name: &str,
    app: usize,
    uid: Option<i64>,
) -> Result<usize> {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": format!("app-{app}")},
            "annotations": {"sidecar.istio.io/status": "{\"containers\":[\"istio-proxy\"]}"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "istio-proxy", "image": "proxy:1"}]}});
    if let Some(uid) = uid {
        pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": uid});
    }
    sim.create(&pod)?;
    sim.patch_status(&pod, &json!({"phase": "Running"}))?;
    Ok(2)
}

/// Pod events at `rate` per second for `secs` seconds, from `step(i)` (which makes one event
/// each call); reports the controller's CPU share and the requests it made meanwhile.
async fn churn(
    sim: &SimHandle,
    pid: u32,
    what: &str,
    rate: usize,
    total: usize,
    mut step: impl FnMut(usize) -> Result<usize>,
) -> Result<()> {
    // Let the previous phase's work finish first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = sim.mark();
    let cpu0 = cpu_time(pid).ok_or("no /proc/<pid>/stat")?;
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let per_tick = rate / 20;
    let (mut done, mut calls) = (0, 0);
    while done < total {
        tick.tick().await;
        let budget = done + per_tick;
        while done < budget.min(total) {
            done += step(calls)?;
            calls += 1;
        }
    }
    // The debounced reconciles of the last events.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let wall = t0.elapsed();
    let cpu = cpu_time(pid).ok_or("no /proc/<pid>/stat")? - cpu0;
    let log = sim.requests_since(mark);
    println!(
        "{what}: {done} events in {:.1?} ({:.0}/s): controller CPU {:.1?} = {:.1}% of a core; {} writes {:?}",
        wall,
        done as f64 / wall.as_secs_f64(),
        cpu,
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        log.writes(),
        log.by_verb_resource()
            .into_iter()
            .filter(|((verb, _), _)| verb.is_write())
            .collect::<Vec<_>>()
    );
    memory(pid, what);
    Ok(())
}

/// List requests: streamed lists and pages.
pub fn list_requests(log: &RequestLog) -> usize {
    log.count(|r| r.streaming_list || r.verb == Verb::List)
}

/// Every watch ends with its history compacted (an API server restarted, a long network cut):
/// each watcher lists its kind again. Nothing changed, so nothing may be written; listed
/// objects are applied in place. Done when every resource was listed again (`lists` requests,
/// as at the start) and the controller is idle: a list is streamed, and the simulator cannot
/// tell when the operator has read it.
pub async fn relist(sim: &SimHandle, pid: u32, lists: usize) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = sim.mark();
    let cpu0 = cpu_time(pid).ok_or("no /proc/<pid>/stat")?;
    let t0 = Instant::now();
    // A write of a kind the operator does not watch puts every watcher's last version behind
    // the compacted one, so each resumes into 410 Gone.
    sim.create(&json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "scale-relist", "namespace": "tenant-0"},
        "involvedObject": {"kind": "Namespace", "name": "tenant-0"}, "reason": "ScaleRun"}))?;
    sim.compact();
    sim.cut_watches();
    let mut last = cpu0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cpu = cpu_time(pid).ok_or("no /proc/<pid>/stat")?;
        let listed = list_requests(&sim.requests_since(mark)) >= lists;
        // Idle: under 2% of a core over the last half second.
        if listed && cpu - last < Duration::from_millis(10) {
            break;
        }
        last = cpu;
        if t0.elapsed() > Duration::from_secs(120) {
            let done = list_requests(&sim.requests_since(mark));
            return Err(format!("re-list: {done} of {lists} lists within 120 s").into());
        }
    }
    let listed = t0.elapsed() - Duration::from_millis(500);
    // The changes a re-list reports (none) and any pass they would trigger.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = cpu_time(pid).ok_or("no /proc/<pid>/stat")? - cpu0;
    let log = sim.requests_since(mark);
    println!(
        "re-list of every kind (watches cut, history compacted): listed again and idle after {listed:.1?}; controller CPU {cpu:.1?}; {} writes; {} streamed and {} paged lists; requests {:?}",
        log.writes(),
        log.count(|r| r.streaming_list),
        log.count(|r| r.verb == Verb::List),
        log.by_verb()
    );
    memory(pid, "re-list");
    Ok(())
}

/// Drift repairs, then churn of pods, namespace labels and tenants' policies.
pub async fn repairs_and_churn(sim: &SimHandle, pid: u32, a: &Args) -> Result<()> {
    // Drift repair: delete one generated NetworkPolicy at a time, wait for its return.
    let mark = sim.mark();
    let mut latencies = Vec::with_capacity(a.repairs);
    for i in 0..a.repairs {
        let ns = format!("tenant-{}", (i * 7919) % a.namespaces.max(1));
        let np = (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "meshbaseline-baseline",
        );
        let t0 = Instant::now();
        sim.delete(np.0, np.1, &ns, np.2)?;
        sim.wait_until("repair", Duration::from_secs(30), |v| {
            v.get(np.0, np.1, &ns, np.2).map(|_| ())
        })
        .await?;
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    println!(
        "drift repair, delete -> re-applied object stored ({} repairs): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "requests by verb during the repairs: {:?}",
        sim.requests_since(mark).by_verb()
    );
    memory(pid, "repairs");
    // Rollout churn: pods replaced by pods of the same spec (a deletion and a creation per
    // replacement), which changes no finding and must write nothing.
    let (n, pods) = (a.namespaces.max(1), a.pods_per_namespace.max(1));
    let mut names: std::collections::HashMap<(usize, usize), String> = Default::default();
    let events = a.churn_rate * a.churn_secs as usize;
    churn(sim, pid, "rollout churn", a.churn_rate, events, |i| {
        let r = i / 2;
        let slot = ((r * 7919) % n, (r / n) % pods);
        let ns = format!("tenant-{}", slot.0);
        if i % 2 == 0 {
            let old = names
                .remove(&slot)
                .unwrap_or_else(|| format!("app-{}", slot.1));
            sim.delete("v1", "Pod", &ns, &old)?;
            Ok(1)
        } else {
            let name = format!("app-{}-r{r}", slot.1);
            run_pod(sim, &ns, &name, slot.1)?;
            names.insert(slot, name);
            Ok(2)
        }
    })
    .await?;
    // Scale-out and scale-in: new pods, then the same pods deleted.
    // Pod creation makes two events per pod, deletion one.
    let extra = events / 4;
    churn(sim, pid, "pod creation", a.churn_rate, 2 * extra, |i| {
        let ns = format!("tenant-{}", i % a.namespaces.max(1));
        run_pod(sim, &ns, &format!("extra-{i}"), i)
    })
    .await?;
    churn(sim, pid, "pod deletion", a.churn_rate, extra, |i| {
        let ns = format!("tenant-{}", i % a.namespaces.max(1));
        sim.delete("v1", "Pod", &ns, &format!("extra-{i}"))?;
        Ok(1)
    })
    .await?;

    // Churn that changes findings: a workload running as the proxy's UID, its pods replaced
    // over and over (a crash loop). Status writes are paced (about one a second), and
    // "Finding" events have a budget per minute.
    churn(
        sim,
        pid,
        "finding churn (UID 1337 pods replaced)",
        a.churn_rate,
        events / 2,
        |i| {
            let ns = format!("tenant-{}", i % 10);
            if i % 2 == 0 {
                run_pod_as(sim, &ns, &format!("crash-{i}"), 0, Some(1337))
            } else {
                sim.delete("v1", "Pod", &ns, &format!("crash-{}", i - 1))?;
                Ok(1)
            }
        },
    )
    .await?;

    // Namespace churn: a label that selects nothing added to namespaces (as GitOps tools and
    // cost tools do), 20 a second. No object and no finding changes: no write.
    churn(
        sim,
        pid,
        "namespace label churn",
        20,
        20 * a.churn_secs as usize,
        |i| {
            let ns = format!("tenant-{}", (i * 7919) % a.namespaces.max(1));
            sim.apply_as(
                "cost-tool",
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
                    "labels": {"cost-center": format!("cc-{i}")}}}),
                false,
            )?;
            Ok(1)
        },
    )
    .await?;

    // Tenant policy churn: tenants edit their own AuthorizationPolicies, 20 a second (one
    // per tick, counted as two events). Each edit can change findings, so the inventory is
    // audited again (spaced).
    churn(
        sim,
        pid,
        "tenant policy churn",
        20,
        10 * a.churn_secs as usize,
        |i| {
            let ns = format!("tenant-{}", (i * 7919) % a.namespaces.max(1));
            sim.apply_as(
                "tenant",
                &json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                    "metadata": {"name": "allow-frontend", "namespace": ns},
                    "spec": {"action": "ALLOW", "rules": [{"from": [{"source":
                        {"principals": [format!("cluster.local/ns/{ns}/sa/frontend-{}", i % 3)]}}]}]}}),
                true,
            )?;
            Ok(2)
        },
    )
    .await?;

    Ok(())
}
