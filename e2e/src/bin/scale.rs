//! The scale run of issue 5: a simulator seeded directly (no HTTP) with N namespaces and
//! N x P pods, the operator in a child process (this binary re-executed with `--controller`,
//! which runs the same `controller::run` as `meshbaseline run`), and these figures:
//! time to converge, requests by verb, the controller process's peak memory (VmHWM from
//! `/proc/<pid>/status`), and drift-repair latency p50/p99 (from the harness deleting a
//! generated NetworkPolicy to the simulator storing the re-applied one); then phases of churn
//! (pods, namespace labels, tenants' policies) and a re-list of every kind, each with the
//! controller's CPU share, its writes and its memory.
//!
//! `cargo run --release -p meshbaseline-e2e --bin scale -- [--namespaces 10000]
//!  [--pods-per-namespace 10] [--repairs 200] [--qps 5000] [--burst 10000] [--paged-lists]`
//!
//! `--paged-lists`: the simulator refuses streaming lists, as an API server with the WatchList
//! feature gate off, so every kind is listed in pages.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshbaseline::controller::{self, Config};
use meshbaseline_e2e::sim::{FaultConfig, RequestLog, Verb};
use meshbaseline_e2e::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    namespaces: usize,
    pods_per_namespace: usize,
    repairs: usize,
    qps: u32,
    burst: u32,
    /// Pod events per second during the churn phases, and how long each runs.
    churn_rate: usize,
    churn_secs: u64,
    /// The simulator refuses streaming lists, as an API server with the WatchList gate off.
    paged_lists: bool,
    controller: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        namespaces: 10_000,
        pods_per_namespace: 10,
        repairs: 200,
        qps: 5_000,
        burst: 10_000,
        churn_rate: 200,
        churn_secs: 20,
        paged_lists: false,
        controller: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--namespaces" => a.namespaces = value()?.parse()?,
            "--pods-per-namespace" => a.pods_per_namespace = value()?.parse()?,
            "--repairs" => a.repairs = value()?.parse()?,
            "--qps" => a.qps = value()?.parse()?,
            "--burst" => a.burst = value()?.parse()?,
            "--churn-rate" => a.churn_rate = value()?.parse()?,
            "--churn-secs" => a.churn_secs = value()?.parse()?,
            "--controller" => a.controller = Some(value()?),
            "--paged-lists" => a.paged_lists = true,
            "--bench" => {} // passed by `cargo bench`
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

/// Child mode: the operator against `url` until stdin closes.
fn run_controller(url: &str, a: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = kube::Client::try_from(kube::Config::new(url.parse()?))?;
        let config = Config {
            qps: a.qps,
            burst: a.burst,
            ..Config::default()
        };
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                use std::io::Read;
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            })
            .await;
        };
        controller::run(client, config, stdin_closed).await?;
        Ok(())
    })
}

fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    vm_kib(pid, "VmHWM:")
}

/// The controller's resident and peak memory now, for the phase just finished.
fn memory(pid: u32, phase: &str) {
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "  memory after {phase}: RSS {}, peak {}",
        mib(vm_kib(pid, "VmRSS:")),
        mib(vm_hwm_kib(pid))
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn baseline() -> Value {
    json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
    "metadata": {"name": "scale"},
    "spec": {
        "mode": "Enforce", "rootNamespace": "istio-system",
        "namespaceSelector": {"matchLabels": {"mesh": "on"}},
        "mtls": {"mode": "STRICT", "denyPlaintext": true, "destinationRules": true},
        "network": {"tcpOnly": true, "egress": {"mode": "ClusterOnly"}, "controlPlane": {"enabled": true}},
        "tenantOverrides": "Report"
    }})
}

