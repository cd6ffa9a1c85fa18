//! The offline commands: `render`, `check`, `crdgen`.

pub mod check;
pub mod crdgen;
pub mod escape;
pub mod render;
pub mod run;
