//! Client-side rate limit: every request of the operator waits for a token (QPS with a burst),
//! as client-go does, so a storm of events cannot flood the API server.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{Quota, RateLimiter};
use http::Request;
use kube::client::Body;
use kube::Client;

/// Wraps `client` so that each request first takes a token from a bucket refilled at `qps`
/// per second and holding at most `burst`.
pub fn rate_limited(client: Client, qps: u32, burst: u32) -> Client {
    let default_ns = client.default_namespace().to_string();
    let qps = NonZeroU32::new(qps).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(qps.get())).unwrap_or(qps);
    let limiter = Arc::new(RateLimiter::direct(
        Quota::per_second(qps).allow_burst(burst),
    ));
    let svc = tower::service_fn(move |req: Request<Body>| {
        let client = client.clone();
        let limiter = limiter.clone();
        async move {
            limiter.until_ready().await;
            client.send(req).await
        }
    });
    Client::new(svc, default_ns)
}
