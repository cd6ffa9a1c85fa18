//! `meshbaseline posture` offline: the sample mesh (with the default baseline, and labelled for
//! examples/baseline.yaml as the demo labels it), examples/cluster, `--explain`, the JSON
//! schema, narrowing and exit codes.

use std::path::PathBuf;

use jiff::Timestamp;
use meshbaseline::api::model::Baseline;
use meshbaseline::audit::Severity;
use meshbaseline::cli::posture::{self, run, Args, Format, PostureError, Report};
use meshbaseline::manifests::{load_paths, read_baseline};
use meshbaseline::posture::{Detail, Objects, Plaintext, Port};

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn args(format: Format, paths: &[&str]) -> Args {
    Args {
        baseline: None,
        format,
        fail_on: Severity::High,
        skip_unreadable: false,
        namespaces: Vec::new(),
        workload: Vec::new(),
        explain: None,
        kubeconfig: None,
        context: None,
        paths: paths.iter().map(PathBuf::from).collect(),
    }
}

fn run_to_string(a: &Args) -> (Result<u8, PostureError>, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(a, now(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn baseline_yaml() -> Baseline {
    read_baseline(&PathBuf::from("../examples/baseline.yaml"))
        .unwrap()
        .0
}

#[test]
fn sample_mesh_table_and_summary() {
    let (code, table, _) = run_to_string(&args(Format::Table, &["../examples/mesh"]));
    assert_eq!(
        code.unwrap(),
        1,
        "the sample mesh has findings at high and above"
    );
    insta::assert_snapshot!("mesh_table", table);
    let (_, summary, _) = run_to_string(&args(Format::Summary, &["../examples/mesh"]));
    insta::assert_snapshot!("mesh_summary", summary);
}

/// The demo state: examples/mesh with its tenant namespaces labelled
/// mesh.example.com/protected=true (e2e/demo-state.sh), under examples/baseline.yaml.
#[test]
fn sample_mesh_under_the_example_baseline_as_the_demo_labels_it() {
    let mut loaded = load_paths(&[PathBuf::from("../examples/mesh")]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let names: Vec<String> = loaded.inventory.namespaces.keys().cloned().collect();
    for ns in names
        .iter()
        .filter(|n| !["istio-system", "kube-system"].contains(&n.as_str()))
    {
        assert!(loaded.inventory.namespaces.update(ns, |n| {
            n.labels
                .insert("mesh.example.com/protected".into(), "true".into());
        }));
    }
    let b = baseline_yaml();
    let workloads = posture::evaluate(
        std::slice::from_ref(&b),
        &loaded.inventory,
        |_| Objects::Desired,
        now(),
        Detail::Report,
    );
    let report = Report {
        baselines: vec![b.name.clone()],
        objects: Objects::Desired,
        workloads,
        loaded: None,
        skip_unreadable: false,
        notes: Vec::new(),
        unusable: None,
        fail_on: Severity::High,
        explain: None,
    };
    insta::assert_snapshot!("demo_summary", posture::render_summary(&report));
    // legacy-billing is exempt from mtls until 2030: its workloads say so.
    let legacy = report
        .workloads
        .iter()
        .find(|w| w.namespace == "legacy-billing")
        .unwrap();
    assert_eq!(legacy.exemptions[0].controls, ["mtls"]);
    // The waypoint-only policy refuses plaintext to shop's captured pods too.
    let storefront = report
        .workloads
        .iter()
        .find(|w| w.name == "storefront-5c7d9-abcde")
        .unwrap();
    let other = storefront
        .ports
        .iter()
        .find(|p| p.port == Port::Other)
        .unwrap();
    let names: Vec<&str> = other
        .refused_by
        .iter()
        .map(|m| m.policy.name.as_str())
        .collect();
    assert!(
        names.contains(&"meshbaseline-deny-plaintext")
            && names.contains(&"meshbaseline-waypoint-only"),
        "{names:?}"
    );
}

#[test]
fn examples_cluster_under_the_example_baseline() {
    let mut a = args(Format::Table, &["../examples/cluster"]);
    a.baseline = Some("../examples/baseline.yaml".into());
    let (code, out, err) = run_to_string(&a);
    assert_eq!(code.unwrap(), 0, "{err}");
    insta::assert_snapshot!("cluster_table", out);
}

#[test]
fn explain_gives_the_reasoning_step_by_step() {
    let mut a = args(Format::Table, &["../examples/mesh"]);
    a.explain = Some("payments/Deployment/checkout-api:8443".into());
    let (code, out, _) = run_to_string(&a);
    assert_eq!(code.unwrap(), 1);
    insta::assert_snapshot!("explain_checkout_api", out);
    a.explain = Some("metrics-gateway:9999".into());
    let (_, out, _) = run_to_string(&a);
    assert!(out.contains("judged as every other port (*)"), "{out}");
    assert!(out.contains("ACCEPTED"), "{out}");
}

#[test]
fn json_validates_against_the_documented_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("../docs/posture.schema.json").unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for paths in [&["../examples/mesh"][..], &["../examples/cluster"][..]] {
        let mut a = args(Format::Json, paths);
        a.baseline =
            (paths[0] == "../examples/cluster").then(|| "../examples/baseline.yaml".into());
        let (_, out, _) = run_to_string(&a);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // The schema is not vacuous.
    let (_, out, _) = run_to_string(&args(Format::Json, &["../examples/mesh"]));
    let mut doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["workloads"][0]["ports"][0]["plaintext"] = "maybe".into();
    assert!(!validator.is_valid(&doc));
    let (_, out, _) = run_to_string(&args(Format::Json, &["../examples/mesh"]));
    insta::assert_snapshot!(
        "mesh_json_totals",
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["totals"].to_string()
    );
}

#[test]
fn narrowing_and_exit_codes() {
    let mut a = args(Format::Json, &["../examples/mesh"]);
    a.namespaces = vec!["checkout".into()];
    a.workload = vec!["checkout-web".into()];
    let (code, out, _) = run_to_string(&a);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["workloads"].as_array().unwrap().len(), 1);
    assert_eq!(code.unwrap(), 1);
    a.fail_on = Severity::Critical;
    assert_eq!(
        run_to_string(&a).0.unwrap(),
        0,
        "no critical finding concerns checkout-web"
    );
    // A workload that does not exist: exit 2, and the report says why.
    a.workload = vec!["checkout/Deployment/nope".into()];
    let (code, out, err) = run_to_string(&a);
    assert_eq!(code.unwrap(), 2);
    assert!(
        err.contains("no workload matches checkout/Deployment/nope"),
        "{err}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["complete"],
        false
    );
    // Ambiguous --explain: the same name in two namespaces.
    let twins = tempfile::tempdir().unwrap();
    let deployment = |ns: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec: {{template: {{spec: {{containers: [{{name: web, image: web}}]}}}}}}\n")
    };
    std::fs::write(
        twins.path().join("a.yaml"),
        deployment("a") + "---\n" + &deployment("b"),
    )
    .unwrap();
    let p = twins.path().to_str().unwrap().to_string();
    let mut a = args(Format::Table, &[&p]);
    a.explain = Some("web:80".into());
    let (code, _, err) = run_to_string(&a);
    assert_eq!(code.unwrap(), 2);
    assert!(err.contains("matches 2 workloads"), "{err}");
    a.explain = Some("b/web:80".into());
    let (code, out, _) = run_to_string(&a);
    assert_eq!(code.unwrap(), 0, "{out}");
    assert!(out.contains("namespace b is not in the input"), "{out}");
    // Bad flags.
    for bad in ["x:notaport", "x", "a/b/c/d:80"] {
        let mut a = args(Format::Table, &["../examples/mesh"]);
        a.explain = Some(bad.into());
        assert!(
            matches!(run_to_string(&a).0, Err(PostureError::Usage(_))),
            "{bad}"
        );
    }
    // Unreadable input: exit 2; with --skip-unreadable listed and evaluated.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n: [\n",
    )
    .unwrap();
    let p = dir.path().to_str().unwrap().to_string();
    let (code, _, _) = run_to_string(&args(Format::Summary, &[&p]));
    assert_eq!(code.unwrap(), 2);
    let mut a = args(Format::Summary, &[&p]);
    a.skip_unreadable = true;
    assert_eq!(run_to_string(&a).0.unwrap(), 0);
    // Live flags with paths: refused.
    let mut a = args(Format::Table, &["../examples/mesh"]);
    a.kubeconfig = Some("/nonexistent".into());
    assert!(matches!(run_to_string(&a).0, Err(PostureError::Usage(_))));
}

/// Every port row of every sample workload says refused or accepted, and every accepted one
/// says why.
#[test]
fn every_accepted_port_says_why() {
    let (_, out, _) = run_to_string(&args(Format::Json, &["../examples/mesh"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    for w in doc["workloads"].as_array().unwrap() {
        for p in w["ports"].as_array().unwrap() {
            match p["plaintext"].as_str().unwrap() {
                "accepted" => assert!(!p["acceptedBecause"].as_array().unwrap().is_empty(), "{w}"),
                "refused" => assert!(!p["refusedBy"].as_array().unwrap().is_empty(), "{w}"),
                other => panic!("{other}: {w}"),
            }
        }
    }
    let _ = Plaintext::Refused;
}
