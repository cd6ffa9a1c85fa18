//! The live `meshbaseline posture` command at scale: the API simulator seeded with N
//! namespaces (P running pods each, two tenant policies, the baseline's generated objects as
//! the operator leaves them), then the command run as a user would, as a separate process
//! against the simulator's URL: one workload (`--namespace --workload`), several times, and
//! once the whole cluster. Prints wall times.
//!
//! `cargo run --release -p meshbaseline-e2e --bin posture_live -- [--namespaces 10000]
//!  [--pods-per-namespace 10] [--runs 10] [--meshbaseline target/release/meshbaseline]`

use std::process::Command;
use std::time::Instant;

use meshbaseline::api::model::Baseline;
use meshbaseline::api::MeshBaseline;
use meshbaseline::compile::{compile, Scope};
use meshbaseline::inventory::{Inventory, NamespaceInfo};
use meshbaseline_e2e::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    namespaces: usize,
    pods: usize,
    runs: usize,
    binary: String,
}

fn args() -> Result<Args> {
    let mut a = Args {
        namespaces: 10_000,
        pods: 10,
        runs: 10,
        binary: "target/release/meshbaseline".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--namespaces" => a.namespaces = value()?.parse()?,
            "--pods-per-namespace" => a.pods = value()?.parse()?,
            "--runs" => a.runs = value()?.parse()?,
            "--meshbaseline" => a.binary = value()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

fn baseline() -> Value {
    json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "scale"},
        "spec": {"namespaceSelector": {"matchLabels": {"mesh": "on"}}}})
}

fn seed_namespace(sim: &SimHandle, n: usize, pods: usize) -> Result<()> {
    let ns = format!("tenant-{n}");
    sim.create(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"mesh": "on", "istio-injection": "enabled"}}}))?;
    for p in 0..pods {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("app-{p}"), "namespace": ns, "labels": {"app": format!("app-{p}")},
                "annotations": {"sidecar.istio.io/status": "{}"}},
            "spec": {"containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}]},
                {"name": "istio-proxy", "image": "proxy:1"}]}});
        sim.create(&pod)?;
        sim.patch_status(&pod, &json!({"phase": "Running"}))?;
    }
    let mode = if n % 10 == 1 { "PERMISSIVE" } else { "STRICT" };
    sim.create(
        &json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": ns}, "spec": {"mtls": {"mode": mode}}}),
    )?;
    sim.create(
        &json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "allow", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "app-2"}},
            "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/x/sa/y"]}}]}]}}),
    )?;
    Ok(())
}

/// The baseline's objects, as the operator writes them (with its ownerReference).
fn seed_generated(sim: &SimHandle, namespaces: usize) -> Result<usize> {
    let stored = sim.create(&baseline())?;
    let mb: MeshBaseline = serde_json::from_value(stored)?;
    let b = Baseline::try_from(&mb)?;
    let mut inv = Inventory::default();
    for n in (0..namespaces)
        .map(|n| format!("tenant-{n}"))
        .chain(["istio-system".into()])
    {
        let labels = [("mesh".to_string(), "on".to_string())]
            .into_iter()
            .collect();
        inv.namespaces.insert(
            n.clone(),
            NamespaceInfo {
                name: n,
                labels,
                terminating: false,
            },
        );
    }
    let compiled = compile(&b, &inv, &Scope::default(), jiff::Timestamp::now());
    let mut created = 0;
    for o in &compiled.objects {
        if o.key.kind.is_istio() || o.key.kind.name() == "NetworkPolicy" {
            sim.create(&o.manifest())?;
            created += 1;
        }
    }
    Ok(created)
}

fn run(
    a: &Args,
    kubeconfig: &std::path::Path,
    extra: &[&str],
) -> Result<(std::time::Duration, Value)> {
    let started = Instant::now();
    let out = Command::new(&a.binary)
        .arg("posture")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .output()?;
    let took = started.elapsed();
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(format!(
            "posture exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok((took, doc))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = args()?;
    let sim = Simulator::start_with(SimConfig {
        history_capacity: 10_000,
        ..SimConfig::default()
    })
    .await?;
    sim.install_standard_crds()?;
    let started = Instant::now();
    sim.create(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    )?;
    for n in 0..a.namespaces {
        seed_namespace(&sim, n, a.pods)?;
    }
    let generated = seed_generated(&sim, a.namespaces)?;
    println!(
        "seeded {} namespaces, {} running pods, {} tenant policies and {generated} generated objects in {:.1?}",
        a.namespaces,
        a.namespaces * a.pods,
        a.namespaces * 2,
        started.elapsed()
    );
    let dir = std::env::temp_dir().join(format!("posture-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: sim, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: sim, user: {{}}}}]\ncontexts: [{{name: sim, context: {{cluster: sim, user: sim}}}}]\ncurrent-context: sim\n",
        sim.url()
    ))?;
    let ns = format!("tenant-{}", a.namespaces / 2 + 1);
    let one = [
        "--namespace",
        &ns,
        "--workload",
        "app-1",
        "--format",
        "json",
    ];
    let mut times = Vec::new();
    for i in 0..a.runs {
        let (took, doc) = tokio::task::block_in_place(|| run(&a, &kubeconfig, &one))?;
        let workloads = doc["workloads"].as_array().map_or(0, Vec::len);
        if workloads != 1 {
            return Err(format!("run {i}: {workloads} workloads listed, not 1: {doc}").into());
        }
        times.push(took);
    }
    times.sort();
    println!(
        "one workload (--namespace {ns} --workload app-1, its namespace and the root read): min {:.1?}, median {:.1?}, max {:.1?} over {} runs",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    let (took, doc) = tokio::task::block_in_place(|| run(&a, &kubeconfig, &["--format", "json"]))?;
    println!(
        "the whole cluster: {} workloads in {took:.1?} ({})",
        doc["workloads"].as_array().map_or(0, Vec::len),
        doc["totals"]
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
