//! The MeshBaseline CRD as a real API server enforces it: each invalid baseline is refused
//! with a message naming the field; defaults and pruning reach the operator's model.

use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::discovery::ApiResource;
use meshbaseline::api::{Baseline, MeshBaseline};
use serde_json::{json, Value};

use crate::{real_cluster, TestResult};

fn api(cluster: &meshbaseline_e2e::Cluster) -> Api<DynamicObject> {
    Api::all_with(
        cluster.harness_client(),
        &ApiResource::erase::<MeshBaseline>(&()),
    )
}

/// A create (POST) as `kubectl create` or a client-side `kubectl apply` sends it, with the
/// field validation given (kube's `PostParams` has no field for it).
async fn create(
    client: &kube::Client,
    obj: &Value,
    dry_run: bool,
    validation: &str,
) -> Result<Value, kube::Error> {
    let mut uri =
        format!("/apis/meshbaseline.dev/v1alpha1/meshbaselines?fieldValidation={validation}");
    if dry_run {
        uri.push_str("&dryRun=All");
    }
    let request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(request).await
}

fn baseline(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
           "metadata": {"name": name}, "spec": spec})
}

fn exemption(ns: &str) -> Value {
    json!({"namespace": ns, "controls": ["mtls"], "reason": "ticket OPS-1", "expires": "2030-01-01T00:00:00Z"})
}

/// (what is wrong, spec, the field the server's message must name, a word of the message)
fn invalid() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let mut expired = exemption("a");
    expired["expires"] = json!("next tuesday");
    let mut reason = exemption("a");
    reason["reason"] = json!("x");
    let mut no_controls = exemption("a");
    no_controls["controls"] = json!([]);
    let mut bad_control = exemption("a");
    bad_control["controls"] = json!(["everything"]);
    let rule = |name: &str| json!({"name": name, "from": [{"namespaces": ["sandbox"]}]});
    vec![
        (
            "unknown mode",
            json!({"mode": "Enforced"}),
            "spec.mode",
            "Unsupported value",
        ),
        (
            "root namespace not a DNS label",
            json!({"rootNamespace": "Istio_System"}),
            "spec.rootNamespace",
            "should match",
        ),
        (
            "duplicate exemption",
            json!({"exemptions": [exemption("a"), exemption("a")]}),
            "spec.exemptions[1]",
            "Duplicate value",
        ),
        (
            "expiry not a time",
            json!({"exemptions": [expired]}),
            "spec.exemptions[0].expires",
            "date-time",
        ),
        (
            "reason too short",
            json!({"exemptions": [reason]}),
            "spec.exemptions[0].reason",
            "at least 3",
        ),
        (
            "no controls",
            json!({"exemptions": [no_controls]}),
            "spec.exemptions[0].controls",
            "at least 1",
        ),
        (
            "unknown control",
            json!({"exemptions": [bad_control]}),
            "spec.exemptions[0].controls[0]",
            "Unsupported value",
        ),
        (
            "mTLS DISABLE",
            json!({"mtls": {"mode": "DISABLE"}}),
            "spec.mtls.mode",
            "Unsupported value",
        ),
        (
            "duplicate deny rule",
            json!({"authorization": {"denyRules": [rule("x"), rule("x")]}}),
            "spec.authorization.denyRules[1]",
            "Duplicate value",
        ),
        (
            "empty deny rule",
            json!({"authorization": {"denyRules": [{"name": "all"}]}}),
            "spec.authorization.denyRules[0]",
            "at least one of from, to or when",
        ),
        (
            "deny rule name too long",
            json!({"authorization": {"denyRules": [rule(&"x".repeat(41))]}}),
            "spec.authorization.denyRules[0].name",
            "more than 40",
        ),
        (
            "deny rule with paths but no ports",
            json!({"authorization": {"denyRules": [
                {"name": "admin", "from": [{"namespaces": ["sandbox"]}], "to": [{"paths": ["/admin/*"]}]}
            ]}}),
            "spec.authorization.denyRules[0].to",
            "must name ports in every to entry",
        ),
        (
            "deny rule with a request header condition and no to",
            json!({"authorization": {"denyRules": [
                {"name": "debug", "when": [{"key": "request.headers[x-debug]", "values": ["1"]}]}
            ]}}),
            "spec.authorization.denyRules[0].to",
            "must name ports in every to entry",
        ),
        (
            "trust domain with a path",
            json!({"authorization": {"trustDomain": "cluster.local/ns"}}),
            "spec.authorization.trustDomain",
            "should match",
        ),
        (
            "DNS port out of range",
            json!({"network": {"dns": {"port": 70000}}}),
            "spec.network.dns.port",
            "less than or equal to 65535",
        ),
        (
            "unknown egress mode",
            json!({"network": {"egress": {"mode": "Open"}}}),
            "spec.network.egress.mode",
            "Unsupported value",
        ),
        (
            "unknown tenantOverrides",
            json!({"tenantOverrides": "Ignore"}),
            "spec.tenantOverrides",
            "Unsupported value",
        ),
    ]
}

