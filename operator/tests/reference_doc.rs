//! docs/reference.md documents every field of the spec: a field added to the CRD without a row
//! in the reference fails here.

use std::collections::BTreeSet;

use kube::CustomResourceExt;
use meshbaseline::api::MeshBaseline;
use serde_json::Value;

const DOC: &str = include_str!("../../docs/reference.md");

/// Fields documented together in one row, by their parent: a label selector, and Istio's rule
/// fields written flat (listed in the row's type column).
const DOCUMENTED_WHOLE: [&str; 5] = [
    "namespaceSelector",
    "network.egress.egressGateway",
    "authorization.denyRules[].from[]",
    "authorization.denyRules[].to[]",
    "authorization.denyRules[].when[]",
];

fn fields(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    if DOCUMENTED_WHOLE.contains(&path) {
        out.insert(path.to_string());
        return;
    }
    let object = |s: &Value| s.get("properties").and_then(Value::as_object).cloned();
    if let Some(props) = object(schema) {
        for (name, sub) in props {
            let p = if path.is_empty() {
                name
            } else {
                format!("{path}.{name}")
            };
            fields(&sub, &p, out);
        }
    } else if let Some(items) = schema.get("items").filter(|i| object(i).is_some()) {
        let p = format!("{path}[]");
        out.insert(p.clone());
        fields(items, &p, out);
    } else {
        out.insert(path.to_string());
    }
}

/// The first cell of every table row of the Spec section, backticks removed.
fn documented() -> BTreeSet<String> {
    let spec = DOC
        .split("## Spec")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/reference.md has a Spec section");
    spec.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_spec_field_has_a_row() {
    let crd = serde_json::to_value(MeshBaseline::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut all = BTreeSet::new();
    fields(spec, "", &mut all);
    assert!(all.len() > 30, "{all:?}");
    let doc = documented();
    let missing: Vec<&String> = all.iter().filter(|f| !doc.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "docs/reference.md lacks rows for {missing:?}"
    );
    let unknown: Vec<&String> = doc.iter().filter(|f| !all.contains(*f)).collect();
    assert!(
        unknown.is_empty(),
        "docs/reference.md documents fields the CRD does not have: {unknown:?}"
    );
}
