//! The sample mesh of `examples/mesh` as network namespaces: its namespaces (labelled as
//! `examples/cluster` labels them for `examples/baseline.yaml`), a pod per role with servers on
//! the ports a row talks to, hosts outside the cluster, the baseline and the operator.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use meshbaseline_e2e::cluster::parse_documents;
use meshbaseline_e2e::dataplane::{
    dns::Records, Node, NodeConfig, Pod, PodSpec, Protocol, ServicePort, ServiceSpec,
};
use meshbaseline_e2e::process::OperatorProcess;
use meshbaseline_e2e::Cluster;
use serde_json::{json, Value};

use crate::{kubeconfig, AnyError};

pub const PROTECTED: (&str, &str) = ("mesh.example.com/protected", "true");
/// The name every resolver answers, with the resolver's own address (so a probe knows which
/// resolver answered).
pub const DNS_NAME: &str = "probe.dataplane.test";
pub const NODE_LOCAL_DNS: &str = "169.254.20.10";

/// Namespaces: name, labels.
const NAMESPACES: &[(&str, &[(&str, &str)])] = &[
    ("payments", &[("istio-injection", "enabled"), PROTECTED]),
    ("checkout", &[("istio.io/rev", "stable"), PROTECTED]),
    (
        "shop",
        &[
            ("istio.io/dataplane-mode", "ambient"),
            ("istio.io/use-waypoint", "waypoint"),
            PROTECTED,
        ],
    ),
    (
        "catalog",
        &[
            ("istio.io/dataplane-mode", "ambient"),
            ("istio.io/use-waypoint", "waypoint"),
            PROTECTED,
        ],
    ),
    ("sandbox", &[("istio-injection", "enabled")]),
    ("monitoring", &[]),
];

/// Pods: key (`namespace/name`), labels, TCP ports, UDP ports, serves DNS.
type PodRole = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [u16],
    &'static [u16],
    bool,
);
const PODS: &[PodRole] = &[
    (
        "istio-system/istiod",
        &[("app", "istiod"), ("istio", "pilot")],
        &[15010, 15012, 15014, 15017, 8080, 9876],
        &[],
        false,
    ),
    (
        "istio-system/egressgateway",
        &[("istio", "egressgateway")],
        &[443],
        &[443],
        false,
    ),
    (
        "kube-system/coredns",
        &[("k8s-app", "kube-dns")],
        &[],
        &[],
        true,
    ),
    (
        "payments/web",
        &[("app", "web")],
        &[8080, 15020, 15090],
        &[9000],
        false,
    ),
    (
        "payments/ledger",
        &[("app", "ledger")],
        &[8080, 15020, 15090],
        &[9000],
        false,
    ),
    ("checkout/api", &[("app", "api")], &[8080], &[9000], false),
    (
        "checkout/dns-cache",
        &[("app", "dns-cache")],
        &[],
        &[],
        true,
    ),
    (
        "shop/storefront",
        &[("app", "storefront")],
        &[8080, 15008],
        &[9000],
        false,
    ),
    (
        "shop/waypoint",
        &[("gateway.istio.io/managed", "istio.io-mesh-controller")],
        &[15008],
        &[],
        false,
    ),
    (
        "catalog/items",
        &[("app", "items")],
        &[8080, 15008],
        &[],
        false,
    ),
    (
        "catalog/waypoint",
        &[("gateway.istio.io/managed", "istio.io-mesh-controller")],
        &[15008],
        &[],
        false,
    ),
    ("sandbox/attacker", &[("app", "attacker")], &[], &[], false),
    (
        "monitoring/prometheus",
        &[("app", "prometheus")],
        &[],
        &[],
        false,
    ),
];

