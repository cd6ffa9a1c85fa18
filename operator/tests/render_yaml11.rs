//! `render` and `crdgen` write YAML that YAML 1.1 readers read back unchanged: random baseline
//! names, namespace names and label values, many of them words YAML 1.1 takes for booleans,
//! nulls, numbers or dates, rendered and read back by kubectl (the reference) and PyYAML.

mod readers;

use std::collections::BTreeMap;

use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::compile::{compile, Scope};
use meshbaseline::inventory::{Inventory, NamespaceInfo};
use meshbaseline::manifests::to_yaml;
use proptest::prelude::*;
use readers::{kubectl_local, pyyaml_load};
use serde_json::{json, Value};

/// DNS labels that YAML 1.1 readers take for something other than a string.
const TRAPS: &[&str] = &[
    "on",
    "off",
    "yes",
    "no",
    "y",
    "n",
    "true",
    "false",
    "null",
    "123",
    "0777",
    "1e3",
    "1e-3",
    "0x1f",
    "0b101",
    "0o17",
    "2026-01-01",
    "12e3",
    "nan",
    "inf",
    "08",
    "1-2",
    "0",
];

/// Label values may also hold `_`, `.` and capitals.
const VALUE_TRAPS: &[&str] = &[
    "On",
    "OFF",
    "Yes",
    "NO",
    "Y",
    "N",
    "True",
    "FALSE",
    "Null",
    "NULL",
    "1_000",
    "1.5",
    "1.0",
    "1.5e3",
    "0.1",
    "2026-01-01",
    "12.30",
    "6.02e23",
    "A",
    "x.y",
];

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TRAPS).prop_map(String::from),
        "[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?",
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        label(),
        prop::sample::select(VALUE_TRAPS).prop_map(String::from),
        "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?",
    ]
}

fn case() -> impl Strategy<Value = (String, Vec<String>, [String; 3])> {
    (
        label(),
        prop::collection::btree_set(label(), 1..4),
        [label_value(), label_value(), label_value()],
    )
        .prop_map(|(name, namespaces, values)| (name, namespaces.into_iter().collect(), values))
}

/// The manifests `render` writes for the case, as JSON, and as YAML.
fn render(name: &str, namespaces: &[String], values: &[String; 3]) -> (Vec<Value>, String) {
    let spec = json!({
        "network": {
            "dns": {"namespace": "kube-system", "podSelector": {"k8s-app": values[0]}, "port": 53},
            "controlPlane": {"istiodSelector": {"app": values[1]}},
            "egress": {"egressGateway": {"namespace": "istio-system", "podSelector": {"istio": values[2]}}},
        },
    });
    let mb = MeshBaseline::new(name, serde_json::from_value(spec).unwrap());
    let baseline = Baseline::try_from(&mb).unwrap();
    let mut inventory = Inventory::default();
    for ns in namespaces {
        inventory.namespaces.insert(
            ns.clone(),
            NamespaceInfo {
                terminating: false,
                name: ns.clone(),
                labels: BTreeMap::<String, String>::new().into(),
            },
        );
    }
    let now = "2026-06-01T00:00:00Z".parse().unwrap();
    let compiled = compile(&baseline, &inventory, &Scope::default(), now);
    let manifests: Vec<Value> = compiled.objects.iter().map(|o| o.manifest()).collect();
    let yaml: String = manifests
        .iter()
        .map(|m| format!("---\n{}", to_yaml(m)))
        .collect();
    (manifests, yaml)
}

proptest! {
    // Each case runs kubectl and Python once.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn rendered_names_and_labels_read_back_unchanged((name, namespaces, values) in case()) {
        let (manifests, yaml) = render(&name, &namespaces, &values);
        prop_assert_eq!(&kubectl_local(&yaml), &manifests, "kubectl read\n{}", yaml);
        prop_assert_eq!(&pyyaml_load(&yaml), &manifests, "PyYAML read\n{}", yaml);
        // The loader reads it back the same way too.
        let mut loaded = meshbaseline::manifests::Loaded::default();
        loaded.add_text(std::path::Path::new("rendered.yaml"), &yaml);
        prop_assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    }
}

/// Without the quoting, the same test fails: the reference reader is not vacuous.
#[test]
fn unquoted_yaml_would_change_meaning() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    a: 'on'\n";
    assert_eq!(kubectl_local(yaml)[0]["metadata"]["labels"]["a"], "on");
    let unquoted = yaml.replace("'on'", "on");
    assert_eq!(pyyaml_load(&unquoted)[0]["metadata"]["labels"]["a"], true);
    let v = json!({"metadata": {"name": "on", "labels": {"v": "1.0"}}});
    assert_eq!(pyyaml_load(&to_yaml(&v))[0], v);
}

/// The CRD means the same to kubectl, PyYAML and the loader; every `enum` holds strings (an
/// unquoted `Off` is the boolean false to a YAML 1.1 reader).
#[test]
fn the_crd_reads_back_unchanged() {
    let yaml = meshbaseline::cli::crdgen::crd_yaml().unwrap();
    let by_kubectl = kubectl_local(&yaml);
    // PyYAML keeps `0.0` a float where kubectl's JSON round trip makes it the integer 0.
    let numbers_as_floats = |v: &[Value]| -> Vec<Value> {
        fn walk(v: &Value) -> Value {
            match v {
                Value::Number(n) => json!(n.as_f64()),
                Value::Array(items) => Value::Array(items.iter().map(walk).collect()),
                Value::Object(m) => {
                    Value::Object(m.iter().map(|(k, v)| (k.clone(), walk(v))).collect())
                }
                other => other.clone(),
            }
        }
        v.iter().map(walk).collect()
    };
    assert_eq!(
        numbers_as_floats(&pyyaml_load(&yaml)),
        numbers_as_floats(&by_kubectl)
    );
    let ours = meshbaseline::manifests::yaml::read_document(&yaml)
        .unwrap()
        .unwrap();
    assert_eq!(by_kubectl, std::slice::from_ref(&ours));
    fn enums(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(values)) = map.get("enum") {
                    out.extend(values.iter().cloned());
                }
                map.values().for_each(|c| enums(c, out));
            }
            Value::Array(items) => items.iter().for_each(|c| enums(c, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    enums(&ours, &mut all);
    assert!(
        all.len() > 10 && all.iter().all(Value::is_string),
        "{all:?}"
    );
}
