//! Real sockets inside a namespace: servers that answer with who they are, and probes that
//! open a new flow each time (an enforcer lets established flows through) and say whether the
//! answer came back. A refusal (RST, ICMP unreachable) and silence count the same: closed.
//! Every loop is bounded in count and time.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sys;
use super::Error;

/// How long a server keeps serving at most, and how many requests.
pub const SERVER_LIFETIME: Duration = Duration::from_secs(30 * 60);
pub const SERVER_MAX_REQUESTS: u32 = 100_000;
/// How often a server loop looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// What a probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The answer came back; what the server said it is.
    Open(String),
    /// Refused, unreachable or silent; why.
    Closed(String),
}

impl Outcome {
    pub fn is_open(&self) -> bool {
        matches!(self, Outcome::Open(_))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Open(who) => write!(f, "open ({who})"),
            Outcome::Closed(why) => write!(f, "closed ({why})"),
        }
    }
}

/// A server thread; stopped (and joined) on drop.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a thread in `netns` that binds with `bind` (reporting its error here) and then
    /// runs `serve` until stopped, with the stop flag and its deadline.
    pub(crate) fn start<S, F>(
        netns: &str,
        bind: impl FnOnce() -> std::io::Result<S> + Send + 'static,
        serve: F,
    ) -> Result<Server, Error>
    where
        S: Send + 'static,
        F: FnOnce(S, &AtomicBool, Instant) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let name = netns.to_string();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("server-{netns}"))
            .spawn(move || {
                let bound = sys::enter_netns(&name).and_then(|()| bind().map_err(Error::from));
                match bound {
                    Ok(socket) => {
                        let _ = tx.send(Ok(()));
                        serve(socket, &flag, Instant::now() + SERVER_LIFETIME);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        let server = Server {
            stop,
            thread: Some(thread),
        };
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::Setup(format!("a server in {netns} did not start")))??;
        Ok(server)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn running(stop: &AtomicBool, deadline: Instant, served: u32) -> bool {
    !stop.load(Ordering::Relaxed) && Instant::now() < deadline && served < SERVER_MAX_REQUESTS
}

/// TCP on `addr`: each connection gets `identity` and a newline, then is closed.
pub(crate) fn tcp_server(netns: &str, addr: SocketAddr, identity: String) -> Result<Server, Error> {
    Server::start(
        netns,
        move || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        },
        move |listener: TcpListener, stop, deadline| {
            let mut served = 0;
            while running(stop, deadline, served) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        served += 1;
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = s.write_all(format!("{identity}\n").as_bytes());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        },
    )
}

/// UDP on `addr`: each datagram is answered with `identity`, a space and the datagram.
pub(crate) fn udp_server(netns: &str, addr: SocketAddr, identity: String) -> Result<Server, Error> {
    Server::start(
        netns,
        move || {
            let s = UdpSocket::bind(addr)?;
            s.set_read_timeout(Some(POLL))?;
            Ok(s)
        },
        move |socket: UdpSocket, stop, deadline| {
            let mut buf = [0u8; 512];
            let mut served = 0;
            while running(stop, deadline, served) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    served += 1;
                    let mut answer = format!("{identity} ").into_bytes();
                    answer.extend_from_slice(&buf[..n]);
                    let _ = socket.send_to(&answer, peer);
                }
            }
        },
    )
}

/// The wildcard address of a port, both families (`[::]` accepts IPv4 too).
pub fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

