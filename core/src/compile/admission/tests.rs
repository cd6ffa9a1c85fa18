//! The policies' shape; what they refuse is tested on the real API server
//! (`e2e/tests/real/admission.rs`), which evaluates the CEL.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{guard_policy, tenant_policy};
use crate::api::{Baseline, MeshBaseline};

fn baseline(spec: Value) -> Baseline {
    let mb: MeshBaseline = serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "b"}, "spec": spec,
    }))
    .unwrap();
    Baseline::try_from(&mb).unwrap()
}

const OPERATOR: &str = "system:serviceaccount:ops:mb";

#[test]
fn the_operator_and_the_controllers_are_never_refused() {
    for policy in [
        guard_policy(&baseline(json!({})), OPERATOR),
        tenant_policy(&baseline(json!({})), OPERATOR, Timestamp::UNIX_EPOCH),
    ] {
        let first = &policy["matchConditions"][0]["expression"];
        let text = first.as_str().unwrap();
        assert!(text.starts_with("!("), "{text}");
        for who in [
            "'system:serviceaccount:ops:mb'",
            "'system:kube-controller-manager'",
            "startsWith('system:serviceaccount:kube-system:')",
        ] {
            assert!(text.contains(who), "{who} missing from {text}");
        }
        assert_eq!(policy["failurePolicy"], "Fail");
    }
}

#[test]
fn exemptions_are_literal_lists_that_expire() {
    let b = baseline(
        json!({"exemptions": [{"namespace": "legacy", "controls": ["mtls"],
        "reason": "ticket 7", "expires": "2026-12-01T00:00:00Z"}]}),
    );
    let before: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
    let after: Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
    let during = tenant_policy(&b, OPERATOR, before).to_string();
    assert!(
        during.contains("request.namespace in ['legacy']"),
        "{during}"
    );
    assert!(!tenant_policy(&b, OPERATOR, after)
        .to_string()
        .contains("legacy"));
}

#[test]
fn every_tenant_rule_is_there_with_its_id_and_mb201_only_under_strict() {
    let strict = tenant_policy(&baseline(json!({})), OPERATOR, Timestamp::UNIX_EPOCH);
    let ids = |p: &Value| -> Vec<String> {
        p["validations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["messageExpression"].as_str().unwrap()[1..6].to_string())
            .collect()
    };
    assert_eq!(
        ids(&strict),
        ["MB101", "MB102", "MB201", "MB301", "MB501", "MB502", "MB506"]
    );
    let permissive = tenant_policy(
        &baseline(json!({"mtls": {"mode": "PERMISSIVE"}})),
        OPERATOR,
        Timestamp::UNIX_EPOCH,
    );
    assert!(!ids(&permissive).contains(&"MB201".to_string()));
    assert!(permissive["validations"][0]["expression"]
        .as_str()
        .unwrap()
        .contains("in ['DISABLE']"));
    // MB403 only where the baseline makes REGISTRY_ONLY the mesh default.
    let registry_only = tenant_policy(
        &baseline(json!({"network": {"egress": {"registryOnly": true}}})),
        OPERATOR,
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(
        ids(&registry_only),
        ["MB101", "MB102", "MB201", "MB301", "MB403", "MB501", "MB502", "MB506"]
    );
    let resources = registry_only["matchConstraints"]["resourceRules"].to_string();
    assert!(resources.contains("\"sidecars\""), "{resources}");
}
