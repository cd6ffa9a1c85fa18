//! HTTP: routing of Kubernetes API paths to the verbs, query parsing, fault injection and
//! accounting at the door, and JSON / Status responses.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::accounting::{RequestRecord, Verb};
use super::errors::ApiError;
use super::faults::WATCH_LIST_REFUSED;
use super::gc::Propagation;
use super::request::{manager_of, parse_body, query, verb_of};
use super::selectors::Selector;
use super::watch::{self, WatchParams};
use super::writes::{self, DeleteOpts, PatchKind, Target};
use super::{discovery, lock, now_rfc3339, reads, resources, Shared, HARNESS_HEADER};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = json_response(err.code, &err.to_status());
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    resp
}

/// A resource path, before the resource type is resolved.
struct Route {
    group: String,
    version: String,
    plural: String,
    ns: String,
    name: Option<String>,
    sub: Option<String>,
}

/// `Ok(None)` for discovery paths of a group version; `Err` for paths that are not the API.
fn parse_path(path: &str) -> Result<(String, String, Option<Route>), ()> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Err(()),
    };
    let owned = |s: &&str| s.to_string();
    let route = match rest {
        [] => None,
        ["namespaces", ns, sub @ ("status" | "finalize")] => Some((
            "namespaces",
            String::new(),
            Some(ns.to_string()),
            Some(sub.to_string()),
        )),
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => Some((
            *plural,
            ns.to_string(),
            tail.first().map(owned),
            tail.get(1).map(owned),
        )),
        [plural, tail @ ..] if tail.len() <= 2 => Some((
            *plural,
            String::new(),
            tail.first().map(owned),
            tail.get(1).map(owned),
        )),
        _ => return Err(()),
    };
    let route = route.map(|(plural, ns, name, sub)| Route {
        group: group.clone(),
        version: version.clone(),
        plural: plural.to_string(),
        ns,
        name,
        sub,
    });
    Ok((group, version, route))
}

pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(match serve(shared, req).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    })
}

async fn serve(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/version" => return Ok(json_response(200, &discovery::version())),
        "/api" => return Ok(json_response(200, &discovery::core_versions())),
        "/apis" => return Ok(json_response(200, &discovery::groups(&lock(&shared.state)))),
        "/healthz" | "/readyz" | "/livez" => {
            return Ok(Response::new(
                Full::new(Bytes::from_static(b"ok")).boxed_unsync(),
            ));
        }
        _ => {}
    }
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (group, version, route) = parse_path(&path).map_err(|()| not_found())?;
    let Some(route) = route else {
        let doc =
            discovery::resources(&lock(&shared.state), &group, &version).ok_or_else(not_found)?;
        return Ok(json_response(200, &doc));
    };
    let q = query(&req);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    let verb = verb_of(req.method(), route.name.is_some(), &q, &content_type)?;
    let manager = if verb.is_write() {
        manager_of(&q, &req)
    } else {
        String::new()
    };
    let harness = req.headers().contains_key(HARNESS_HEADER);

    let seq = (!harness).then(|| {
        let resource = match &route.sub {
            Some(sub) => format!("{}/{sub}", route.plural),
            None => route.plural.clone(),
        };
        lock(&shared.accounting).record(RequestRecord {
            seq: 0,
            verb,
            group: route.group.clone(),
            resource,
            namespace: route.ns.clone(),
            name: route.name.clone().unwrap_or_default(),
            field_manager: manager.clone(),
            streaming_list: verb == Verb::Watch
                && q.get("sendInitialEvents").is_some_and(|b| b == "true"),
            code: 0,
        })
    });
    let result = serve_resource(&shared, req, route, verb, q, manager, harness).await;
    if let Some(seq) = seq {
        let code = match &result {
            Ok(resp) => resp.status().as_u16(),
            Err(e) => e.code,
        };
        lock(&shared.accounting).set_code(seq, code);
    }
    result
}

