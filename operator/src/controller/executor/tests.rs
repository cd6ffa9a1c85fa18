//! The executor's requests, recorded by a tower service standing in for the API server.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::json;

use super::*;
use crate::controller::lease::Leadership;

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

fn query_has(q: &str, pair: &str) -> bool {
    q.split('&').any(|p| p == pair)
}

/// A client whose every request is recorded and answered with `reply` (status, body).
fn mock(reply: (u16, Value)) -> (Client, Arc<Mutex<Vec<Recorded>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let svc = tower::service_fn(move |req: Request<Body>| {
        let log = log2.clone();
        let reply = reply.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await?;
            log.lock().unwrap().push(Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
            let resp = Response::builder()
                .status(reply.0)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&reply.1).unwrap()))
                .unwrap();
            Ok::<_, kube::Error>(resp)
        }
    });
    (Client::new(svc, "default"), log)
}

fn executor(client: Client) -> Executor {
    Executor::new(
        client,
        Arc::new(Metrics::new()),
        Some("pod-0".into()),
        Arc::new(Leadership::always()),
        Arc::default(),
    )
}

fn netpol_reply() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "meshbaseline-baseline", "namespace": "a", "uid": "u1", "resourceVersion": "7"},
        "spec": {"podSelector": {}}})
}

#[tokio::test]
async fn apply_is_a_forced_server_side_apply_under_our_field_manager() {
    let (client, log) = mock((200, netpol_reply()));
    let key = ObjectKey {
        kind: Kind::NetworkPolicy,
        namespace: "a".into(),
        name: "meshbaseline-baseline".into(),
    };
    let manifest = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "meshbaseline-baseline", "namespace": "a"}, "spec": {"podSelector": {}}});
    let obj = executor(client)
        .apply(&key, manifest.clone())
        .await
        .unwrap();
    assert_eq!(obj.metadata.uid.as_deref(), Some("u1"));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(r.method, "PATCH");
    assert_eq!(
        r.path,
        "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/meshbaseline-baseline"
    );
    assert_eq!(r.content_type, "application/apply-patch+yaml");
    assert!(
        query_has(&r.query, "fieldManager=meshbaseline"),
        "{}",
        r.query
    );
    assert!(query_has(&r.query, "force=true"), "{}", r.query);
    assert_eq!(r.body, manifest);
}

#[tokio::test]
async fn istio_kinds_use_their_group_paths() {
    let reply = json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "x", "namespace": "b"}});
    let (client, log) = mock((200, reply));
    let key = ObjectKey {
        kind: Kind::AuthorizationPolicy,
        namespace: "b".into(),
        name: "x".into(),
    };
    executor(client).apply(&key, json!({})).await.unwrap();
    assert_eq!(
        log.lock().unwrap()[0].path,
        "/apis/security.istio.io/v1/namespaces/b/authorizationpolicies/x"
    );
}

#[tokio::test]
async fn revert_sends_only_the_patch_body() {
    let patch = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "weak", "namespace": "a", "annotations": {"meshbaseline.dev/reverted": "spec.mtls.mode"}},
        "spec": {"mtls": {"mode": "STRICT"}}});
    let (client, log) = mock((200, patch.clone()));
    let r = Revert {
        key: ObjectKey {
            kind: Kind::PeerAuthentication,
            namespace: "a".into(),
            name: "weak".into(),
        },
        patch: patch.clone(),
        fields: vec!["spec.mtls.mode".into()],
    };
    executor(client).revert(&r).await.unwrap();
    let log = log.lock().unwrap();
    let rec = &log[0];
    assert_eq!(rec.method, "PATCH");
    assert_eq!(
        rec.path,
        "/apis/security.istio.io/v1/namespaces/a/peerauthentications/weak"
    );
    assert_eq!(rec.content_type, "application/apply-patch+yaml");
    assert!(
        query_has(&rec.query, "force=true") && query_has(&rec.query, "fieldManager=meshbaseline")
    );
    assert_eq!(rec.body, patch);
}

#[tokio::test]
async fn delete_uses_a_uid_precondition_and_tolerates_not_found() {
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "not found", "reason": "NotFound", "code": 404});
    let (client, log) = mock((404, not_found));
    let key = ObjectKey {
        kind: Kind::Sidecar,
        namespace: "istio-system".into(),
        name: "meshbaseline-registry-only".into(),
    };
    executor(client)
        .delete(&key, Some("u9".into()))
        .await
        .unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[0].method, "DELETE");
    assert_eq!(
        log[0].path,
        "/apis/networking.istio.io/v1/namespaces/istio-system/sidecars/meshbaseline-registry-only"
    );
    assert_eq!(log[0].body["preconditions"]["uid"], "u9");
}

#[tokio::test]
async fn status_goes_through_the_status_subresource() {
    let reply = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "default"}, "spec": {}});
    let (client, log) = mock((200, reply));
    let status = MeshBaselineStatus {
        observed_generation: Some(3),
        findings_total: 2,
        ..MeshBaselineStatus::default()
    };
    executor(client).status("default", &status).await.unwrap();
    let log = log.lock().unwrap();
    let r = &log[0];
    assert_eq!(r.method, "PATCH");
    assert_eq!(
        r.path,
        "/apis/meshbaseline.dev/v1alpha1/meshbaselines/default/status"
    );
    assert_eq!(r.content_type, "application/apply-patch+yaml");
    assert!(query_has(&r.query, "fieldManager=meshbaseline") && query_has(&r.query, "force=true"));
    assert_eq!(r.body["status"]["observedGeneration"], 3);
    assert_eq!(r.body["kind"], "MeshBaseline");
}

