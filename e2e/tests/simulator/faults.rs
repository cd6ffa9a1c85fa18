//! Fault injection: error rates with a deterministic seed, watch cuts, 410s, apply conflicts.

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use meshbaseline_e2e::{FaultConfig, Verb};
use serde_json::json;

use super::{api_error, dynamic, peer_auth, setup, TestResult};

/// Which of `n` sequential GETs fail.
async fn outcomes(api: &Api<Namespace>, n: usize) -> Vec<Option<u16>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match api.get("team-a").await {
            Ok(_) => None,
            Err(kube::Error::Api(s)) => Some(s.code),
            Err(e) => panic!("unexpected error {e}"),
        });
    }
    out
}

#[tokio::test]
async fn error_rate_is_roughly_kept_and_deterministic() -> TestResult {
    let sim = setup().await;
    let api: Api<Namespace> = Api::all(sim.client()?);
    // 500s are not retried by kube-client, so every injected fault reaches the caller.
    let config = FaultConfig {
        seed: 7,
        error_rate: 0.25,
        error_codes: vec![500],
        ..FaultConfig::default()
    };
    sim.set_faults(config.clone());
    let first = outcomes(&api, 400).await;
    let failed = first.iter().flatten().count();
    assert!(
        (60..=140).contains(&failed),
        "{failed} of 400 failed at rate 0.25"
    );
    assert!(first.iter().flatten().all(|c| *c == 500));
    sim.set_faults(config);
    assert_eq!(outcomes(&api, 400).await, first, "same seed, same faults");
    sim.clear_faults();
    assert!(outcomes(&api, 50).await.iter().all(Option::is_none));
    Ok(())
}

#[tokio::test]
async fn retryable_faults_are_retried_by_the_client() -> TestResult {
    let sim = setup().await;
    let api: Api<Namespace> = Api::all(sim.client()?);
    sim.set_faults(FaultConfig {
        error_rate: 0.3,
        error_codes: vec![503, 429],
        ..FaultConfig::default()
    });
    let mark = sim.mark();
    assert!(
        outcomes(&api, 40).await.iter().all(Option::is_none),
        "kube-client retries 503 and 429"
    );
    let log = sim.requests_since(mark);
    let injected = log.count(|r| r.code == 503 || r.code == 429);
    assert!(injected > 0 && log.count(|r| r.verb == Verb::Get) == 40 + injected);
    Ok(())
}

#[tokio::test]
async fn faults_restricted_to_verbs_and_harness_exempt() -> TestResult {
    let sim = setup().await;
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        error_codes: vec![500],
        error_verbs: vec![Verb::Apply],
        ..FaultConfig::default()
    });
    let api: Api<Namespace> = Api::all(sim.client()?);
    assert!(outcomes(&api, 10).await.iter().all(Option::is_none));
    let pas = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let body = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}});
    assert_eq!(
        api_error(
            pas.patch("p", &PatchParams::apply("m"), &Patch::Apply(&body))
                .await
        )
        .code,
        500
    );
    let harness = dynamic(&sim.harness_client()?, &peer_auth(), Some("team-a"));
    harness
        .patch("p", &PatchParams::apply("m"), &Patch::Apply(&body))
        .await?;
    Ok(())
}

#[tokio::test]
async fn apply_conflicts_on_demand() -> TestResult {
    let sim = setup().await;
    sim.set_faults(FaultConfig {
        apply_conflict_rate: 1.0,
        ..FaultConfig::default()
    });
    let pas = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let body = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}});
    let status = api_error(
        pas.patch("p", &PatchParams::apply("m").force(), &Patch::Apply(&body))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    Ok(())
}

#[tokio::test]
async fn watch_cuts_and_gone() -> TestResult {
    let sim = setup().await;
    let api: Api<Namespace> = Api::all(sim.client()?);
    // Six namespaces exist; from "0" a watch starts with them all, and is cut after two.
    sim.set_faults(FaultConfig {
        watch_cut_after_events: Some(2),
        ..FaultConfig::default()
    });
    let events: Vec<WatchEvent<Namespace>> = api
        .watch(&WatchParams::default(), "0")
        .await?
        .try_collect()
        .await?;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| matches!(e, WatchEvent::Added(_))));

    sim.set_faults(FaultConfig {
        watch_cut_after: Some(std::time::Duration::from_millis(50)),
        ..FaultConfig::default()
    });
    let rv = sim.resource_version().to_string();
    let events: Vec<WatchEvent<Namespace>> = api
        .watch(&WatchParams::default(), &rv)
        .await?
        .try_collect()
        .await?;
    assert!(
        events.iter().all(|e| matches!(e, WatchEvent::Bookmark(_))),
        "the stream just ends: {events:?}"
    );

    sim.set_faults(FaultConfig {
        watch_gone_rate: 1.0,
        ..FaultConfig::default()
    });
    let events: Vec<WatchEvent<Namespace>> = api
        .watch(&WatchParams::default(), &rv)
        .await?
        .try_collect()
        .await?;
    assert!(
        matches!(events.as_slice(), [WatchEvent::Error(e)] if e.code == 410),
        "{events:?}"
    );
    // A watch from "0" is not a resume: no 410.
    sim.set_faults(FaultConfig {
        watch_gone_rate: 1.0,
        watch_cut_after_events: Some(1),
        ..FaultConfig::default()
    });
    let events: Vec<WatchEvent<Namespace>> = api
        .watch(&WatchParams::default(), "0")
        .await?
        .try_collect()
        .await?;
    assert!(
        matches!(events.as_slice(), [WatchEvent::Added(_)]),
        "{events:?}"
    );
    Ok(())
}
