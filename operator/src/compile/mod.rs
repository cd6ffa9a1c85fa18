//! Pure compiler: baseline + inventory -> the exact objects that close the gaps of DESIGN §1.
//! No client, no async, no clock: the time is a parameter.

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::api::Baseline;
use crate::inventory::Inventory;
use crate::object::DesiredObject;

/// What this baseline may generate, after overlap resolution between baselines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Namespaces selected by an older baseline: the older one wins them.
    pub claimed_elsewhere: BTreeSet<String>,
    /// Whether this baseline owns the root-namespace objects (the oldest baseline per root
    /// namespace does).
    pub owns_root: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            claimed_elsewhere: BTreeSet::new(),
            owns_root: true,
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

pub fn compile(
    _baseline: &Baseline,
    _inventory: &Inventory,
    _scope: &Scope,
    _now: Timestamp,
) -> Compiled {
    todo!("issue 2")
}
