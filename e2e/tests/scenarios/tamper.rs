//! Tampering: every generated kind, every write method a tenant has (server-side
//! apply as another manager with and without force, JSON merge patch, JSON patch, PUT),
//! additive and subtractive edits, and metadata edits. Each is repaired to exactly the
//! desired object within 1 s, and then left alone: no further write, counted by the
//! simulator's request accounting.

use std::time::{Duration, Instant};

use meshbaseline::object::Kind;
use meshbaseline_e2e::{Cluster, HarnessError};
use serde_json::{json, Value};

use crate::fixtures::*;

const REPAIR: Duration = Duration::from_secs(1);
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug)]
enum Method {
    SsaOtherManager,
    SsaForce,
    MergePatch,
    JsonPatch,
    Put,
}

/// One generated object and the fields a tenant switches it off with.
struct Target {
    kind: Kind,
    ns: String,
    name: &'static str,
    /// Added field: (path under spec, value).
    add: (&'static [&'static str], Value),
    /// A field we set, removed.
    remove: &'static str,
}

fn targets(ns: &str) -> Vec<Target> {
    let t = |kind, ns: &str, name, add, remove| Target {
        kind,
        ns: ns.to_string(),
        name,
        add,
        remove,
    };
    let none = json!({"matchLabels": {"nothing": "matches"}});
    vec![
        t(
            Kind::AuthorizationPolicy,
            ns,
            "meshbaseline-deny-plaintext",
            (&["selector"][..], none.clone()),
            "rules",
        ),
        t(
            Kind::DestinationRule,
            ns,
            "meshbaseline-mtls",
            (&["exportTo"][..], json!(["."])),
            "trafficPolicy",
        ),
        t(
            Kind::NetworkPolicy,
            ns,
            "meshbaseline-baseline",
            (&["podSelector", "matchLabels"][..], json!({"none": "x"})),
            "egress",
        ),
        t(
            Kind::PeerAuthentication,
            ROOT,
            "meshbaseline-mesh-mtls",
            (&["selector"][..], none.clone()),
            "mtls",
        ),
        t(
            Kind::AuthorizationPolicy,
            ROOT,
            "meshbaseline-deny-sandbox-admin",
            (&["selector"][..], none),
            "rules",
        ),
        t(
            Kind::NetworkPolicy,
            ROOT,
            "meshbaseline-istiod",
            (&["podSelector", "matchLabels", "tamper"][..], json!("x")),
            "ingress",
        ),
        t(
            Kind::Sidecar,
            ROOT,
            "meshbaseline-registry-only",
            (&["workloadSelector"][..], json!({"labels": {"none": "x"}})),
            "outboundTrafficPolicy",
        ),
    ]
}

fn nest(path: &[&str], value: Value) -> Value {
    path.iter().rev().fold(value, |acc, k| json!({ (*k): acc }))
}

/// A different value of the same shape: an empty list, or the first string inside changed.
fn changed(v: &Value) -> Value {
    match v {
        Value::Array(_) => json!([]),
        Value::Object(m) => {
            let mut m = m.clone();
            if let Some((k, inner)) = m.iter().next().map(|(k, v)| (k.clone(), changed(v))) {
                m.insert(k, inner);
            }
            Value::Object(m)
        }
        // Enum values stay valid (a real server's schemas refuse anything else), other strings
        // are changed.
        Value::String(s) => Value::String(match s.as_str() {
            "ISTIO_MUTUAL" => "DISABLE".into(),
            "STRICT" => "PERMISSIVE".into(),
            "DENY" => "ALLOW".into(),
            "TCP" => "UDP".into(),
            "REGISTRY_ONLY" => "ALLOW_ANY".into(),
            "Ingress" => "Egress".into(),
            "Egress" => "Ingress".into(),
            other => format!("{other}-TAMPERED"),
        }),
        other => other.clone(),
    }
}

/// The live object, read through the API (simulator or real server).
async fn live(c: &Cluster, t: &Target) -> Result<Option<Value>, HarnessError> {
    let obj = c
        .get(&t.kind.api_version(), t.kind.name(), Some(&t.ns), t.name)
        .await?;
    Ok(obj.map(serde_json::to_value).transpose()?)
}

