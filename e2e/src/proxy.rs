//! A fault-injecting proxy between the operator under test and a real API server.
//!
//! The operator talks plain HTTP to the proxy on loopback; the proxy forwards every request
//! through a `kube::Client` built from the operator's own credentials (its ServiceAccount
//! token), so the real server authenticates and authorizes the operator as it would in a
//! cluster. On the way it injects the same faults as the simulator (`FaultConfig`: 5xx, 429
//! with `Retry-After`, latency, cut watches, 410 Gone, apply conflicts) and records every
//! request (`RequestLog`), so the fault and write-count scenarios run against the real server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::sim::{
    Accounting, FaultConfig, Faults, RequestLog, RequestRecord, Verb, WATCH_LIST_REFUSED,
};
use crate::sim_lock;

type ProxyBody = UnsyncBoxBody<Bytes, std::io::Error>;

struct State {
    upstream: kube::Client,
    faults: Mutex<Faults>,
    accounting: Mutex<Accounting>,
    /// Bumped to end every open watch stream.
    cut: watch::Sender<u64>,
}

/// A running proxy; dropping it stops the listener (open streams end with their clients).
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    _stop: oneshot::Sender<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards through `upstream`.
    pub async fn start(upstream: kube::Client) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            faults: Mutex::new(Faults::default()),
            accounting: Mutex::new(Accounting::default()),
            cut: watch::channel(0).0,
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = &mut stopped => return,
                    conn = listener.accept() => conn,
                };
                let Ok((stream, _)) = conn else { continue };
                // As kube-apiserver does (Go's default): no Nagle delay on responses.
                let _ = stream.set_nodelay(true);
                let state = serving.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(serve(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            state,
            _stop: stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube config for the operator: the proxy's address, no credentials of its own (the
    /// proxy's upstream client carries the operator's).
    pub fn kube_config(&self) -> Result<kube::Config, http::uri::InvalidUri> {
        let mut config = kube::Config::new(self.url().parse()?);
        config.read_timeout = Some(Duration::from_secs(295));
        Ok(config)
    }

    pub fn set_faults(&self, config: FaultConfig) {
        *sim_lock(&self.state.faults) = Faults::new(config);
    }

    pub fn clear_faults(&self) {
        self.set_faults(FaultConfig::default());
    }

    /// Ends every open watch stream now (the client sees a clean end of stream).
    pub fn cut_watches(&self) {
        self.state.cut.send_modify(|g| *g += 1);
    }

    pub fn mark(&self) -> u64 {
        sim_lock(&self.state.accounting).mark()
    }

    pub fn requests_since(&self, mark: u64) -> RequestLog {
        sim_lock(&self.state.accounting).since(mark)
    }

    pub fn requests(&self) -> RequestLog {
        self.requests_since(0)
    }

    pub fn reset_requests(&self) {
        sim_lock(&self.state.accounting).reset();
    }
}

/// What a request is, from its method, path, query and content type.
fn classify(req: &Request<Incoming>) -> RequestRecord {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or_default();
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => ("", &[][..]),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] => (*ns, [&[*plural][..], tail].concat()),
        other => ("", other.to_vec()),
    };
    let (resource, name) = match rest.as_slice() {
        [plural] => (plural.to_string(), ""),
        [plural, name] => (plural.to_string(), *name),
        [plural, name, sub, ..] => (format!("{plural}/{sub}"), *name),
        _ => (String::new(), ""),
    };
    let named = !name.is_empty();
    let watching = param("watch").is_some_and(|w| w == "true" || w == "1");
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let verb = match (req.method().as_str(), named) {
        ("GET", _) if watching => Verb::Watch,
        ("GET", true) => Verb::Get,
        ("GET", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) if content_type.starts_with("application/apply-patch") => Verb::Apply,
        ("PATCH", _) if content_type.starts_with("application/strategic-merge-patch") => {
            Verb::StrategicPatch
        }
        ("PATCH", _) if content_type.starts_with("application/json-patch") => Verb::JsonPatch,
        ("PATCH", _) => Verb::MergePatch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => Verb::Get,
    };
    let field_manager = if verb.is_write() {
        param("fieldManager").unwrap_or_default()
    } else {
        String::new()
    };
    RequestRecord {
        seq: 0,
        verb,
        group: group.to_string(),
        resource,
        namespace: namespace.to_string(),
        name: name.to_string(),
        field_manager,
        streaming_list: verb == Verb::Watch
            && param("sendInitialEvents").as_deref() == Some("true"),
        code: 0,
    }
}

fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    retry_after: u64,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if retry_after > 0 && matches!(code, 429 | 503) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    resp
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

async fn serve(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let record = classify(&req);
    let (verb, streaming_list) = (record.verb, record.streaming_list);
    // Recorded when it arrives, its code filled in later: the API server commits a write
    // before its response reaches us, and a test that has seen the write's effect must also
    // find the write in the log before any mark it takes afterwards.
    let seq = sim_lock(&state.accounting).record(record);
    let done = |code: u16| sim_lock(&state.accounting).set_code(seq, code);
    let refused = streaming_list && sim_lock(&state.faults).config.refuse_streaming_lists;
    let (error, latency, conflict, gone, cut_events, cut_after, retry_after) = {
        let mut f = sim_lock(&state.faults);
        let error = f.error_for(verb);
        let conflict = verb == Verb::Apply && f.apply_conflict();
        // A watch from a version it saw; a list streamed from "0" is not resuming anything.
        let resuming = req
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.strip_prefix("resourceVersion="))
            .any(|rv| !rv.is_empty() && rv != "0");
        let gone = verb == Verb::Watch && resuming && f.watch_gone();
        let c = &f.config;
        (
            error,
            c.latency,
            conflict,
            gone,
            c.watch_cut_after_events,
            c.watch_cut_after,
            c.retry_after_seconds,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let injected = match (error, conflict) {
        // What kube-apiserver answers a streaming list with the WatchList gate off.
        _ if refused => Some(status_response(
            422,
            "Invalid",
            &format!("ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: {WATCH_LIST_REFUSED}"),
            0,
        )),
        (Some(code), _) => Some(status_response(
            code,
            "InternalError",
            "injected by the e2e fault proxy",
            retry_after,
        )),
        (None, true) => Some(status_response(
            409,
            "Conflict",
            "Apply failed with 1 conflict: injected by the e2e fault proxy",
            0,
        )),
        _ => None,
    };
    if let Some(resp) = injected {
        done(resp.status().as_u16());
        return resp;
    }
    if gone {
        done(200);
        let event = serde_json::json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version (injected by the e2e fault proxy)",
            "reason": "Expired", "code": 410}});
        let mut resp = Response::new(full(Bytes::from(format!("{event}\n"))));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    let is_watch = verb == Verb::Watch;
    let forwarded = forward(&state.upstream, req).await;
    let resp = match forwarded {
        Ok(resp) => resp,
        Err(e) => status_response(502, "BadGateway", &format!("e2e fault proxy: {e}"), 0),
    };
    done(resp.status().as_u16());
    if !is_watch || !resp.status().is_success() {
        return resp;
    }
    cut_watch(resp, state.cut.subscribe(), cut_events, cut_after)
}

async fn forward(
    upstream: &kube::Client,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in &parts.headers {
        // The upstream client sets its own host, credentials and framing.
        if name != header::HOST && name != header::AUTHORIZATION && name != header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let out = out.body(kube::client::Body::from(bytes.to_vec()))?;
    let resp = upstream.send(out).await?;
    let (parts, body) = resp.into_parts();
    let body = body
        .map_err(|e| std::io::Error::other(e.to_string()))
        .boxed_unsync();
    Ok(Response::from_parts(parts, body))
}

/// Passes a watch stream through until the proxy cuts watches, `events` newline-delimited
/// events have passed, or `after` has elapsed; then ends it cleanly.
fn cut_watch(
    resp: Response<ProxyBody>,
    cut: watch::Receiver<u64>,
    events: Option<u32>,
    after: Option<Duration>,
) -> Response<ProxyBody> {
    let (parts, body) = resp.into_parts();
    let deadline = after.map(|d| tokio::time::Instant::now() + d);
    let frames = futures::stream::unfold((body, 0u32, false), move |(mut body, mut seen, done)| {
        let mut cut = cut.clone();
        async move {
            if done {
                return None;
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let frame = tokio::select! {
                _ = cut.changed() => return None,
                _ = sleep => return None,
                frame = body.frame() => frame?,
            };
            if let Ok(Some(data)) = frame.as_ref().map(Frame::data_ref) {
                seen += data.iter().filter(|b| **b == b'\n').count() as u32;
            }
            let end = events.is_some_and(|n| seen >= n);
            Some((frame, (body, seen, end)))
        }
    });
    let body = BodyExt::boxed_unsync(StreamBody::new(frames.boxed()));
    Response::from_parts(parts, body)
}
