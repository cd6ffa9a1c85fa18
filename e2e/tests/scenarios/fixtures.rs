//! Shared fixtures of the scenario suite: object builders (`mk_*`), the running operator
//! (`Operator`), and checks on the generated objects against the compiler's output.
//!
//! Every scenario uses its own names: namespaces are prefixed with the scenario and the
//! baseline selects them by the label `e2e.meshbaseline.dev/scenario=<scenario>`, so scenarios
//! neither see each other's objects on a real cluster nor in parallel simulators.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::DynamicObject;
use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::compile::{compile, Compiled, Scope};
use meshbaseline::manifests::Loaded;
use meshbaseline::object::Kind;
use meshbaseline_e2e::{Cluster, FaultConfig, HarnessError};
use serde_json::{json, Value};

pub use crate::operator::{test_config, Operator};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub const SCENARIO_LABEL: &str = "e2e.meshbaseline.dev/scenario";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=meshbaseline";
pub const ROOT: &str = "istio-system";
pub const MB_API: &str = "meshbaseline.dev/v1alpha1";

/// How long a scenario waits for one expected state.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn mk_namespace(name: &str, scenario: Option<&str>) -> Value {
    let labels = match scenario {
        Some(s) => json!({ SCENARIO_LABEL: s }),
        None => json!({}),
    };
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// A baseline selecting the namespaces labelled for `scenario`, every control on, Enforce,
/// Report; `overrides` is merged into the spec (JSON merge patch semantics).
pub fn mk_baseline(name: &str, scenario: &str, overrides: Value) -> Value {
    let mut spec = json!({
        "mode": "Enforce",
        "rootNamespace": ROOT,
        "clusterDomain": "cluster.local",
        "namespaceSelector": {"matchLabels": { SCENARIO_LABEL: scenario }},
        "mtls": {"mode": "STRICT", "denyPlaintext": true, "destinationRules": true},
        "authorization": {"denyRules": [
            {"name": "sandbox-admin", "from": [{"namespaces": ["sandbox"]}], "to": [{"paths": ["/admin/*"], "ports": ["8080"]}]}
        ]},
        "network": {
            "tcpOnly": true,
            "dns": {"namespace": "kube-system", "podSelector": {"k8s-app": "kube-dns"}, "port": 53},
            "egress": {"mode": "ClusterOnly", "allowCidrs": ["203.0.113.0/24", "2001:db8::/48"], "registryOnly": true},
            "controlPlane": {"enabled": true, "istiodSelector": {"app": "istiod"}, "monitoringNamespaces": ["monitoring"]}
        },
        "workloads": {"audit": true},
        "tenantOverrides": "Report",
        // The scenarios test what the operator does after a change; the admission guards
        // refuse such changes before they happen and have their own tests (`real/admission`).
        "admission": {"guard": false, "tenantObjects": "Disabled"}
    });
    merge(&mut spec, &overrides);
    json!({"apiVersion": MB_API, "kind": "MeshBaseline", "metadata": {"name": name}, "spec": spec})
}

pub fn mk_peer_authentication(ns: &str, name: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"mtls": {"mode": mode}}
    })
}

/// A tenant DestinationRule with load-balancer settings and the given TLS mode.
pub fn mk_destination_rule(ns: &str, name: &str, host: &str, tls: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "host": host,
            "trafficPolicy": {
                "loadBalancer": {"simple": "LEAST_REQUEST"},
                "connectionPool": {"tcp": {"maxConnections": 100}},
                "tls": {"mode": tls}
            }
        }
    })
}

/// JSON merge patch (RFC 7386) of `patch` into `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A scenario's cluster and operator.
pub struct Env {
    pub cluster: Cluster,
    pub op: Operator,
    pub scenario: String,
}

impl Env {
    /// A cluster seeded with `istio-system` (and on a real cluster the scenario's objects
    /// are deleted again by `finish`), then the operator.
    pub async fn start(scenario: &str) -> Result<Env, HarnessError> {
        Env::start_with_faults(scenario, FaultConfig::default()).await
    }

    /// `start`, with `faults` in the operator's way from its first request on.
    pub async fn start_with_faults(
        scenario: &str,
        faults: FaultConfig,
    ) -> Result<Env, HarnessError> {
        let cluster = Cluster::start().await?;
        Env::seed_root(&cluster).await?;
        cluster.gate().set_faults(faults);
        let op = Operator::start(&cluster);
        Ok(Env {
            cluster,
            op,
            scenario: scenario.into(),
        })
    }

    pub async fn seed_root(cluster: &Cluster) -> Result<(), HarnessError> {
        if cluster.get("v1", "Namespace", None, ROOT).await?.is_none() {
            cluster
                .apply_yaml(&mk_namespace(ROOT, None).to_string())
                .await?;
        }
        Ok(())
    }

