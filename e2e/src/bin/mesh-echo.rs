//! The application behind a sidecar in the Istio data-plane suite: answers every HTTP request
//! on each port given as an argument with `port=<port> path=<path> peer=<spiffe id>`, where the
//! peer comes from the `x-forwarded-client-cert` header the sidecar adds for mTLS callers
//! (`none` for plaintext ones). One thread per connection, one request per connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

/// Request heads longer than this are cut off (the suite sends a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;

fn main() {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|p| p.parse().unwrap_or_else(|_| usage(&p)))
        .collect();
    if ports.is_empty() {
        usage("(none)");
    }
    let listeners: Vec<(u16, TcpListener)> = ports
        .iter()
        .map(|&p| match TcpListener::bind(("0.0.0.0", p)) {
            Ok(l) => (p, l),
            Err(e) => {
                eprintln!("mesh-echo: bind 0.0.0.0:{p}: {e}");
                std::process::exit(1)
            }
        })
        .collect();
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|(port, l)| std::thread::spawn(move || serve(port, &l)))
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn usage(bad: &str) -> ! {
    eprintln!("usage: mesh-echo PORT... (bad port {bad})");
    std::process::exit(2)
}

fn serve(port: u16, listener: &TcpListener) {
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = answer(port, conn);
        });
    }
}

fn answer(port: u16, conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let (mut path, mut peer, mut read) = (String::from("-"), String::from("none"), 0);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        read += n;
        if n == 0 || read > MAX_HEAD || line == "\r\n" || line == "\n" {
            break;
        }
        if path == "-" {
            path = line.split_whitespace().nth(1).unwrap_or("-").to_string();
        } else if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("x-forwarded-client-cert") {
                peer = spiffe_uri(value.trim()).unwrap_or("none").to_string();
            }
        }
    }
    let body = format!("port={port} path={path} peer={peer}\n");
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// The caller's identity in an XFCC value: its `URI=` element.
fn spiffe_uri(xfcc: &str) -> Option<&str> {
    xfcc.split(';')
        .find_map(|kv| kv.strip_prefix("URI="))
        .map(|v| v.trim_matches('"'))
}