async fn serve_resource(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    route: Route,
    verb: Verb,
    q: HashMap<String, String>,
    manager: String,
    harness: bool,
) -> Result<Response<Body>, ApiError> {
    let (faults, latency) = if harness {
        (None, Duration::ZERO)
    } else {
        let mut f = lock(&shared.faults);
        let error = f.error_for(verb);
        let conflict = verb == Verb::Apply && f.apply_conflict();
        let gone = verb == Verb::Watch
            && q.get("resourceVersion")
                .is_some_and(|rv| !rv.is_empty() && rv != "0")
            && f.watch_gone();
        let watch_cut = (f.config.watch_cut_after_events, f.config.watch_cut_after);
        (
            Some((
                error,
                conflict,
                gone,
                watch_cut,
                f.config.retry_after_seconds,
            )),
            f.config.latency,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some((Some(code), _, _, _, retry_after)) = faults {
        return Err(ApiError::injected(code, retry_after));
    }
    if let Some((_, true, _, _, _)) = faults {
        return Err(ApiError::injected(409, 0));
    }
    let metadata_only = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let now = now_rfc3339();
    let sel = || {
        Selector::parse(
            q.get("labelSelector").map(String::as_str),
            q.get("fieldSelector").map(String::as_str),
        )
    };

    let mut state = lock(&shared.state);
    // Set for every request that takes the lock, so an early return cannot leave it behind.
    // Deletes may carry `dryRun` in their DeleteOptions body instead (kube-rs sends it there).
    let body_dry_run = matches!(verb, Verb::Delete | Verb::DeleteCollection)
        && serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|o| o.get("dryRun").cloned())
            .and_then(|d| d.as_array().cloned())
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    state.set_dry_run(
        verb.is_write() && (body_dry_run || q.get("dryRun").is_some_and(|d| d == "All")),
    );
    let rt = resources::resolve(&state, &route.group, &route.version, &route.plural).ok_or_else(
        || {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .with_details(json!({"group": route.group, "kind": route.plural}))
        },
    )?;
    let status = match route.sub.as_deref() {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some(_) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ))
        }
    };
    // A namespaced resource addressed without a namespace is only listed or watched.
    if (rt.namespaced && route.ns.is_empty() && route.name.is_some())
        || (!rt.namespaced && !route.ns.is_empty())
    {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let t = Target {
        rt,
        version: route.version.clone(),
        ns: route.ns.clone(),
        name: route.name.clone(),
        status,
        metadata_only: metadata_only && !verb.is_write(),
    };
    let result = match verb {
        Verb::Get => reads::get(&state, &t).map(|o| (200, o)),
        Verb::List => {
            let limit = q.get("limit").and_then(|l| l.parse().ok());
            reads::list(
                &state,
                &t,
                &sel()?,
                limit,
                q.get("continue").map(String::as_str),
            )
            .map(|o| (200, o))
        }
        Verb::Watch => {
            let selector = sel()?;
            drop(state);
            let send_initial_events = q.get("sendInitialEvents").is_some_and(|b| b == "true");
            if send_initial_events {
                let refused = !harness && lock(&shared.faults).config.refuse_streaming_lists;
                validate_streaming_list(refused, &q)?;
            }
            let (cut_after_events, cut_after) = faults.map(|f| f.3).unwrap_or_default();
            let p = WatchParams {
                resource_version: q
                    .get("resourceVersion")
                    .and_then(|rv| rv.parse().ok())
                    .filter(|rv| *rv != 0),
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
                timeout: q
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs),
                send_initial_events,
                gone: faults.is_some_and(|f| f.2),
                cut_after_events,
                cut_after,
            };
            let body = watch::start(shared.clone(), t, selector, p);
            let mut resp = Response::new(body.boxed_unsync());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return Ok(resp);
        }
        Verb::Create => {
            writes::create(&mut state, &t, &parse_body(&body)?, &manager, &now).map(|o| (201, o))
        }
        Verb::Update => {
            writes::replace(&mut state, &t, &parse_body(&body)?, &manager, &now).map(|o| (200, o))
        }
        Verb::Apply | Verb::MergePatch | Verb::StrategicPatch | Verb::JsonPatch => {
            let kind = match verb {
                Verb::Apply => {
                    if !q.contains_key("fieldManager") {
                        return Err(ApiError::bad_request(
                            "PATCH /apply requires fieldManager to be set",
                        ));
                    }
                    PatchKind::Apply {
                        force: q.get("force").is_some_and(|f| f == "true"),
                    }
                }
                Verb::MergePatch => PatchKind::Merge,
                Verb::JsonPatch => PatchKind::Json,
                _ => PatchKind::Strategic,
            };
            writes::patch(&mut state, &t, kind, &parse_body(&body)?, &manager, &now)
        }
        Verb::Delete => {
            let opts = delete_opts(&q, &parse_body(&body)?)?;
            writes::delete(&mut state, &t, &opts, &now).map(|o| (200, o))
        }
        Verb::DeleteCollection => {
            let opts = delete_opts(&q, &parse_body(&body)?)?;
            let listed = reads::list(&state, &t, &sel()?, None, None)?;
            let mut deleted = Vec::new();
            for item in listed["items"].as_array().into_iter().flatten() {
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let one = Target {
                    name: Some(name.to_string()),
                    ns: ns.to_string(),
                    ..t.clone()
                };
                deleted.extend(writes::delete(&mut state, &one, &opts, &now).ok());
            }
            Ok((
                200,
                json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.api_version(),
                            "metadata": {"resourceVersion": state.rv().to_string()}, "items": deleted}),
            ))
        }
    };
    state.set_dry_run(false);
    let rv = state.rv();
    drop(state);
    shared.changes.send_if_modified(|seen| {
        let changed = *seen != rv;
        *seen = rv;
        changed
    });
    let (code, obj) = result?;
    // Reads and collection deletes are presented already; single written objects are not.
    let single_write = verb.is_write() && verb != Verb::DeleteCollection;
    let obj = if single_write {
        writes::present(obj, &t)
    } else {
        obj
    };
    Ok(json_response(code, &obj))
}

fn delete_opts(q: &HashMap<String, String>, body: &Value) -> Result<DeleteOpts, ApiError> {
    let policy = q
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
    let propagation = match policy {
        None => Propagation::default(),
        Some(p) => Propagation::parse(p)
            .ok_or_else(|| ApiError::bad_request(format!("unknown propagationPolicy {p}")))?,
    };
    let pre = |k: &str| {
        body.pointer(&format!("/preconditions/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeleteOpts {
        propagation,
        uid: pre("uid"),
        resource_version: pre("resourceVersion"),
    })
}

/// What kube-apiserver's validation of a streaming list answers: the WatchList gate must be
/// on (`refused`: it is off), and `resourceVersionMatch` must be NotOlderThan.
fn validate_streaming_list(refused: bool, q: &HashMap<String, String>) -> Result<(), ApiError> {
    let invalid = |field: &str, message: &str| {
        ApiError::invalid("meta.k8s.io", "ListOptions", "", field, message)
    };
    if refused {
        return Err(invalid("sendInitialEvents", WATCH_LIST_REFUSED));
    }
    if q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(invalid(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    Ok(())
}
