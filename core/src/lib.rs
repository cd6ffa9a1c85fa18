//! MeshBaseline's functional core: the validated model (`api`), `compile`, `audit` and `plan`,
//! and the plain-data inventory they read. No client, no runtime, no async, no clock (the time
//! is a parameter): the operator crate observes the cluster, calls these, and executes the
//! plan. The crate's dependencies enforce it. docs/architecture.md describes the whole.

pub mod api;
pub mod audit;
pub mod compile;
pub mod dataplane;
pub mod gateway;
pub mod inventory;
pub mod manifests;
pub mod object;
pub mod plan;
pub mod posture;
