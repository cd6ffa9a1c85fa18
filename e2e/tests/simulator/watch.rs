//! Watch semantics: resume from a resourceVersion, bookmarks, timeouts, 410 after compaction,
//! and `kube::runtime::watcher` recovering by relisting.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use meshbaseline_e2e::{FaultConfig, Verb};
use serde_json::json;

use super::{setup, TestResult};

fn service(name: &str) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}))
        .expect("service")
}

fn name_of(event: &WatchEvent<Service>) -> String {
    match event {
        WatchEvent::Added(s) | WatchEvent::Modified(s) | WatchEvent::Deleted(s) => {
            s.metadata.name.clone().unwrap_or_default()
        }
        WatchEvent::Bookmark(_) => "<bookmark>".into(),
        WatchEvent::Error(e) => format!("<error {}>", e.code),
    }
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() -> TestResult {
    let sim = setup().await;
    let svcs: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    svcs.create(&PostParams::default(), &service("a")).await?;
    let rv = svcs
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    svcs.create(&PostParams::default(), &service("b")).await?;
    svcs.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await?;
    svcs.delete("a", &Default::default()).await?;
    // Other namespaces' changes are not part of this watch.
    let other: Api<Service> = Api::namespaced(sim.client()?, "team-b");
    other.create(&PostParams::default(), &service("c")).await?;

    let events: Vec<WatchEvent<Service>> = svcs
        .watch(&WatchParams::default(), &rv)
        .await?
        .take(3)
        .try_collect()
        .await?;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let kind = match e {
                WatchEvent::Added(_) => "ADDED",
                WatchEvent::Modified(_) => "MODIFIED",
                WatchEvent::Deleted(_) => "DELETED",
                _ => "OTHER",
            };
            (kind.to_string(), name_of(e))
        })
        .collect();
    let expected = [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "a")];
    assert_eq!(seen, expected.map(|(k, n)| (k.to_string(), n.to_string())));
    Ok(())
}

