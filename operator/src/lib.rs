//! MeshBaseline: enforce a mesh-wide security baseline on an Istio service mesh.
//!
//! The functional core (`meshbaseline-core`: the model, `compile`, `audit`, `plan`) imports no
//! client; this crate is the shell: the `controller` observes the cluster, calls the core, and
//! executes the plan; the `cli` runs it offline on manifests. docs/architecture.md describes
//! the data flow and the module map.

pub use meshbaseline_core::{
    api, audit, compile, dataplane, inventory, manifests, object, plan, posture,
};

pub mod cli;
pub mod controller;
pub mod telemetry;

#[cfg(not(feature = "system-allocator"))]
mod alloc;
