//! compile for 10,000 namespaces (the target: under 20 ms on one core).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::compile::{compile, Scope};
use meshbaseline::inventory::{Inventory, NamespaceInfo};

fn baseline() -> Baseline {
    let mb: MeshBaseline = serde_norway::from_str(
        r#"
apiVersion: meshbaseline.dev/v1alpha1
kind: MeshBaseline
metadata: {name: default, uid: 3f1c0a52-8d8e-4c1e-9a53-1b2c3d4e5f60}
spec:
  namespaceSelector: {matchLabels: {mesh.example.com/protected: "true"}}
  exemptions:
    - {namespace: tenant-00007, controls: [network], reason: migration, expires: "2099-01-01T00:00:00Z"}
  authorization:
    denyRules:
      - name: block-legacy
        from: [{namespaces: [legacy]}]
  network:
    egress:
      mode: AllowList
      allowCidrs: [10.20.0.0/16, "2001:db8::/32"]
      egressGateway: {namespace: istio-system, podSelector: {istio: egressgateway}}
      registryOnly: true
    controlPlane: {monitoringNamespaces: [monitoring]}
"#,
    )
    .expect("bench baseline parses");
    Baseline::try_from(&mb).expect("bench baseline is valid")
}

fn inventory(n: usize) -> Inventory {
    let mut inv = Inventory::default();
    for i in 0..n {
        let name = format!("tenant-{i:05}");
        let labels = BTreeMap::from([
            ("mesh.example.com/protected".to_string(), "true".to_string()),
            ("kubernetes.io/metadata.name".to_string(), name.clone()),
        ]);
        inv.namespaces.insert(
            name.clone(),
            NamespaceInfo {
                name,
                labels: labels.into(),
                terminating: false,
            },
        );
    }
    inv
}

fn bench(c: &mut Criterion) {
    let b = baseline();
    let scope = Scope::default();
    let now = "2026-06-01T00:00:00Z".parse().expect("timestamp");
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    for n in [1_000, 10_000] {
        let inv = inventory(n);
        // Building the objects only: the caller keeps them (the controller's desired state).
        group.bench_function(format!("{n} namespaces"), |bench| {
            bench.iter_with_large_drop(|| compile(black_box(&b), black_box(&inv), &scope, now))
        });
        // Building and freeing them: a one-shot compile (render, a reconcile that discards).
        group.bench_function(format!("{n} namespaces incl. drop"), |bench| {
            bench.iter(|| compile(black_box(&b), black_box(&inv), &scope, now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