#[tokio::test]
async fn events_are_created_in_the_events_api() {
    let (client, log) = mock((
        201,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e", "namespace": "default"}, "eventTime": "2026-01-01T00:00:00.000000Z"}),
    ));
    let regarding = ObjectReference {
        api_version: Some(API_VERSION.into()),
        kind: Some("MeshBaseline".into()),
        name: Some("default".into()),
        uid: Some("u".into()),
        ..ObjectReference::default()
    };
    let ev = PlannedEvent {
        type_: plan::EventType::Warning,
        reason: crate::plan::Reason::DriftRepaired,
        action: "Apply".into(),
        note: "restored NetworkPolicy a/meshbaseline-baseline".into(),
        namespace: None,
        related: None,
    };
    executor(client).event(&regarding, &ev).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[0].method, "POST");
    assert_eq!(
        log[0].path,
        "/apis/events.k8s.io/v1/namespaces/default/events"
    );
    assert_eq!(log[0].body["reason"], "DriftRepaired");
    assert_eq!(log[0].body["type"], "Warning");
    assert_eq!(log[0].body["reportingController"], "meshbaseline");
}

#[tokio::test]
async fn repairs_are_a_replace_guarded_by_the_resource_version() {
    let (client, log) = mock((200, netpol_reply()));
    let key = ObjectKey {
        kind: Kind::NetworkPolicy,
        namespace: "a".into(),
        name: "meshbaseline-baseline".into(),
    };
    let manifest = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "meshbaseline-baseline", "namespace": "a", "resourceVersion": "7"},
        "spec": {"podSelector": {}}});
    executor(client)
        .replace(&key, manifest.clone())
        .await
        .unwrap();
    let log = log.lock().unwrap();
    let r = &log[0];
    assert_eq!(r.method, "PUT");
    assert!(
        query_has(&r.query, "fieldManager=meshbaseline"),
        "{}",
        r.query
    );
    assert_eq!(r.body["metadata"]["resourceVersion"], "7");
    assert_eq!(r.body["spec"], json!({"podSelector": {}}));
}

#[tokio::test]
async fn nothing_is_sent_after_the_lease_deadline() {
    let (client, log) = mock((200, netpol_reply()));
    let leadership = Arc::new(Leadership::new());
    leadership.extend(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let metrics = Arc::new(Metrics::new());
    let ex = Executor::new(
        client,
        metrics.clone(),
        None,
        leadership.clone(),
        Arc::default(),
    );
    let key = ObjectKey {
        kind: Kind::Sidecar,
        namespace: "istio-system".into(),
        name: "meshbaseline-registry-only".into(),
    };
    ex.apply(&key, json!({})).await.unwrap();
    // The deadline passes in the middle of a plan: the next write is refused unsent.
    leadership.revoke();
    assert!(matches!(
        ex.apply(&key, json!({})).await,
        Err(WriteError::NotLeader)
    ));
    assert!(matches!(
        ex.delete(&key, None).await,
        Err(WriteError::NotLeader)
    ));
    assert!(matches!(
        ex.status("default", &MeshBaselineStatus::default()).await,
        Err(WriteError::NotLeader)
    ));
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "only the write before the deadline"
    );
    assert!(metrics
        .encode()
        .contains("meshbaseline_writes_refused_total 3"));
}

/// A revert names the uid observed; the API server's refusals of it (the object gone, or
/// another one at its name, as a real kube-apiserver words them) mean nothing to revert,
/// while any other refusal is an error.
#[tokio::test]
async fn a_revert_of_an_object_gone_or_made_again_is_nothing_to_do() {
    let revert = || Revert {
        key: ObjectKey {
            kind: Kind::DestinationRule,
            namespace: "a".into(),
            name: "reviews".into(),
        },
        patch: json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "a", "uid": "u1"},
            "spec": {"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}}),
        fields: vec!["spec.trafficPolicy.tls.mode".into()],
    };
    let status = |code: u16, reason: &str, message: &str| {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": reason, "code": code})
    };
    let gone = status(409, "Conflict", "Operation cannot be fulfilled on destinationrules.networking.istio.io \"reviews\": uid mismatch: the provided object specified uid u1, and no existing object was found");
    let again = status(422, "Invalid", "DestinationRule.networking.istio.io \"reviews\" is invalid: metadata.uid: Invalid value: \"u1\": field is immutable");
    let other = status(409, "Conflict", "Apply failed with 1 conflict");
    for (reply, nothing) in [(gone, true), (again, true), (other, false)] {
        let code = reply["code"].as_u64().unwrap() as u16;
        let (client, log) = mock((code, reply));
        let res = executor(client).revert(&revert()).await;
        assert_eq!(log.lock().unwrap()[0].body["metadata"]["uid"], "u1");
        if nothing {
            assert!(matches!(res, Ok(None)), "{res:?}");
        } else {
            assert!(res.is_err());
        }
    }
}
