//! The scenario suite (issue 5): the real controller, started through the library entry point
//! of `meshbaseline run`, against the in-process API simulator, or against a real cluster when
//! `MESHBASELINE_E2E_KUBECONFIG` is set (scenarios needing fault injection or request
//! accounting print SKIPPED there). One test per scenario; each has its own simulator,
//! operator and metrics registry, so they run in parallel threads of one process.

mod fixtures;

mod baseline;
mod drift;
mod faults;
mod leadership;
mod lifecycle;
mod ownership;
mod rbac;
mod tamper;
mod tenant;
