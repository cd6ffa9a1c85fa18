//! Tests of the API simulator itself, through a real `kube::Client` over HTTP. They always run
//! against the simulator (they test it), whether or not a real cluster is configured.

mod accounting;
mod api_usage;
mod crd;
mod faults;
mod gc;
mod harness;
mod list;
mod replace;
mod scale;
mod ssa;
mod status;
mod watch;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use meshbaseline_e2e::{SimHandle, Simulator};
use serde_json::{json, Value};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A simulator with the standard CRDs and namespaces `team-a`, `team-b`.
pub async fn setup() -> SimHandle {
    let sim = Simulator::start().await.expect("simulator starts");
    sim.install_standard_crds().expect("CRDs install");
    for ns in ["team-a", "team-b"] {
        sim.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}}))
            .expect("namespace created");
    }
    sim
}

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub fn peer_auth() -> ApiResource {
    resource(
        "security.istio.io",
        "v1",
        "PeerAuthentication",
        "peerauthentications",
    )
}

pub fn mesh_baseline() -> ApiResource {
    resource(
        "meshbaseline.dev",
        "v1alpha1",
        "MeshBaseline",
        "meshbaselines",
    )
}

pub fn network_policy() -> ApiResource {
    resource(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    )
}

pub fn dynamic(client: &kube::Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// A DynamicObject from JSON.
pub fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("valid object")
}

pub async fn create(api: &Api<DynamicObject>, value: Value) -> DynamicObject {
    api.create(&PostParams::default(), &object(value))
        .await
        .expect("created")
}

/// The API error of a failed call.
pub fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
