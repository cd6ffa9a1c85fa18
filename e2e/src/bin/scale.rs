//! The scale run of issue 5: a simulator seeded directly (no HTTP) with N namespaces and
//! N x P pods, the operator in a child process (this binary re-executed with `--controller`,
//! which runs the same `controller::run` as `meshbaseline run`), and these figures:
//! time to converge, requests by verb, the controller process's peak memory (VmHWM from
//! `/proc/<pid>/status`), and drift-repair latency p50/p99 (from the harness deleting a
//! generated NetworkPolicy to the simulator storing the re-applied one).
//!
//! `cargo run --release -p meshbaseline-e2e --bin scale -- [--namespaces 10000]
//!  [--pods-per-namespace 10] [--repairs 200] [--qps 5000] [--burst 10000]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshbaseline::controller::{self, Config};
use meshbaseline_e2e::{SimConfig, Simulator};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    namespaces: usize,
    pods_per_namespace: usize,
    repairs: usize,
    qps: u32,
    burst: u32,
    controller: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        namespaces: 10_000,
        pods_per_namespace: 10,
        repairs: 200,
        qps: 5_000,
        burst: 10_000,
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
            "--controller" => a.controller = Some(value()?),
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

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
            sim.create(&json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("app-{p}"), "namespace": ns, "labels": {"app": format!("app-{p}")}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "istio-proxy", "image": "proxy:1"}]}}))?;
        }
    }
    sim.create(&baseline())?;
    println!(
        "seeded {} namespaces and {} pods directly into the simulator in {:.1?}",
        a.namespaces,
        a.namespaces * a.pods_per_namespace,
        started.elapsed()
    );

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
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
    let mut by_resource: Vec<_> = log.by_verb_resource().into_iter().collect();
    by_resource.sort();
    println!("requests by verb and resource: {by_resource:?}");

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
