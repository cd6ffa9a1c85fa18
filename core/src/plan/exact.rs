//! "Does the live object mean exactly what we want?". A subset test ("every field we set is
//! there") is not enough: a tenant can switch a policy off by *adding* a field the operator
//! never set (a `selector` that matches nothing, a `to` clause, a narrower `podSelector`), and
//! server-side apply leaves fields other managers own in place. So the live spec must be
//! *equal* to the desired one once both are normalised: what the API server fills in on its
//! own (defaults, empty lists dropped by Go's `omitempty`) is erased on both sides, so the
//! operator never fights the server's defaulting.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::object::{DesiredObject, Kind};

/// Keys chosen at random per process, so a tenant cannot craft a spec that collides with ours.
static HASH_KEYS: LazyLock<std::collections::hash_map::RandomState> =
    LazyLock::new(std::collections::hash_map::RandomState::new);

/// A fingerprint of a JSON value: equal values have equal fingerprints (numbers by value, so
/// `1` and `1.0` agree).
pub fn fingerprint(value: &Value) -> u64 {
    let mut h = HASH_KEYS.build_hasher();
    feed(value, &mut h);
    h.finish()
}

fn feed(value: &Value, h: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.as_f64().map(f64::to_bits)).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            items.iter().for_each(|v| feed(v, h));
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(h);
            for (k, v) in map {
                k.hash(h);
                feed(v, h);
            }
        }
    }
}

/// Map-typed fields (Go `map[string]string` with `omitempty`): `{}` and absent are the same
/// object. Struct-typed fields are not listed: `namespaceSelector: {}` (every namespace) is
/// not the same peer as no `namespaceSelector` (this namespace).
const MAP_FIELDS: [&str; 1] = ["matchLabels"];

/// Drops what serialisation does not distinguish: `null`, empty lists (every list field of
/// the generated kinds is `omitempty` in Kubernetes and `repeated` in Istio's protos, where
/// empty means absent) and empty label maps.
fn strip_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(strip_empty);
            m.retain(|k, v| match v {
                Value::Null => false,
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !(o.is_empty() && MAP_FIELDS.contains(&k.as_str())),
                _ => true,
            });
        }
        Value::Array(a) => a.iter_mut().for_each(strip_empty),
        _ => {}
    }
}

/// The API server's defaults for NetworkPolicy (`SetDefaults_NetworkPolicy`): a port without
/// `protocol` is TCP, and without `policyTypes` a policy affects Ingress, plus Egress when it
/// has egress rules. The order of `policyTypes` carries no meaning.
fn default_network_policy(spec: &mut Map<String, Value>) {
    for dir in ["ingress", "egress"] {
        let rules = spec.get_mut(dir).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let ports = rule.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                if let Some(p) = port.as_object_mut() {
                    if p.get("protocol").is_none_or(Value::is_null) {
                        p.insert("protocol".into(), Value::String("TCP".into()));
                    }
                }
            }
        }
    }
    let has_types = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !has_types {
        let mut types = vec![Value::String("Ingress".into())];
        if spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty())
        {
            types.push(Value::String("Egress".into()));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    if let Some(Value::Array(types)) = spec.get_mut("policyTypes") {
        types.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        types.dedup();
    }
}

/// Inserts `value` at `key` unless a non-null value is there.
fn default_field(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), value);
    }
}

/// The API server's defaults for admission `MatchResources` (`SetDefaults_MatchResources`,
/// `SetDefaults_Rule`): Equivalent matching, selectors matching everything, rules of any scope.
fn default_match_resources(m: &mut Map<String, Value>) {
    default_field(m, "matchPolicy", Value::String("Equivalent".into()));
    default_field(m, "namespaceSelector", Value::Object(Map::new()));
    default_field(m, "objectSelector", Value::Object(Map::new()));
    for rules in ["resourceRules", "excludeResourceRules"] {
        let items = m.get_mut(rules).and_then(Value::as_array_mut);
        for rule in items.into_iter().flatten().filter_map(Value::as_object_mut) {
            default_field(rule, "scope", Value::String("*".into()));
        }
    }
}

