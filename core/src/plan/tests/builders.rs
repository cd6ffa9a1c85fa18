//! Builders of the planner's inputs (`mk_*`) and `Case`, which owns them so that each test
//! states only what differs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::{json, Value};

use super::super::*;
use crate::api::baseline::{MeshBaseline, MeshBaselineSpec};
use crate::api::istio::{
    ClientTlsSettings, DestinationRule, DestinationRuleSpec, MutualTls, PeerAuthentication,
    PeerAuthenticationSpec, TrafficPolicy,
};
use crate::audit::Rule;
use crate::object::{DesiredObject, ObjectSpec, MANAGED_BY_LABEL};
use crate::object::{Name, OwnedMeta, BASELINE_LABEL, DRY_RUN_ANNOTATION};

pub(super) const UID: &str = "uid-1";

pub(super) fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub(super) fn mk_baseline(name: &str, spec: Value, created: &str) -> Baseline {
    let spec: MeshBaselineSpec = serde_json::from_value(spec).unwrap();
    let mut mb = MeshBaseline::new(name, spec);
    mb.metadata.uid = Some(format!("uid-{name}"));
    mb.metadata.generation = Some(1);
    mb.metadata.creation_timestamp = Some(Time(ts(created)));
    Baseline::try_from(&mb).unwrap()
}

pub(super) fn mk_default() -> Baseline {
    let mut b = mk_baseline("default", json!({}), "2026-01-01T00:00:00Z");
    b.uid = Some(UID.into());
    b
}

pub(super) fn labels(baseline: &str) -> Value {
    json!({MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: baseline})
}

pub(super) fn mk_desired(kind: Kind, ns: &str, name: &str, spec: Value) -> DesiredObject {
    DesiredObject {
        key: ObjectKey {
            kind,
            namespace: ns.into(),
            name: name.into(),
        },
        meta: Arc::new(OwnedMeta {
            labels: serde_json::from_value(labels("default")).unwrap(),
            annotations: if kind == Kind::AuthorizationPolicy {
                BTreeMap::from([(DRY_RUN_ANNOTATION.to_string(), "false".to_string())])
            } else {
                BTreeMap::new()
            },
            owner_references: Some(json!([{"apiVersion": "meshbaseline.dev/v1alpha1",
                "kind": "MeshBaseline", "name": "default", "uid": UID, "controller": true}])),
        }),
        spec: Arc::new(ObjectSpec::new(kind, &spec)),
    }
}

pub(super) fn deny_ap(ns: &str) -> DesiredObject {
    mk_desired(
        Kind::AuthorizationPolicy,
        ns,
        "meshbaseline-deny-plaintext",
        json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}),
    )
}

pub(super) fn netpol(ns: &str) -> DesiredObject {
    mk_desired(
        Kind::NetworkPolicy,
        ns,
        "meshbaseline-baseline",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
}

/// The object as the API server returns it: the desired fields plus its own.
pub(super) fn mk_observed(d: &DesiredObject) -> Observed {
    mk_observed_raw(mk_manifest(d), Some(UID))
}

/// `mk_observed`'s manifest, for tests that edit it.
pub(super) fn mk_manifest(d: &DesiredObject) -> Value {
    let mut m = d.manifest();
    m["metadata"]["uid"] = json!("obj-uid");
    m["metadata"]["resourceVersion"] = json!("42");
    m["metadata"]["managedFields"] = json!([{"manager": "meshbaseline", "operation": "Apply"}]);
    m["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(false);
    if d.key.kind == Kind::NetworkPolicy && m["spec"].get("ingress").is_none() {
        m["spec"]["ingress"] = json!([]); // what the API server may return for "none"
    }
    m
}

pub(super) fn mk_observed_raw(manifest: Value, owner: Option<&str>) -> Observed {
    let labels = serde_json::from_value(manifest["metadata"]["labels"].clone()).unwrap_or_default();
    Observed::new(manifest, owner.map(Name::from), Arc::new(labels))
}

pub(super) fn observed_of(objs: &[&DesiredObject]) -> BTreeMap<ObjectKey, Observed> {
    objs.iter()
        .map(|d| (d.key.clone(), mk_observed(d)))
        .collect()
}

pub(super) fn compiled(objects: Vec<DesiredObject>) -> Compiled {
    let mut objects = objects;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let protected: BTreeSet<String> = objects
        .iter()
        .map(|o| o.key.namespace.to_string())
        .collect();
    Compiled {
        objects,
        protected: protected.into_iter().collect(),
        exempt: Vec::new(),
    }
}

pub(super) fn mk_finding(rule: Rule, kind: &str, ns: &str, name: &str) -> Finding {
    Finding {
        rule,
        severity: rule.severity(),
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: name.into(),
        message: format!("{rule} on {name}"),
        fix: "fix it".into(),
    }
}

pub(super) fn managed(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some(operation.into()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(fields)),
        api_version: Some("security.istio.io/v1".into()),
        ..ManagedFieldsEntry::default()
    }
}

pub(super) fn mk_meta(
    ns: &str,
    name: &str,
    annotated: bool,
    mf: Vec<ManagedFieldsEntry>,
) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        annotations: annotated.then(|| {
            BTreeMap::from([(
                REVERTED_ANNOTATION.to_string(),
                "spec.mtls.mode".to_string(),
            )])
        }),
        managed_fields: Some(mf),
        uid: Some(format!("uid-{ns}-{name}")),
        ..ObjectMeta::default()
    }
}

