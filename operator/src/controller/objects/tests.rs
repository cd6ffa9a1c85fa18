use super::*;
use crate::compile::names;
use crate::object::{BASELINE_LABEL, MANAGED_BY_LABEL};
use serde_json::{json, Value};

/// The controller ownerReference of MeshBaseline `default` with `uid`.
fn owned_by(uid: &str) -> Value {
    json!([{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "name": "default", "uid": uid, "controller": true}])
}

/// A `kind` object with `metadata` and `spec`, trimmed as a watch event is.
fn mk_trimmed(kind: Kind, metadata: Value, spec: Value) -> (Key, KindEntry) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": kind.api_version(), "kind": kind.name(),
        "metadata": metadata, "spec": spec
    }))
    .unwrap();
    trim(kind, obj).unwrap()
}

#[test]
fn generated_objects_are_indexed_and_trimmed() {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "meshbaseline-deny-plaintext", "namespace": "a",
            "labels": {MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: "default"},
            "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                "name": "default", "uid": "u1", "controller": true}],
            "annotations": {"tenant": "note"}, "resourceVersion": "17", "uid": "o1",
            "managedFields": [{"manager": "meshbaseline", "operation": "Apply"}]},
        "spec": {"action": "DENY"}
    }))
    .unwrap();
    let (key, entry) = trim(Kind::AuthorizationPolicy, obj).unwrap();
    let obs = entry.generated.clone().unwrap();
    assert_eq!(obs.owner_uid.as_deref(), Some("u1"));
    let live = obs.live().unwrap();
    assert_eq!(live.resource_version, "17");
    assert_eq!(live.uid.as_deref(), Some("o1"));
    assert_eq!(live.annotations, Some(json!({"tenant": "note"})));
    assert_eq!(entry.resource_version(), Some("17"));
    // Claimed (our name, a MeshBaseline owner): no typed copy, parsed only when audited.
    assert!(matches!(entry.audit, AuditForm::Claimed(_)));
    assert!(entry.as_ours().is_none(), "skipped by the audit while ours");
    match entry.as_tenants(Kind::AuthorizationPolicy, &key) {
        Some(Typed::AuthorizationPolicy(ap)) => {
            assert!(ap.metadata.managed_fields.is_none());
            assert_eq!(ap.spec.action.as_deref(), Some("DENY"));
        }
        other => panic!("{other:?}"),
    }
    let idx = GeneratedIndex::default();
    assert!(idx.update(Kind::AuthorizationPolicy, &key, None, Some(&entry)));
    assert_eq!(idx.count(Some("u1")), 1);
    assert_eq!(idx.count(Some("u2")), 0);
    idx.update(Kind::AuthorizationPolicy, &key, Some(&entry), None);
    assert_eq!(idx.count(Some("u1")), 0);
}

fn owned_entry(owner: Option<&str>) -> KindEntry {
    let mut meta = json!({"name": "meshbaseline-deny-plaintext", "namespace": "a"});
    if let Some(uid) = owner {
        meta["ownerReferences"] = owned_by(uid);
    }
    mk_trimmed(Kind::AuthorizationPolicy, meta, json!({})).1
}

proptest::proptest! {
    /// The owner counts kept per change equal a count over the index, whatever the
    /// sequence of creations, owner changes and deletions.
    #[test]
    fn owner_counts_follow_every_change(
        steps in proptest::collection::vec((0usize..4, proptest::option::of(0usize..3)), 0..40)
    ) {
        let idx = GeneratedIndex::default();
        let uids = ["u0", "u1", "u2"];
        let mut live: Vec<Option<KindEntry>> = vec![None; 4];
        for (slot, owner) in steps {
            let key = crate::controller::cache::key(&format!("ns{slot}"), "meshbaseline-deny-plaintext");
            // `None` for the owner deletes the object when it exists, else creates one
            // without an owner.
            let new = match (owner, &live[slot]) {
                (None, Some(_)) => None,
                (o, _) => Some(owned_entry(o.map(|i| uids[i]))),
            };
            idx.update(Kind::AuthorizationPolicy, &key, live[slot].as_ref(), new.as_ref());
            live[slot] = new;
            for uid in uids {
                let counted = idx.with(|m| {
                    m.values().filter(|o| o.owner_uid.as_deref() == Some(uid)).count()
                });
                proptest::prop_assert_eq!(idx.count(Some(uid)), counted);
            }
            proptest::prop_assert_eq!(idx.count(None), 0);
        }
    }
}

