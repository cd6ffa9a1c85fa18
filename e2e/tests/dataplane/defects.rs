//! NetworkPolicy cases that failed on packets before the generator was fixed: a protected
//! monitoring namespace, NodeLocal DNS on the host network, istiod outside the root namespace,
//! and an ipBlock of "everything" that is not everything on kube-router. Where the failure
//! depends on a spec field, the rows are shown failing without it and passing with it.

use serde_json::{json, Value};

use meshbaseline_e2e::dataplane::{PodSpec, Protocol};

use crate::mesh::{self, default_policies, Expected, Session, NODE_LOCAL_DNS, PROTECTED};
use crate::rows::{self, Mode, Probe, Row, To};
use crate::{AnyError, TestResult};

const O: bool = true;
const X: bool = false;

const fn row(from: &'static str, to: To, probe: Probe, open: bool) -> Row {
    Row {
        from,
        to,
        probe,
        open: [open; 3],
        gap: "",
    }
}

/// Every row must be as `open` says (the same in every mode here).
async fn check(session: &Session, table: &[Row], what: &str) -> TestResult {
    let seen = rows::run(&session.mesh, table).await?;
    println!("{what}\n{}", rows::table(&seen));
    let wrong = rows::mismatches(&seen, Mode::AllowList);
    if wrong.is_empty() && !seen.is_empty() {
        return Ok(());
    }
    let detail = format!("{} rows differ:\n{}", wrong.len(), wrong.join("\n"));
    Err(crate::failure(&session.mesh.node, what, detail))
}

async fn enforce(
    session: &Session,
    spec: impl FnOnce(&mut Value),
    expect: Vec<Expected>,
) -> Result<(), AnyError> {
    let baseline = mesh::example_baseline(spec)?;
    mesh::apply_baseline(
        &session.cluster,
        &session.mesh,
        &baseline,
        "Enforced",
        &expect,
    )
    .await
}

fn with(mut expect: Vec<Expected>, ns: &str, name: &str, text: &str) -> Vec<Expected> {
    expect.push((ns.into(), name.into(), text.into()));
    expect
}

/// A protected `monitoring` namespace under AllowList scrapes istiod (15014) and the sidecars
/// (15020, 15090), and nothing else outside its namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_monitoring_namespace_scrapes_istiod_and_sidecars() -> TestResult {
    let session = Session::start().await?;
    let result = async {
        let (k, v) = PROTECTED;
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "monitoring", "labels": {k: v}}});
        session
            .cluster
            .apply_as("meshbaseline-e2e", &ns, true)
            .await?;
        let expect = with(
            default_policies(),
            "monitoring",
            "meshbaseline-baseline",
            "15090",
        );
        enforce(&session, |_| {}, expect).await?;
        let prom = "monitoring/prometheus";
        let istiod = To::Host("istio-system/istiod");
        check(
            &session,
            &[
                row(prom, istiod, Probe::Tcp(15014), O),
                row(prom, To::Host("payments/web"), Probe::Tcp(15020), O),
                row(prom, To::Host("payments/ledger"), Probe::Tcp(15090), O),
                // Still the baseline: other ports, plaintext xDS, UDP.
                row(prom, To::Host("checkout/api"), Probe::Tcp(8080), X),
                row(prom, istiod, Probe::Tcp(15010), X),
                row(prom, To::Host("internet"), Probe::Udp(9000), X),
                // Other protected namespaces do not get the monitoring rules.
                row("payments/web", istiod, Probe::Tcp(15014), X),
                row(
                    "payments/web",
                    To::Host("checkout/api"),
                    Probe::Tcp(15020),
                    X,
                ),
            ],
            "protected monitoring namespace",
        )
        .await
    }
    .await;
    session.end(result).await
}