#[tokio::test]
async fn the_server_refuses_invalid_baselines_naming_the_field() -> TestResult {
    let cluster = real_cluster().await?;
    let client = cluster.harness_client();
    let mut wrong = Vec::new();
    for (what, spec, field, word) in invalid() {
        let obj = baseline("invalid", spec);
        match create(&client, &obj, true, "Strict").await {
            Ok(_) => wrong.push(format!("{what}: accepted")),
            Err(kube::Error::Api(e)) if e.code == 422 => {
                eprintln!("{what}: {}", e.message);
                if !(e.message.contains(field) && e.message.contains(word)) {
                    wrong.push(format!(
                        "{what}: message does not name {field} / {word:?}: {}",
                        e.message
                    ));
                }
            }
            Err(e) => wrong.push(format!("{what}: {e}")),
        }
    }
    // Server-side apply refuses duplicate list-map keys before validation, with a 500 that
    // still names the list and the key (`kubectl apply --server-side` shows it).
    let params = PatchParams {
        dry_run: true,
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::apply("meshbaseline-e2e").force()
    };
    let duplicate = baseline(
        "invalid",
        json!({"exemptions": [exemption("a"), exemption("a")]}),
    );
    match api(&cluster)
        .patch("invalid", &params, &Patch::Apply(&duplicate))
        .await
    {
        Err(kube::Error::Api(e))
            if e.message
                .contains(".spec.exemptions: duplicate entries for key [namespace=\"a\"]") => {}
        other => wrong.push(format!(
            "duplicate exemption through server-side apply: {other:?}"
        )),
    }
    // The valid one next to them is admitted: the refusals are about the fields. HTTP fields
    // with ports in every `to` entry are fine.
    let good = baseline(
        "invalid",
        json!({"exemptions": [exemption("a"), exemption("b")],
               "authorization": {"trustDomain": "td.example", "denyRules": [
                   {"name": "admin", "to": [{"paths": ["/admin/*"], "ports": ["8080"]}],
                    "when": [{"key": "request.headers[x-debug]", "values": ["1"]}]}]}}),
    );
    create(&client, &good, true, "Strict").await?;
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}

#[tokio::test]
async fn defaults_and_pruning_reach_the_model() -> TestResult {
    let cluster = real_cluster().await?;
    let client = cluster.harness_client();
    let minimal = baseline("defaulted", json!({"mtls": {}, "bogus": 1}));
    // Strict field validation refuses the unknown field, naming it.
    match create(&client, &minimal, true, "Strict").await {
        Err(kube::Error::Api(e)) => assert!(e.message.contains("spec.bogus"), "{}", e.message),
        other => panic!("unknown field accepted under Strict: {other:?}"),
    }
    // Without it the server prunes the field and applies the schema's defaults.
    create(&client, &minimal, false, "Ignore").await?;
    let api = api(&cluster);
    let live = api.get("defaulted").await?;
    let result = (|| -> TestResult {
        let spec = &live.data["spec"];
        assert!(spec.get("bogus").is_none(), "not pruned: {spec}");
        assert_eq!(spec["mode"], "Enforce");
        assert_eq!(spec["rootNamespace"], "istio-system");
        assert_eq!(spec["mtls"]["mode"], "STRICT");
        let typed: MeshBaseline = serde_json::from_value(serde_json::to_value(&live)?)?;
        let model = Baseline::try_from(&typed).map_err(|e| format!("{e:?}"))?;
        assert_eq!(model.name, "defaulted");
        Ok(())
    })();
    api.delete("defaulted", &Default::default()).await?;
    result
}
