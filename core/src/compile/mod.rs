//! Pure compiler: baseline + inventory -> the exact objects that close the gaps of DESIGN §1.
//! No client, no async, no clock: the time is a parameter.
//!
//! Specs that are the same for every namespace are built once and cloned; the cost left is
//! allocating one `serde_json::Value` tree per object (`benches/compile.rs`).

pub mod admin_tier;
pub mod admission;
mod meta;
pub mod names;
mod namespace;
pub mod network;
mod root;

use std::collections::{BTreeSet, HashSet};

use jiff::Timestamp;

use crate::api::Baseline;
use crate::inventory::Inventory;
use crate::object::DesiredObject;

pub use namespace::normalise_host;

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

/// The desired objects of `baseline` for the namespaces in `inventory`. The mode (Enforce or
/// Audit) does not matter here: Audit compiles the same objects and writes none of them.
pub fn compile(
    baseline: &Baseline,
    inventory: &Inventory,
    scope: &Scope,
    now: Timestamp,
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
        templates.objects(name, &ns.labels, exempt, &factory, &mut compiled.objects);
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
