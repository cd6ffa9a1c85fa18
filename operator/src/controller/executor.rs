//! The one writer. Every API write of the operator goes through here, as field manager
//! `meshbaseline`: generated objects are created with server-side apply and repaired with a
//! replace (PUT) guarded by the live resourceVersion; deletes; forced single-field reverts;
//! status through the status subresource; and Events.
//!
//! Why a replace for repairs: server-side apply, even forced, only takes over the fields the
//! applied configuration contains. A field another manager added (a `selector` that matches
//! nothing, a `to` clause) stays, owned by that manager, and keeps the policy switched off.
//! A replace stores exactly the object sent, so foreign spec fields are gone; the
//! resourceVersion precondition turns a concurrent change into a 409 instead of a lost update
//! (the watch then delivers the newer version and the object is planned again).

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::api::baseline::{MeshBaselineStatus, API_VERSION};
use crate::api::MeshBaseline;
use crate::object::{Kind, ObjectKey, FIELD_MANAGER};
use crate::plan::{self, PlannedEvent, Revert};
use crate::telemetry::Metrics;

use super::lease::Leadership;
use super::served::Served;

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Why a write was not made.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This replica's lease deadline has passed (or it never led): another replica may be
    /// writing, so nothing is sent.
    #[error("not the leader (lease deadline passed)")]
    NotLeader,
    #[error(transparent)]
    Api(#[from] kube::Error),
}

#[derive(Clone)]
pub struct Executor {
    client: Client,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    leadership: Arc<Leadership>,
    served: Arc<Served>,
}

impl Executor {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        instance: Option<String>,
        leadership: Arc<Leadership>,
        served: Arc<Served>,
    ) -> Executor {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Executor {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            leadership,
            served,
        }
    }

    /// Checked right before every write: a replica whose lease may have expired for the
    /// others writes nothing, even in the middle of a plan.
    fn guard(&self) -> Result<(), WriteError> {
        if self.leadership.may_write() {
            Ok(())
        } else {
            self.metrics.write_refused();
            Err(WriteError::NotLeader)
        }
    }

    /// One generic path for every kind, at the version the cluster serves.
    fn api(&self, kind: Kind, namespace: &str) -> Api<DynamicObject> {
        let ar = self.served.api_resource(kind);
        if kind.cluster_scoped() {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        }
    }

    /// The manifest at the served version (ClusterNetworkPolicy's versions share a schema).
    fn at_served_version(&self, kind: Kind, mut manifest: Value) -> Value {
        if let Some(v) = self.served.version(kind).filter(|v| *v != kind.version()) {
            manifest["apiVersion"] = Value::String(format!("{}/{v}", kind.group()));
        }
        manifest
    }

    /// Creates a generated object (server-side apply); returns the object as stored.
    pub async fn apply(
        &self,
        key: &ObjectKey,
        manifest: Value,
    ) -> Result<DynamicObject, WriteError> {
        self.guard()?;
        let manifest = self.at_served_version(key.kind, manifest);
        let obj = self
            .api(key.kind, &key.namespace)
            .patch(&key.name, &apply_params(), &Patch::Apply(&manifest))
            .await?;
        self.metrics.api_write("apply", key.kind.name());
        Ok(obj)
    }

    /// Replaces a generated object with exactly `manifest`, which carries the live
    /// `metadata.resourceVersion` as precondition; returns the object as stored.
    pub async fn replace(
        &self,
        key: &ObjectKey,
        manifest: Value,
    ) -> Result<DynamicObject, WriteError> {
        self.guard()?;
        let obj: DynamicObject = serde_json::from_value(self.at_served_version(key.kind, manifest))
            .map_err(kube::Error::SerdeError)?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        let stored = self
            .api(key.kind, &key.namespace)
            .replace(&key.name, &pp, &obj)
            .await?;
        self.metrics.api_write("replace", key.kind.name());
        Ok(stored)
    }

    /// Writes a planned object: a replace when it exists, an apply when it does not.
    pub async fn write(&self, a: &plan::Apply) -> Result<DynamicObject, WriteError> {
        let manifest = a.manifest();
        match a.live {
            Some(_) => self.replace(&a.key, manifest).await,
            None => self.apply(&a.key, manifest).await,
        }
    }

    /// Deletes a generated object (only the instance with `uid`, when known). Already gone is
    /// success.
    pub async fn delete(&self, key: &ObjectKey, uid: Option<String>) -> Result<(), WriteError> {
        self.guard()?;
        let dp = DeleteParams {
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let res = self
            .api(key.kind, &key.namespace)
            .delete(&key.name, &dp)
            .await;
        self.metrics.api_write("delete", key.kind.name());
        match res {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes ownership of the weak field(s) of a tenant object (the patch holds nothing else).
    /// `None`: the object observed is gone (deleted, or made again: the patch's uid no longer
    /// matches), so there is nothing to revert; its watch event brings a new audit.
    pub async fn revert(&self, r: &Revert) -> Result<Option<DynamicObject>, WriteError> {
        self.guard()?;
        let res = self
            .api(r.key.kind, &r.key.namespace)
            .patch(&r.key.name, &apply_params(), &Patch::Apply(&r.patch))
            .await;
        self.metrics.api_write("apply", r.key.kind.name());
        match res {
            Ok(obj) => Ok(Some(obj)),
            Err(kube::Error::Api(s)) if s.code == 404 || uid_mismatch(&s) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn status(&self, name: &str, status: &MeshBaselineStatus) -> Result<(), WriteError> {
        self.guard()?;
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": "MeshBaseline",
            "metadata": {"name": name},
            "status": status,
        });
        Api::<MeshBaseline>::all(self.client.clone())
            .patch_status(name, &apply_params(), &Patch::Apply(&body))
            .await?;
        self.metrics.api_write("status", "MeshBaseline");
        Ok(())
    }

    pub async fn event(
        &self,
        regarding: &ObjectReference,
        ev: &PlannedEvent,
    ) -> Result<(), WriteError> {
        self.guard()?;
        let event = Event {
            type_: match ev.type_ {
                plan::EventType::Normal => EventType::Normal,
                plan::EventType::Warning => EventType::Warning,
            },
            reason: ev.reason.to_string(),
            note: Some(ev.note.clone()),
            action: ev.action.clone(),
            secondary: ev.related.as_ref().map(|r| ObjectReference {
                kind: Some(r.kind.clone()),
                namespace: r.namespace.clone(),
                name: Some(r.name.clone()),
                ..ObjectReference::default()
            }),
        };
        self.recorder.publish(&event, regarding).await?;
        self.metrics.api_write("event", "Event");
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// The API server's answer to an apply whose uid is not the object's: 409 Conflict, "uid
/// mismatch", when the object is gone; 422 Invalid on `metadata.uid` ("field is immutable")
/// when another object has its name now.
fn uid_mismatch(s: &kube::core::Status) -> bool {
    (s.code == 409 && s.message.contains("uid mismatch"))
        || (s.code == 422 && s.message.contains("metadata.uid"))
}