/// The API server's defaults for the admission kinds: `failurePolicy: Fail` on the policy,
/// and those of its `matchConstraints` or the binding's `matchResources`.
fn default_admission(kind: Kind, spec: &mut Map<String, Value>) {
    let field = match kind {
        Kind::ValidatingAdmissionPolicy => {
            default_field(spec, "failurePolicy", Value::String("Fail".into()));
            "matchConstraints"
        }
        _ => "matchResources",
    };
    if let Some(m) = spec.get_mut(field).and_then(Value::as_object_mut) {
        default_match_resources(m);
    }
}

/// Kinds the API server fills in defaults for (Istio's CRDs and network-policy-api's have
/// none in their schemas).
fn has_server_defaults(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::NetworkPolicy
            | Kind::ValidatingAdmissionPolicy
            | Kind::ValidatingAdmissionPolicyBinding
    )
}

/// The spec as the API server would store it, with what cannot tell two specs apart erased.
/// Two specs mean the same thing exactly when their normal forms are equal.
pub fn normalise(kind: Kind, spec: &Value) -> Value {
    let mut v = spec.clone();
    if let Some(m) = v.as_object_mut() {
        match kind {
            Kind::NetworkPolicy => default_network_policy(m),
            Kind::ValidatingAdmissionPolicy | Kind::ValidatingAdmissionPolicyBinding => {
                default_admission(kind, m)
            }
            _ => {}
        }
    }
    strip_empty(&mut v);
    v
}

/// ownerReferences with `false` flags dropped (`controller: false` and absent are the same).
fn normalise_owners(refs: &Value) -> Value {
    let mut v = refs.clone();
    if let Value::Array(items) = &mut v {
        for item in items {
            if let Value::Object(m) = item {
                m.retain(|_, v| !matches!(v, Value::Bool(false) | Value::Null));
            }
        }
    }
    strip_empty(&mut v);
    v
}

/// Whether `v` holds anything `strip_empty` (or, with `flags`, `normalise_owners`) would
/// remove. Most specs hold nothing of the kind: they are hashed as they are, without a copy
/// (10,000 per-namespace DestinationRule specs are distinct values).
fn has_removable(v: &Value, flags: bool) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| match v {
            Value::Null => true,
            Value::Bool(false) => flags,
            Value::Array(a) => a.is_empty() || a.iter().any(|v| has_removable(v, flags)),
            Value::Object(o) => {
                (o.is_empty() && MAP_FIELDS.contains(&k.as_str())) || has_removable(v, flags)
            }
            _ => false,
        }),
        Value::Array(a) => a.iter().any(|v| has_removable(v, flags)),
        _ => false,
    }
}

/// The fingerprint of what must be exactly equal: the normal form of the spec and the
/// ownerReferences, of a desired object (from its parts) or an observed one.
pub fn owned_fingerprint(
    kind: Kind,
    spec: Option<&Value>,
    owner_references: Option<&Value>,
) -> u64 {
    owned_fingerprint_of(
        spec.map_or(0, |s| spec_fingerprint(kind, s)),
        owner_references,
    )
}

/// The fingerprint of a spec's normal form (a desired object's is computed once, in
/// `object::ObjectSpec::new`).
pub fn spec_fingerprint(kind: Kind, spec: &Value) -> u64 {
    if !has_server_defaults(kind) && !has_removable(spec, false) {
        fingerprint(spec)
    } else {
        fingerprint(&normalise(kind, spec))
    }
}

