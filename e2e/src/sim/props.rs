//! Property tests of the simulator's pure parts: no input panics them, and the algebra of
//! field sets, merge patches and apply holds.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::apply::{self, Scope, Writer};
use super::fieldset::{self, from_fields_v1, leaf_paths, merge_into, to_fields_v1};
use super::request::decode;
use super::selectors::Selector;

fn json(nulls: bool) -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    let leaf = if nulls {
        prop_oneof![3 => scalar, 1 => Just(Value::Null)].boxed()
    } else {
        scalar.boxed()
    };
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-c.]{1,2}|f:[a-b]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object(nulls: bool) -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-c]{1,2}", json(nulls), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

const W: Writer<'static> = Writer {
    manager: "m",
    api_version: "v1",
    scope: Scope::Main {
        status_subresource: false,
    },
    now: "t",
};

proptest! {
    #[test]
    fn fields_v1_round_trips(v in object(true)) {
        let set = leaf_paths(&v);
        prop_assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn merge_patch_is_idempotent(target in json(true), patch in json(true)) {
        let mut once = target.clone();
        merge_into(&mut once, &patch);
        let mut twice = once.clone();
        merge_into(&mut twice, &patch);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn apply_sets_every_applied_field_and_reapplying_is_a_no_op(live in object(false), config in object(false)) {
        let applied = apply::apply(Some(&live), &config, &W, true).expect("force never conflicts");
        for path in leaf_paths(&config) {
            let want = fieldset::get(&config, &path);
            if want.is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
                continue;
            }
            prop_assert_eq!(fieldset::get(&applied, &path), want, "path {:?}", path);
        }
        let again = apply::apply(Some(&applied), &config, &W, false).expect("own fields never conflict");
        prop_assert_eq!(again, applied);
    }

    #[test]
    fn parsers_never_panic(s in ".{0,40}") {
        let _ = Selector::parse(Some(&s), None);
        let _ = Selector::parse(None, Some(&s));
        let _ = decode(&s);
    }
}