#[test]
fn only_claims_the_audit_skips_go_untyped() {
    let dr = |name: &str, owned: bool| -> KindEntry {
        let mut meta = json!({"name": name, "namespace": "a"});
        if owned {
            meta["ownerReferences"] = owned_by("u1");
        }
        let spec = json!({"host": "*.a.svc.cluster.local"});
        mk_trimmed(Kind::DestinationRule, meta, spec).1
    };
    // The audit resolves hosts among all DestinationRules, ours included: always typed.
    for e in [
        dr(names::MTLS_DESTINATION_RULE, true),
        dr("meshbaseline-other", false),
    ] {
        assert!(matches!(e.audit, AuditForm::Typed(_)));
    }
    let np = |name: &str| -> KindEntry {
        let meta = json!({"name": name, "namespace": "a", "ownerReferences": owned_by("u1")});
        mk_trimmed(Kind::NetworkPolicy, meta, json!({"podSelector": {}})).1
    };
    // A namespace's NetworkPolicy is claimed; istiod's stays typed (MB701 counts it).
    let ours = np(names::BASELINE_NETWORK_POLICY);
    assert!(matches!(ours.audit, AuditForm::Claimed(_)));
    assert!(matches!(
        ours.as_tenants(
            Kind::NetworkPolicy,
            &("a".into(), names::BASELINE_NETWORK_POLICY.into())
        ),
        Some(Typed::NetworkPolicy(_))
    ));
    let istiod = np(names::ISTIOD_NETWORK_POLICY);
    assert!(matches!(istiod.audit, AuditForm::Typed(_)));
}

#[test]
fn write_responses_are_ordered_by_resource_version() {
    let entry = |rv: Option<&str>| KindEntry {
        audit: AuditForm::Unreadable,
        generated: None,
        resource_version: rv.map(Box::from),
    };
    assert_eq!(entry(Some("10")).newer_than(&entry(Some("9"))), Some(true));
    assert_eq!(entry(Some("9")).newer_than(&entry(Some("10"))), Some(false));
    assert_eq!(entry(Some("a")).newer_than(&entry(Some("9"))), None);
    assert_eq!(entry(None).newer_than(&entry(Some("9"))), None);
}

