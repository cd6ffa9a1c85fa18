//! The offline commands: `render`, `check`, `crdgen`.

pub mod crdgen;
pub mod run;