    /// A namespace of this scenario (`<scenario>-<suffix>`), selected by its baselines.
    pub fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.scenario)
    }

    pub async fn apply(&self, obj: &Value) -> Result<DynamicObject, HarnessError> {
        self.cluster
            .apply_as(meshbaseline_e2e::TENANT_MANAGER, obj, true)
            .await
    }

    pub async fn add_namespace(&self, suffix: &str) -> Result<String, HarnessError> {
        let name = self.ns(suffix);
        self.apply(&mk_namespace(&name, Some(&self.scenario)))
            .await?;
        Ok(name)
    }

    pub async fn baseline(&self, name: &str) -> Result<Option<MeshBaseline>, HarnessError> {
        let Some(obj) = self.cluster.get(MB_API, "MeshBaseline", None, name).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_value(serde_json::to_value(obj)?)?))
    }

    /// Waits until baseline `name` has a condition `type_` with `status`, and `pred` holds on
    /// it (reason, message); returns the baseline.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        pred: impl Fn(&str, &str) -> bool,
    ) -> Result<MeshBaseline, HarnessError> {
        let what = format!("baseline {name}: condition {type_}={status}");
        self.cluster
            .wait_for(&what, WAIT, || async {
                let Some(mb) = self.baseline(name).await? else {
                    return Ok(None);
                };
                let ok = mb.status.as_ref().is_some_and(|s| {
                    s.observed_generation == mb.metadata.generation
                        && s.conditions.iter().any(|c| {
                            c.type_ == type_ && c.status == status && pred(&c.reason, &c.message)
                        })
                });
                Ok(ok.then_some(mb))
            })
            .await
    }

    /// Every object generated by baseline `name`, by (kind, namespace, name): labelled as its
    /// and owned by it (a tenant's object carrying only our labels is not).
    pub async fn generated(&self, name: &str) -> Result<Objects, HarnessError> {
        let selector = format!("{MANAGED_BY},meshbaseline.dev/baseline={name}");
        let uid = self.baseline(name).await?.and_then(|b| b.metadata.uid);
        let mut out = BTreeMap::new();
        for kind in Kind::ALL {
            let listed = match self
                .cluster
                .list(&kind.api_version(), kind.name(), None, Some(&selector))
                .await
            {
                Ok(l) => l,
                // Istio CRDs not installed.
                Err(HarnessError::Kube(kube::Error::Api(e))) if e.code == 404 => continue,
                Err(HarnessError::Kube(kube::Error::Discovery(_))) => continue,
                Err(e) => return Err(e),
            };
            for o in listed {
                let owned = o
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| Some(&r.uid) == uid.as_ref());
                if uid.is_some() && !owned {
                    continue;
                }
                let v = serde_json::to_value(&o)?;
                let key = (
                    kind.name().to_string(),
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                out.insert(key, v);
            }
        }
        Ok(out)
    }

    /// What the compiler produces for baseline `name` and the cluster's current namespaces and
    /// tenant objects (single-baseline scope).
    pub async fn expected(&self, name: &str) -> Result<Compiled, HarnessError> {
        let mb = self
            .baseline(name)
            .await?
            .ok_or_else(|| HarnessError::Invalid(format!("baseline {name} not found")))?;
        let baseline = Baseline::try_from(&mb)
            .map_err(|e| HarnessError::Invalid(format!("baseline {name}: {e}")))?;
        let (inventory, unserved) = self.inventory().await?;
        let mut compiled = compile(
            &baseline,
            &inventory,
            &Scope::default(),
            jiff::Timestamp::now(),
        );
        // The operator writes only the kinds the cluster serves (the simulator has no
        // ClusterNetworkPolicy CRD).
        compiled.objects.retain(|o| !unserved.contains(&o.key.kind));
        Ok(compiled)
    }

    /// The cluster's namespaces and tenant objects as the compiler's input, read the way
    /// `check` reads manifests, and the generated kinds the cluster does not serve.
    async fn inventory(
        &self,
    ) -> Result<(meshbaseline::inventory::Inventory, BTreeSet<Kind>), HarnessError> {
        let mut docs = Vec::new();
        let mut unserved = BTreeSet::new();
        let mut kinds: Vec<(String, &str, Option<Kind>)> = vec![
            ("v1".into(), "Namespace", None),
            ("v1".into(), "Service", None),
            ("v1".into(), "Pod", None),
        ];
        kinds.extend(
            Kind::ALL
                .iter()
                .map(|k| (k.api_version(), k.name(), Some(*k))),
        );
        for (api_version, kind, generated) in kinds {
            let listed = match self.cluster.list(&api_version, kind, None, None).await {
                Ok(l) => l,
                Err(HarnessError::Kube(kube::Error::Api(e))) if e.code == 404 => {
                    unserved.extend(generated);
                    continue;
                }
                Err(HarnessError::Kube(kube::Error::Discovery(_))) => {
                    unserved.extend(generated);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Only the operator writes the cluster-scoped kinds: nothing to audit.
            if generated.is_some_and(|k| !k.is_tenant_kind()) {
                continue;
            }
            for o in listed {
                let managed = o
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                    .is_some_and(|v| v == "meshbaseline");
                if managed {
                    continue;
                }
                let mut v = serde_json::to_value(&o)?;
                v["apiVersion"] = json!(api_version);
                v["kind"] = json!(kind);
                docs.push(serde_json::to_string(&v)?);
            }
        }
        let mut loaded = Loaded::default();
        loaded.add_text(std::path::Path::new("cluster.yaml"), &docs.join("\n---\n"));
        if let Some(e) = loaded.errors.first() {
            return Err(HarnessError::Invalid(e.to_string()));
        }
        Ok((loaded.inventory, unserved))
    }

    /// Waits until the objects generated by `name` are exactly the compiler's output (the
    /// owned fields: labels, ownerReferences and spec) and returns them.
    pub async fn wait_converged(&self, name: &str) -> Result<Objects, HarnessError> {
        self.wait_converged_within(name, WAIT).await
    }

    pub async fn wait_converged_within(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Objects, HarnessError> {
        let what = format!("baseline {name}: generated objects equal the compiler's output");
        let last = std::sync::Mutex::new(String::new());
        let out = self
            .cluster
            .wait_for(&what, timeout, || async {
                let expected = self.expected(name).await?;
                let actual = self.generated(name).await?;
                match diff(&expected, &actual) {
                    None => Ok(Some(actual)),
                    Some(d) => {
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = d;
                        Ok(None)
                    }
                }
            })
            .await;
        let last = last.into_inner().unwrap_or_else(|e| e.into_inner());
        out.map_err(|e| HarnessError::Invalid(format!("{e}; last difference: {last}")))
    }

    /// Shuts the operator down (failing on a panic or error) and removes what the scenario
    /// created on a real cluster.
    pub async fn finish(self) -> TestResult {
        self.op.stop().await?;
        self.cluster.cleanup().await?;
        Ok(())
    }
}

pub type Objects = BTreeMap<(String, String, String), Value>;

/// The first difference between the compiler's output and the live objects, if any.
pub fn diff(expected: &Compiled, actual: &Objects) -> Option<String> {
    let mut wanted = BTreeMap::new();
    for d in &expected.objects {
        let key = (
            d.key.kind.name().to_string(),
            d.key.namespace.to_string(),
            d.key.name.to_string(),
        );
        wanted.insert(key, d.manifest());
    }
    for key in actual.keys() {
        if !wanted.contains_key(key) {
            return Some(format!("unexpected {key:?}"));
        }
    }
    for (key, manifest) in wanted {
        let Some(live) = actual.get(&key) else {
            return Some(format!("missing {key:?}"));
        };
        // The spec as the operator compares it: the API server's defaults (admission
        // policies' matchPolicy and rule scopes, say) are no difference.
        let kind = Kind::from_name(&key.0);
        let spec = |v: &Value| {
            v.pointer("/spec")
                .zip(kind)
                .map(|(s, k)| meshbaseline::plan::normalise(k, s))
        };
        if spec(&manifest) != spec(live) {
            return Some(format!(
                "{key:?} /spec: want {:?}, have {:?}",
                manifest.pointer("/spec"),
                live.pointer("/spec")
            ));
        }
        for field in ["/metadata/ownerReferences"] {
            if manifest.pointer(field) != live.pointer(field) {
                return Some(format!(
                    "{key:?} {field}: want {:?}, have {:?}",
                    manifest.pointer(field),
                    live.pointer(field)
                ));
            }
        }
        if let Some(labels) = manifest
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
        {
            for (k, v) in labels {
                if live.pointer("/metadata/labels").and_then(|l| l.get(k)) != Some(v) {
                    return Some(format!("{key:?} label {k}: want {v}"));
                }
            }
        }
    }
    None
}

/// The events recorded about a baseline with `reason` (all namespaces).
pub async fn events(cluster: &Cluster, reason: &str) -> Result<Vec<Value>, HarnessError> {
    let listed = cluster
        .list("events.k8s.io/v1", "Event", None, None)
        .await?;
    let mut out = Vec::new();
    for e in listed {
        let v = serde_json::to_value(&e)?;
        if v["reason"] == reason {
            out.push(v);
        }
    }
    Ok(out)
}

/// The field managers of an object's `managedFields` whose fieldsV1 mention `field` (e.g.
/// `f:loadBalancer`).
pub fn managers_of(obj: &Value, field: &str) -> Vec<String> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e["fieldsV1"].to_string().contains(field))
        .filter_map(|e| e["manager"].as_str().map(String::from))
        .collect()
}

/// Whether the baseline's status lists a finding of `rule` on `ns/name`.
pub fn has_finding(mb: &meshbaseline::api::MeshBaseline, rule: &str, ns: &str, name: &str) -> bool {
    mb.status.as_ref().is_some_and(|s| {
        s.findings
            .iter()
            .any(|f| f.rule == rule && f.namespace.as_deref() == Some(ns) && f.name == name)
    })
}