/// `owned_fingerprint` from the spec's fingerprint.
pub fn owned_fingerprint_of(spec_fp: u64, owner_references: Option<&Value>) -> u64 {
    let mut h = HASH_KEYS.build_hasher();
    spec_fp.hash(&mut h);
    let owners_fp = match owner_references {
        Some(o) if o.as_array().is_some_and(|a| !a.is_empty()) => {
            if has_removable(o, true) {
                let n = normalise_owners(o);
                if n.as_array().is_some_and(|a| !a.is_empty()) {
                    fingerprint(&n)
                } else {
                    0
                }
            } else {
                fingerprint(o)
            }
        }
        _ => 0,
    };
    owners_fp.hash(&mut h);
    h.finish()
}

/// Whether `observed` means exactly `desired`: its spec and ownerReferences are equal to ours
/// in normal form (anything added, changed or removed is a difference), and our labels and
/// annotations are there with our values (`istio.io/dry-run: "true"` added to an enforcing
/// policy switches it off). Other labels and annotations are the tenant's business.
///
/// `desired_fp` is the desired object's `owned_fingerprint`; the observed one was computed
/// when the object was cached, so the comparison costs two integer compares.
pub fn matches_exactly(
    desired: &DesiredObject,
    desired_fp: u64,
    observed: &super::Observed,
) -> bool {
    desired
        .meta
        .labels
        .iter()
        .all(|(k, v)| observed.labels.get(k) == Some(v))
        && desired
            .meta
            .annotations
            .iter()
            .all(|(k, v)| observed.annotation(k) == Some(v.as_str()))
        && desired_fp == observed.fingerprint
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn fingerprints_tell_values_apart() {
        let a = json!({"spec": {"rules": [{"from": [1, "x"]}], "n": 2}});
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_eq!(fingerprint(&json!(2)), fingerprint(&json!(2.0)));
        for other in [
            json!({"spec": {"rules": [{"from": ["x", 1]}], "n": 2}}),
            json!({"spec": {"rules": [{"from": [1, "x"]}], "n": 3}}),
            json!({"spec": {"rules": [{"from": [1, "x"]}]}}),
            json!({"spec": {"rules": [{"from": [[1], "x"]}], "n": 2}}),
        ] {
            assert_ne!(fingerprint(&a), fingerprint(&other), "{other}");
        }
    }

    fn same(kind: Kind, a: Value, b: Value) -> bool {
        owned_fingerprint(kind, Some(&a), None) == owned_fingerprint(kind, Some(&b), None)
    }

    #[test]
    fn server_defaults_are_not_a_difference() {
        let desired = json!({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]});
        let stored = json!({"podSelector": {"matchLabels": {}}, "policyTypes": ["Egress", "Ingress"],
            "ingress": [], "egress": [{"ports": [{"port": 53, "protocol": "TCP"}], "to": []}]});
        assert!(same(Kind::NetworkPolicy, desired, stored));
        assert!(same(
            Kind::AuthorizationPolicy,
            json!({"action": "DENY"}),
            json!({"action": "DENY", "rules": [], "selector": null})
        ));
    }

    #[test]
    fn admission_defaults_are_not_a_difference() {
        let rule = json!({"apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"],
            "operations": ["CREATE"]});
        let mut stored_rule = rule.clone();
        stored_rule["scope"] = json!("*");
        let defaults = json!({"matchPolicy": "Equivalent", "namespaceSelector": {},
            "objectSelector": {}});
        let mut constraints = defaults.clone();
        constraints["resourceRules"] = json!([stored_rule]);
        assert!(same(
            Kind::ValidatingAdmissionPolicy,
            json!({"matchConstraints": {"resourceRules": [rule]}}),
            json!({"failurePolicy": "Fail", "matchConstraints": constraints})
        ));
        let selector = json!({"matchLabels": {"a": "b"}});
        let mut stored = defaults;
        stored["namespaceSelector"] = selector.clone();
        assert!(same(
            Kind::ValidatingAdmissionPolicyBinding,
            json!({"policyName": "p", "matchResources": {"namespaceSelector": selector}}),
            json!({"policyName": "p", "matchResources": stored})
        ));
        // A changed default is a difference: Ignore lets everything through on an error.
        assert!(!same(
            Kind::ValidatingAdmissionPolicy,
            json!({"validations": []}),
            json!({"failurePolicy": "Ignore"})
        ));
    }

    #[test]
    fn additions_are_a_difference() {
        let deny =
            json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]});
        let mut with_selector = deny.clone();
        with_selector["selector"] = json!({"matchLabels": {"nothing": "matches"}});
        let mut with_to = deny.clone();
        with_to["rules"][0]["to"] = json!([{"operation": {"ports": ["1"]}}]);
        for tampered in [with_selector, with_to] {
            assert!(!same(Kind::AuthorizationPolicy, deny.clone(), tampered));
        }
        // UDP is not the default protocol; an empty namespaceSelector is not "absent".
        let np = json!({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]});
        let mut narrowed = np.clone();
        narrowed["podSelector"] = json!({"matchLabels": {"x": "y"}});
        let mut widened = np.clone();
        widened["egress"][0]["to"][0]["namespaceSelector"] = json!({});
        for tampered in [narrowed, widened] {
            assert!(!same(Kind::NetworkPolicy, np.clone(), tampered));
        }
        assert!(!same(
            Kind::NetworkPolicy,
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        ));
    }

    #[test]
    fn owner_references_compare_without_false_flags() {
        let ours = json!([{"kind": "MeshBaseline", "name": "d", "uid": "u", "controller": true}]);
        let stored = json!([{"kind": "MeshBaseline", "name": "d", "uid": "u", "controller": true,
            "blockOwnerDeletion": false}]);
        let fp = |o: &Value| owned_fingerprint(Kind::Sidecar, None, Some(o));
        assert_eq!(fp(&ours), fp(&stored));
        assert_eq!(fp(&json!([])), owned_fingerprint(Kind::Sidecar, None, None));
        let forged =
            json!([{"kind": "MeshBaseline", "name": "d", "uid": "other", "controller": true}]);
        assert_ne!(fp(&ours), fp(&forged));
        let extra = json!([ours[0].clone(), {"kind": "ConfigMap", "name": "x", "uid": "v"}]);
        assert_ne!(fp(&ours), fp(&extra));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(Value::from),
                prop::collection::btree_map("[a-c]", inner, 1..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(v in arb_json()) {
            for kind in Kind::ALL {
                let once = normalise(kind, &v);
                prop_assert_eq!(normalise(kind, &once), once);
            }
        }

        /// Hashing without a copy when nothing needs normalising agrees with hashing the
        /// normal form.
        #[test]
        fn the_shortcut_agrees_with_the_normal_form(v in arb_json(), removable in any::<bool>()) {
            let mut v = json!({"spec": v});
            if removable {
                v["x"] = Value::Null;
                v["y"] = json!([]);
            }
            for kind in Kind::ALL {
                let direct = owned_fingerprint(kind, Some(&v), None);
                let normal = owned_fingerprint(kind, Some(&normalise(kind, &v)), None);
                prop_assert_eq!(direct, normal);
            }
            let owners = json!([{"uid": "u", "controller": true, "blockOwnerDeletion": false}]);
            let bare = json!([{"uid": "u", "controller": true}]);
            prop_assert_eq!(
                owned_fingerprint(Kind::Sidecar, None, Some(&owners)),
                owned_fingerprint(Kind::Sidecar, None, Some(&bare))
            );
        }

        /// Any key added to the spec (with a value that means something) is a difference.
        #[test]
        fn adding_a_field_is_a_difference(v in arb_json(), extra in arb_json()) {
            let mut o = json!({"base": v.clone()});
            o["zz"] = extra;
            let before = json!({"base": v});
            prop_assert!(!same(Kind::AuthorizationPolicy, before, o));
        }
    }
}
