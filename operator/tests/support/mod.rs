//! Helpers shared by the chart and packaging tests.

pub mod chart_rbac;
