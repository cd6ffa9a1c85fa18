//! Audit of 10,000 namespaces with 100,000 pods: a mix of clean and bad pods, tenant
//! policies (some weakening), and the operator's own objects in every namespace.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use meshbaseline::api::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication};
use meshbaseline::api::model::Baseline;
use meshbaseline::audit::audit;
use meshbaseline::inventory::{
    ContainerInfo, Inventory, NamespaceInfo, PodInfo, PodShape, ServiceInfo,
};
use serde_json::{json, Value};

const NAMESPACES: usize = 10_000;
const PODS_PER_NAMESPACE: usize = 10;

fn obj<T: serde::de::DeserializeOwned>(ns: &str, name: &str, managed: bool, spec: Value) -> T {
    let labels = if managed {
        json!({"app.kubernetes.io/managed-by": "meshbaseline"})
    } else {
        json!({})
    };
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec}),
    )
    .expect("benchmark objects are well-formed")
}

fn container(name: &str) -> ContainerInfo {
    ContainerInfo {
        name: name.into(),
        ..ContainerInfo::default()
    }
}

fn inventory() -> Inventory {
    let mut inv = Inventory::default();
    for n in 0..NAMESPACES {
        let ns = format!("tenant-{n:05}");
        // One namespace in ten is ambient, one in fifty has injection disabled.
        let labels = match n {
            _ if n % 10 == 5 => [("istio.io/dataplane-mode", "ambient")],
            _ if n % 50 == 0 => [("istio-injection", "disabled")],
            _ => [("istio-injection", "enabled")],
        };
        inv.namespaces.insert(
            ns.clone(),
            NamespaceInfo {
                terminating: false,
                name: ns.clone(),
                labels: labels
                    .map(|(k, v)| (k.to_string(), v.to_string()))
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
                    containers: vec![container("app"), container("istio-proxy")],
                    ..PodShape::default()
                },
            );
            match (n * PODS_PER_NAMESPACE + p) % 20 {
                0 => pod.containers[0].run_as_user = Some(1337),
                1 => pod.containers[0].added_capabilities = vec!["NET_ADMIN".into()],
                2 => {
                    pod.containers.pop();
                }
                3 => {
                    pod.annotations.insert(
                        "traffic.sidecar.istio.io/excludeOutboundPorts".into(),
                        "5432".into(),
                    );
                }
                _ => pod.containers[1].run_as_user = Some(1337),
            }
            inv.pods.push(std::sync::Arc::new(pod));
        }
        inv.services.push(ServiceInfo {
            namespace: ns.clone(),
            name: "api".into(),
            ip_families: vec![if n % 100 == 0 { "IPv6" } else { "IPv4" }.into()],
            ip_family_policy: None,
            use_waypoint: None,
        });
        let host = format!("*.{ns}.svc.cluster.local");
        inv.destination_rules.push(Arc::new(obj::<DestinationRule>(
            &ns,
            "meshbaseline-mtls",
            true,
            json!({"host": host, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
        )));
        let dr_mode = if n % 10 == 0 {
            "DISABLE"
        } else {
            "ISTIO_MUTUAL"
        };
        inv.destination_rules.push(Arc::new(obj::<DestinationRule>(
            &ns,
            "api",
            false,
            json!({"host": "api", "trafficPolicy": {"tls": {"mode": dr_mode}}}),
        )));
        let pa_mode = if n % 10 == 1 { "PERMISSIVE" } else { "STRICT" };
        inv.peer_authentications
            .push(Arc::new(obj::<PeerAuthentication>(
                &ns,
                "default",
                false,
                json!({"mtls": {"mode": pa_mode}}),
            )));
        let from = if n % 10 == 2 {
            json!([])
        } else {
            json!([{"source": {"principals": ["cluster.local/ns/x/sa/y"]}}])
        };
        inv.authorization_policies
            .push(Arc::new(obj::<AuthorizationPolicy>(
                &ns,
                "allow",
                false,
                json!({"rules": [{"from": from}]}),
            )));
        inv.network_policies.push(Arc::new(obj(
            &ns,
            "meshbaseline-baseline",
            true,
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{"ports": [{"protocol": "TCP"}]}], "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP"}]}]}),
        )));
        if n % 10 == 3 {
            inv.network_policies.push(Arc::new(obj(
                &ns,
                "egress-all",
                false,
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
            )));
        }
    }
    inv
}

fn bench(c: &mut Criterion) {
    let baseline = Baseline::default_for_check();
    let inv = inventory();
    let now = jiff::Timestamp::UNIX_EPOCH;
    let findings = audit(&baseline, &inv, now).len();
    eprintln!(
        "audit: {NAMESPACES} namespaces, {} pods, {findings} findings",
        inv.pods.len()
    );
    let pods_only = Inventory {
        namespaces: inv.namespaces.clone(),
        pods: inv.pods.clone(),
        ..Inventory::default()
    };
    let policies_only = Inventory {
        pods: Vec::new(),
        ..inv.clone()
    };
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.bench_function("10k_namespaces_100k_pods", |b| {
        b.iter(|| audit(black_box(&baseline), black_box(&inv), now))
    });
    group.bench_function("pods_only", |b| {
        b.iter(|| audit(black_box(&baseline), black_box(&pods_only), now))
    });
    group.bench_function("policies_only", |b| {
        b.iter(|| audit(black_box(&baseline), black_box(&policies_only), now))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
