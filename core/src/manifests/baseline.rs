//! MeshBaselines read offline as strictly as the API server reads them: the apiVersion is
//! checked, the CRD's schema applies (unknown fields are errors naming their path), then the
//! validated model's rules (those CEL rules express, and more).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kube_core::CustomResourceExt;
use serde_json::Value;

use super::{describe, load_paths, schema, typed, Location, ManifestError};
use crate::api::baseline::{API_VERSION, GROUP, VERSION};
use crate::api::{Baseline, FieldError, MeshBaseline};

/// The schema of the served version, from the same types `crdgen` writes the CRD from.
fn crd_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = serde_json::to_value(MeshBaseline::crd()).unwrap_or_default();
        crd.pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(VERSION))
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
            .cloned()
            .unwrap_or_default()
    })
}

/// A `meshbaseline.dev` object (names already checked) as a validated baseline.
pub(super) fn read(value: &Value, location: &Location) -> Result<Baseline, Vec<ManifestError>> {
    let what = describe(value);
    let errors = |errs: Vec<FieldError>| -> Vec<ManifestError> {
        errs.into_iter()
            .map(|e| ManifestError {
                location: location.clone(),
                message: format!("{what}: {e}"),
            })
            .collect()
    };
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "MeshBaseline" {
        return Err(errors(vec![FieldError {
            path: "kind".into(),
            message: format!("{GROUP} has no kind {kind:?}; it serves MeshBaseline"),
        }]));
    }
    if api_version != API_VERSION {
        return Err(errors(vec![FieldError {
            path: "apiVersion".into(),
            message: format!("{api_version:?} is not served; use {API_VERSION}"),
        }]));
    }
    let (pruned, mut found) = schema::validate(value, crd_schema());
    let mb: MeshBaseline = match typed(&pruned, location) {
        Ok(mb) => mb,
        Err(_) if !found.is_empty() => return Err(errors(found)),
        Err(e) => return Err(vec![e]),
    };
    match Baseline::try_from(&mb) {
        Ok(baseline) if found.is_empty() => Ok(baseline),
        Ok(_) => Err(errors(found)),
        Err(invalid) => {
            // The model's rules, less those on a field the schema already refused.
            let model = invalid.errors.into_iter().filter(|e| {
                !found
                    .iter()
                    .any(|s| e.path == s.path || e.path.starts_with(&format!("{}.", s.path)))
            });
            found.extend(model.collect::<Vec<_>>());
            found.sort_by(|a, b| a.path.cmp(&b.path));
            Err(errors(found))
        }
    }
}

/// A file (or directory, or `-`) that should hold exactly one MeshBaseline, and nothing
/// unreadable.
#[derive(Debug, thiserror::Error)]
pub enum BaselineFileError {
    #[error("{}", lines(.0))]
    Unreadable(Vec<ManifestError>),
    #[error("{}: no MeshBaseline found", .0.display())]
    NoBaseline(PathBuf),
    #[error("{}: {count} MeshBaselines found; exactly one is needed", .path.display())]
    Several { path: PathBuf, count: usize },
}

fn lines(errors: &[ManifestError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("\n")
}

/// Reads the one MeshBaseline of `path` through the same input model as manifests.
pub fn read_baseline(path: &Path) -> Result<(Baseline, Location), BaselineFileError> {
    let mut loaded = load_paths(&[path.to_path_buf()]);
    if !loaded.errors.is_empty() {
        return Err(BaselineFileError::Unreadable(loaded.errors));
    }
    match loaded.baselines.len() {
        0 => Err(BaselineFileError::NoBaseline(path.to_path_buf())),
        1 => Ok(loaded.baselines.remove(0)),
        count => Err(BaselineFileError::Several {
            path: path.to_path_buf(),
            count,
        }),
    }
}
