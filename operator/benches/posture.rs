//! Posture at 10,000 namespaces and 100,000 pods: one workload with the whole inventory
//! indexed, one workload from the inventory `posture --namespace` reads (its namespace and the
//! root namespace), and the counts of every workload (what the operator adds to a full audit):
//! with the index built, with the index built first, and namespace by namespace as the
//! operator counts them.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use meshbaseline::api::istio::{AuthorizationPolicy, PeerAuthentication};
use meshbaseline::api::model::Baseline;
use meshbaseline::audit::audit_in_scope;
use meshbaseline::compile::{compile, Scope};
use meshbaseline::inventory::{
    ContainerInfo, Inventory, NamespaceInfo, PodInfo, PodShape, PortInfo,
};
use meshbaseline::posture::{Detail, Objects, Posture};
use serde_json::{json, Value};

const NAMESPACES: usize = 10_000;
const PODS_PER_NAMESPACE: usize = 10;

fn obj<T: serde::de::DeserializeOwned>(ns: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .expect("benchmark objects are well-formed")
}

fn namespace(inv: &mut Inventory, n: usize) {
    let ns = format!("tenant-{n:05}");
    let label = if n % 10 == 5 {
        ("istio.io/dataplane-mode", "ambient")
    } else {
        ("istio-injection", "enabled")
    };
    inv.namespaces.insert(
        ns.clone(),
        NamespaceInfo {
            terminating: false,
            name: ns.clone(),
            labels: [(label.0.to_string(), label.1.to_string())]
                .into_iter()
                .collect(),
        },
    );
    for p in 0..PODS_PER_NAMESPACE {
        let mut pod = PodInfo::new(
            ns.as_str(),
            format!("app-{p}"),
            PodShape {
                kind: "Pod".into(),
                phase: Some("Running".into()),
                containers: ["app", "istio-proxy"]
                    .iter()
                    .map(|c| ContainerInfo {
                        name: c.to_string(),
                        ..ContainerInfo::default()
                    })
                    .collect(),
                app_labels: [("app".to_string(), format!("app-{p}"))]
                    .into_iter()
                    .collect(),
                ports: vec![PortInfo {
                    number: 8080,
                    protocol: "TCP".into(),
                    name: Some("http".into()),
                }],
                ..PodShape::default()
            },
        );
        if p == 3 {
            pod.annotations.insert(
                "traffic.sidecar.istio.io/excludeInboundPorts".into(),
                "9090".into(),
            );
        }
        inv.pods.push(Arc::new(pod));
    }
    let pa_mode = if n % 10 == 1 { "PERMISSIVE" } else { "STRICT" };
    inv.peer_authentications
        .push(Arc::new(obj::<PeerAuthentication>(
            &ns,
            "default",
            json!({"mtls": {"mode": pa_mode}}),
        )));
    inv.peer_authentications.push(Arc::new(obj::<PeerAuthentication>(&ns, "app-1", json!({
        "selector": {"matchLabels": {"app": "app-1"}}, "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}}))));
    inv.authorization_policies.push(Arc::new(obj::<AuthorizationPolicy>(&ns, "allow", json!({
        "selector": {"matchLabels": {"app": "app-2"}},
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/x/sa/y"]}}], "to": [{"operation": {"ports": ["8080"]}}]}]}))));
    inv.authorization_policies.push(Arc::new(obj::<AuthorizationPolicy>(&ns, "deny-admin", json!({
        "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"], "ports": ["8080"]}}]}]}))));
}

fn inventory() -> Inventory {
    let mut inv = Inventory::default();
    inv.namespaces.insert(
        "istio-system".into(),
        NamespaceInfo {
            name: "istio-system".into(),
            ..NamespaceInfo::default()
        },
    );
    for n in 0..NAMESPACES {
        namespace(&mut inv, n);
    }
    inv
}

/// What `posture --namespace tenant-04242` reads: that namespace and the root namespace.
fn narrowed(inv: &Inventory, ns: &str) -> Inventory {
    let keep = |n: &str| n == ns || n == "istio-system";
    let mut out = Inventory::default();
    for (name, info) in inv.namespaces.iter().filter(|(n, _)| keep(n)) {
        out.namespaces.insert(name.clone(), (**info).clone());
    }
    let meta_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        keep(m.namespace.as_deref().unwrap_or_default())
    };
    out.pods = inv
        .pods
        .iter()
        .filter(|p| keep(&p.namespace))
        .cloned()
        .collect();
    out.peer_authentications = inv
        .peer_authentications
        .iter()
        .filter(|o| meta_ns(&o.metadata))
        .cloned()
        .collect();
    out.authorization_policies = inv
        .authorization_policies
        .iter()
        .filter(|o| meta_ns(&o.metadata))
        .cloned()
        .collect();
    out
}

fn bench(c: &mut Criterion) {
    let baseline = Baseline::default_for_check();
    let inv = inventory();
    let now = jiff::Timestamp::UNIX_EPOCH;
    let scope = Scope::default();
    let desired = compile(&baseline, &inv, &scope, now);
    let findings = audit_in_scope(&baseline, &inv, &desired, &scope, now);
    let target = inv
        .pods
        .iter()
        .position(|p| &*p.namespace == "tenant-04242" && &*p.name == "app-3")
        .expect("the pod exists");
    eprintln!(
        "posture: {NAMESPACES} namespaces, {} pods, {} findings",
        inv.pods.len(),
        findings.len()
    );
    let mut group = c.benchmark_group("posture");
    group.sample_size(10);
    group.bench_function("one workload, whole inventory indexed", |b| {
        b.iter(|| {
            let p = Posture::new(
                &baseline,
                &inv,
                &desired,
                &scope,
                now,
                &findings,
                Objects::Desired,
            );
            black_box(p.workload(&inv.pods[target], Detail::Explain))
        })
    });
    let p = Posture::new(
        &baseline,
        &inv,
        &desired,
        &scope,
        now,
        &findings,
        Objects::Desired,
    );
    group.bench_function("one workload, index built", |b| {
        b.iter(|| black_box(p.workload(&inv.pods[target], Detail::Explain)))
    });
    group.bench_function("counts of 100k workloads", |b| {
        b.iter(|| black_box(p.summary()))
    });
    group.bench_function("counts of 100k workloads, whole inventory indexed", |b| {
        b.iter(|| {
            let p = Posture::new(
                &baseline,
                &inv,
                &desired,
                &scope,
                now,
                &findings,
                Objects::Desired,
            );
            black_box(p.summary())
        })
    });
    group.bench_function(
        "counts of 100k workloads, namespace by namespace (the operator's)",
        |b| {
            b.iter(|| {
                black_box(Posture::counts(
                    &baseline,
                    &inv,
                    &desired,
                    &scope,
                    now,
                    &findings,
                    Objects::Desired,
                ))
            })
        },
    );
    let small = narrowed(&inv, "tenant-04242");
    group.bench_function(
        "one workload from its namespace and the root: compile, audit, posture",
        |b| {
            b.iter(|| {
                let desired = compile(&baseline, &small, &scope, now);
                let findings = audit_in_scope(&baseline, &small, &desired, &scope, now);
                let p = Posture::new(
                    &baseline,
                    &small,
                    &desired,
                    &scope,
                    now,
                    &findings,
                    Objects::Desired,
                );
                black_box(p.workload(&small.pods[3], Detail::Explain))
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
