//! Reading manifests from files, directories and standard input: multi-document YAML read
//! as kubectl reads it (YAML 1.1), JSON streams, Lists (as printed by `kubectl get -o yaml`,
//! nested ones included), and the pod templates of workloads.
//!
//! Nothing is dropped in silence. Every file, document and List item is either read or
//! reported as a [`ManifestError`] naming the file, the document and the item; a broken
//! document does not hide the next one; a file or directory reached twice is read once and
//! noted; FIFOs, sockets and devices are refused unopened; nesting and alias expansion are
//! bounded. MeshBaselines are checked as strictly as the API server checks them.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::Baseline;
use crate::inventory::Inventory;

mod baseline;
mod documents;
pub mod emit;
pub mod files;
mod libyaml;
mod names;
mod objects;
pub mod schema;
pub mod yaml;

pub use baseline::{read_baseline, BaselineFileError};
pub use emit::to_yaml;

/// Where an object, or a problem, is.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based, counted as an editor shows documents between `---` lines.
    pub document: Option<usize>,
    /// Indexes into `items` of the enclosing Lists, outermost first.
    pub items: Vec<usize>,
    /// 1-based line where the document starts.
    pub line: Option<usize>,
}

impl Location {
    pub fn file(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            ..Location::default()
        }
    }

    /// `items[2].items[0]`, or empty outside Lists.
    pub fn item_path(&self) -> String {
        let parts: Vec<String> = self.items.iter().map(|i| format!("items[{i}]")).collect();
        parts.join(".")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match (self.document, self.items.is_empty()) {
            (Some(n), true) => write!(f, " (document {n})"),
            (Some(n), false) => write!(f, " (document {n}, {})", self.item_path()),
            (None, _) => Ok(()),
        }
    }
}

/// An input that was not read: a path, a file, a document or a List item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ManifestError {
    pub location: Location,
    pub message: String,
}

/// Something read once although it was reached twice (a path named twice, a symlink cycle,
/// an identical copy of an object).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Note {
    pub location: Location,
    pub message: String,
}

/// The identity of an object: group, kind, namespace, name.
type ObjectKey = (String, String, String, String);

/// Everything read from a set of inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub inventory: Inventory,
    /// Valid MeshBaselines (schema and model), with where each was read.
    pub baselines: Vec<(Baseline, Location)>,
    pub errors: Vec<ManifestError>,
    pub notes: Vec<Note>,
    /// Where each object came from, by (kind, namespace, name); the namespace is empty for
    /// cluster-scoped kinds. Lets `check` point findings at a file.
    pub origins: BTreeMap<(String, String, String), Location>,
    /// Objects read without error (kinds the audit ignores included).
    pub objects: usize,
    /// Objects read from each document, by file and document number: with `errors`, an
    /// account of every document.
    pub read: BTreeMap<(PathBuf, usize), usize>,
    /// Files read.
    pub files: usize,
    /// Each object's first location and a hash of its content, to read a copy once.
    seen: HashMap<ObjectKey, (u64, Location)>,
    hasher: RandomState,
}

/// Reads paths (files, directories, `-` for standard input).
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    for entry in files::walk(paths) {
        match entry {
            files::Entry::File(path) => match files::read(&path) {
                Ok(text) => {
                    loaded.files += 1;
                    loaded.add_text(&path, &text);
                }
                Err(message) => loaded.error(Location::file(&path), message),
            },
            files::Entry::Err(path, message) => loaded.error(Location::file(&path), message),
            files::Entry::Note(path, message) => loaded.notes.push(Note {
                location: Location::file(&path),
                message,
            }),
        }
    }
    loaded
}

/// Deserializes `value` into `T`, naming the object and the field that does not fit.
pub fn typed<T: DeserializeOwned>(value: &Value, location: &Location) -> Result<T, ManifestError> {
    typed_raw(value).map_err(|message| ManifestError {
        location: location.clone(),
        message: format!("{}{message}", describe(value)),
    })
}

/// Deserializes `value` into `T`; the error starts with the field path (` at spec.x: ...`).
pub(crate) fn typed_raw<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(" at {path}")
        };
        format!("{field}: {}", e.into_inner())
    })
}

/// `Kind "name"`, as errors name an object.
pub fn describe(value: &Value) -> String {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    match value.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => format!("{kind} {name:?}"),
        None => kind.to_string(),
    }
}

impl Loaded {
    /// Adds every object of one file's text.
    pub fn add_text(&mut self, file: &Path, text: &str) {
        for piece in documents::pieces(text) {
            let location = Location {
                file: file.to_path_buf(),
                document: Some(piece.document),
                items: piece.items,
                line: Some(piece.line),
            };
            match piece.object {
                Ok(value) => self.add_object(location, value),
                Err(message) => self.error(location, message),
            }
        }
    }

    /// Adds one object read at `location`.
    pub fn add_object(&mut self, location: Location, value: Value) {
        if let Some(key) = object_key(&value) {
            let hash = self.hasher.hash_one(value.to_string());
            if let Some((first_hash, first)) = self.seen.get(&key) {
                let message = if *first_hash == hash {
                    self.notes.push(Note {
                        message: format!(
                            "{} is identical to the copy at {first}; read once",
                            describe(&value)
                        ),
                        location,
                    });
                    return;
                } else {
                    format!(
                        "{} is also defined at {first} with different content; which one the cluster holds depends on the order they are applied",
                        describe(&value)
                    )
                };
                return self.error(location, message);
            }
            self.seen.insert(key, (hash, location.clone()));
        }
        match objects::add(self, &value, &location) {
            Ok(()) => {
                self.objects += 1;
                let document = (location.file.clone(), location.document.unwrap_or(0));
                *self.read.entry(document).or_default() += 1;
                self.record_origin(&value, location);
            }
            Err(errors) => self.errors.extend(errors),
        }
    }

    fn error(&mut self, location: Location, message: impl Into<String>) {
        self.errors.push(ManifestError {
            location,
            message: message.into(),
        });
    }

    fn record_origin(&mut self, value: &Value, location: Location) {
        let text = |p: &str| value.pointer(p).and_then(Value::as_str);
        let (Some(kind), Some(name)) = (text("/kind"), text("/metadata/name")) else {
            return;
        };
        let namespace = if objects::cluster_scoped(kind) {
            ""
        } else {
            text("/metadata/namespace").unwrap_or("default")
        };
        self.origins
            .entry((kind.to_string(), namespace.to_string(), name.to_string()))
            .or_insert(location);
    }
}

fn object_key(value: &Value) -> Option<ObjectKey> {
    let text = |p: &str| value.pointer(p).and_then(Value::as_str);
    let kind = text("/kind")?;
    let name = text("/metadata/name")?;
    let group = text("/apiVersion")?.rsplit_once('/').map_or("", |(g, _)| g);
    let namespace = if objects::cluster_scoped(kind) {
        ""
    } else {
        text("/metadata/namespace").unwrap_or("default")
    };
    Some((group.into(), kind.into(), namespace.into(), name.into()))
}
