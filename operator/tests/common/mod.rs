//! Shared test helpers: baselines from YAML, inventories, and Istio's CRD schemas.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use meshbaseline::api::istio::{DestinationRule, DestinationRuleSpec};
use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::compile::{compile, Compiled, Scope};
use meshbaseline::inventory::{ContainerInfo, Inventory, NamespaceInfo, PodInfo, PodShape};
use meshbaseline::object::{DesiredObject, Kind};
use serde_json::{json, Value};

pub const NOW: &str = "2026-06-01T00:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// A `MeshBaseline` named `default` with `spec` (YAML).
pub fn mesh_baseline(spec: &str) -> MeshBaseline {
    let text = format!(
        "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {{name: default}}\nspec:\n{}",
        spec.lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub fn baseline(spec: &str) -> Baseline {
    Baseline::try_from(&mesh_baseline(spec)).unwrap()
}

/// Namespaces `names`, each labelled `protected: "true"` plus its name label.
pub fn inventory(names: &[&str]) -> Inventory {
    let mut inv = Inventory::default();
    for name in names {
        let labels = BTreeMap::from([
            ("protected".to_string(), "true".to_string()),
            ("kubernetes.io/metadata.name".to_string(), name.to_string()),
        ]);
        inv.namespaces.insert(
            name.to_string(),
            NamespaceInfo {
                terminating: false,
                name: name.to_string(),
                labels: labels.into(),
            },
        );
    }
    inv
}

/// Adds a running pod of waypoint `gateway` in `namespace` with ServiceAccount `sa`, labelled
/// as Istio's `waypoint.yaml` labels it.
pub fn add_waypoint_pod(inv: &mut Inventory, namespace: &str, gateway: &str, sa: &str) {
    let labels = [
        ("gateway.networking.k8s.io/gateway-name", gateway),
        (
            "gateway.networking.k8s.io/gateway-class-name",
            "istio-waypoint",
        ),
        ("gateway.istio.io/managed", "istio.io-mesh-controller"),
        ("istio.io/dataplane-mode", "none"),
    ];
    let shape = PodShape {
        kind: "Pod".into(),
        phase: Some("Running".into()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        containers: vec![ContainerInfo {
            name: "istio-proxy".into(),
            ..ContainerInfo::default()
        }],
        service_account: Some(sa.into()),
        ..PodShape::default()
    };
    let name = format!("{gateway}-{sa}-{}", inv.pods.len());
    inv.pods
        .push(std::sync::Arc::new(PodInfo::new(namespace, name, shape)));
}

pub fn tenant_dr(namespace: &str, name: &str, host: &str) -> DestinationRule {
    let mut dr = DestinationRule::new(
        name,
        DestinationRuleSpec {
            host: host.into(),
            ..Default::default()
        },
    );
    dr.metadata.namespace = Some(namespace.into());
    dr
}

pub fn run(b: &Baseline, inv: &Inventory) -> Compiled {
    compile(b, inv, &Scope::default(), now())
}

pub fn find(c: &Compiled, kind: Kind, ns: &str, name: &str) -> Option<Value> {
    c.objects
        .iter()
        .find(|o| o.key.kind == kind && o.key.namespace == ns && o.key.name == name)
        .map(|o| o.manifest())
}

pub fn get(c: &Compiled, kind: Kind, ns: &str, name: &str) -> Value {
    find(c, kind, ns, name).unwrap_or_else(|| panic!("no {kind} {ns}/{name} in {:#?}", keys(c)))
}

pub fn keys(c: &Compiled) -> Vec<String> {
    c.objects.iter().map(|o| o.key.to_string()).collect()
}

/// `shared/istio/crds.yaml`: `MESHBASELINE_ISTIO_CRDS`, else found beside an ancestor of the
/// crate (the repository is checked out next to `shared/`). Missing = failure, never a skip.
pub fn istio_crds_path() -> PathBuf {
    if let Ok(p) = std::env::var("MESHBASELINE_ISTIO_CRDS") {
        return PathBuf::from(p);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for ancestor in here.ancestors() {
        for candidate in [
            ancestor.join("shared/istio/crds.yaml"),
            ancestor.join("../shared/istio/crds.yaml"),
        ] {
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Istio CRDs not found: looked for shared/istio/crds.yaml beside every ancestor of {}; \
         set MESHBASELINE_ISTIO_CRDS to its path",
        here.display()
    )
}

/// Validators for the Istio kinds, one per apiVersion the compiler emits.
pub struct IstioSchemas {
    validators: BTreeMap<String, jsonschema::Validator>,
}

impl IstioSchemas {
    pub fn load() -> IstioSchemas {
        let path = istio_crds_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut validators = BTreeMap::new();
        for de in serde_norway::Deserializer::from_str(&text) {
            let crd: Value = serde::Deserialize::deserialize(de).unwrap();
            if crd.is_null() {
                continue;
            }
            let group = crd["spec"]["group"].as_str().unwrap().to_string();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
            for v in crd["spec"]["versions"].as_array().unwrap() {
                let version = v["name"].as_str().unwrap();
                let api_version = format!("{group}/{version}");
                let mut schema = v["schema"]["openAPIV3Schema"].clone();
                close_objects(&mut schema);
                // The CRD schema leaves out what every object has.
                let props = schema["properties"].as_object_mut().unwrap();
                props.insert("apiVersion".into(), json!({"enum": [api_version]}));
                props.insert("kind".into(), json!({"enum": [kind]}));
                props.insert("metadata".into(), json!({"type": "object"}));
                schema["required"] = json!(["apiVersion", "kind", "metadata", "spec"]);
                let validator = jsonschema::draft4::new(&schema).unwrap();
                validators.insert(format!("{api_version} {kind}"), validator);
            }
        }
        assert!(
            validators.len() >= 4,
            "{} has too few Istio CRDs",
            path.display()
        );
        IstioSchemas { validators }
    }

    /// Every schema violation of `manifest`, or `Err` naming a kind we have no schema for.
    pub fn errors(&self, manifest: &Value) -> Vec<String> {
        let key = format!(
            "{} {}",
            manifest["apiVersion"].as_str().unwrap_or(""),
            manifest["kind"].as_str().unwrap_or("")
        );
        let validator = self
            .validators
            .get(&key)
            .unwrap_or_else(|| panic!("no schema for {key}"));
        validator
            .iter_errors(manifest)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    pub fn assert_valid(&self, object: &DesiredObject) {
        let manifest = object.manifest();
        let errors = self.errors(&manifest);
        assert!(
            errors.is_empty(),
            "{} does not validate against Istio's schema: {errors:#?}\n{:#}",
            object.key,
            manifest
        );
    }
}

/// The API server rejects (strict field validation) or drops (pruning) unknown fields; plain
/// JSON Schema allows them. Closing every object that lists its properties, unless it keeps
/// unknown fields on purpose, makes a misspelt field fail the test.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserves = map
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for v in map.values_mut() {
                close_objects(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Checks Kubernetes objects: they must deserialize into their k8s-openapi type and serialize
/// back unchanged (a field k8s-openapi does not know would be lost on the way).
pub fn assert_k8s_round_trip(object: &DesiredObject) {
    use k8s_openapi::api::admissionregistration::v1 as adm;
    fn back<T: serde::de::DeserializeOwned + serde::Serialize>(object: &DesiredObject) -> Value {
        let typed: T = serde_json::from_value(object.manifest())
            .unwrap_or_else(|e| panic!("{}: {e}", object.key));
        serde_json::to_value(&typed).unwrap()
    }
    let back = match object.key.kind {
        Kind::NetworkPolicy => back::<k8s_openapi::api::networking::v1::NetworkPolicy>(object),
        Kind::ValidatingAdmissionPolicy => back::<adm::ValidatingAdmissionPolicy>(object),
        Kind::ValidatingAdmissionPolicyBinding => {
            back::<adm::ValidatingAdmissionPolicyBinding>(object)
        }
        other => panic!("{other} is not a Kubernetes kind k8s-openapi knows"),
    };
    assert_eq!(
        back,
        object.manifest(),
        "{} does not round-trip",
        object.key
    );
}

/// Validates every object of `compiled` by its kind.
pub fn assert_all_valid(schemas: &IstioSchemas, compiled: &Compiled) {
    for o in &compiled.objects {
        if o.key.kind.is_istio() {
            schemas.assert_valid(o);
        } else if o.key.kind == Kind::ClusterNetworkPolicy {
            // Its CRD comes from a Go module: the real-server tests create every generated
            // ClusterNetworkPolicy with fieldValidation=Strict against it.
            assert_eq!(o.manifest()["spec"]["tier"], "Admin", "{}", o.key);
        } else {
            assert_k8s_round_trip(o);
        }
    }
}