/// Hosts outside the cluster: label, addresses, TCP ports, UDP ports, serves DNS.
type External = (
    &'static str,
    &'static [&'static str],
    &'static [u16],
    &'static [u16],
    bool,
);
const EXTERNALS: &[External] = &[
    // The Internet (and a public resolver on it).
    (
        "internet",
        &["198.51.100.10", "2001:db8:5000::10"],
        &[443],
        &[443, 9000],
        true,
    ),
    // The API server address examples/baseline.yaml allow-lists.
    ("api-server", &["172.20.0.1"], &[443], &[], false),
    // A database in the allow-listed IPv6 range.
    ("database", &["2001:db8:4000::5"], &[5432], &[], false),
    // An IPv4 host behind NAT64 (RFC 6052's well-known prefix).
    ("nat64", &["64:ff9b::c633:640b"], &[443], &[], false),
    // Where istio-cni makes kubelet probes of ambient pods come from.
    (
        "probe-source",
        &["169.254.7.127", "fd16:9254:7127:1337:ffff:ffff:ffff:ffff"],
        &[],
        &[],
        false,
    ),
];

/// The mesh on a node: pods and outside hosts by key, and the kube-dns ClusterIPs.
pub struct Mesh {
    pub node: Node,
    pub pods: BTreeMap<String, Pod>,
    pub dns_service: Vec<IpAddr>,
}

impl Mesh {
    pub fn pod(&self, key: &str) -> Result<&Pod, AnyError> {
        self.pods
            .get(key)
            .ok_or_else(|| format!("no pod {key} in the mesh").into())
    }
}

fn records(ips: &[IpAddr]) -> Records {
    Records::from([(DNS_NAME.to_string(), ips.to_vec())])
}

/// Namespaces (as the admin: recorded for the cluster's cleanup), then the node, pods,
/// servers, outside hosts, the kube-dns Service and the enforcer.
pub async fn build(cluster: &Cluster) -> Result<Mesh, AnyError> {
    for (name, labels) in NAMESPACES {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        cluster.apply_as("meshbaseline-e2e", &ns, true).await?;
    }
    let node = Node::start(&kubeconfig()?, NodeConfig::default()).await?;
    let mut pods = BTreeMap::new();
    for (key, labels, tcp, udp, dns) in PODS {
        let (ns, name) = key.split_once('/').ok_or("pod keys are namespace/name")?;
        let mut spec = PodSpec::new(ns, name);
        for (k, v) in labels.iter() {
            spec = spec.label(k, v);
        }
        let pod = node.add_pod(spec).await?;
        serve(&pod, tcp, udp, *dns)?;
        pods.insert(key.to_string(), pod);
    }
    for (label, addresses, tcp, udp, dns) in EXTERNALS {
        let ips: Vec<IpAddr> = addresses
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?;
        let host = node.add_external(label, &ips)?;
        serve(&host, tcp, udp, *dns)?;
        pods.insert(label.to_string(), host);
    }
    let coredns = pods.get("kube-system/coredns").ok_or("coredns")?.clone();
    let ports = vec![
        ServicePort::new("dns", Protocol::Udp, 53, 53),
        ServicePort::new("dns-tcp", Protocol::Tcp, 53, 53),
    ];
    let dns_service = node
        .add_service(ServiceSpec::new(
            "kube-system",
            "kube-dns",
            ports,
            vec![coredns],
        ))
        .await?;
    node.start_kube_router().await?;
    Ok(Mesh {
        node,
        pods,
        dns_service,
    })
}

fn serve(pod: &Pod, tcp: &[u16], udp: &[u16], dns: bool) -> Result<(), AnyError> {
    for port in tcp {
        pod.serve_tcp(*port)?;
    }
    for port in udp {
        pod.serve_udp(*port)?;
    }
    if dns {
        pod.serve_dns(
            meshbaseline_e2e::dataplane::traffic::any(53),
            records(pod.addresses()),
        )?;
    }
    Ok(())
}

/// NodeLocal DNS: a host-network resolver pod on the node's link-local address.
pub async fn add_node_local_dns(mesh: &mut Mesh) -> Result<(), AnyError> {
    let ip: IpAddr = NODE_LOCAL_DNS.parse()?;
    mesh.node.add_local_address(ip)?;
    let spec = PodSpec::new("kube-system", "node-local-dns")
        .label("k8s-app", "node-local-dns")
        .host_network();
    let pod = mesh.node.add_pod(spec).await?;
    pod.serve_dns(SocketAddr::new(ip, 53), records(&[ip]))?;
    mesh.pods.insert("kube-system/node-local-dns".into(), pod);
    Ok(())
}

