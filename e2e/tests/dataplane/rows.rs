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

/// Where a row goes: a pod or outside host of the mesh by key, the kube-dns Service, or an
/// address (a host-network service).
#[derive(Clone, Copy, Debug)]
pub enum To {
    Host(&'static str),
    DnsService,
    Ip(&'static str),
}

impl std::fmt::Display for To {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            To::Host(h) => f.write_str(h),
            To::DnsService => f.write_str("kube-dns Service"),
            To::Ip(ip) => f.write_str(ip),
        }
    }
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

pub const fn row(
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

/// One probe of one row in one family.
pub struct Seen {
    pub row: Row,
    pub ipv6: bool,
    pub dst: IpAddr,
    pub outcome: Outcome,
}

impl Seen {
    pub fn describe(&self) -> String {
        let to = self.row.to;
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
        let from = mesh.pod(row.from)?;
        // Who must answer: the destination pod (the DNS pod behind the Service), or for an
        // address whatever listens there.
        let (expect, dsts): (Option<&Pod>, Vec<IpAddr>) = match row.to {
            To::Host(key) => (Some(mesh.pod(key)?), mesh.pod(key)?.addresses().to_vec()),
            To::DnsService => (
                Some(mesh.pod("kube-system/coredns")?),
                mesh.dns_service.clone(),
            ),
            To::Ip(ip) => (None, vec![ip.parse()?]),
        };
        for dst in dsts {
            if from.ip(dst.is_ipv6()).is_none() {
                continue;
            }
            let (from, expect, row) = (from.clone(), expect.cloned(), *row);
            probes.push(async move {
                let outcome = probe(&from, expect.as_ref(), dst, row.probe).await?;
                Ok::<_, AnyError>(Seen {
                    row,
                    ipv6: dst.is_ipv6(),
                    dst,
                    outcome,
                })
            });
        }
    }
    futures::future::join_all(probes)
        .await
        .into_iter()
        .collect()
}

async fn probe(
    from: &Pod,
    to: Option<&Pod>,
    dst: IpAddr,
    probe: Probe,
) -> Result<Outcome, AnyError> {
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
    let answered_by = |who: &str| {
        who.contains(&dst.to_string())
            || to.is_some_and(|p| {
                who.contains(&format!("{}:", p.id()))
                    || p.addresses().iter().any(|a| who.contains(&a.to_string()))
            })
    };
    Ok(match outcome {
        Outcome::Open(who) if !answered_by(&who) => {
            Outcome::Closed(format!("answered by someone else: {who}"))
        }
        other => other,
    })
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
        let to = s.row.to;
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

/// The expected table, as docs/dataplane.md carries it.
pub fn expected_table(rows: &[Row]) -> String {
    let word = |open: bool| if open { "allowed" } else { "refused" };
    let mut out = String::from(
        "| source | destination | protocol/port | ClusterOnly | AllowList | Unrestricted | gap |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.from,
            r.to,
            r.probe,
            word(r.open[0]),
            word(r.open[1]),
            word(r.open[2]),
            r.gap
        );
    }
    out
}

/// docs/dataplane.md shows the rows the suite runs, word for word.
#[test]
fn the_docs_table_is_the_suites() -> crate::TestResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dataplane.md");
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table = expected_table(crate::sample::SAMPLE);
    if doc.contains(&table) {
        return Ok(());
    }
    Err(format!(
        "{} does not carry the suite's table; it is:\n{table}",
        path.display()
    )
    .into())
}
