//! docs/argocd-health.lua, run the way Argo CD runs it: the live object as the global `obj`,
//! the script's return value a table with `status` and `message`.

use mlua::{Lua, Table, Value};
use serde_json::json;

/// Argo CD hands the script the object decoded from JSON: arrays as 1-based tables, no nulls.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        serde_json::Value::Object(map) => {
            let table = lua.create_table()?;
            for (k, v) in map {
                table.raw_set(k.as_str(), to_lua(lua, v)?)?;
            }
            Value::Table(table)
        }
    })
}

fn health(obj: serde_json::Value) -> (String, String) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/argocd-health.lua");
    let script = std::fs::read_to_string(path).expect("docs/argocd-health.lua");
    let lua = Lua::new();
    let obj = to_lua(&lua, &obj).unwrap();
    lua.globals().set("obj", obj).unwrap();
    let hs: Table = lua
        .load(&script)
        .set_name("argocd-health.lua")
        .eval()
        .expect("script returns a table");
    (hs.get("status").unwrap(), hs.get("message").unwrap())
}

fn baseline(generation: i64, status: Option<serde_json::Value>) -> serde_json::Value {
    let mut obj = json!({
        "apiVersion": "meshbaseline.dev/v1alpha1",
        "kind": "MeshBaseline",
        "metadata": {"name": "default", "generation": generation},
        "spec": {"mode": "Enforce"},
    });
    if let Some(status) = status {
        obj["status"] = status;
    }
    obj
}

fn cond(kind: &str, status: &str, message: &str) -> serde_json::Value {
    json!({"type": kind, "status": status, "reason": "Test", "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn status(observed: i64, conditions: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    Some(
        json!({"observedGeneration": observed, "conditions": conditions,
                "namespaces": {"protected": 3, "exempt": 0}, "managedObjects": 9}),
    )
}

#[test]
fn ready_and_current_is_healthy() {
    let (s, m) = health(baseline(
        4,
        status(
            4,
            vec![
                cond("Ready", "True", "3 namespaces protected"),
                cond("Reconciling", "False", ""),
                cond("Degraded", "False", ""),
                cond("Invalid", "False", ""),
            ],
        ),
    ));
    assert_eq!(
        (s.as_str(), m.as_str()),
        ("Healthy", "3 namespaces protected")
    );
}

#[test]
fn no_status_is_progressing() {
    let (s, _) = health(baseline(1, None));
    assert_eq!(s, "Progressing");
    let (s, _) = health(baseline(1, Some(json!({}))));
    assert_eq!(s, "Progressing");
    let (s, _) = health(baseline(1, status(1, vec![])));
    assert_eq!(s, "Progressing");
}

#[test]
fn stale_observed_generation_is_progressing_even_if_ready() {
    let (s, m) = health(baseline(5, status(4, vec![cond("Ready", "True", "ok")])));
    assert_eq!(s, "Progressing");
    assert!(m.contains("generation 5"), "{m}");
    // A Degraded condition about an older spec is not the current spec's fault.
    let (s, _) = health(baseline(
        5,
        status(4, vec![cond("Degraded", "True", "old")]),
    ));
    assert_eq!(s, "Progressing");
    // No observedGeneration at all.
    let (s, _) = health(baseline(
        2,
        Some(json!({"conditions": [cond("Ready", "True", "ok")]})),
    ));
    assert_eq!(s, "Progressing");
}

#[test]
fn reconciling_is_progressing() {
    let (s, m) = health(baseline(
        2,
        status(
            2,
            vec![
                cond("Ready", "True", "ok"),
                cond("Reconciling", "True", "applying 12 objects"),
            ],
        ),
    ));
    assert_eq!(
        (s.as_str(), m.as_str()),
        ("Progressing", "applying 12 objects")
    );
}

#[test]
fn invalid_is_degraded_with_its_message() {
    let (s, m) = health(baseline(
        3,
        status(
            3,
            vec![
                cond("Ready", "False", "spec invalid"),
                cond(
                    "Invalid",
                    "True",
                    "spec.exemptions[0].expires: not RFC 3339",
                ),
                cond("Reconciling", "True", "retrying"),
            ],
        ),
    ));
    assert_eq!(
        (s.as_str(), m.as_str()),
        ("Degraded", "spec.exemptions[0].expires: not RFC 3339")
    );
}

#[test]
fn degraded_is_degraded_with_its_message() {
    let (s, m) = health(baseline(
        3,
        status(
            3,
            vec![
                cond("Ready", "True", "ok"),
                cond("Degraded", "True", "istio CRDs missing: sidecars"),
            ],
        ),
    ));
    assert_eq!(
        (s.as_str(), m.as_str()),
        ("Degraded", "istio CRDs missing: sidecars")
    );
}

#[test]
fn ready_false_without_other_conditions_is_progressing() {
    let (s, m) = health(baseline(
        1,
        status(1, vec![cond("Ready", "False", "waiting for caches")]),
    ));
    assert_eq!(
        (s.as_str(), m.as_str()),
        ("Progressing", "waiting for caches")
    );
    let (s, m) = health(baseline(
        1,
        status(1, vec![cond("DriftDetected", "True", "")]),
    ));
    assert_eq!(
        (s.as_str(), m.as_str()),
        ("Progressing", "Waiting for Ready")
    );
}

#[test]
fn gitops_doc_embeds_the_tested_script() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let script = std::fs::read_to_string(format!("{root}/docs/argocd-health.lua")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/docs/gitops.md")).unwrap();
    let key = "resource.customizations.health.meshbaseline.dev_MeshBaseline: |\n";
    let start = doc.find(key).expect("argocd-cm snippet in docs/gitops.md") + key.len();
    let end = start + doc[start..].find("```").expect("end of the snippet");
    let embedded: String = doc[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert_eq!(
        embedded, script,
        "docs/gitops.md's argocd-cm snippet differs from docs/argocd-health.lua"
    );
}