#[test]
fn peer_authentications_keep_managed_fields() {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "p", "namespace": "a",
            "managedFields": [{"manager": "kubectl", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
        "spec": {"mtls": {"mode": "PERMISSIVE"}}
    }))
    .unwrap();
    let (_, entry) = trim(Kind::PeerAuthentication, obj).unwrap();
    assert!(entry.generated.is_none());
    match entry.audit {
        AuditForm::Typed(Typed::PeerAuthentication(pa)) => {
            assert_eq!(
                pa.metadata.managed_fields.as_ref().unwrap()[0]
                    .manager
                    .as_deref(),
                Some("kubectl")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn objects_at_generated_names_drop_managed_fields() {
    let (_, entry) = mk_trimmed(
        Kind::DestinationRule,
        json!({"name": "meshbaseline-mtls", "namespace": "a",
            "managedFields": [{"manager": "meshbaseline", "operation": "Apply"}]}),
        json!({"host": "*.a.svc.cluster.local"}),
    );
    assert!(entry.generated.is_some());
    match entry.audit {
        AuditForm::Typed(Typed::DestinationRule(dr)) => {
            assert!(dr.metadata.managed_fields.is_none())
        }
        other => panic!("{other:?}"),
    }
    // Written by a tenant too (a forgery at our name, or our object edited): Revert mode may
    // patch it, and its fight detection reads them.
    let (_, entry) = mk_trimmed(
        Kind::DestinationRule,
        json!({"name": "meshbaseline-tls-off", "namespace": "a", "ownerReferences": owned_by("u1"),
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]}),
        json!({"host": "web.a.svc.cluster.local"}),
    );
    assert_eq!(entry.claimed_by(), Some("u1"));
    match entry.audit {
        AuditForm::Typed(Typed::DestinationRule(dr)) => {
            assert!(dr.metadata.managed_fields.is_some())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn istio_objects_without_a_spec_are_seen_with_an_empty_one() {
    // Istio's schemas accept a Sidecar or AuthorizationPolicy without `spec`.
    for (kind, k) in [
        (Kind::Sidecar, "Sidecar"),
        (Kind::AuthorizationPolicy, "AuthorizationPolicy"),
    ] {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": k,
            "metadata": {"name": "empty", "namespace": "a"}
        }))
        .unwrap();
        let (_, entry) = trim(kind, obj).unwrap();
        assert!(matches!(entry.audit, AuditForm::Typed(_)), "{k} must parse");
    }
}

#[test]
fn claimed_objects_share_what_they_have_in_common_and_keep_what_the_audit_reads() {
    let np = |ns: &str, created: &str| -> (Key, KindEntry) {
        let meta = json!({"name": names::BASELINE_NETWORK_POLICY, "namespace": ns,
            "creationTimestamp": created, "uid": format!("uid-{ns}"),
            "labels": {MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: "default"},
            "ownerReferences": owned_by("u1")});
        let spec = json!({"podSelector": {}, "policyTypes": ["Ingress"]});
        mk_trimmed(Kind::NetworkPolicy, meta, spec)
    };
    let (ka, a) = np("a", "2026-01-01T00:00:00Z");
    let (kb, b) = np("b", "2026-02-01T00:00:00Z");
    let (AuditForm::Claimed(ca), AuditForm::Claimed(cb)) = (&a.audit, &b.audit) else {
        panic!("claimed")
    };
    assert!(Arc::ptr_eq(&ca.shared, &cb.shared), "one copy for both");
    for (key, entry, created) in [
        (ka, a, "2026-01-01T00:00:00Z"),
        (kb, b, "2026-02-01T00:00:00Z"),
    ] {
        let Some(Typed::NetworkPolicy(p)) = entry.as_tenants(Kind::NetworkPolicy, &key) else {
            panic!("not audited")
        };
        let meta = &p.metadata;
        assert_eq!(meta.namespace.as_deref(), Some(&*key.0));
        assert_eq!(meta.name.as_deref(), Some(names::BASELINE_NETWORK_POLICY));
        assert_eq!(
            meta.creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .as_deref(),
            Some(created)
        );
        assert_eq!(meta.labels.as_ref().unwrap()[BASELINE_LABEL], "default");
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].uid, "u1");
        assert!(p.spec.is_some());
    }
}

#[test]
fn typed_claims_keep_their_labels_apart_and_get_them_back_when_audited() {
    let dr = |owned: bool| -> (Key, KindEntry) {
        let mut meta = json!({"name": names::MTLS_DESTINATION_RULE, "namespace": "a",
            "creationTimestamp": "2026-01-01T00:00:00Z", "uid": "o1", "resourceVersion": "9",
            "labels": {MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: "default"}});
        if owned {
            meta["ownerReferences"] = owned_by("u1");
        }
        let spec = json!({"host": "*.a.svc.cluster.local"});
        mk_trimmed(Kind::DestinationRule, meta, spec)
    };
    let (key, ours) = dr(true);
    let Some(Typed::DestinationRule(t)) = &ours.as_ours() else {
        panic!("typed")
    };
    assert_eq!(ours.claimed_by(), Some("u1"));
    assert_eq!(t.metadata.labels, None);
    // The uid stays: a revert of a forged claim names it, so that it never creates the object.
    assert_eq!(t.metadata.uid.as_deref(), Some("o1"));
    assert_eq!(t.metadata.resource_version, None);
    assert_eq!(t.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
    assert!(t.metadata.creation_timestamp.is_some());
    assert_eq!(t.spec.host, "*.a.svc.cluster.local");
    let Some(Typed::DestinationRule(a)) = ours.as_tenants(Kind::DestinationRule, &key) else {
        panic!("audited")
    };
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
        "meshbaseline"
    );
    assert_eq!(a.spec, t.spec);
    // Without a MeshBaseline owner it is a tenant's: typed whole.
    let (_, tenant) = dr(false);
    assert_eq!(tenant.claimed_by(), None);
    let Some(Typed::DestinationRule(t)) = &tenant.as_ours() else {
        panic!("typed")
    };
    assert!(t.metadata.labels.is_some());
}