/// A pod with a sidecar, as the injector leaves it, created and then reported Running (the
/// kubelet's status write): two pod events.
fn run_pod(sim: &SimHandle, ns: &str, name: &str, app: usize) -> Result<usize> {
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

/// User plus system CPU time of a process, from `/proc/<pid>/stat` (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
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
fn list_requests(log: &RequestLog) -> usize {
    log.count(|r| r.streaming_list || r.verb == Verb::List)
}

/// Every watch ends with its history compacted (an API server restarted, a long network cut):
/// each watcher lists its kind again. Nothing changed, so nothing may be written; listed
/// objects are applied in place. Done when every resource was listed again (`lists` requests,
/// as at the start) and the controller is idle: a list is streamed, and the simulator cannot
/// tell when the operator has read it.
async fn relist(sim: &SimHandle, pid: u32, lists: usize) -> Result<()> {
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

async fn parent(a: Args) -> Result<()> {
    let sim = Simulator::start_with(SimConfig {
        history_capacity: 500_000,
        ..SimConfig::default()
    })
    .await?;
    sim.install_standard_crds()?;
    let started = Instant::now();
    sim.create(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    )?;
    for n in 0..a.namespaces {
        let ns = format!("tenant-{n}");
        sim.create(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"mesh": "on", "istio-injection": "enabled"}}}))?;
        for p in 0..a.pods_per_namespace {
            run_pod(&sim, &ns, &format!("app-{p}"), p)?;
        }
    }
    sim.create(&baseline())?;
    println!(
        "seeded {} namespaces and {} pods directly into the simulator in {:.1?}",
        a.namespaces,
        a.namespaces * a.pods_per_namespace,
        started.elapsed()
    );

    if a.paged_lists {
        sim.set_faults(FaultConfig {
            refuse_streaming_lists: true,
            ..FaultConfig::default()
        });
    }
    let exe = std::env::current_exe()?;
    // SCALE_CONTROLLER_WRAPPER runs the controller under a profiler (e.g. `heaptrack`).
    let mut command = match std::env::var("SCALE_CONTROLLER_WRAPPER") {
        Ok(w) if !w.is_empty() => {
            let mut c = Command::new(w);
            c.arg(&exe);
            c
        }
        _ => Command::new(&exe),
    };
    let mut child = command
        .args(["--controller", &sim.url()])
        .args(["--qps", &a.qps.to_string(), "--burst", &a.burst.to_string()])
        .stdin(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let started = Instant::now();
    // Per namespace: deny-plaintext, DestinationRule, NetworkPolicy; root: PeerAuthentication
    // and the istiod NetworkPolicy.
    let want = a.namespaces * 3 + 2;
    let kinds = [
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("networking.istio.io/v1", "DestinationRule"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("security.istio.io/v1", "PeerAuthentication"),
        ("networking.istio.io/v1", "Sidecar"),
    ];
    loop {
        let (objects, ready) = sim.view(|v| {
            let objects: usize = kinds.iter().map(|(av, k)| v.list(av, k).len()).sum();
            let ready = v
                .get("meshbaseline.dev/v1alpha1", "MeshBaseline", "", "scale")
                .and_then(|b| b.pointer("/status/conditions"))
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            (objects, ready)
        });
        if objects == want && ready {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("not converged after 600 s: {objects}/{want} objects").into());
        }
        if started.elapsed().as_millis() % 5000 < 100 {
            eprintln!(
                "  {:.0?}: {objects}/{want} objects, ready {ready}, {} requests",
                started.elapsed(),
                sim.requests().0.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged = started.elapsed();
    let log = sim.requests();
    println!(
        "converged: {want} objects and status Ready in {converged:.1?} (qps {}, burst {})",
        a.qps, a.burst
    );
    println!("requests by verb until converged: {:?}", log.by_verb());
    memory(pid, "convergence");
    let lists = list_requests(&log);
    let mut by_resource: Vec<_> = log.by_verb_resource().into_iter().collect();
    by_resource.sort();
    println!("requests by verb and resource: {by_resource:?}");

    // Steady state first: the audit that follows convergence (30,000 objects appeared) is
    // done before repairs are timed; the operator must then be idle.
    let mut quiet = sim.mark();
    let idle_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = sim.mark();
        if now == quiet || idle_since.elapsed() > Duration::from_secs(60) {
            break;
        }
        quiet = now;
    }
    memory(pid, "settling");
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
    churn(&sim, pid, "rollout churn", a.churn_rate, events, |i| {
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
            run_pod(&sim, &ns, &name, slot.1)?;
            names.insert(slot, name);
            Ok(2)
        }
    })
    .await?;
    // Scale-out and scale-in: new pods, then the same pods deleted.
    // Pod creation makes two events per pod, deletion one.
    let extra = events / 4;
    churn(&sim, pid, "pod creation", a.churn_rate, 2 * extra, |i| {
        let ns = format!("tenant-{}", i % a.namespaces.max(1));
        run_pod(&sim, &ns, &format!("extra-{i}"), i)
    })
    .await?;
    churn(&sim, pid, "pod deletion", a.churn_rate, extra, |i| {
        let ns = format!("tenant-{}", i % a.namespaces.max(1));
        sim.delete("v1", "Pod", &ns, &format!("extra-{i}"))?;
        Ok(1)
    })
    .await?;

    // Churn that changes findings: a workload running as the proxy's UID, its pods replaced
    // over and over (a crash loop). Status writes are paced (about one a second), and
    // "Finding" events have a budget per minute.
    churn(
        &sim,
        pid,
        "finding churn (UID 1337 pods replaced)",
        a.churn_rate,
        events / 2,
        |i| {
            let ns = format!("tenant-{}", i % 10);
            if i % 2 == 0 {
                run_pod_as(&sim, &ns, &format!("crash-{i}"), 0, Some(1337))
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
        &sim,
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
        &sim,
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

    relist(&sim, pid, lists).await?;

    let hwm = vm_hwm_kib(pid);
    println!(
        "controller process peak RSS (VmHWM of pid {pid}): {}",
        hwm.map_or("unavailable".into(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    );
    drop(child.stdin.take()); // closing stdin shuts the controller down
    let status = child.wait()?;
    println!("controller exited: {status}");
    Ok(())
}

fn main() -> Result<()> {
    let a = args()?;
    if let Some(url) = a.controller.clone() {
        return run_controller(&url, &a);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(parent(a))
}
