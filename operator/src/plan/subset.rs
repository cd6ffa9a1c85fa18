//! "Do the fields we own already match?": the desired manifest must be contained in the
//! observed object. The API server adds fields of its own (uid, resourceVersion, defaults,
//! managedFields), so equality would never hold; containment does.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::LazyLock;

use serde_json::Value;

use crate::object::DesiredObject;

/// Keys chosen at random per process, so a tenant cannot craft a spec that collides with ours.
static HASH_KEYS: LazyLock<std::collections::hash_map::RandomState> =
    LazyLock::new(std::collections::hash_map::RandomState::new);

/// A fingerprint of a JSON value: equal values have equal fingerprints (numbers by value, as
/// `is_subset` compares them). Lets the planner skip the field-by-field walk for the usual
/// case, an object exactly as we applied it.
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

/// The fingerprint of what `owned_fields_match` compares besides labels: the spec and the
/// ownerReferences, of a desired object (from its parts) or an observed one.
pub fn owned_fingerprint(spec: Option<&Value>, owner_references: Option<&Value>) -> u64 {
    let mut h = HASH_KEYS.build_hasher();
    spec.map_or(0, fingerprint).hash(&mut h);
    owner_references.map_or(0, fingerprint).hash(&mut h);
    h.finish()
}

/// Whether `observed` (the object as the API server returns it) already holds every field the
/// operator owns in `desired`: its labels, its ownerReferences and its spec.
///
/// `desired_fp` and `observed_fp` are their `owned_fingerprint`s: when they are equal (the
/// object is exactly as we applied it, the usual case) the field-by-field walk is skipped.
pub fn owned_fields_match(
    desired: &DesiredObject,
    desired_fp: u64,
    observed: &super::Observed,
) -> bool {
    let labels_ok = desired
        .meta
        .labels
        .iter()
        .all(|(k, v)| observed.labels.get(k) == Some(v));
    if !labels_ok || desired_fp == observed.fingerprint {
        return labels_ok;
    }
    let owners_ok = match &desired.meta.owner_references {
        None => true,
        Some(refs) => observed
            .manifest
            .pointer("/metadata/ownerReferences")
            .is_some_and(|o| is_subset(refs, o)),
    };
    owners_ok
        && observed
            .manifest
            .get("spec")
            .is_some_and(|o| is_subset(&desired.spec, o))
}

/// Whether `desired` is a recursive subset of `observed`: objects by key (extra observed keys
/// are allowed), lists element-wise with equal length (an extra list element would change
/// the policy's meaning), scalars equal. Numbers compare by value (`1` == `1.0`).
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d
            .iter()
            .all(|(k, dv)| o.get(k).is_some_and(|ov| is_subset(dv, ov))),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(dv, ov)| is_subset(dv, ov))
        }
        (Value::Number(d), Value::Number(o)) => d == o || d.as_f64() == o.as_f64(),
        (d, o) => d == o,
    }
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

    #[test]
    fn extra_server_fields_are_allowed() {
        let d = json!({"spec": {"action": "DENY", "rules": [{"from": [1]}]}});
        let o = json!({"spec": {"action": "DENY", "rules": [{"from": [1], "x": 2}], "y": 1}, "status": {}});
        assert!(is_subset(&d, &o));
    }

    #[test]
    fn differences_are_found() {
        let d = json!({"spec": {"action": "DENY", "rules": [1, 2]}});
        assert!(!is_subset(
            &d,
            &json!({"spec": {"action": "ALLOW", "rules": [1, 2]}})
        ));
        assert!(!is_subset(
            &d,
            &json!({"spec": {"action": "DENY", "rules": [1, 2, 3]}})
        ));
        assert!(!is_subset(
            &d,
            &json!({"spec": {"action": "DENY", "rules": [2, 1]}})
        ));
        assert!(!is_subset(&d, &json!({"spec": {"action": "DENY"}})));
        assert!(!is_subset(&d, &json!({})));
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0})));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_value_contains_itself(v in arb_json()) {
            prop_assert!(is_subset(&v, &v));
        }

        #[test]
        fn adding_a_key_keeps_containment(v in arb_json(), extra in arb_json()) {
            let mut o = v.clone();
            if let Value::Object(m) = &mut o {
                if !m.contains_key("zz") {
                    m.insert("zz".into(), extra);
                }
            }
            prop_assert!(is_subset(&v, &o));
        }
    }
}
