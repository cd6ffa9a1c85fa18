//! Pure compiler: baseline + inventory -> the exact objects that close the gaps G1–G14
//! (docs/reference.md).
//! No client, no async, no clock: the time is a parameter.
//!
//! Specs that are the same for every namespace are built once and cloned; the cost left is
//! allocating one `serde_json::Value` tree per object (`benches/compile.rs`).

pub mod admin_tier;
pub mod admission;
pub mod hosts;
mod meta;
pub mod names;
mod namespace;
pub mod network;
mod root;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use jiff::Timestamp;

use crate::api::Baseline;
use crate::inventory::Inventory;
use crate::object::{DesiredObject, Kind, ObjectSpec};

/// Whether the compiler reads this pod (so a change of it calls for a new compile): the pods
/// of Gateways, whose ServiceAccounts are the waypoint identities of `waypointOnly`.
pub fn reads_pod(pod: &crate::inventory::PodInfo) -> bool {
    crate::gateway::names_a_gateway(pod)
}

/// What this baseline may generate, after overlap resolution between baselines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Namespaces selected by an older baseline: the older one wins them.
    pub claimed_elsewhere: BTreeSet<String>,
    /// Whether this baseline owns the root-namespace objects (the oldest baseline per root
    /// namespace does).
    pub owns_root: bool,
    /// The operator's username: the admission policies never refuse it.
    pub operator_user: String,
}

/// The chart's ServiceAccount, for `render` and tests; the controller uses its own.
pub const DEFAULT_OPERATOR_USER: &str = "system:serviceaccount:meshbaseline-system:meshbaseline";

impl Default for Scope {
    fn default() -> Self {
        Scope {
            claimed_elsewhere: BTreeSet::new(),
            owns_root: true,
            operator_user: DEFAULT_OPERATOR_USER.to_string(),
        }
    }
}

/// The compiler's output, sorted by object key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    pub objects: Vec<DesiredObject>,
    /// Namespaces this baseline protects (selected and not claimed elsewhere), sorted.
    pub protected: Vec<String>,
    /// Protected namespaces with at least one active exemption, sorted.
    pub exempt: Vec<String>,
}

