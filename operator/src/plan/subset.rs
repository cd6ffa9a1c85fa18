//! "Do the fields we own already match?": the desired manifest must be contained in the
//! observed object. The API server adds fields of its own (uid, resourceVersion, defaults,
//! managedFields), so equality would never hold; containment does.

use serde_json::Value;

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
