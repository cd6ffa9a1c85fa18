//! A small DNS resolver and client (RFC 1035, A and AAAA only, over UDP and TCP): enough for a
//! resolver pod that answers real queries on port 53, and for probes that tell an answer from
//! a refusal.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use super::traffic::{nonce, Outcome, Protocol, Server, SERVER_MAX_REQUESTS};
use super::Error;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// What a resolver answers: names (without the final dot) to their addresses.
pub type Records = BTreeMap<String, Vec<IpAddr>>;

/// A query for `name`, type A or AAAA.
pub fn query(id: u16, name: &str, ipv6: bool) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&(if ipv6 { TYPE_AAAA } else { TYPE_A }).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// The question of a query: name, type, and where the question ends.
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    for _ in 0..64 {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
            return Some((labels.join("."), qtype, at + 4));
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_lowercase());
        at += len;
    }
    None
}

/// The answer to `msg` from `records`; `None` when `msg` is not a query.
pub fn answer(msg: &[u8], records: &Records) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(msg)?;
    if msg.get(2)? & 0x80 != 0 {
        return None;
    }
    let found: Vec<IpAddr> = records
        .get(&name)
        .into_iter()
        .flatten()
        .filter(|ip| (qtype == TYPE_AAAA) == ip.is_ipv6())
        .copied()
        .collect();
    let mut r = msg[..end].to_vec();
    let rcode = if records.contains_key(&name) { 0 } else { 3 };
    r[2] = 0x81;
    r[3] = 0x80 | rcode;
    r[6..8].copy_from_slice(&(found.len() as u16).to_be_bytes());
    r[8..12].fill(0);
    for ip in found {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 5]);
        match ip {
            IpAddr::V4(v4) => {
                r.extend_from_slice(&4u16.to_be_bytes());
                r.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                r.extend_from_slice(&16u16.to_be_bytes());
                r.extend_from_slice(&v6.octets());
            }
        }
    }
    Some(r)
}

/// The first address of a response to query `id`, or why there is none.
pub fn parse_response(msg: &[u8], id: u16) -> Result<IpAddr, String> {
    if msg.len() < 12 || msg[..2] != id.to_be_bytes() || msg[2] & 0x80 == 0 {
        return Err("not a response to the query".into());
    }
    if msg[3] & 0x0f != 0 {
        return Err(format!("rcode {}", msg[3] & 0x0f));
    }
    let (_, _, mut at) = question(msg).ok_or("malformed question")?;
    // The answer's name: a pointer (2 bytes) or labels.
    if msg.get(at).is_some_and(|b| b & 0xc0 == 0xc0) {
        at += 2;
    } else {
        while *msg.get(at).ok_or("truncated")? != 0 {
            at += 1 + usize::from(msg[at]);
        }
        at += 1;
    }
    let rdata = msg.get(at + 10..).ok_or("no answer")?;
    let len = u16::from_be_bytes([msg[at + 8], msg[at + 9]]);
    match (len, rdata) {
        (4, [a, b, c, d, ..]) => Ok(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        (16, r) if r.len() >= 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&r[..16]);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => Err("no address in the answer".into()),
    }
}

/// A resolver on `addr`, UDP and TCP: two server threads.
pub(crate) fn servers(
    netns: &str,
    addr: SocketAddr,
    records: Records,
) -> Result<[Server; 2], Error> {
    let records = Arc::new(records);
    let udp_records = records.clone();
    let udp = Server::start(
        netns,
        move || {
            let s = UdpSocket::bind(addr)?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(s)
        },
        move |socket: UdpSocket, stop, deadline| {
            let mut buf = [0u8; 512];
            for _ in 0..SERVER_MAX_REQUESTS {
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || std::time::Instant::now() >= deadline
                {
                    break;
                }
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(r) = answer(&buf[..n], &udp_records) {
                    let _ = socket.send_to(&r, peer);
                }
            }
        },
    )?;
    let tcp = Server::start(
        netns,
        move || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        },
        move |listener: TcpListener, stop, deadline| {
            for _ in 0..SERVER_MAX_REQUESTS {
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || std::time::Instant::now() >= deadline
                {
                    break;
                }
                match listener.accept() {
                    Ok((s, _)) => serve_tcp(s, &records),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        },
    )?;
    Ok([udp, tcp])
}

fn serve_tcp(mut s: TcpStream, records: &Records) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).is_err() {
        return;
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if s.read_exact(&mut msg).is_err() {
        return;
    }
    if let Some(r) = answer(&msg, records) {
        let mut out = (r.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&r);
        let _ = s.write_all(&out);
    }
}

/// A query for `name` (AAAA when `ipv6`) to `server` over a new UDP socket or TCP connection;
/// open with the answered address.
pub(crate) fn probe(
    server: SocketAddr,
    name: &str,
    ipv6: bool,
    transport: Protocol,
    timeout: Duration,
) -> Outcome {
    let id = nonce();
    let q = query(id, name, ipv6);
    let exchange = || -> std::io::Result<Vec<u8>> {
        match transport {
            Protocol::Udp => {
                let local: SocketAddr = if server.is_ipv6() {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local)?;
                s.connect(server)?;
                s.set_read_timeout(Some(timeout))?;
                s.send(&q)?;
                let mut buf = [0u8; 512];
                let n = s.recv(&mut buf)?;
                Ok(buf[..n].to_vec())
            }
            Protocol::Tcp => {
                let mut s = TcpStream::connect_timeout(&server, timeout)?;
                s.set_read_timeout(Some(timeout))?;
                let mut out = (q.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&q);
                s.write_all(&out)?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len)?;
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut msg)?;
                Ok(msg)
            }
        }
    };
    match exchange() {
        Ok(msg) => match parse_response(&msg, id) {
            Ok(ip) => Outcome::Open(format!("{name} is {ip}")),
            Err(e) => Outcome::Closed(format!("answer without an address: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Outcome::Closed("refused".into())
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Outcome::Closed("no answer".into())
        }
        Err(e) => Outcome::Closed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Records {
        Records::from([(
            "probe.dataplane.test".to_string(),
            vec!["10.244.1.9".parse().unwrap(), "fd00::9".parse().unwrap()],
        )])
    }

    #[test]
    fn a_query_gets_its_address_of_the_asked_family() {
        let r = answer(&query(7, "Probe.Dataplane.Test.", false), &records()).unwrap();
        assert_eq!(parse_response(&r, 7), Ok("10.244.1.9".parse().unwrap()));
        let r = answer(&query(8, "probe.dataplane.test", true), &records()).unwrap();
        assert_eq!(parse_response(&r, 8), Ok("fd00::9".parse().unwrap()));
    }

    #[test]
    fn unknown_names_and_foreign_ids_are_not_answers() {
        let r = answer(&query(9, "other.test", false), &records()).unwrap();
        assert_eq!(parse_response(&r, 9), Err("rcode 3".into()));
        let r = answer(&query(10, "probe.dataplane.test", false), &records()).unwrap();
        assert!(parse_response(&r, 11).is_err());
        assert!(
            answer(&r, &records()).is_none(),
            "a response is not answered"
        );
        assert!(answer(&[0u8; 5], &records()).is_none());
    }
}