impl Compiled {
    /// The spec of the object `kind` `namespace`/`name`, if desired.
    pub fn spec_of(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Arc<ObjectSpec>> {
        self.objects
            .binary_search_by(|d| {
                (d.key.kind, d.key.namespace.as_str(), d.key.name.as_str())
                    .cmp(&(kind, namespace, name))
            })
            .ok()
            .map(|i| &self.objects[i].spec)
    }
}

/// The desired objects of `baseline` for the namespaces in `inventory`. The mode (Enforce or
/// Audit) does not matter here: Audit compiles the same objects and writes none of them.
pub fn compile(
    baseline: &Baseline,
    inventory: &Inventory,
    scope: &Scope,
    now: Timestamp,
) -> Compiled {
    compile_reusing(baseline, inventory, scope, now, None)
}

/// `compile`, sharing the per-namespace specs that `previous` already holds (the
/// DestinationRule of each namespace): the controller keeps the previous output while it
/// compiles the next, and two copies of 10,000 specs were a tenth of its memory.
pub fn compile_reusing(
    baseline: &Baseline,
    inventory: &Inventory,
    scope: &Scope,
    now: Timestamp,
    previous: Option<&Compiled>,
) -> Compiled {
    let factory = meta::ObjectFactory::new(baseline);
    let templates = namespace::NamespaceTemplates::new(baseline, inventory);
    // Only namespaces named in an exemption need the (linear) exemption lookup.
    let named: HashSet<&str> = baseline
        .exemptions
        .iter()
        .map(|e| e.namespace.as_str())
        .collect();
    let mut compiled = Compiled {
        objects: Vec::with_capacity(inventory.namespaces.len() * 3 + 8),
        ..Compiled::default()
    };
    // `inventory.namespaces` is a BTreeMap: namespaces come in name order.
    for (name, ns) in &inventory.namespaces {
        if !baseline.selects(name, &ns.labels)
            || scope.claimed_elsewhere.contains(name)
            || ns.terminating
        {
            continue;
        }
        compiled.protected.push(name.clone());
        let mut exempt = namespace::Exempt::default();
        if named.contains(name.as_str()) {
            exempt = namespace::exempt(baseline, name, now);
            if exempt.any {
                compiled.exempt.push(name.clone());
            }
        }
        templates.objects(
            name,
            &ns.labels,
            exempt,
            &factory,
            previous,
            &mut compiled.objects,
        );
    }
    if scope.owns_root {
        root::objects(baseline, &factory, &mut compiled.objects);
    }
    let any_protected = !compiled.protected.is_empty();
    admission::objects(
        baseline,
        scope,
        any_protected,
        now,
        &factory,
        &mut compiled.objects,
    );
    admin_tier::objects(
        baseline,
        scope,
        any_protected,
        now,
        &factory,
        &mut compiled.objects,
    );
    // Stable sort: the per-namespace output is already in runs, so this is close to linear.
    compiled.objects.sort_by(|a, b| a.key.cmp(&b.key));
    compiled
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::api::MeshBaseline;
    use crate::inventory::NamespaceInfo;

    fn baseline() -> Baseline {
        let mb: MeshBaseline = serde_json::from_value(json!({
            "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
            "metadata": {"name": "b"}, "spec": {},
        }))
        .unwrap();
        Baseline::try_from(&mb).unwrap()
    }

    fn inventory(names: &[&str]) -> Inventory {
        let mut inv = Inventory::default();
        for n in names {
            let info = NamespaceInfo {
                name: n.to_string(),
                labels: BTreeMap::new().into(),
                terminating: false,
            };
            inv.namespaces.insert(n.to_string(), info);
        }
        inv
    }

    #[test]
    fn objects_share_their_namespace_and_name() {
        let c = compile(
            &baseline(),
            &inventory(&["a", "b"]),
            &Scope::default(),
            Timestamp::UNIX_EPOCH,
        );
        let of = |ns: &str| -> Vec<&DesiredObject> {
            c.objects.iter().filter(|o| o.key.namespace == ns).collect()
        };
        let (a, b) = (of("a"), of("b"));
        assert!(a.len() > 1);
        let same = |x: &str, y: &str| std::ptr::eq(x, y);
        assert!(a
            .iter()
            .all(|o| same(&o.key.namespace, &a[0].key.namespace)));
        for o in &a {
            let twin = b.iter().find(|p| p.key.kind == o.key.kind).unwrap();
            assert!(same(&o.key.name, &twin.key.name), "{}", o.key);
        }
    }

    #[test]
    fn a_recompile_shares_the_specs_that_did_not_change() {
        let (b, now) = (baseline(), Timestamp::UNIX_EPOCH);
        let first = compile(&b, &inventory(&["a", "b"]), &Scope::default(), now);
        let next = compile_reusing(
            &b,
            &inventory(&["a", "b", "c"]),
            &Scope::default(),
            now,
            Some(&first),
        );
        // Same output as a compile from scratch.
        assert_eq!(
            next,
            compile(&b, &inventory(&["a", "b", "c"]), &Scope::default(), now)
        );
        let dr = |c: &Compiled, ns: &str| {
            c.spec_of(Kind::DestinationRule, ns, names::MTLS_DESTINATION_RULE)
                .cloned()
                .unwrap()
        };
        assert!(Arc::ptr_eq(&dr(&first, "a"), &dr(&next, "a")));
        assert!(Arc::ptr_eq(&dr(&first, "b"), &dr(&next, "b")));
        assert_eq!(dr(&next, "c").value()["host"], "*.c.svc.cluster.local");
        assert!(first
            .spec_of(Kind::DestinationRule, "c", names::MTLS_DESTINATION_RULE)
            .is_none());
    }
}
