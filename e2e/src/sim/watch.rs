//! Watch streams: replay of the change history from a resourceVersion, then live changes,
//! bookmarks, timeouts, 410 Gone for compacted versions, and injected cuts.
//!
//! Simplification: bookmarks are sent every `SimConfig::bookmark_interval`, when a test calls
//! `SimHandle::bookmark_now`, and before a stream closes at its `timeoutSeconds` (the real
//! server sends them about once a minute). A request for a resourceVersion newer than the
//! server's simply waits for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::errors::ApiError;
use super::reads::in_scope;
use super::resources;
use super::selectors::Selector;
use super::store::{Change, State};
use super::writes::{present, Target};
use super::{lock, Shared};

/// A response body fed by a channel; ends when the sending task finishes.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Parameters of one watch request.
#[derive(Clone, Debug)]
pub struct WatchParams {
    /// `None` for an unset or `"0"` resourceVersion: start with the current objects.
    pub resource_version: Option<u64>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub send_initial_events: bool,
    /// Injected fault: answer 410 Gone right away.
    pub gone: bool,
    pub cut_after_events: Option<u32>,
    pub cut_after: Option<Duration>,
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut text = json!({"type": event_type, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn gone_event(rv: u64, compacted: u64) -> Bytes {
    let err = ApiError::gone(format!("too old resource version: {rv} ({compacted})"));
    line("ERROR", err.to_status())
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": t.rt.kind, "apiVersion": t.api_version(), "metadata": metadata}),
    )
}

/// The event a change means for this watch, if any: objects moving out of the selector are
/// DELETED, moving in are ADDED, as the real server reports them.
fn event_for(change: &Change, t: &Target, sel: &Selector) -> Option<Bytes> {
    if !in_scope(t, &change.key) {
        return None;
    }
    let old = change.old.as_ref().filter(|o| sel.matches(o));
    let new = change.new.as_ref().filter(|o| sel.matches(o));
    match (old, new) {
        (None, Some(n)) => Some(line("ADDED", present(Value::clone(n), t))),
        (Some(_), Some(n)) => Some(line("MODIFIED", present(Value::clone(n), t))),
        (Some(o), None) => {
            let last = change.new.as_ref().unwrap_or(o);
            Some(line("DELETED", present(Value::clone(last), t)))
        }
        (None, None) => None,
    }
}

enum Drained {
    Events(Vec<Bytes>),
    Gone(u64),
}

fn drain(state: &State, cursor: &mut u64, t: &Target, sel: &Selector) -> Drained {
    let Some(changes) = state.changes_after(*cursor) else {
        return Drained::Gone(state.compacted_rv());
    };
    let events = changes.filter_map(|c| event_for(c, t, sel)).collect();
    *cursor = (*cursor).max(state.rv());
    Drained::Events(events)
}

/// Starts the stream task and returns the body it feeds.
pub fn start(shared: Arc<Shared>, t: Target, sel: Selector, p: WatchParams) -> ChannelBody {
    let (tx, rx) = mpsc::channel(256);
    // Subscribed before the response goes out, so no signal sent after it is missed.
    let signals = Signals {
        changes: shared.changes.subscribe(),
        bookmark_now: shared.bookmarks.subscribe(),
        cuts: shared.cuts.subscribe(),
    };
    tokio::spawn(run(shared, t, sel, p, signals, tx));
    ChannelBody(rx)
}

struct Signals {
    changes: tokio::sync::watch::Receiver<u64>,
    bookmark_now: tokio::sync::watch::Receiver<u64>,
    cuts: tokio::sync::watch::Receiver<u64>,
}

async fn run(
    shared: Arc<Shared>,
    t: Target,
    sel: Selector,
    p: WatchParams,
    signals: Signals,
    tx: mpsc::Sender<Bytes>,
) {
    let Signals {
        mut changes,
        mut bookmark_now,
        mut cuts,
    } = signals;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let deadline = p.timeout.map_or(far, |d| Instant::now() + d);
    let cut_deadline = p.cut_after.map_or(far, |d| Instant::now() + d);
    let every = shared.config.bookmark_interval;
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);

    let start = {
        let state = lock(&shared.state);
        changes.borrow_and_update();
        match p.resource_version {
            _ if p.gone => Err(gone_event(p.resource_version.unwrap_or(0), state.rv())),
            Some(rv) if rv < state.compacted_rv() => Err(gone_event(rv, state.compacted_rv())),
            Some(rv) if !p.send_initial_events => Ok((rv, Vec::new())),
            _ => {
                let res = t.rt.key();
                let current: Vec<Bytes> = state
                    .list_res(&res)
                    .filter(|(k, o)| in_scope(&t, k) && sel.matches(o))
                    .map(|(_, o)| line("ADDED", present(o.clone(), &t)))
                    .collect();
                Ok((state.rv(), current))
            }
        }
    };
    let (mut cursor, initial) = match start {
        Ok(start) => start,
        Err(gone) => {
            let _ = tx.send(gone).await;
            return;
        }
    };
    let mut sent: u32 = 0;
    let cut_after = p.cut_after_events.unwrap_or(u32::MAX);
    for event in initial {
        if tx.send(event).await.is_err() {
            return;
        }
        sent += 1;
        if sent >= cut_after {
            return;
        }
    }
    if p.send_initial_events && tx.send(bookmark(&t, cursor, true)).await.is_err() {
        return;
    }
    loop {
        let (drained, served) = {
            let state = lock(&shared.state);
            changes.borrow_and_update();
            (
                drain(&state, &mut cursor, &t, &sel),
                resources::by_key(&state, &t.rt.key()).is_some(),
            )
        };
        match drained {
            Drained::Gone(compacted) => {
                let _ = tx.send(gone_event(cursor, compacted)).await;
                return;
            }
            Drained::Events(events) => {
                for event in events {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    sent += 1;
                    if sent >= cut_after {
                        return;
                    }
                }
            }
        }
        // A resource whose CRD was deleted ends its watches.
        if !served {
            return;
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = bookmark_now.changed(), if p.bookmarks => {
                if tx.send(bookmark(&t, cursor, false)).await.is_err() { return; }
            }
            _ = ticks.tick(), if p.bookmarks => {
                if tx.send(bookmark(&t, cursor, false)).await.is_err() { return; }
            }
            _ = cuts.changed() => return,
            _ = tokio::time::sleep_until(deadline) => {
                if p.bookmarks {
                    let _ = tx.send(bookmark(&t, cursor, false)).await;
                }
                return;
            }
            _ = tokio::time::sleep_until(cut_deadline) => return,
            _ = tx.closed() => return,
        }
    }
}