#[tokio::test]
async fn bookmarks_and_timeouts() -> TestResult {
    let sim = setup().await;
    let svcs: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    let created = svcs.create(&PostParams::default(), &service("a")).await?;
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut stream = svcs
        .watch(&WatchParams::default().timeout(1), &rv)
        .await?
        .boxed();
    sim.bookmark_now();
    match stream.try_next().await? {
        Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    svcs.create(&PostParams::default(), &service("b")).await?;
    assert_eq!(
        stream.try_next().await?.as_ref().map(name_of),
        Some("b".to_string())
    );
    // At timeoutSeconds the server sends a last bookmark and ends the stream.
    let rest: Vec<WatchEvent<Service>> = stream.try_collect().await?;
    assert!(
        !rest.is_empty() && rest.iter().all(|e| matches!(e, WatchEvent::Bookmark(_))),
        "{rest:?}"
    );
    // Without allowWatchBookmarks, none.
    let params = WatchParams {
        bookmarks: false,
        ..WatchParams::default().timeout(1)
    };
    let mut quiet = svcs.watch(&params, &rv).await?.boxed();
    sim.bookmark_now();
    let events: Vec<String> = (&mut quiet).map_ok(|e| name_of(&e)).try_collect().await?;
    assert_eq!(events, ["b"]);
    Ok(())
}

#[tokio::test]
async fn compacted_versions_answer_410_gone() -> TestResult {
    let sim = setup().await;
    let svcs: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    let rv = svcs
        .create(&PostParams::default(), &service("a"))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    svcs.create(&PostParams::default(), &service("b")).await?;
    sim.compact();
    let events: Vec<WatchEvent<Service>> = svcs
        .watch(&WatchParams::default(), &rv)
        .await?
        .try_collect()
        .await?;
    match events.as_slice() {
        [WatchEvent::Error(e)] => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }
    // The current version still resumes.
    let now = sim.resource_version().to_string();
    let mut stream = svcs.watch(&WatchParams::default(), &now).await?.boxed();
    svcs.create(&PostParams::default(), &service("c")).await?;
    assert_eq!(
        stream.try_next().await?.as_ref().map(name_of),
        Some("c".to_string())
    );
    Ok(())
}

#[tokio::test]
async fn watcher_relists_after_410_and_recovers() -> TestResult {
    let sim = setup().await;
    let harness: Api<Service> = Api::namespaced(sim.harness_client()?, "team-a");
    harness
        .create(&PostParams::default(), &service("a"))
        .await?;
    let api: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    // The watcher is lazy: it only sends requests when polled, which makes the sequence exact.
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut first = Vec::new();
    loop {
        match stream.try_next().await? {
            Some(watcher::Event::InitDone) => break,
            Some(watcher::Event::InitApply(s)) => first.push(s.metadata.name.unwrap_or_default()),
            _ => {}
        }
    }
    assert_eq!(first, ["a"]);
    // A change the watcher has not seen, then compaction: resuming from the list's version is gone.
    harness
        .create(&PostParams::default(), &service("b"))
        .await?;
    sim.compact();
    match stream.next().await {
        Some(Err(watcher::Error::WatchError(status))) => assert_eq!(status.code, 410),
        other => panic!("expected the 410 watch error, got {other:?}"),
    }
    let mut relisted = Vec::new();
    loop {
        match stream.try_next().await? {
            Some(watcher::Event::InitDone) => break,
            Some(watcher::Event::InitApply(s)) => {
                relisted.push(s.metadata.name.unwrap_or_default())
            }
            _ => {}
        }
    }
    assert_eq!(relisted, ["a", "b"]);
    harness
        .create(&PostParams::default(), &service("c"))
        .await?;
    match stream.try_next().await? {
        Some(watcher::Event::Apply(s)) => assert_eq!(s.metadata.name.as_deref(), Some("c")),
        other => panic!("expected the live event, got {other:?}"),
    }
    let log = sim.requests();
    assert_eq!(
        log.count(|r| r.verb == Verb::List && r.resource == "services"),
        2
    );
    assert_eq!(
        log.count(|r| r.verb == Verb::Watch && r.resource == "services"),
        2
    );
    Ok(())
}

#[tokio::test]
async fn selector_changes_turn_into_added_and_deleted() -> TestResult {
    let sim = setup().await;
    let svcs: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    let rv = sim.resource_version().to_string();
    let params = WatchParams::default().labels("app=web");
    let mut stream = svcs.watch(&params, &rv).await?.boxed();
    svcs.create(&PostParams::default(), &service("a")).await?;
    let label = |v: Option<&str>| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    svcs.patch("a", &PatchParams::default(), &label(Some("web")))
        .await?;
    svcs.patch("a", &PatchParams::default(), &label(Some("db")))
        .await?;
    let events: Vec<WatchEvent<Service>> = (&mut stream).take(2).try_collect().await?;
    assert!(matches!(events[0], WatchEvent::Added(_)), "{events:?}");
    assert!(matches!(events[1], WatchEvent::Deleted(_)), "{events:?}");
    Ok(())
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark() -> TestResult {
    let sim = setup().await;
    let harness: Api<Service> = Api::namespaced(sim.harness_client()?, "team-a");
    harness
        .create(&PostParams::default(), &service("a"))
        .await?;
    let api: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    let mut stream = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match stream.try_next().await? {
            Some(watcher::Event::InitDone) => break,
            Some(watcher::Event::InitApply(s)) => initial.push(s.metadata.name.unwrap_or_default()),
            _ => {}
        }
    }
    assert_eq!(initial, ["a"]);
    let log = sim.requests();
    assert_eq!(log.count(|r| r.verb == Verb::List), 0);
    assert_eq!(log.lists_of("services"), 1, "{log:?}");
    Ok(())
}

#[tokio::test]
async fn streaming_lists_are_refused_as_kube_apiserver_refuses_them() -> TestResult {
    // The WatchList gate off: 422 Invalid before the watch starts.
    let sim = setup().await;
    sim.set_faults(FaultConfig {
        refuse_streaming_lists: true,
        ..FaultConfig::default()
    });
    let api: Api<Service> = Api::all(sim.client()?);
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    match stream.next().await {
        Some(Err(watcher::Error::WatchStartFailed(kube::Error::Api(s)))) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(
                s.message.contains("WatchList feature gate"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
    // Served: resourceVersionMatch must say NotOlderThan.
    sim.clear_faults();
    let req =
        http::Request::get("/api/v1/services?watch=true&sendInitialEvents=true").body(Vec::new())?;
    match sim.client()?.request_text(req).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("resourceVersionMatch"), "{}", s.message);
        }
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn metadata_requests_get_partial_object_metadata() -> TestResult {
    let sim = setup().await;
    let harness: Api<Service> = Api::namespaced(sim.harness_client()?, "team-a");
    harness
        .create(&PostParams::default(), &service("a"))
        .await?;
    let api: Api<Service> = Api::namespaced(sim.client()?, "team-a");
    let meta = api.get_metadata("a").await?;
    assert_eq!(
        meta.types.map(|t| t.kind).as_deref(),
        Some("PartialObjectMetadata")
    );
    let metadata: Api<kube::core::PartialObjectMeta<Service>> =
        Api::namespaced(sim.client()?, "team-a");
    let mut stream = watcher(metadata, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    loop {
        match stream.try_next().await? {
            Some(watcher::Event::InitDone) => break,
            Some(watcher::Event::InitApply(m)) => names.push(m.metadata.name.unwrap_or_default()),
            _ => {}
        }
    }
    assert_eq!(names, ["a"]);
    harness
        .create(&PostParams::default(), &service("b"))
        .await?;
    match stream.try_next().await? {
        Some(watcher::Event::Apply(m)) => {
            assert_eq!(m.metadata.name.as_deref(), Some("b"));
            assert_eq!(
                m.types.map(|t| t.kind).as_deref(),
                Some("PartialObjectMetadata")
            );
        }
        other => panic!("expected the live event, got {other:?}"),
    }
    Ok(())
}
