//! The whole shell against a stand-in API server (a tower service): watchers fill, the
//! operator becomes ready, reconciles an invalid baseline (which needs neither the compiler
//! nor the audit) and writes its status through the status subresource, then shuts down.
//! The e2e suite covers the full behaviour against the simulator.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::*;

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

fn baseline() -> Value {
    json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "default", "uid": "u1", "generation": 2, "resourceVersion": "5",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"clusterDomain": "not a domain!"}})
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "10"}, "items": items})
}

/// The resource the stand-in refuses to stream lists of (as with the WatchList gate off).
const REFUSES_STREAMING: &str = "/api/v1/namespaces";

fn fake_api(crds: Vec<Value>) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let svc = tower::service_fn(move |req: Request<Body>| {
        let log = log2.clone();
        let crds = crds.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await?;
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            log.lock().unwrap().push(seen.clone());
            Ok::<_, kube::Error>(respond(&seen, crds))
        }
    });
    (Client::new(svc, "default"), log)
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

fn full(code: u16, v: Value) -> Reply {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(BoxBody::new(Full::new(Bytes::from(v.to_string()))))
        .unwrap()
}

/// What the stand-in answers: lists and watches of the baseline and `crds` (nothing else
/// exists), and the status and event writes.
fn respond(seen: &Seen, crds: Vec<Value>) -> Reply {
    let path = seen.path.as_str();
    let items = if path.ends_with("/meshbaselines") {
        vec![baseline()]
    } else if path.ends_with("/customresourcedefinitions") {
        crds
    } else {
        vec![]
    };
    let streaming = seen.query.contains("sendInitialEvents=true");
    if streaming && path == REFUSES_STREAMING {
        // What an API server with the WatchList feature gate off answers.
        return full(
            422,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Invalid", "code": 422,
                "message": "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"}),
        );
    }
    if seen.query.contains("watch=true") {
        return watch(items, streaming);
    }
    if seen.method == "GET" {
        full(200, list(items))
    } else if path.ends_with("/status") {
        full(200, baseline())
    } else {
        full(
            201,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z"}),
        )
    }
}

/// A streaming list sends the objects, then a bookmark marking the end of the initial events;
/// then (and any other watch) the stream stays open and quiet.
fn watch(items: Vec<Value>, streaming: bool) -> Reply {
    let mut lines: Vec<Value> = Vec::new();
    if streaming {
        lines.extend(
            items
                .into_iter()
                .map(|o| json!({"type": "ADDED", "object": o})),
        );
        lines.push(json!({"type": "BOOKMARK", "object": {"kind": "List",
            "apiVersion": "v1", "metadata": {"resourceVersion": "10",
            "annotations": {"k8s.io/initial-events-end": "true"}}}}));
    }
    let frames = lines
        .into_iter()
        .map(|l| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{l}\n")))));
    let body = futures::stream::iter(frames).chain(futures::stream::pending());
    Response::builder()
        .status(200)
        .body(BoxBody::new(StreamBody::new(body)))
        .unwrap()
}

async fn wait_for(log: &Mutex<Vec<Seen>>, f: impl Fn(&Seen) -> bool) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(s) = log.lock().unwrap().iter().find(|s| f(s)) {
                return s.clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("request not seen within 10 s")
}

#[tokio::test]
async fn reports_an_invalid_baseline_and_shuts_down() {
    let (client, log) = fake_api(vec![]);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        qps: 1000,
        burst: 1000,
        ..Config::default()
    };
    let metrics = Arc::new(Metrics::new());
    let task = tokio::spawn(run_with_metrics(
        client,
        config,
        metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));

    let status = wait_for(&log, |s| s.path.ends_with("/status")).await;
    assert_invalid_status(&status);
    let event = wait_for(&log, |s| s.path.ends_with("/events")).await;
    assert_eq!(event.body["reason"], "InvalidSpec");
    assert_metrics(&metrics.encode());
    assert_watches(&log.lock().unwrap());

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("shutdown within 10 s")
        .unwrap()
        .unwrap();
}

