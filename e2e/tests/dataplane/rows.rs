//! The rows: source, destination, protocol/port, expected result per egress mode, and the gap
//! of the README's threat model each one is about. Every row runs over IPv4 and IPv6 when
//! both ends have the family. docs/dataplane.md carries the same table.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use meshbaseline_e2e::dataplane::{Credentials, Outcome, Pod, Protocol};

use crate::mesh::{Mesh, DNS_NAME};
use crate::AnyError;

/// How long a probe waits: blocked traffic is rejected at once; silence means blocked too.
pub const TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ClusterOnly,
    AllowList,
    Unrestricted,
}

impl Mode {
    fn column(self) -> usize {
        match self {
            Mode::ClusterOnly => 0,
            Mode::AllowList => 1,
            Mode::Unrestricted => 2,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Probe {
    Tcp(u16),
    Udp(u16),
    Icmp,
    /// A query for `DNS_NAME` over UDP or TCP port 53.
    Dns(Protocol),
    /// TCP from a process running as UID/GID 1337 (socat), the proxy's identity.
    TcpAsProxyUid(u16),
    UdpAsProxyUid(u16),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Tcp(p) => write!(f, "TCP {p}"),
            Probe::Udp(p) => write!(f, "UDP {p}"),
            Probe::Icmp => write!(f, "ICMP echo"),
            Probe::Dns(Protocol::Udp) => write!(f, "DNS UDP 53"),
            Probe::Dns(Protocol::Tcp) => write!(f, "DNS TCP 53"),
            Probe::TcpAsProxyUid(p) => write!(f, "TCP {p} as UID 1337"),
            Probe::UdpAsProxyUid(p) => write!(f, "UDP {p} as UID 1337"),
        }
    }
}

/// Where a row goes: a pod or outside host of the mesh by key, or the kube-dns Service.
#[derive(Clone, Copy, Debug)]
pub enum To {
    Host(&'static str),
    DnsService,
}

#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub from: &'static str,
    pub to: To,
    pub probe: Probe,
    /// Expected open, per mode: ClusterOnly, AllowList, Unrestricted.
    pub open: [bool; 3],
    pub gap: &'static str,
}

const O: bool = true;
const X: bool = false;

const fn row(
    from: &'static str,
    to: &'static str,
    probe: Probe,
    open: [bool; 3],
    gap: &'static str,
) -> Row {
    Row {
        from,
        to: To::Host(to),
        probe,
        open,
        gap,
    }
}

/// The table for the sample mesh and `examples/baseline.yaml` (and its other egress modes).
pub const SAMPLE: &[Row] = &[
    row(
        "payments/web",
        "payments/ledger",
        Probe::Tcp(8080),
        [O, O, O],
        "-",
    ),
    row(
        "payments/web",
        "checkout/api",
        Probe::Tcp(8080),
        [O, X, O],
        "G7",
    ),
    row(
        "sandbox/attacker",
        "payments/web",
        Probe::Tcp(8080),
        [O, O, O],
        "-",
    ),
    row(
        "payments/web",
        "payments/ledger",
        Probe::Udp(9000),
        [X, X, X],
        "G4",
    ),
    row(
        "sandbox/attacker",
        "payments/web",
        Probe::Udp(9000),
        [X, X, X],
        "G4",
    ),
    row(
        "payments/web",
        "internet",
        Probe::Udp(9000),
        [X, X, X],
        "G4, G7",
    ),
    row(
        "payments/web",
        "payments/ledger",
        Probe::Icmp,
        [X, X, X],
        "G4",
    ),
    row(
        "sandbox/attacker",
        "payments/web",
        Probe::Icmp,
        [X, X, X],
        "G4",
    ),
    row("payments/web", "internet", Probe::Icmp, [X, X, X], "G4"),
    row(
        "payments/web",
        "internet",
        Probe::UdpAsProxyUid(9000),
        [X, X, X],
        "G5",
    ),
    row(
        "payments/web",
        "internet",
        Probe::TcpAsProxyUid(443),
        [X, X, O],
        "G5, G7",
    ),
    row(
        "payments/web",
        "kube-system/coredns",
        Probe::Dns(Protocol::Udp),
        [O, O, O],
        "G4",
    ),
    row(
        "payments/web",
        "kube-system/coredns",
        Probe::Dns(Protocol::Tcp),
        [O, O, O],
        "G4",
    ),
    Row {
        from: "payments/web",
        to: To::DnsService,
        probe: Probe::Dns(Protocol::Udp),
        open: [O, O, O],
        gap: "G4",
    },
    row(
        "payments/web",
        "checkout/dns-cache",
        Probe::Dns(Protocol::Udp),
        [X, X, X],
        "G4",
    ),
    row(
        "payments/web",
        "checkout/dns-cache",
        Probe::Dns(Protocol::Tcp),
        [O, X, O],
        "G4",
    ),
    row(
        "payments/web",
        "internet",
        Probe::Dns(Protocol::Udp),
        [X, X, X],
        "G4, G7",
    ),
    row(
        "payments/web",
        "internet",
        Probe::Dns(Protocol::Tcp),
        [X, X, O],
        "G7",
    ),
    row("payments/web", "internet", Probe::Tcp(443), [X, X, O], "G7"),
    row(
        "payments/web",
        "api-server",
        Probe::Tcp(443),
        [O, O, O],
        "G7",
    ),
    row(
        "payments/web",
        "database",
        Probe::Tcp(5432),
        [O, O, O],
        "G7, G10",
    ),
    row(
        "payments/web",
        "nat64",
        Probe::Tcp(443),
        [X, X, O],
        "G7, G10",
    ),
    row(
        "payments/web",
        "istio-system/egressgateway",
        Probe::Tcp(443),
        [O, O, O],
        "G7",
    ),
    row(
        "payments/web",
        "istio-system/egressgateway",
        Probe::Udp(443),
        [X, X, X],
        "G4",
    ),
    row(
        "payments/web",
        "istio-system/istiod",
        Probe::Tcp(15012),
        [O, O, O],
        "G8",
    ),
    row(
        "payments/web",
        "istio-system/istiod",
        Probe::Tcp(15017),
        [O, X, O],
        "G8",
    ),
    row(
        "payments/web",
        "istio-system/istiod",
        Probe::Tcp(15010),
        [X, X, X],
        "G8",
    ),
    row(
        "payments/web",
        "istio-system/istiod",
        Probe::Tcp(8080),
        [X, X, X],
        "G8",
    ),
    row(
        "payments/web",
        "istio-system/istiod",
        Probe::Tcp(9876),
        [X, X, X],
        "G8",
    ),
    row(
        "payments/web",
        "istio-system/istiod",
        Probe::Tcp(15014),
        [X, X, X],
        "G8",
    ),
    row(
        "sandbox/attacker",
        "istio-system/istiod",
        Probe::Tcp(15010),
        [X, X, X],
        "G8",
    ),
    row(
        "sandbox/attacker",
        "istio-system/istiod",
        Probe::Tcp(15012),
        [O, O, O],
        "G8",
    ),
    row(
        "sandbox/attacker",
        "istio-system/istiod",
        Probe::Tcp(15014),
        [X, X, X],
        "G8",
    ),
    row(
        "monitoring/prometheus",
        "istio-system/istiod",
        Probe::Tcp(15014),
        [O, O, O],
        "G8",
    ),
    row(
        "monitoring/prometheus",
        "payments/web",
        Probe::Tcp(15020),
        [O, O, O],
        "-",
    ),
    row(
        "shop/storefront",
        "shop/waypoint",
        Probe::Tcp(15008),
        [O, O, O],
        "G13",
    ),
    row(
        "shop/storefront",
        "catalog/waypoint",
        Probe::Tcp(15008),
        [O, O, O],
        "G13",
    ),
    row(
        "shop/storefront",
        "catalog/items",
        Probe::Tcp(15008),
        [O, X, O],
        "G13",
    ),
    row(
        "probe-source",
        "shop/storefront",
        Probe::Tcp(8080),
        [O, O, O],
        "G13",
    ),
    row(
        "probe-source",
        "shop/storefront",
        Probe::Udp(9000),
        [X, X, X],
        "G4",
    ),
    row(
        "shop/storefront",
        "internet",
        Probe::Udp(9000),
        [X, X, X],
        "G4",
    ),
];

/// One probe of one row in one family.
pub struct Seen {
    pub row: Row,
    pub ipv6: bool,
    pub dst: IpAddr,
    pub outcome: Outcome,
}

impl Seen {
    pub fn describe(&self) -> String {
        let to = match self.row.to {
            To::Host(h) => h.to_string(),
            To::DnsService => "kube-system/kube-dns (Service)".into(),
        };
        format!(
            "{} -> {} [{}] {}: {}",
            self.row.from, to, self.dst, self.row.probe, self.outcome
        )
    }
}

/// Runs every row (both families) at once; each probe opens its own flow.
pub async fn run(mesh: &Mesh, rows: &[Row]) -> Result<Vec<Seen>, AnyError> {
    let mut probes = Vec::new();
    for row in rows {
        for ipv6 in [false, true] {
            let from = mesh.pod(row.from)?;
            let dsts: Vec<IpAddr> = match row.to {
                To::Host(key) => mesh.pod(key)?.ip(ipv6).into_iter().collect(),
                To::DnsService => mesh
                    .dns_service
                    .iter()
                    .copied()
                    .filter(|ip| ip.is_ipv6() == ipv6)
                    .collect(),
            };
            if from.ip(ipv6).is_none() {
                continue;
            }
            for dst in dsts {
                let expect = match row.to {
                    To::Host(key) => mesh.pod(key)?.clone(),
                    To::DnsService => mesh.pod("kube-system/coredns")?.clone(),
                };
                let from = from.clone();
                let row = *row;
                probes.push(async move {
                    let outcome = probe(&from, &expect, dst, row.probe).await?;
                    Ok::<_, AnyError>(Seen {
                        row,
                        ipv6,
                        dst,
                        outcome,
                    })
                });
            }
        }
    }
    futures::future::join_all(probes)
        .await
        .into_iter()
        .collect()
}

async fn probe(from: &Pod, to: &Pod, dst: IpAddr, probe: Probe) -> Result<Outcome, AnyError> {
    let at = |port| SocketAddr::new(dst, port);
    let outcome = match probe {
        Probe::Tcp(port) => from.tcp(at(port), TIMEOUT).await?,
        Probe::Udp(port) => from.udp(at(port), TIMEOUT).await?,
        Probe::Icmp => from.ping(dst, TIMEOUT).await?,
        Probe::Dns(transport) => {
            from.resolve(at(53), DNS_NAME, dst.is_ipv6(), transport, TIMEOUT)
                .await?
        }
        Probe::TcpAsProxyUid(port) => socat_as_proxy(from, &format!("TCP:{}", at(port))).await?,
        Probe::UdpAsProxyUid(port) => socat_as_proxy(from, &format!("UDP:{}", at(port))).await?,
    };
    // An answer must come from the destination the row names.
    Ok(match outcome {
        Outcome::Open(who) if !answered_by(&who, to) => {
            Outcome::Closed(format!("answered by someone else: {who}"))
        }
        other => other,
    })
}

fn answered_by(who: &str, to: &Pod) -> bool {
    who.contains(&format!("{}:", to.id()))
        || to.addresses().iter().any(|a| who.contains(&a.to_string()))
}

/// `socat` as UID/GID 1337 in `from`, sending a line to `address` and printing the answer.
async fn socat_as_proxy(from: &Pod, address: &str) -> Result<Outcome, AnyError> {
    let mut cmd = Command::new("socat");
    cmd.args([
        "-t",
        "1",
        "-T",
        "2",
        "-",
        &format!("{address},connect-timeout=1"),
    ]);
    let out = from
        .run(
            cmd,
            Credentials::user(1337, 1337),
            "probe-as-1337\n",
            Duration::from_secs(4),
        )
        .await;
    Ok(match out {
        Ok(text) if !text.trim().is_empty() => Outcome::Open(text.trim().to_string()),
        Ok(_) => Outcome::Closed("no answer".into()),
        Err(e) => Outcome::Closed(e.to_string()),
    })
}

/// The rows whose outcome is not the one `mode` expects, one line each.
pub fn mismatches(seen: &[Seen], mode: Mode) -> Vec<String> {
    seen.iter()
        .filter(|s| s.outcome.is_open() != s.row.open[mode.column()])
        .map(|s| {
            format!(
                "expected {}: {}",
                if s.row.open[mode.column()] {
                    "open"
                } else {
                    "closed"
                },
                s.describe()
            )
        })
        .collect()
}

/// The rows expected closed in `mode` that were closed (for the proof that they pass traffic
/// with the protection off).
pub fn refused_rows(rows: &[Row], mode: Mode) -> Vec<Row> {
    rows.iter()
        .copied()
        .filter(|r| !r.open[mode.column()])
        .collect()
}

/// A Markdown table of what was seen, for the docs.
pub fn table(seen: &[Seen]) -> String {
    let mut out = String::from("| source | destination | protocol/port | family | outcome | gap |\n|---|---|---|---|---|---|\n");
    for s in seen {
        let to = match s.row.to {
            To::Host(h) => h.to_string(),
            To::DnsService => "kube-dns Service".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            s.row.from,
            to,
            s.row.probe,
            if s.ipv6 { "IPv6" } else { "IPv4" },
            if s.outcome.is_open() {
                "open"
            } else {
                "closed"
            },
            s.row.gap
        );
    }
    out
}
