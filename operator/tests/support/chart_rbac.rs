//! What the Helm chart's RBAC grants, read from the chart's templates.
//!
//! `templates/clusterrole.yaml` and `templates/role.yaml` keep template logic out of their
//! `rules`, so this module reads the `rules` block of each file as plain YAML without needing
//! Helm; `.ci/helm-lint.sh` checks that Helm renders exactly these rules. [`ChartRbac::from_manifest`]
//! reads a rendered manifest instead. The e2e suite can include this file with `#[path]` to
//! compare the grants with the requests its API simulator recorded.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::Deserialize;

/// One verb on one resource of one API group ("" is the core group).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub api_group: String,
    pub resource: String,
    pub verb: String,
}

impl Grant {
    pub fn new(api_group: &str, resource: &str, verb: &str) -> Self {
        Self {
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{group}/{} {}", self.resource, self.verb)
    }
}

/// The RBAC check an API server makes for one request (its `RequestInfo`): the grant it needs
/// and the namespace it is in. `path_and_query` is the request target, e.g.
/// `/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/x?fieldManager=meshbaseline`.
/// Discovery and other non-resource paths (`/version`, `/api`, `/apis/<group>/<version>`)
/// answer `None`: the default `system:discovery` role grants them.
pub fn request_grant(
    method: &str,
    path_and_query: &str,
) -> Result<Option<(Grant, Option<String>)>, String> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    // namespaces/<ns>/<resource>/... is namespaced, unless it is the namespace itself.
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] => (Some((*ns).to_owned()), {
            let mut v = vec![*resource];
            v.extend_from_slice(tail);
            v
        }),
        _ => (None, rest.to_vec()),
    };
    let (resource, named) = match rest.as_slice() {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return Err(format!("{method} {path_and_query}: not a resource path")),
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(format!("{method} {path_and_query}: unexpected method")),
    };
    Ok(Some((Grant::new(group, &resource, verb), namespace)))
}

/// The chart's grants: cluster-wide (ClusterRole) and in the release namespace (Role).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChartRbac {
    pub cluster: BTreeSet<Grant>,
    pub namespaced: BTreeSet<Grant>,
}

impl ChartRbac {
    /// Reads `templates/clusterrole.yaml` and `templates/role.yaml` of the chart.
    pub fn read(chart_dir: &Path) -> Result<Self, String> {
        Ok(Self {
            cluster: grants(&rules_of(&chart_dir.join("templates/clusterrole.yaml"))?)?,
            namespaced: grants(&rules_of(&chart_dir.join("templates/role.yaml"))?)?,
        })
    }

    /// Reads the ClusterRoles and Roles of a rendered manifest (multi-document YAML), e.g.
    /// `target/helm/meshbaseline-defaults.yaml` written by `.ci/helm-lint.sh`.
    pub fn from_manifest(manifest: &str) -> Result<Self, String> {
        let mut rbac = Self::default();
        for (i, doc) in serde_norway::Deserializer::from_str(manifest).enumerate() {
            let value =
                serde_json::Value::deserialize(doc).map_err(|e| format!("document {i}: {e}"))?;
            let into = match value["kind"].as_str() {
                Some("ClusterRole") => &mut rbac.cluster,
                Some("Role") => &mut rbac.namespaced,
                _ => continue,
            };
            let rules: Vec<PolicyRule> = serde_json::from_value(value["rules"].clone())
                .map_err(|e| format!("document {i}: rules: {e}"))?;
            for grant in grants(&rules)? {
                into.insert(grant);
            }
        }
        Ok(rbac)
    }

    /// Every grant, whatever its scope.
    pub fn all(&self) -> BTreeSet<Grant> {
        self.cluster.union(&self.namespaced).cloned().collect()
    }
}

/// `charts/meshbaseline` of this repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/meshbaseline")
}

#[derive(Deserialize)]
struct Rules {
    rules: Vec<PolicyRule>,
}

/// The `rules:` block of a Role or ClusterRole template: from the top-level `rules:` line to the
/// end of the file, which must hold no template logic.
pub fn rules_of(template: &Path) -> Result<Vec<PolicyRule>, String> {
    let text =
        std::fs::read_to_string(template).map_err(|e| format!("{}: {e}", template.display()))?;
    let start = text
        .find("\nrules:")
        .ok_or_else(|| format!("{}: no top-level `rules:`", template.display()))?;
    let block = &text[start + 1..];
    if block.contains("{{") {
        return Err(format!(
            "{}: template logic inside `rules`; keep it in metadata",
            template.display()
        ));
    }
    serde_norway::from_str::<Rules>(block)
        .map(|r| r.rules)
        .map_err(|e| format!("{}: rules: {e}", template.display()))
}

/// Expands rules into grants; refuses what a least-privilege role must not contain.
pub fn grants(rules: &[PolicyRule]) -> Result<BTreeSet<Grant>, String> {
    let mut out = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            return Err(format!("rules[{i}]: nonResourceURLs"));
        }
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        if groups.is_empty() || resources.is_empty() || rule.verbs.is_empty() {
            return Err(format!(
                "rules[{i}]: apiGroups, resources and verbs must be non-empty"
            ));
        }
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    let grant = Grant::new(group, resource, verb);
                    if !out.insert(grant.clone()) {
                        return Err(format!("rules[{i}]: {grant} granted twice"));
                    }
                }
            }
        }
    }
    Ok(out)
}