/// The status names the invalid field, through the status subresource, as our field manager.
fn assert_invalid_status(status: &Seen) {
    assert_eq!(status.method, "PATCH");
    assert_eq!(
        status.path,
        "/apis/meshbaseline.dev/v1alpha1/meshbaselines/default/status"
    );
    assert_eq!(status.content_type, "application/apply-patch+yaml");
    assert!(status.query.contains("fieldManager=meshbaseline"));
    let conds = status.body["status"]["conditions"].as_array().unwrap();
    let invalid = conds.iter().find(|c| c["type"] == "Invalid").unwrap();
    assert_eq!(invalid["status"], "True");
    assert!(invalid["message"]
        .as_str()
        .unwrap()
        .contains("spec.clusterDomain"));
    assert_eq!(status.body["status"]["observedGeneration"], 2);
}

/// The error counted, one status write, leading, and lists streamed except where the API
/// server refuses it.
fn assert_metrics(text: &str) {
    assert!(
        text.contains("meshbaseline_reconcile_errors_total{reason=\"invalid_spec\"}"),
        "{text}"
    );
    assert!(
        text.contains("meshbaseline_api_writes_total{verb=\"status\",kind=\"MeshBaseline\"} 1"),
        "{text}"
    );
    assert!(text.contains("meshbaseline_leader 1"), "{text}");
    for (resource, method) in [
        ("namespaces", "pages"),
        ("pods", "streaming"),
        ("customresourcedefinitions", "streaming"),
    ] {
        let series = format!(
            "meshbaseline_watch_lists_total{{resource=\"{resource}\",method=\"{method}\"}} 1"
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
    assert!(
        !text.contains("resource=\"pods\",method=\"pages\""),
        "{text}"
    );
}

/// The watches the shell opens, how it lists, and what it writes.
fn assert_watches(log: &[Seen]) {
    // The watches the shell opens: the generated kinds are one watch each, Istio kinds only
    // once their CRD exists (it does not here).
    let watched: Vec<String> = log
        .iter()
        .filter(|s| s.method == "GET")
        .map(|s| s.path.clone())
        .collect();
    for p in [
        "/api/v1/namespaces",
        "/api/v1/pods",
        "/api/v1/services",
        "/apis/networking.k8s.io/v1/networkpolicies",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "/apis/meshbaseline.dev/v1alpha1/meshbaselines",
    ] {
        assert!(
            watched.iter().any(|w| w == p),
            "{p} not listed: {watched:?}"
        );
    }
    let namespace_lists: Vec<String> = log
        .iter()
        .filter(|s| s.path == REFUSES_STREAMING)
        .map(|s| s.query.clone())
        .collect();
    assert!(
        namespace_lists[0].contains("sendInitialEvents=true")
            && namespace_lists[1..]
                .iter()
                .any(|q| q.contains(&format!("limit={}", watch::PAGE))),
        "a refused streaming list falls back to pages: {namespace_lists:?}"
    );
    assert!(
        !watched.iter().any(|w| w.contains("istio.io")),
        "{watched:?}"
    );
    // Nothing but the status and the event was written (the SelfSubjectReview only asks who
    // the operator is; it stores nothing).
    let writes: Vec<String> = log
        .iter()
        .filter(|s| s.method != "GET")
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert!(
        writes.iter().all(|w| w.ends_with("/status")
            || w.ends_with("/events")
            || w.ends_with("/selfsubjectreviews")),
        "{writes:?}"
    );
}

fn crd(plural: &str, group: &str, kind: &str, version: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind},
            "versions": [{"name": version, "served": true, "storage": true}]}})
}

#[tokio::test]
async fn istio_watchers_start_for_the_crds_the_cluster_serves() {
    let (client, log) = fake_api(vec![
        crd(
            "peerauthentications",
            "security.istio.io",
            "PeerAuthentication",
            "v1",
        ),
        // An older Istio that serves only v1beta1 counts as missing.
        crd(
            "destinationrules",
            "networking.istio.io",
            "DestinationRule",
            "v1beta1",
        ),
    ]);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(client, Config::default(), async move {
        let _ = stop_rx.await;
    }));
    wait_for(&log, |s| {
        s.path == "/apis/security.istio.io/v1/peerauthentications"
    })
    .await;
    // Ready only once the Istio cache is filled too: the status write proves the reconcile ran.
    wait_for(&log, |s| s.path.ends_with("/status")).await;
    let paths: Vec<String> = log.lock().unwrap().iter().map(|s| s.path.clone()).collect();
    assert!(
        !paths.iter().any(|p| p.contains("destinationrules")),
        "{paths:?}"
    );
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("shutdown within 10 s")
        .unwrap()
        .unwrap();
}
