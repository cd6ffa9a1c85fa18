//! The scenario suite: the real controller, started through the library entry point
//! of `meshbaseline run`, against the in-process API simulator, or against a real cluster when
//! `MESHBASELINE_E2E_KUBECONFIG` is set (the local control plane of `e2e/testenv` in CI).
//! One test per scenario; each has its own simulator (or its turn on the real cluster, with
//! the fault proxy in front of it), operator and metrics registry.

mod fixtures;
mod operator;

mod ambient;
mod baseline;
mod drift;
mod faults;
mod leadership;
mod lifecycle;
mod ownership;
mod rbac;
mod relist;
mod tamper;
mod tenant;
mod workloads;
