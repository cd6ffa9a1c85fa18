//! The planner on 10,000 namespaces (30,000 generated objects), with the findings of 2,000 pods
//! running as UID 1337, the previous status and the findings already announced, as the
//! controller calls it: the steady state (everything matches: no writes) and a drift repair
//! (one object deleted). This is the whole cost of the drift-repair path in the controller,
//! which reuses compile and audit results.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use jiff::Timestamp;
use meshbaseline::api::{Baseline, MeshBaseline, MeshBaselineSpec};
use meshbaseline::audit::audit_in_scope;
use meshbaseline::compile::{compile, Compiled, Scope};
use meshbaseline::inventory::{ContainerInfo, Inventory, NamespaceInfo, PodInfo, PodShape};
use meshbaseline::object::ObjectKey;
use meshbaseline::plan::{plan, FindingBudget, Observed, PlanInput, Resolved, Spec};
use serde_json::json;

const NAMESPACES: usize = 10_000;

fn world() -> (
    Baseline,
    Inventory,
    Compiled,
    BTreeMap<ObjectKey, Arc<Observed>>,
) {
    let spec: MeshBaselineSpec = serde_json::from_value(json!({
        "network": {"egress": {"mode": "AllowList", "allowCidrs": ["10.20.0.0/16", "2001:db8::/32"],
            "egressGateway": {"namespace": "istio-system", "podSelector": {"istio": "egressgateway"}}},
            "controlPlane": {"monitoringNamespaces": ["monitoring"]}}
    }))
    .unwrap();
    let mut mb = MeshBaseline::new("default", spec);
    mb.metadata.uid = Some("u1".into());
    let baseline = Baseline::try_from(&mb).unwrap();
    let mut inventory = Inventory::default();
    for i in 0..NAMESPACES {
        let name = format!("tenant-{i:05}");
        inventory.namespaces.insert(
            name.clone(),
            NamespaceInfo {
                terminating: false,
                name,
                labels: BTreeMap::new().into(),
            },
        );
    }
    let compiled = compile(
        &baseline,
        &inventory,
        &Scope::default(),
        Timestamp::UNIX_EPOCH,
    );
    // What the API server returns: our manifest plus fields of its own.
    let observed = compiled
        .objects
        .iter()
        .map(|d| {
            let mut m = d.manifest();
            m["metadata"]["uid"] = json!("x");
            m["metadata"]["resourceVersion"] = json!("1");
            m["metadata"]["generation"] = json!(1);
            let o = Observed::new(m, Some("u1".into()), Arc::new(d.labels().clone()));
            (d.key.clone(), Arc::new(o))
        })
        .collect();
    (baseline, inventory, compiled, observed)
}

fn bench(c: &mut Criterion) {
    let (baseline, namespaces, compiled, observed) = world();
    let mut drifted = observed.clone();
    let gone = compiled.objects[NAMESPACES].key.clone();
    drifted.remove(&gone);
    let inventory = Inventory::default();
    let resolved = Resolved::default();
    let missing = BTreeSet::new();
    // Findings as a cluster has them: 2,000 pods running as the proxy's UID.
    let mut audited = namespaces.clone();
    for i in 0..2_000 {
        audited.pods.push(Arc::new(PodInfo::new(
            format!("tenant-{:05}", i * 5),
            format!("batch-{i}"),
            PodShape {
                kind: "Pod".into(),
                phase: Some("Running".into()),
                containers: vec![
                    ContainerInfo {
                        name: "app".into(),
                        run_as_user: Some(1337),
                        ..ContainerInfo::default()
                    },
                    ContainerInfo {
                        name: "istio-proxy".into(),
                        ..ContainerInfo::default()
                    },
                ],
                ..PodShape::default()
            },
        )));
    }
    let findings = audit_in_scope(
        &baseline,
        &audited,
        &compiled,
        &Scope::default(),
        Timestamp::UNIX_EPOCH,
    );
    assert!(findings.len() >= 2_000);
    let records: BTreeSet<_> = compiled.objects.iter().map(|o| o.key.clone()).collect();
    // The previous reconcile: its status and the findings it announced.
    let none = BTreeSet::new();
    let first = plan(&PlanInput {
        name: "default",
        uid: Some("u1"),
        generation: Some(1),
        spec: Spec::Valid(&baseline),
        compiled: &compiled,
        observed: &observed,
        findings: &findings,
        posture: None,
        inventory: &inventory,
        overlap: &resolved,
        missing_kinds: &missing,
        previous: None,
        previous_compiled: Some(&compiled),
        records: &records,
        previous_findings: &none,
        finding_budget: &FindingBudget::default(),
        only: None,
        now: Timestamp::UNIX_EPOCH,
    });
    let previous = first.status.clone();
    let seen = first.findings_seen.clone();
    let budget = first.finding_budget.clone();
    let changed = BTreeSet::from([gone.clone()]);
    let input = |observed, only| PlanInput {
        name: "default",
        uid: Some("u1"),
        generation: Some(1),
        spec: Spec::Valid(&baseline),
        compiled: &compiled,
        observed,
        findings: &findings,
        posture: None,
        inventory: &inventory,
        overlap: &resolved,
        missing_kinds: &missing,
        previous: previous.as_ref(),
        previous_compiled: Some(&compiled),
        records: &records,
        previous_findings: &seen,
        finding_budget: &budget,
        only,
        now: Timestamp::UNIX_EPOCH,
    };
    c.bench_function("plan 10k namespaces, steady state", |b| {
        b.iter(|| plan(&input(&observed, None)))
    });
    // The target: compile + plan for 10,000 namespaces under 20 ms.
    c.bench_function("compile + plan 10k namespaces, steady state", |b| {
        b.iter(|| {
            let compiled = compile(
                &baseline,
                &namespaces,
                &Scope::default(),
                Timestamp::UNIX_EPOCH,
            );
            let p = plan(&PlanInput {
                compiled: &compiled,
                ..input(&observed, None)
            });
            assert!(p.applies.is_empty() && p.status.is_none() && p.events.is_empty());
            p
        })
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