/// What must be restored: the spec, the ownerReferences and our labels.
fn owned(obj: &Value) -> (Value, Value, Value, Value) {
    (
        obj["spec"].clone(),
        obj["metadata"]["ownerReferences"].clone(),
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"].clone(),
        obj["metadata"]["labels"]["meshbaseline.dev/baseline"].clone(),
    )
}

fn is_generated_write(r: &meshbaseline_e2e::sim::RequestRecord) -> bool {
    r.verb.is_write()
        && r.field_manager == "meshbaseline"
        && Kind::ALL.iter().any(|k| k.plural() == r.resource)
}

/// Runs `tamper`, checks that it changed what we own, waits for the repair (at most 1 s) and
/// then for quiet: no write to any generated object in the next `SETTLE`. Returns the time
/// the repair took.
async fn expect_repair<F, Fut>(
    env: &Env,
    t: &Target,
    what: &str,
    tamper: F,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    let c = &env.cluster;
    let sim = c.gate();
    let want = owned(&live(c, t).await?.ok_or("generated object missing")?);
    let mark = sim.mark();
    let started = Instant::now();
    tamper().await?;
    let tampered = live(c, t).await?.map(|o| owned(&o));
    // The test must be able to fail: the edit really changed the object (unless already
    // repaired, which only the operator can have done).
    let wrote = sim
        .requests_since(mark)
        .count(|r| is_generated_write(r) && r.name == t.name);
    assert!(
        tampered.as_ref() != Some(&want) || wrote > 0,
        "{what}: the edit changed nothing"
    );
    c.wait_for(what, REPAIR, || async {
        Ok(live(c, t).await?.filter(|o| owned(o) == want).map(|_| ()))
    })
    .await?;
    let took = started.elapsed();
    let quiet = sim.mark();
    tokio::time::sleep(SETTLE).await;
    let after = sim.requests_since(quiet).count(is_generated_write);
    assert_eq!(
        after,
        0,
        "{what}: writes after the repair: {:?}",
        sim.requests_since(quiet)
    );
    let repairs = sim
        .requests_since(mark)
        .count(|r| is_generated_write(r) && r.name == t.name && r.namespace == t.ns);
    assert!(
        (1..=2).contains(&repairs),
        "{what}: {repairs} writes to repair"
    );
    eprintln!("{what}: repaired in {took:?} with {repairs} write(s)");
    Ok(took)
}