fn closed(e: &std::io::Error) -> Outcome {
    Outcome::Closed(match e.kind() {
        ErrorKind::ConnectionRefused => "refused".into(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "no answer".into(),
        _ => e.to_string(),
    })
}

/// A new TCP connection to `dst`; open when the server's line comes back.
pub(crate) fn tcp_probe(dst: SocketAddr, timeout: Duration) -> Outcome {
    let mut s = match TcpStream::connect_timeout(&dst, timeout) {
        Ok(s) => s,
        Err(e) => return closed(&e),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut line = String::new();
    match s.read_to_string(&mut line) {
        Ok(_) if !line.trim().is_empty() => Outcome::Open(line.trim().to_string()),
        Ok(_) => Outcome::Closed("connected, closed without an answer".into()),
        Err(e) => closed(&e),
    }
}

/// A datagram from a new socket (a new flow) to `dst`; open when the echo comes back.
pub(crate) fn udp_probe(dst: SocketAddr, timeout: Duration) -> Outcome {
    let local: SocketAddr = match dst {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let attempt = || -> std::io::Result<Outcome> {
        let s = UdpSocket::bind(local)?;
        s.connect(dst)?;
        s.set_read_timeout(Some(timeout))?;
        let nonce = format!("probe-{}", nonce());
        s.send(nonce.as_bytes())?;
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf)?;
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        Ok(match answer.strip_suffix(&nonce) {
            Some(who) => Outcome::Open(who.trim().to_string()),
            None => Outcome::Closed(format!("unexpected answer {answer:?}")),
        })
    };
    attempt().unwrap_or_else(|e| closed(&e))
}

/// A number that differs between probes (ICMP ids, UDP payloads, DNS ids).
pub(crate) fn nonce() -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    NEXT.fetch_add(1, Ordering::Relaxed) ^ (time as u16)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP (v4) or ICMPv6 echo request to `dst` from a raw socket; open on the matching
/// echo reply, closed on a destination-unreachable about it or on silence.
pub(crate) fn icmp_probe(dst: IpAddr, timeout: Duration) -> Outcome {
    icmp_echo(dst, timeout).unwrap_or_else(|e| closed(&e))
}

fn icmp_echo(dst: IpAddr, timeout: Duration) -> std::io::Result<Outcome> {
    use socket2::{Domain, Protocol as P, Socket, Type};
    let v6 = dst.is_ipv6();
    let (domain, proto, request, reply) = if v6 {
        (Domain::IPV6, P::ICMPV6, 128u8, 129u8)
    } else {
        (Domain::IPV4, P::ICMPV4, 8u8, 0u8)
    };
    let raw = Socket::new(domain, Type::from(libc::SOCK_RAW), Some(proto))?;
    // A raw socket read as datagrams; the port of its addresses is unused.
    let socket = UdpSocket::from(raw);
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let id = nonce();
    let mut packet = vec![request, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(b"meshbaseline-dataplane");
    if !v6 {
        // The kernel computes ICMPv6 checksums itself.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    socket.send_to(&packet, SocketAddr::new(dst, 0))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    for _ in 0..1000 {
        if Instant::now() >= deadline {
            break;
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        // IPv4 raw sockets see the IP header; IPv6 ones do not.
        let icmp = if v6 {
            &buf[..n]
        } else {
            &buf[usize::from(buf[0] & 0x0f) * 4..n]
        };
        if icmp.len() < 8 {
            continue;
        }
        let matches_id = |at: usize| icmp.get(at..at + 2) == Some(&id.to_be_bytes()[..]);
        if icmp[0] == reply && from.ip() == dst && matches_id(4) {
            return Ok(Outcome::Open(format!("echo reply from {dst}")));
        }
        // Destination unreachable carries our request: its IP header, then the echo header.
        let unreachable = if v6 { icmp[0] == 1 } else { icmp[0] == 3 };
        let inner = if v6 {
            8 + 40
        } else {
            8 + usize::from(icmp.get(8).map_or(0, |b| b & 0x0f)) * 4
        };
        if unreachable && matches_id(inner + 4) {
            return Ok(Outcome::Closed(format!(
                "ICMP destination unreachable (code {}) from {}",
                icmp[1],
                from.ip()
            )));
        }
    }
    Ok(Outcome::Closed("no answer".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request_verifies_to_zero() {
        let mut packet = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'x'];
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn outcomes_read_as_open_or_closed() {
        assert!(Outcome::Open("a".into()).is_open());
        assert!(!Outcome::Closed("refused".into()).is_open());
        assert_eq!(
            closed(&ErrorKind::ConnectionRefused.into()),
            Outcome::Closed("refused".into())
        );
    }
}