/// `examples/baseline.yaml`, its `spec` edited by `edit`.
pub fn example_baseline(edit: impl FnOnce(&mut Value)) -> Result<Value, AnyError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/baseline.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut baseline = parse_documents(&text)?
        .into_iter()
        .next()
        .ok_or("examples/baseline.yaml is empty")?;
    edit(&mut baseline["spec"]);
    Ok(baseline)
}

/// A test's cluster (its turn on the shared server), the mesh on its node, and the operator
/// as its own process (the chart's ServiceAccount, through the fault proxy).
pub struct Session {
    // Dropped in this order when a test panics: the pods must be gone before the cluster's
    // cleanup waits for their namespaces to go.
    pub operator: OperatorProcess,
    pub mesh: Mesh,
    pub cluster: Cluster,
}

impl Session {
    pub async fn start() -> Result<Session, AnyError> {
        let cluster = crate::real_cluster().await?;
        let mesh = build(&cluster).await?;
        let proxy = cluster
            .proxy_url()
            .ok_or("a real cluster has the fault proxy")?;
        let operator = OperatorProcess::spawn(
            &proxy,
            &["--leader-election=false".into(), "--debounce-ms=20".into()],
        )?;
        Ok(Session {
            cluster,
            mesh,
            operator,
        })
    }

    /// Applies `baseline`; once reconciled (and enforced: the generated NetworkPolicies of
    /// the sample mesh present), waits for kube-router.
    pub async fn apply_baseline(&self, baseline: &Value, reason: &str) -> Result<(), AnyError> {
        let expect = if reason == "Enforced" {
            default_policies()
        } else {
            Vec::new()
        };
        apply_baseline(&self.cluster, &self.mesh, baseline, reason, &expect).await
    }

    /// Stops the operator, tears the node down, deletes what the test created; then returns
    /// the test's own result first.
    pub async fn end(self, result: Result<(), AnyError>) -> Result<(), AnyError> {
        let stopped = self.operator.stop().await;
        let down = self.mesh.node.shutdown().await;
        let cleaned = self.cluster.cleanup().await;
        result?;
        stopped?;
        down?;
        Ok(cleaned?)
    }
}

/// A generated NetworkPolicy a test waits for: namespace, name, and a text its spec must hold
/// (empty: any).
pub type Expected = (String, String, String);

/// The sample mesh's generated NetworkPolicies: istiod's and each protected namespace's.
pub fn default_policies() -> Vec<Expected> {
    let mut out = vec![(
        "istio-system".into(),
        "meshbaseline-istiod".into(),
        String::new(),
    )];
    for (ns, labels) in NAMESPACES {
        if labels.contains(&PROTECTED) {
            out.push((
                ns.to_string(),
                "meshbaseline-baseline".into(),
                String::new(),
            ));
        }
    }
    out
}

/// Applies `baseline` and waits until the operator has reconciled this generation (Ready
/// with `reason`: `Enforced` or `AuditOnly`) and the `expect`ed NetworkPolicies are there;
/// then until kube-router has applied them.
pub async fn apply_baseline(
    cluster: &Cluster,
    mesh: &Mesh,
    baseline: &Value,
    reason: &str,
    expect: &[Expected],
) -> Result<(), AnyError> {
    let applied = cluster.apply_as("meshbaseline-e2e", baseline, true).await?;
    let generation = applied.metadata.generation;
    let started = std::time::Instant::now();
    loop {
        let live = cluster
            .get("meshbaseline.dev/v1alpha1", "MeshBaseline", None, "default")
            .await?;
        let status = live.map(|o| o.data["status"].clone()).unwrap_or_default();
        let ready = status["observedGeneration"].as_i64() == generation
            && status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True" && c["reason"] == reason);
        if ready && present(cluster, expect).await? {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "the baseline not {reason} with {expect:?} after 60s; status: {status}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mesh.node.sync_policies().await?;
    Ok(())
}

async fn present(cluster: &Cluster, expect: &[Expected]) -> Result<bool, AnyError> {
    for (ns, name, text) in expect {
        let live = cluster
            .get("networking.k8s.io/v1", "NetworkPolicy", Some(ns), name)
            .await?;
        match live {
            Some(np) if np.data["spec"].to_string().contains(text.as_str()) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}