/// A DNS cache on the host network (NodeLocal DNSCache on 169.254.20.10) is refused like any
/// other resolver until `dns.nodeLocalAddresses` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_local_dns_needs_its_address_in_the_baseline() -> TestResult {
    let mut session = Session::start().await?;
    let result = async {
        mesh::add_node_local_dns(&mut session.mesh).await?;
        let local = To::Ip(NODE_LOCAL_DNS);
        let cache = |open| {
            [
                row("payments/web", local, Probe::Dns(Protocol::Udp), open),
                row("payments/web", local, Probe::Dns(Protocol::Tcp), open),
                row("shop/storefront", local, Probe::Dns(Protocol::Udp), open),
            ]
        };
        // Reachable while nothing is enforced: a refusal below is the policy's.
        session.mesh.node.sync_policies().await?;
        check(&session, &cache(O), "NodeLocal DNS, no baseline").await?;
        let table = |open| {
            let mut t = cache(open).to_vec();
            // Never other resolvers; always the DNS pods.
            t.push(row(
                "payments/web",
                To::Host("internet"),
                Probe::Dns(Protocol::Udp),
                X,
            ));
            t.push(row(
                "payments/web",
                To::Host("kube-system/coredns"),
                Probe::Dns(Protocol::Udp),
                O,
            ));
            t
        };
        enforce(&session, |_| {}, default_policies()).await?;
        check(&session, &table(X), "NodeLocal DNS, not in the baseline").await?;
        let spec = |s: &mut Value| {
            s["network"]["dns"]["nodeLocalAddresses"] = json!([NODE_LOCAL_DNS]);
        };
        let expect = with(
            default_policies(),
            "payments",
            "meshbaseline-baseline",
            NODE_LOCAL_DNS,
        );
        enforce(
            &session,
            spec,
            with(expect, "shop", "meshbaseline-baseline", NODE_LOCAL_DNS),
        )
        .await?;
        check(
            &session,
            &table(O),
            "NodeLocal DNS in dns.nodeLocalAddresses",
        )
        .await
    }
    .await;
    session.end(result).await
}

/// istiod in `istio-control` while the root namespace is `istio-system`: without
/// `controlPlane.istiodNamespace`, AllowList cuts the sidecars off istiod (15012) and istiod's
/// plaintext port stays open; with it, both are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istiod_outside_the_root_namespace() -> TestResult {
    let mut session = Session::start().await?;
    let result = async {
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-control"}});
        session
            .cluster
            .apply_as("meshbaseline-e2e", &ns, true)
            .await?;
        let spec = PodSpec::new("istio-control", "istiod").label("app", "istiod");
        let pod = session.mesh.node.add_pod(spec).await?;
        for port in [15010, 15012, 15014] {
            pod.serve_tcp(port)?;
        }
        session.mesh.pods.insert("istio-control/istiod".into(), pod);
        let istiod = To::Host("istio-control/istiod");
        enforce(&session, |_| {}, default_policies()).await?;
        check(
            &session,
            &[
                row("payments/web", istiod, Probe::Tcp(15012), X),
                row("sandbox/attacker", istiod, Probe::Tcp(15010), O),
            ],
            "istiod outside the root namespace, not in the baseline",
        )
        .await?;
        let spec = |s: &mut Value| {
            s["network"]["controlPlane"]["istiodNamespace"] = json!("istio-control")
        };
        // istiod's NetworkPolicy moves from the root namespace to istiod's.
        let moved = default_policies()
            .into_iter()
            .filter(|(ns, ..)| ns != "istio-system");
        let expect = with(
            moved.collect(),
            "payments",
            "meshbaseline-baseline",
            "istio-control",
        );
        let expect = with(expect, "istio-control", "meshbaseline-istiod", "15012");
        enforce(&session, spec, expect).await?;
        check(
            &session,
            &[
                row("payments/web", istiod, Probe::Tcp(15012), O),
                row("payments/web", istiod, Probe::Tcp(15010), X),
                row("sandbox/attacker", istiod, Probe::Tcp(15010), X),
                row("sandbox/attacker", istiod, Probe::Tcp(15012), O),
                row("monitoring/prometheus", istiod, Probe::Tcp(15014), O),
                row("sandbox/attacker", istiod, Probe::Tcp(15014), X),
            ],
            "istiod in controlPlane.istiodNamespace",
        )
        .await
    }
    .await;
    session.end(result).await
}

/// Why Unrestricted has no `to`: the ipBlocks 0.0.0.0/0 and ::/0 it had are, on kube-router,
/// 0.0.0.0/1, 128.0.0.0/1, 2000::/3 and fd00::/8. A namespace outside the baseline with that
/// old rule reaches the IPv6 Internet but not a NAT64 address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_block_of_everything_misses_nat64_on_kube_router() -> TestResult {
    let session = Session::start().await?;
    let result = async {
        let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "tcp-anywhere", "namespace": "sandbox"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                                 "ports": [{"protocol": "TCP"}]}]}});
        session.cluster.apply_as("tenant", &np, true).await?;
        session.mesh.node.sync_policies().await?;
        let from = "sandbox/attacker";
        check(&session, &[
            row(from, To::Host("internet"), Probe::Tcp(443), O),
            row(from, To::Host("database"), Probe::Tcp(5432), O),
            row(from, To::Host("nat64"), Probe::Tcp(443), X),
        ], "ipBlock 0.0.0.0/0 and ::/0 on kube-router").await
    }
    .await;
    session.end(result).await
}
