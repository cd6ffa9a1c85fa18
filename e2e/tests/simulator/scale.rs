//! Seeding at the size of the scale run (10,000 namespaces, 100,000 pods) and
//! relisting it through a watcher. Ignored by default (it takes tens of seconds in debug
//! builds); run with `cargo nextest run -p meshbaseline-e2e --run-ignored only scale`.
//! It prints figures and asserts only completeness, never timing.

use std::time::Instant;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use meshbaseline_e2e::Simulator;
use serde_json::json;

use super::TestResult;

#[tokio::test]
#[ignore = "scale figures; run explicitly"]
async fn seed_and_relist_ten_thousand_namespaces() -> TestResult {
    let (namespaces, pods_per_ns) = (10_000, 10);
    let sim = Simulator::start().await?;
    let started = Instant::now();
    for n in 0..namespaces {
        let ns = format!("tenant-{n}");
        sim.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"mesh": "on"}}}))?;
        for p in 0..pods_per_ns {
            sim.create(&json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("app-{p}"), "namespace": ns, "labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "istio-proxy", "image": "proxy:1"}]}}))?;
        }
    }
    let seeded = started.elapsed();
    let started = Instant::now();
    let pods: Api<Pod> = Api::all(sim.client()?);
    let mut count = 0usize;
    let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
    while let Some(event) = stream.try_next().await? {
        match event {
            watcher::Event::InitApply(_) => count += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    let listed = started.elapsed();
    let lists = sim.requests().count(|r| r.resource == "pods");
    println!("seeded {namespaces} namespaces and {count} pods in {seeded:?}; relisted through a watcher in {listed:?} ({lists} pages of 500)");
    assert_eq!(count, namespaces * pods_per_ns);
    Ok(())
}
