//! The commands: `run` (the operator), `render`, `check`, `posture`, `crdgen`.

pub mod check;
pub mod crdgen;
pub mod escape;
pub mod exit;
pub mod posture;
pub mod render;
pub mod run;
