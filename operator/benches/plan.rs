//! The planner on 10,000 namespaces (30,000 generated objects): the steady state (everything
//! matches: no writes) and a drift repair (one object deleted). This is the whole cost of the
//! drift-repair path in the controller, which reuses compile and audit results.

use std::collections::{BTreeMap, BTreeSet};

use criterion::{criterion_group, criterion_main, Criterion};
use jiff::Timestamp;
use meshbaseline::api::{Baseline, MeshBaseline, MeshBaselineSpec};
use meshbaseline::compile::Compiled;
use meshbaseline::inventory::Inventory;
use meshbaseline::object::{DesiredObject, Kind, ObjectKey, BASELINE_LABEL, MANAGED_BY_LABEL};
use meshbaseline::plan::{plan, Observed, PlanInput, Resolved, Spec};
use serde_json::{json, Value};

const NAMESPACES: usize = 10_000;

fn desired(kind: Kind, ns: &str, name: &str, spec: Value) -> DesiredObject {
    DesiredObject {
        key: ObjectKey {
            kind,
            namespace: ns.into(),
            name: name.into(),
        },
        manifest: json!({
            "apiVersion": kind.api_version(), "kind": kind.name(),
            "metadata": {"name": name, "namespace": ns,
                "labels": {MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: "default"},
                "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                    "name": "default", "uid": "u1", "controller": true}]},
            "spec": spec,
        }),
    }
}

fn world() -> (Baseline, Compiled, BTreeMap<ObjectKey, Observed>) {
    let spec: MeshBaselineSpec = serde_json::from_value(json!({})).unwrap();
    let mut mb = MeshBaseline::new("default", spec);
    mb.metadata.uid = Some("u1".into());
    let baseline = Baseline::try_from(&mb).unwrap();
    let mut objects = Vec::new();
    for i in 0..NAMESPACES {
        let ns = format!("tenant-{i:05}");
        objects.push(desired(
            Kind::AuthorizationPolicy,
            &ns,
            "meshbaseline-deny-plaintext",
            json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}),
        ));
        objects.push(desired(Kind::DestinationRule, &ns, "meshbaseline-mtls",
            json!({"host": format!("*.{ns}.svc.cluster.local"), "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})));
        objects.push(desired(Kind::NetworkPolicy, &ns, "meshbaseline-baseline", json!({
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP"}]}],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP"}]}]})));
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let observed = objects
        .iter()
        .map(|d| {
            let mut m = d.manifest.clone();
            m["metadata"]["uid"] = json!("x");
            m["metadata"]["resourceVersion"] = json!("1");
            m["metadata"]["generation"] = json!(1);
            (
                d.key.clone(),
                Observed {
                    manifest: m,
                    owner_uid: Some("u1".into()),
                    labels: d.labels(),
                },
            )
        })
        .collect();
    let protected = (0..NAMESPACES).map(|i| format!("tenant-{i:05}")).collect();
    (
        baseline,
        Compiled {
            objects,
            protected,
            exempt: Vec::new(),
        },
        observed,
    )
}

fn bench(c: &mut Criterion) {
    let (baseline, compiled, observed) = world();
    let mut drifted = observed.clone();
    let gone = compiled.objects[NAMESPACES].key.clone();
    drifted.remove(&gone);
    let inventory = Inventory::default();
    let resolved = Resolved::default();
    let missing = BTreeSet::new();
    let seen = BTreeSet::new();
    let changed = BTreeSet::from([gone.clone()]);
    let input = |observed, only| PlanInput {
        name: "default",
        uid: Some("u1"),
        generation: Some(1),
        spec: Spec::Valid(&baseline),
        compiled: &compiled,
        observed,
        findings: &[],
        inventory: &inventory,
        overlap: &resolved,
        missing_kinds: &missing,
        previous: None,
        previous_compiled: Some(&compiled),
        previous_findings: &seen,
        only,
        now: Timestamp::UNIX_EPOCH,
    };
    c.bench_function("plan 10k namespaces, steady state", |b| {
        b.iter(|| plan(&input(&observed, None)))
    });
    c.bench_function("plan 10k namespaces, one object deleted", |b| {
        b.iter(|| {
            let p = plan(&input(&drifted, None));
            assert_eq!(p.applies.len(), 1);
            p
        })
    });
    c.bench_function("plan 10k namespaces, one object deleted, fast path", |b| {
        b.iter(|| {
            let p = plan(&input(&drifted, Some(&changed)));
            assert_eq!(p.applies.len(), 1);
            p
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
