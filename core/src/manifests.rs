//! Reading manifests from files and directories: multi-document YAML, JSON, `kind: List`
//! (as printed by `kubectl get -o yaml`), and workload pod templates.
//!
//! A malformed document is reported with its file and document number; the rest is kept.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::api::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication, Sidecar};
use crate::api::MeshBaseline;
use crate::inventory::{Inventory, NamespaceInfo, PodInfo, ServiceInfo};

/// One document of one file (1-based number, in the order of the file).
#[derive(Clone, Debug)]
pub struct Document {
    pub file: PathBuf,
    pub number: usize,
    pub value: Value,
}

/// A problem with one file or one document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub file: PathBuf,
    pub document: Option<usize>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(n) => write!(
                f,
                "{} (document {n}): {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Everything read from a set of paths.
#[derive(Debug, Default)]
pub struct Loaded {
    pub inventory: Inventory,
    pub baselines: Vec<MeshBaseline>,
    pub errors: Vec<ManifestError>,
    /// Where each object came from, by (kind, namespace, name); the namespace is empty for
    /// cluster-scoped kinds. Lets `check` point findings at a file.
    pub origins: BTreeMap<(String, String, String), Origin>,
    /// Documents read without error (kinds the audit ignores included).
    pub documents: usize,
}

/// The file and document number an object was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
}

/// Reads files and directories (recursively: `*.yaml`, `*.yml`, `*.json`, in name order).
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    for path in paths {
        let mut files = Vec::new();
        if let Err(message) = collect_files(path, &mut files) {
            loaded.errors.push(ManifestError {
                file: path.clone(),
                document: None,
                message,
            });
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => loaded.add_text(&file, &text),
                Err(e) => loaded.errors.push(ManifestError {
                    file: file.clone(),
                    document: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
    }
    loaded
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect_files(&entry, out)?;
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(entry);
        }
    }
    Ok(())
}

/// Splits a YAML (or JSON) text into documents, expanding `kind: List`. Empty documents are
/// skipped but still counted, so numbers match what an editor shows between `---` lines.
pub fn parse_documents(file: &Path, text: &str) -> (Vec<Document>, Vec<ManifestError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let number = i + 1;
        let err = |message: String| ManifestError {
            file: file.to_path_buf(),
            document: Some(number),
            message,
        };
        let value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(format!("not valid YAML: {e}")));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        match value {
            Value::Null => {}
            Value::Object(ref map) => {
                let is_list = map
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && map.get("items").is_some();
                if is_list {
                    match map.get("items") {
                        Some(Value::Array(items)) => {
                            docs.extend(items.iter().map(|item| Document {
                                file: file.to_path_buf(),
                                number,
                                value: item.clone(),
                            }))
                        }
                        _ => errors.push(err("items: must be a list".into())),
                    }
                } else {
                    docs.push(Document {
                        file: file.to_path_buf(),
                        number,
                        value,
                    });
                }
            }
            _ => errors.push(err("not a Kubernetes object (expected a mapping)".into())),
        }
    }
    (docs, errors)
}

/// Deserializes a document into `T`, naming the field that does not fit.
pub fn typed<T: DeserializeOwned>(doc: &Document) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let kind = doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("object");
        let name = doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>");
        let path = e.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(" at {path}")
        };
        ManifestError {
            file: doc.file.clone(),
            document: Some(doc.number),
            message: format!("{kind} {name:?}{field}: {}", e.into_inner()),
        }
    })
}

impl Loaded {
    /// Adds every document of one file's text.
    pub fn add_text(&mut self, file: &Path, text: &str) {
        let first_error = self.errors.len();
        let (docs, errs) = parse_documents(file, text);
        self.errors.extend(errs);
        for doc in docs {
            self.add(doc);
        }
        // Report a file's problems in document order, parse errors and others alike.
        self.errors[first_error..].sort_by_key(|e| e.document);
    }

    fn add(&mut self, doc: Document) {
        match self.try_add(&doc) {
            Ok(()) => {
                self.documents += 1;
                self.record_origin(&doc);
            }
            Err(e) => self.errors.push(e),
        }
    }

    fn record_origin(&mut self, doc: &Document) {
        let text = |p: &str| doc.value.pointer(p).and_then(Value::as_str);
        let (Some(kind), Some(name)) = (text("/kind"), text("/metadata/name")) else {
            return;
        };
        let namespace = match kind {
            "Namespace" | "MeshBaseline" => "",
            _ => text("/metadata/namespace").unwrap_or("default"),
        };
        self.origins
            .entry((kind.to_string(), namespace.to_string(), name.to_string()))
            .or_insert_with(|| Origin {
                file: doc.file.clone(),
                document: doc.number,
            });
    }

