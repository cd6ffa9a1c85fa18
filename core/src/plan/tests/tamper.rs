//! Tampering: whatever a tenant does to a generated object, one plan restores exactly the
//! desired spec, labels and ownerReference, and the plan after that is empty.

use proptest::prelude::*;

use crate::object::DRY_RUN_ANNOTATION;

use super::*;

fn desired_objects() -> Vec<DesiredObject> {
    vec![
        deny_ap("a"),
        mk_desired(
            Kind::NetworkPolicy,
            "a",
            "meshbaseline-baseline",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": [{"protocol": "TCP"}]}],
                "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                    {"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP"}]}]}),
        ),
        mk_desired(
            Kind::DestinationRule,
            "a",
            "meshbaseline-mtls",
            json!({"host": "*.a.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
        ),
        mk_desired(
            Kind::PeerAuthentication,
            "istio-system",
            "meshbaseline-mesh-mtls",
            json!({"mtls": {"mode": "STRICT"}}),
        ),
        mk_desired(
            Kind::Sidecar,
            "istio-system",
            "meshbaseline-registry-only",
            json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),
        ),
    ]
}

/// One tenant edit, at a path chosen by `at` (an index into the object's nodes).
#[derive(Clone, Debug)]
enum Edit {
    AddKey(usize, String, Value),
    RemoveKey(usize),
    SetScalar(usize, Value),
    Push(usize, Value),
    Pop(usize),
    DropOwnerReferences,
    ForgeOwner,
    SetOurLabel(String),
    AddTenantLabel,
    AddAnnotation,
    /// `istio.io/dry-run` set to a value (Istio enforces nothing when it reads as true).
    SetDryRun(String),
    DropAnnotations,
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0..70000i64).prop_map(Value::from),
        "[A-Za-z*]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    let key = prop_oneof![
        Just("selector".to_string()),
        Just("to".to_string()),
        Just("podSelector".to_string()),
        Just("matchLabels".to_string()),
        Just("namespaceSelector".to_string()),
        "[a-z]{1,6}",
    ];
    prop_oneof![
        (any::<usize>(), key, arb_value()).prop_map(|(i, k, v)| Edit::AddKey(i, k, v)),
        any::<usize>().prop_map(Edit::RemoveKey),
        (any::<usize>(), arb_value()).prop_map(|(i, v)| Edit::SetScalar(i, v)),
        (any::<usize>(), arb_value()).prop_map(|(i, v)| Edit::Push(i, v)),
        any::<usize>().prop_map(Edit::Pop),
        Just(Edit::DropOwnerReferences),
        Just(Edit::ForgeOwner),
        "[a-z]{0,3}".prop_map(Edit::SetOurLabel),
        Just(Edit::AddTenantLabel),
        Just(Edit::AddAnnotation),
        prop_oneof![
            Just("true"),
            Just("false"),
            Just("1"),
            Just("True"),
            Just("")
        ]
        .prop_map(|v| Edit::SetDryRun(v.to_string())),
        Just(Edit::DropAnnotations),
    ]
}

