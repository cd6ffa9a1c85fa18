//! MeshBaseline: enforce a mesh-wide security baseline on an Istio service mesh.
//!
//! The functional core (`compile`, `audit`, `plan`) is pure and imports no client; the
//! `controller` observes the cluster, calls it, and executes the plan.

pub mod api;
pub mod audit;
pub mod cli;
pub mod compile;
pub mod controller;
pub mod dataplane;
pub mod inventory;
pub mod manifests;
pub mod object;
pub mod plan;
pub mod telemetry;