pub(super) fn mk_pa(
    ns: &str,
    name: &str,
    mode: &str,
    ports: &[(&str, &str)],
    meta: ObjectMeta,
) -> PeerAuthentication {
    let _ = (ns, name);
    PeerAuthentication {
        metadata: meta,
        spec: PeerAuthenticationSpec {
            selector: None,
            mtls: Some(MutualTls {
                mode: Some(mode.into()),
            }),
            port_level_mtls: ports
                .iter()
                .map(|(p, m)| {
                    (
                        p.to_string(),
                        MutualTls {
                            mode: Some(m.to_string()),
                        },
                    )
                })
                .collect(),
        },
    }
}

pub(super) fn mk_dr(meta: ObjectMeta, mode: &str) -> DestinationRule {
    DestinationRule {
        metadata: meta,
        spec: DestinationRuleSpec {
            host: "reviews".into(),
            traffic_policy: Some(TrafficPolicy {
                tls: Some(ClientTlsSettings {
                    mode: Some(mode.into()),
                    ..ClientTlsSettings::default()
                }),
                ..TrafficPolicy::default()
            }),
            ..DestinationRuleSpec::default()
        },
    }
}

/// Owned inputs, so each test states only what differs.
pub(super) struct Case {
    pub(super) baseline: Baseline,
    pub(super) compiled: Compiled,
    pub(super) observed: BTreeMap<ObjectKey, Observed>,
    pub(super) findings: Vec<Finding>,
    pub(super) inventory: Inventory,
    pub(super) overlap: Resolved,
    pub(super) missing: BTreeSet<Kind>,
    pub(super) previous: Option<MeshBaselineStatus>,
    pub(super) previous_compiled: Option<Compiled>,
    pub(super) records: BTreeSet<ObjectKey>,
    pub(super) seen: BTreeSet<FindingId>,
    /// The "Finding" events' budget, as the controller keeps it.
    pub(super) budget: FindingBudget,
    pub(super) only: Option<BTreeSet<ObjectKey>>,
    pub(super) now: Timestamp,
}

impl Case {
    pub(super) fn new(objects: Vec<DesiredObject>) -> Case {
        Case {
            baseline: mk_default(),
            compiled: compiled(objects),
            observed: BTreeMap::new(),
            findings: Vec::new(),
            inventory: Inventory::default(),
            overlap: Resolved::default(),
            missing: BTreeSet::new(),
            previous: None,
            previous_compiled: None,
            records: BTreeSet::new(),
            seen: BTreeSet::new(),
            budget: FindingBudget::default(),
            only: None,
            now: ts("2026-06-01T00:00:00Z"),
        }
    }

    pub(super) fn run(&self) -> Plan {
        self.run_spec(Spec::Valid(&self.baseline))
    }

    pub(super) fn run_spec(&self, spec: Spec) -> Plan {
        // The controller shares observed objects with its caches; tests own them.
        let observed: BTreeMap<ObjectKey, Arc<Observed>> = self
            .observed
            .iter()
            .map(|(k, o)| (k.clone(), Arc::new(o.clone())))
            .collect();
        plan(&PlanInput {
            name: "default",
            uid: Some(UID),
            generation: Some(1),
            spec,
            compiled: &self.compiled,
            observed: &observed,
            findings: &self.findings,
            posture: None,
            inventory: &self.inventory,
            overlap: &self.overlap,
            missing_kinds: &self.missing,
            previous: self.previous.as_ref(),
            previous_compiled: self.previous_compiled.as_ref(),
            records: &self.records,
            previous_findings: &self.seen,
            finding_budget: &self.budget,
            only: self.only.as_ref(),
            now: self.now,
        })
    }

    /// As after an earlier reconcile that enforced the current compile output: what differs
    /// now is a repair.
    pub(super) fn enforced_before(&mut self) {
        let observed = std::mem::take(&mut self.observed);
        let p = self.run();
        self.converge(&p);
        self.observed = observed;
    }

    /// Feed a plan's status and memory back, as the controller does after executing it.
    pub(super) fn converge(&mut self, p: &Plan) {
        if let Some(s) = &p.status {
            self.previous = Some(s.clone());
        }
        self.seen = p.findings_seen.clone();
        self.budget = p.finding_budget.clone();
        self.previous_compiled = Some(self.compiled.clone());
        self.records
            .extend(self.compiled.objects.iter().map(|o| o.key.clone()));
    }
}

pub(super) fn cond<'a>(
    s: &'a MeshBaselineStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}
