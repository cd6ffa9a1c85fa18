//! The scale run: a simulator seeded directly (no HTTP) with N namespaces and
//! N x P pods, the operator in a child process (this binary re-executed with `--controller`,
//! which runs the same `controller::run` as `meshbaseline run`), and these figures:
//! time to converge, requests by verb, the controller process's peak memory (VmHWM from
//! `/proc/<pid>/status`), and drift-repair latency p50/p99 (from the harness deleting a
//! generated NetworkPolicy to the simulator storing the re-applied one); then phases of churn
//! (pods, namespace labels, tenants' policies) and a re-list of every kind, each with the
//! controller's CPU share, its writes and its memory.
//!
//! `cargo run --release -p meshbaseline-e2e --bin scale -- [--namespaces 10000]
//!  [--pods-per-namespace 10] [--repairs 200] [--qps 5000] [--burst 10000] [--paged-lists]
//!  [--unselected]`
//!
//! `--paged-lists`: the simulator refuses streaming lists, as an API server with the WatchList
//! feature gate off, so every kind is listed in pages. `--unselected`: the namespaces lack the
//! label the baseline selects, so nothing is generated for them (the cost of a namespace
//! alone); the repairs and churn are skipped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshbaseline::controller::{self, Config};
use meshbaseline_e2e::sim::FaultConfig;
use meshbaseline_e2e::{SimConfig, Simulator};
use serde_json::{json, Value};

mod measure;
mod phases;

use measure::{memory, vm_hwm_kib};
use phases::{list_requests, run_pod};

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
    /// Namespaces without the label the baseline selects: no generated objects (the cost of a
    /// namespace alone), no repairs and no churn.
    unselected: bool,
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
        unselected: false,
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
            "--unselected" => a.unselected = true,
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
    let mesh = if a.unselected { "off" } else { "on" };
    for n in 0..a.namespaces {
        let ns = format!("tenant-{n}");
        sim.create(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"mesh": mesh, "istio-injection": "enabled"}}}))?;
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
    let want = if a.unselected {
        2
    } else {
        a.namespaces * 3 + 2
    };
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
    if a.unselected {
        println!("no namespace selected: no repairs and no churn");
    } else {
        phases::repairs_and_churn(&sim, pid, &a).await?;
    }
    phases::relist(&sim, pid, lists).await?;

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
