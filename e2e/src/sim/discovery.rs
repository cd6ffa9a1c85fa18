//! Discovery and version documents: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`.
//! kube's typed and dynamic `Api`s do not need them; `kube::discovery` (used by the harness to
//! map a YAML document's kind to its resource) and kubectl-like tools do.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::resources::{served, ResourceType};
use super::store::State;

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-meshbaseline-sim",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

pub fn groups(state: &State) -> Value {
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rt in served(state).into_iter().filter(|rt| !rt.group.is_empty()) {
        let versions = by_group.entry(rt.group.clone()).or_default();
        for v in rt.versions {
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
    }
    let groups: Vec<Value> = by_group
        .into_iter()
        .map(|(name, versions)| {
            let gv: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": gv, "preferredVersion": gv[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn entry(rt: &ResourceType, name: String, verbs: &[&str]) -> Value {
    json!({"name": name, "singularName": rt.kind.to_lowercase(), "namespaced": rt.namespaced,
           "kind": rt.kind, "verbs": verbs})
}

/// The resources of one group version, or `None` when nothing is served there.
pub fn resources(state: &State, group: &str, version: &str) -> Option<Value> {
    let all = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut list = Vec::new();
    for rt in served(state)
        .iter()
        .filter(|rt| rt.group == group && rt.serves(version))
    {
        list.push(entry(rt, rt.plural.clone(), &all));
        if rt.status_subresource {
            list.push(entry(
                rt,
                format!("{}/status", rt.plural),
                &["get", "patch", "update"],
            ));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}
