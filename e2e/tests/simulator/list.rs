//! Lists: label and field selectors, limit/continue, and error bodies.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{api_error, setup, TestResult};

fn pod(name: &str, env: &str, tier: Option<&str>) -> Pod {
    let mut labels = json!({"env": env});
    if let Some(tier) = tier {
        labels["tier"] = json!(tier);
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "app:1"}]}}))
    .expect("pod")
}

async fn names(api: &Api<Pod>, params: &ListParams) -> kube::Result<Vec<String>> {
    Ok(api
        .list(params)
        .await?
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap_or_default())
        .collect())
}

#[tokio::test]
async fn label_and_field_selectors() -> TestResult {
    let sim = setup().await;
    let client = sim.client()?;
    let a: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    let b: Api<Pod> = Api::namespaced(client.clone(), "team-b");
    a.create(&PostParams::default(), &pod("web", "prod", Some("web")))
        .await?;
    a.create(&PostParams::default(), &pod("db", "prod", Some("db")))
        .await?;
    a.create(&PostParams::default(), &pod("dev", "dev", None))
        .await?;
    b.create(&PostParams::default(), &pod("web", "prod", Some("web")))
        .await?;
    let all: Api<Pod> = Api::all(client);
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(&a, &sel("env=prod")).await?, ["db", "web"]);
    assert_eq!(names(&a, &sel("env!=prod")).await?, ["dev"]);
    assert_eq!(
        names(&a, &sel("env in (prod,dev),tier notin (db)")).await?,
        ["dev", "web"]
    );
    assert_eq!(names(&a, &sel("tier")).await?, ["db", "web"]);
    assert_eq!(names(&a, &sel("!tier")).await?, ["dev"]);
    assert_eq!(names(&all, &sel("tier=web")).await?, ["web", "web"]);
    let fields = |s: &str| ListParams::default().fields(s);
    assert_eq!(
        names(&all, &fields("metadata.name=web,metadata.namespace=team-b")).await?,
        ["web"]
    );
    assert_eq!(
        names(&all, &fields("metadata.namespace!=team-a")).await?,
        ["web"]
    );
    assert_eq!(
        api_error(all.list(&fields("spec.nodeName=x")).await).code,
        400
    );
    Ok(())
}

#[tokio::test]
async fn limit_and_continue_page_through_a_list() -> TestResult {
    let sim = setup().await;
    let a: Api<Pod> = Api::namespaced(sim.client()?, "team-a");
    for i in 0..7 {
        a.create(&PostParams::default(), &pod(&format!("p{i}"), "prod", None))
            .await?;
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = Vec::new();
    loop {
        let page = a.list(&params).await?;
        pages.push(page.items.len());
        seen.extend(
            page.items
                .into_iter()
                .map(|p| p.metadata.name.unwrap_or_default()),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());

    // A continue token older than the compacted history is expired.
    let first = a.list(&ListParams::default().limit(2)).await?;
    sim.create(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late", "namespace": "team-a"}}))?;
    sim.compact();
    let token = first.metadata.continue_.unwrap_or_default();
    let status = api_error(
        a.list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!(status.code, 410);
    Ok(())
}

#[tokio::test]
async fn errors_are_kubernetes_statuses() -> TestResult {
    let sim = setup().await;
    let a: Api<Pod> = Api::namespaced(sim.client()?, "team-a");
    let missing = api_error(a.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, r#"pods "nope" not found"#);
    let details = missing.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("nope", "pods")
    );
    let invalid = api_error(
        a.create(&PostParams::default(), &pod("Bad_Name", "x", None))
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    let nowhere: Api<Pod> = Api::namespaced(sim.client()?, "no-such-namespace");
    let status = api_error(
        nowhere
            .create(&PostParams::default(), &pod("x", "x", None))
            .await,
    );
    assert_eq!(
        status.message,
        r#"namespaces "no-such-namespace" not found"#
    );
    Ok(())
}