async fn run_method(scenario: &str, method: Method) -> TestResult {
    let env = Env::start(scenario).await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline(scenario, scenario, json!({})))
        .await?;
    env.wait_converged(scenario).await?;
    let c = &env.cluster;
    for t in targets(&a) {
        let (api, kind) = (t.kind.api_version(), t.kind.name());
        let ns = Some(t.ns.as_str());
        let head = json!({"apiVersion": api, "kind": kind, "metadata": {"name": t.name, "namespace": t.ns}});
        let add_spec = nest(t.add.0, t.add.1.clone());
        // Additive: a field the operator never set.
        let what = format!(
            "{method:?} adds spec.{} to {kind} {}/{}",
            t.add.0.join("."),
            t.ns,
            t.name
        );
        expect_repair(&env, &t, &what, || async {
            match method {
                Method::SsaOtherManager | Method::SsaForce => {
                    let mut obj = head.clone();
                    obj["spec"] = add_spec.clone();
                    let force = matches!(method, Method::SsaForce);
                    match c.apply_as("tenant-tool", &obj, force).await {
                        // A real server refuses to hand over a field we own (an empty
                        // podSelector, say) without force; the tenant then forces it.
                        Err(meshbaseline_e2e::HarnessError::Kube(kube::Error::Api(e)))
                            if e.code == 409 && !force =>
                        {
                            c.apply_as("tenant-tool", &obj, true).await?;
                        }
                        other => {
                            other?;
                        }
                    }
                }
                Method::MergePatch => {
                    c.merge_patch(&api, kind, ns, t.name, &json!({"spec": add_spec}))
                        .await?;
                }
                Method::JsonPatch => {
                    let path = format!("/spec/{}", t.add.0[0]);
                    let value = add_spec[t.add.0[0]].clone();
                    let mut ops = vec![];
                    if t.add.0.len() > 1 {
                        // Merge into the existing sub-object, as a tenant would.
                        let mut current = live(&env.cluster, &t).await?.ok_or("missing")?["spec"]
                            [t.add.0[0]]
                            .clone();
                        merge(&mut current, &value);
                        ops.push(json!({"op": "add", "path": path, "value": current}));
                    } else {
                        ops.push(json!({"op": "add", "path": path, "value": value}));
                    }
                    c.json_patch(&api, kind, ns, t.name, &json!(ops)).await?;
                }
                Method::Put => {
                    c.replace_as_tenant(&api, kind, ns, t.name, |o| {
                        merge(&mut o["spec"], &add_spec)
                    })
                    .await?;
                }
            }
            Ok(())
        })
        .await?;
        // Subtractive: a field the operator set, removed.
        let what = format!(
            "{method:?} removes spec.{} from {kind} {}/{}",
            t.remove, t.ns, t.name
        );
        match method {
            Method::SsaOtherManager => {
                // Server-side apply cannot take a field from its owner without force: the
                // API server refuses with a conflict, and nothing changes.
                let current =
                    live(&env.cluster, &t).await?.ok_or("missing")?["spec"][t.remove].clone();
                let mut obj = head.clone();
                obj["spec"] = json!({ (t.remove): changed(&current) });
                let res = c.apply_as("tenant-tool", &obj, false).await;
                assert!(
                    matches!(&res, Err(meshbaseline_e2e::HarnessError::Kube(kube::Error::Api(s))) if s.code == 409),
                    "{what}: {res:?}"
                );
            }
            _ => {
                expect_repair(&env, &t, &what, || async {
                    match method {
                        Method::SsaForce => {
                            // Take the field over with force (a different value: an equal one
                            // would only be shared), then apply without it: the only owner
                            // dropping it removes it.
                            let current = live(&env.cluster, &t).await?.ok_or("missing")?["spec"]
                                [t.remove]
                                .clone();
                            let mut obj = head.clone();
                            obj["spec"] = json!({ (t.remove): changed(&current) });
                            c.apply_as("tenant-tool", &obj, true).await?;
                            let mut obj = head.clone();
                            obj["spec"] = json!({});
                            match c.apply_as("tenant-tool", &obj, true).await {
                                // A real server refuses to store a CRD object whose spec the
                                // removal left empty (`spec: null`); the changed value stays
                                // and is what must be repaired.
                                Err(meshbaseline_e2e::HarnessError::Kube(kube::Error::Api(e)))
                                    if e.code == 422 && !c.is_simulated() => {}
                                other => {
                                    other?;
                                }
                            }
                        }
                        Method::MergePatch => {
                            c.merge_patch(
                                &api,
                                kind,
                                ns,
                                t.name,
                                &json!({"spec": {(t.remove): null}}),
                            )
                            .await?;
                        }
                        Method::JsonPatch => {
                            let ops =
                                json!([{"op": "remove", "path": format!("/spec/{}", t.remove)}]);
                            c.json_patch(&api, kind, ns, t.name, &ops).await?;
                        }
                        Method::Put => {
                            c.replace_as_tenant(&api, kind, ns, t.name, |o| {
                                if let Some(s) = o["spec"].as_object_mut() {
                                    s.remove(t.remove);
                                }
                            })
                            .await?;
                        }
                        Method::SsaOtherManager => {}
                    }
                    Ok(())
                })
                .await?;
            }
        }
    }
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_by_server_side_apply_as_another_manager() -> TestResult {
    run_method("tamper-ssa", Method::SsaOtherManager).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_by_forced_server_side_apply() -> TestResult {
    run_method("tamper-force", Method::SsaForce).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_by_merge_patch() -> TestResult {
    run_method("tamper-merge", Method::MergePatch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_by_json_patch() -> TestResult {
    run_method("tamper-jsonpatch", Method::JsonPatch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_by_put() -> TestResult {
    run_method("tamper-put", Method::Put).await
}

/// Metadata: our labels changed or removed and the ownerReference removed are restored; a
/// label or annotation of the tenant's own is no difference and causes no write at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_with_metadata() -> TestResult {
    let scenario = "tamper-meta";
    let env = Env::start(scenario).await?;
    let sim = env.cluster.gate();
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline(scenario, scenario, json!({})))
        .await?;
    env.wait_converged(scenario).await?;
    let c = &env.cluster;
    for t in targets(&a) {
        let (api, kind) = (t.kind.api_version(), t.kind.name());
        let ns = Some(t.ns.as_str());
        let edits = [
            (
                "managed-by label removed",
                json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}}),
            ),
            (
                "baseline label changed",
                json!({"metadata": {"labels": {"meshbaseline.dev/baseline": "other"}}}),
            ),
            (
                "ownerReferences removed",
                json!({"metadata": {"ownerReferences": null}}),
            ),
        ];
        for (edit, patch) in edits {
            let what = format!("{edit} on {kind} {}/{}", t.ns, t.name);
            expect_repair(&env, &t, &what, || async {
                c.merge_patch(&api, kind, ns, t.name, &patch).await?;
                Ok(())
            })
            .await?;
        }
        // The tenant's own label and annotation: no difference, no write, and they stay.
        let mark = sim.mark();
        c.merge_patch(
            &api,
            kind,
            ns,
            t.name,
            &json!({"metadata": {"labels": {"team": "payments"}, "annotations": {"note": "ours"}}}),
        )
        .await?;
        tokio::time::sleep(SETTLE).await;
        assert_eq!(
            sim.requests_since(mark).count(is_generated_write),
            0,
            "{kind} {}/{}",
            t.ns,
            t.name
        );
        let o = live(c, &t).await?.ok_or("missing")?;
        assert_eq!(o["metadata"]["labels"]["team"], "payments");
        // ... and survive a later repair.
        expect_repair(
            &env,
            &t,
            &format!("after tenant labels: {kind} {}/{}", t.ns, t.name),
            || async {
                c.merge_patch(&api, kind, ns, t.name, &json!({"spec": {(t.remove): null}}))
                    .await?;
                Ok(())
            },
        )
        .await?;
        let o = live(c, &t).await?.ok_or("missing")?;
        assert_eq!(o["metadata"]["labels"]["team"], "payments", "{o}");
        assert_eq!(o["metadata"]["annotations"]["note"], "ours", "{o}");
    }
    env.finish().await
}

/// Exactness needs no memory: a new operator process finds every object as desired (written
/// by its predecessor, repaired or created) and writes none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_writes_nothing() -> TestResult {
    let scenario = "tamper-restart";
    let env = Env::start(scenario).await?;
    let a = env.add_namespace("a").await?;
    env.apply(&mk_baseline(scenario, scenario, json!({})))
        .await?;
    env.wait_converged(scenario).await?;
    // One object repaired by replace, so both write paths are covered.
    let t = &targets(&a)[2];
    expect_repair(&env, t, "before the restart", || async {
        env.cluster
            .merge_patch(
                &t.kind.api_version(),
                t.kind.name(),
                Some(&t.ns),
                t.name,
                &json!({"spec": {"egress": null}}),
            )
            .await?;
        Ok(())
    })
    .await?;
    // The predecessor finishes its work first: the audit after a repair follows it (spaced
    // by the cost of a pass), and its status is what the new process compares with.
    let mut reconciles = env.op.successful_reconciles();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = env.op.successful_reconciles();
        if now == reconciles {
            break;
        }
        reconciles = now;
    }
    let Env {
        cluster,
        op,
        scenario: s,
    } = env;
    op.stop().await?;
    let mark = cluster.gate().mark();
    let op = Operator::start(&cluster);
    let env = Env {
        cluster,
        op,
        scenario: s,
    };
    env.cluster
        .wait_for("the new operator reconciled", WAIT, || async {
            Ok((env.op.successful_reconciles() >= 1.0).then_some(()))
        })
        .await?;
    tokio::time::sleep(SETTLE).await;
    let log = env.cluster.gate().requests_since(mark);
    // Nothing at all: no generated object, no status (the findings its predecessor wrote
    // already counted the objects it created), no Event.
    assert_eq!(log.writes_by("meshbaseline"), 0, "{log:?}");
    env.finish().await
}