/// JSON pointers of every node of `v` (the root included), in a stable order.
fn nodes(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| nodes(c, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| nodes(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn edit_spec(spec: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    nodes(spec, String::new(), &mut all);
    let pick = |i: &usize| all[i % all.len()].clone();
    match edit {
        Edit::AddKey(i, k, v) => {
            if let Some(Value::Object(m)) = spec.pointer_mut(&pick(i)) {
                m.insert(k.clone(), v.clone());
            }
        }
        Edit::RemoveKey(i) => {
            let p = pick(i);
            if let Some((parent, last)) = p.rsplit_once('/') {
                if let Some(Value::Object(m)) = spec.pointer_mut(parent) {
                    m.remove(last);
                }
            }
        }
        Edit::SetScalar(i, v) => {
            if let Some(slot) = spec.pointer_mut(&pick(i)) {
                *slot = v.clone();
            }
        }
        Edit::Push(i, v) => {
            if let Some(Value::Array(a)) = spec.pointer_mut(&pick(i)) {
                a.push(v.clone());
            }
        }
        Edit::Pop(i) => {
            if let Some(Value::Array(a)) = spec.pointer_mut(&pick(i)) {
                a.pop();
            }
        }
        _ => {}
    }
}

fn edit_meta(m: &mut Value, edit: &Edit) {
    let meta = &mut m["metadata"];
    match edit {
        Edit::DropOwnerReferences => {
            if let Some(o) = meta.as_object_mut() {
                o.remove("ownerReferences");
            }
        }
        Edit::ForgeOwner => {
            meta["ownerReferences"] = json!([{"apiVersion": "meshbaseline.dev/v1alpha1",
                "kind": "MeshBaseline", "name": "default", "uid": "tenant-uid", "controller": true}]);
        }
        Edit::SetOurLabel(v) => meta["labels"][BASELINE_LABEL] = json!(v),
        Edit::AddTenantLabel => meta["labels"]["team"] = json!("x"),
        Edit::AddAnnotation => meta["annotations"]["note"] = json!("mine"),
        Edit::SetDryRun(v) => meta["annotations"][DRY_RUN_ANNOTATION] = json!(v),
        Edit::DropAnnotations => {
            if let Some(o) = meta.as_object_mut() {
                o.remove("annotations");
            }
        }
        _ => {}
    }
}

/// What the API server stores for a replace: the body, its own fields, a new version, and its
/// defaults (NetworkPolicy ports without a protocol are TCP).
fn server_replace(body: &Value, version: u64) -> Observed {
    let mut m = body.clone();
    m["metadata"]["resourceVersion"] = json!(version.to_string());
    m["metadata"]["uid"] = json!("obj-uid");
    if m["kind"] == "NetworkPolicy" {
        for dir in ["ingress", "egress"] {
            for rule in m["spec"][dir].as_array_mut().into_iter().flatten() {
                for port in rule["ports"].as_array_mut().into_iter().flatten() {
                    if port.get("protocol").is_none() {
                        port["protocol"] = json!("TCP");
                    }
                }
            }
        }
    }
    let owner = m
        .pointer("/metadata/ownerReferences/0/uid")
        .and_then(Value::as_str)
        .map(String::from);
    mk_observed_raw(m, owner.as_deref())
}

/// Whether the edited object `m` still means the desired `d`: the same spec once normalised,
/// the same ownership, our labels and annotations.
fn means_desired(d: &DesiredObject, m: &Value) -> bool {
    // The server's `blockOwnerDeletion: false` (see `mk_observed`) means nothing.
    let owners = |v: &Value| {
        let mut o = v.pointer("/metadata/ownerReferences").cloned();
        if let Some(r) = o
            .as_mut()
            .and_then(|o| o.pointer_mut("/0"))
            .and_then(Value::as_object_mut)
        {
            r.remove("blockOwnerDeletion");
        }
        o
    };
    normalise(d.key.kind, &m["spec"]) == normalise(d.key.kind, &d.spec.value())
        && owners(m) == owners(&d.manifest())
        && m["metadata"]["labels"][BASELINE_LABEL] == "default"
        && d.meta
            .annotations
            .iter()
            .all(|(k, v)| m["metadata"]["annotations"][k] == json!(v))
}

fn restores(which: usize, edits: &[Edit]) -> Result<(), TestCaseError> {
    let all = desired_objects();
    let d = all[which % all.len()].clone();
    let mut case = Case::new(all.clone());
    case.enforced_before();
    case.observed = all
        .iter()
        .map(|o| (o.key.clone(), mk_observed(o)))
        .collect();
    let mut m = mk_manifest(&d);
    for e in edits {
        edit_spec(&mut m["spec"], e);
        edit_meta(&mut m, e);
    }
    let owner = m
        .pointer("/metadata/ownerReferences/0/uid")
        .and_then(Value::as_str)
        .map(String::from);
    case.observed
        .insert(d.key.clone(), mk_observed_raw(m.clone(), owner.as_deref()));
    let p = case.run();
    prop_assert!(p.deletes.is_empty());
    if means_desired(&d, &m) {
        prop_assert!(p.applies.is_empty(), "{:?}", p.applies);
        return Ok(());
    }
    prop_assert_eq!(p.applies.len(), 1);
    let a = &p.applies[0];
    prop_assert_eq!(&a.key, &d.key);
    prop_assert!(a.repair);
    let body = a.manifest();
    // A replace guarded by the version we saw, of exactly the desired spec and ownership;
    // the tenant's own labels and annotations stay.
    prop_assert_eq!(body["metadata"]["resourceVersion"].clone(), json!("42"));
    prop_assert_eq!(&body["spec"], &d.spec.value());
    let desired_manifest = d.manifest();
    prop_assert_eq!(
        body.pointer("/metadata/ownerReferences"),
        desired_manifest.pointer("/metadata/ownerReferences")
    );
    prop_assert_eq!(
        body["metadata"]["labels"][BASELINE_LABEL].clone(),
        json!("default")
    );
    if let Some(team) = m.pointer("/metadata/labels/team") {
        prop_assert_eq!(&body["metadata"]["labels"]["team"], team);
    }
    if let Some(note) = m.pointer("/metadata/annotations/note") {
        prop_assert_eq!(&body["metadata"]["annotations"]["note"], note);
    }
    for (k, v) in &d.meta.annotations {
        prop_assert_eq!(&body["metadata"]["annotations"][k], &json!(v));
    }
    // The server stores it; the next plans (full, and the drift fast path) are empty.
    let stored = server_replace(&body, 43);
    case.observed.insert(d.key.clone(), stored);
    case.converge(&p);
    prop_assert!(case.run().applies.is_empty());
    case.only = Some(BTreeSet::from([d.key.clone()]));
    let again = case.run();
    prop_assert!(again.applies.is_empty() && again.deletes.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_tenant_edit_is_repaired_exactly_once(
        which in 0..5usize,
        edits in prop::collection::vec(arb_edit(), 1..4),
    ) {
        restores(which, &edits)?;
    }
}

/// The known switch-offs, named.
#[test]
fn known_switch_offs_are_repaired() {
    let cases: Vec<(usize, Vec<Edit>)> = vec![
        // A selector that matches nothing on the DENY policy.
        (
            0,
            vec![Edit::AddKey(
                0,
                "selector".into(),
                json!({"matchLabels": {"nothing": "x"}}),
            )],
        ),
        // A `to` clause merged into the deny rule (node 3: /rules/0).
        (
            0,
            vec![Edit::AddKey(
                3,
                "to".into(),
                json!([{"operation": {"ports": ["1"]}}]),
            )],
        ),
        // The NetworkPolicy's podSelector narrowed.
        (
            1,
            vec![Edit::AddKey(
                usize::MAX,
                "matchLabels".into(),
                json!({"none": "x"}),
            )],
        ),
        (1, vec![Edit::DropOwnerReferences]),
        (
            2,
            vec![Edit::SetOurLabel("other".into()), Edit::AddTenantLabel],
        ),
        // The DENY policy switched to a dry run by an annotation, its spec untouched.
        (0, vec![Edit::SetDryRun("true".into())]),
        (0, vec![Edit::AddAnnotation, Edit::SetDryRun("1".into())]),
        (0, vec![Edit::DropAnnotations]),
    ];
    for (which, edits) in cases {
        restores(which, &edits).unwrap();
    }
}

#[test]
fn a_selector_added_to_the_deny_policy_is_a_replace_without_it() {
    let ap = deny_ap("a");
    let mut case = Case::new(vec![ap.clone()]);
    case.enforced_before();
    let mut m = mk_manifest(&ap);
    m["spec"]["selector"] = json!({"matchLabels": {"nothing": "matches"}});
    m["metadata"]["labels"]["team"] = json!("payments");
    case.observed = BTreeMap::from([(ap.key.clone(), mk_observed_raw(m, Some(UID)))]);
    let p = case.run();
    assert_eq!(p.applies.len(), 1);
    let body = p.applies[0].manifest();
    assert!(body["spec"].get("selector").is_none(), "{body}");
    assert_eq!(body["metadata"]["labels"]["team"], "payments");
    assert_eq!(body["metadata"]["resourceVersion"], "42");
    assert_eq!(body["metadata"]["uid"], "obj-uid");
}

/// Leaving Audit mode writes every object for the first time: no repair is counted or announced.
#[test]
fn the_first_writes_after_audit_mode_are_no_repairs() {
    let mut case = Case::new(desired_objects());
    case.baseline = mk_baseline("default", json!({"mode": "Audit"}), "2026-01-01T00:00:00Z");
    let p = case.run();
    case.converge(&p);
    case.baseline = mk_baseline("default", json!({}), "2026-01-01T00:00:00Z");
    let p = case.run();
    assert_eq!(p.applies.len(), desired_objects().len());
    assert!(p.applies.iter().all(|a| !a.repair));
    assert!(p.events.iter().all(|e| e.reason != Reason::DriftRepaired));
    assert_eq!(p.status.unwrap().drift_repairs, 0);
}

/// Each repair's event names its object as `related`, so the API server's event series (keyed
/// by reason and objects, not by note) keep one event per repaired object.
#[test]
fn repair_events_name_their_object() {
    let all = desired_objects();
    let mut case = Case::new(all.clone());
    case.enforced_before();
    case.observed = all[2..]
        .iter()
        .map(|o| (o.key.clone(), mk_observed(o)))
        .collect();
    let p = case.run();
    let related: Vec<_> = p
        .events
        .iter()
        .filter(|e| e.reason == Reason::DriftRepaired)
        .map(|e| e.related.clone().unwrap())
        .collect();
    assert_eq!(
        related,
        [
            crate::plan::Related {
                kind: "AuthorizationPolicy".into(),
                namespace: Some("a".into()),
                name: "meshbaseline-deny-plaintext".into()
            },
            crate::plan::Related {
                kind: "NetworkPolicy".into(),
                namespace: Some("a".into()),
                name: "meshbaseline-baseline".into()
            },
        ]
    );
}
