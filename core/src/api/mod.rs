//! The API edge: the `MeshBaseline` CRD, its validated model, and minimal Istio types.

pub mod baseline;
pub mod enforcement;
pub mod istio;
pub mod model;
pub(crate) mod rules;
pub mod selector;

pub use baseline::{MeshBaseline, MeshBaselineSpec, MeshBaselineStatus};
pub use model::{Baseline, FieldError, InvalidBaseline};