    fn try_add(&mut self, doc: &Document) -> Result<(), ManifestError> {
        let api_version = doc
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        if kind.is_empty() || api_version.is_empty() {
            return Err(ManifestError {
                file: doc.file.clone(),
                document: Some(doc.number),
                message: "apiVersion and kind must be set".into(),
            });
        }
        // Istio accepts its kinds without a spec, and with null fields; so do we.
        let filled;
        let doc = if group.ends_with(".istio.io") {
            let mut d = doc.clone();
            crate::api::istio::default_spec(&mut d.value);
            filled = d;
            &filled
        } else {
            doc
        };
        let inv = &mut self.inventory;
        match (group, kind) {
            ("", "Namespace") => {
                let ns: Namespace = typed(doc)?;
                let info = NamespaceInfo::from(&ns);
                inv.namespaces.insert(info.name.clone(), info);
            }
            ("", "Pod") => inv
                .pods
                .push(Arc::new(PodInfo::from_pod(&defaulted(typed::<Pod>(doc)?)))),
            ("", "Service") => inv
                .services
                .push(ServiceInfo::from(&defaulted(typed::<Service>(doc)?))),
            ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
            | ("batch", "Job")
            | ("", "ReplicationController" | "PodTemplate") => {
                let pointer = if kind == "PodTemplate" {
                    "/template"
                } else {
                    "/spec/template"
                };
                inv.pods
                    .push(Arc::new(workload_template(doc, kind, pointer)?));
            }
            ("batch", "CronJob") => inv.pods.push(Arc::new(workload_template(
                doc,
                kind,
                "/spec/jobTemplate/spec/template",
            )?)),
            ("networking.k8s.io", "NetworkPolicy") => inv
                .network_policies
                .push(Arc::new(defaulted(typed::<NetworkPolicy>(doc)?))),
            ("security.istio.io", "PeerAuthentication") => inv
                .peer_authentications
                .push(Arc::new(defaulted(typed::<PeerAuthentication>(doc)?))),
            ("security.istio.io", "AuthorizationPolicy") => inv
                .authorization_policies
                .push(Arc::new(defaulted(typed::<AuthorizationPolicy>(doc)?))),
            ("networking.istio.io", "DestinationRule") => inv
                .destination_rules
                .push(Arc::new(defaulted(typed::<DestinationRule>(doc)?))),
            ("networking.istio.io", "Sidecar") => {
                inv.sidecars
                    .push(Arc::new(defaulted(typed::<Sidecar>(doc)?)))
            }
            ("meshbaseline.dev", "MeshBaseline") => self.baselines.push(typed(doc)?),
            // Other kinds (ConfigMaps, Gateways, ...) are not the audit's business.
            _ => {}
        }
        Ok(())
    }
}

/// Objects in manifests often leave the namespace out; `kubectl apply` puts them in `default`.
fn defaulted<K: kube_core::Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    if meta.namespace.is_none() {
        meta.namespace = Some("default".into());
    }
    obj
}

fn workload_template(doc: &Document, kind: &str, pointer: &str) -> Result<PodInfo, ManifestError> {
    let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta = doc
        .value
        .get("metadata")
        .map(|m| serde_json::from_value(m.clone()))
        .transpose()
        .map_err(|e| ManifestError {
            file: doc.file.clone(),
            document: Some(doc.number),
            message: format!("{kind} metadata: {e}"),
        })?
        .unwrap_or_default();
    let template_doc = Document {
        file: doc.file.clone(),
        number: doc.number,
        value: doc.value.pointer(pointer).cloned().unwrap_or(Value::Null),
    };
    let template: PodTemplateSpec = if template_doc.value.is_null() {
        PodTemplateSpec::default()
    } else {
        typed(&template_doc).map_err(|mut e| {
            e.message = format!(
                "{kind} {:?} {}: {}",
                meta.name.clone().unwrap_or_default(),
                pointer,
                e.message
            );
            e
        })?
    };
    // The template's annotations decide injection; the workload's name and namespace identify it.
    let mut tmeta = template.metadata.clone().unwrap_or_default();
    tmeta.name = meta.name.clone();
    tmeta.namespace = Some(meta.namespace.clone().unwrap_or_else(|| "default".into()));
    Ok(PodInfo::from_spec(&tmeta, template.spec.as_ref(), kind))
}
