//! Misbehaving servers on 127.0.0.1, for failures no real registry shows on demand.
//!
//! Each fake names the real-world behaviour it imitates. Where a real component can show the
//! failure, use it instead:
//! * HTTPS client talking to an HTTP server: [`plain_http_registry`] (the real docker-registry
//!   without TLS; Go answers the ClientHello with `HTTP/1.1 400 Bad Request`);
//! * TLS failures (expired, wrong name, unknown CA, client certificate required): the real
//!   registry with `TestPki` certificates ([`super::RegistryOptions::with_tls`],
//!   `RegistryOptions::client_ca`);
//! * token-service failures (403, 429, 500, HTML, POST 404/405, hangs): [`super::token`];
//! * NXDOMAIN and REFUSED: [`super::Dns`].
//!
//! HTTP fakes answer every request on any path (`GET`, `HEAD`, `POST`, ...) the same way,
//! one response per connection (`Connection: close`), no body on `HEAD`, and record each
//! request line (`"GET /v2/ HTTP/1.1"`) for [`FakeServer::requests`]. Like Go's net/http and
//! nginx on a plain-HTTP port, they answer a TLS ClientHello with `400 Bad Request` (recorded
//! as [`NOT_HTTP`]), so a client that tries HTTPS first and falls back to HTTP (containerd's
//! rule for loopback hosts) sees the same thing as with a real web server.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::registry::{Registry, RegistryOptions};
use super::rt::{bind_tcp, handle, Task};

/// A fake server on 127.0.0.1. Stops (and drops its connections) on `Drop`.
pub struct FakeServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _task: Task,
}

impl FakeServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request lines seen so far (for [`hang`]: one `"<connection>"` entry per connection).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

/// A canned HTTP/1.1 response.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn new(status: u16, reason: &'static str, content_type: &str, body: &str) -> Canned {
        Canned {
            status,
            reason,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// What [`FakeServer::requests`] records for a connection that did not speak HTTP (e.g. a TLS
/// ClientHello); it got [`BAD_REQUEST`].
pub const NOT_HTTP: &str = "<not HTTP>";

/// Go's net/http answer to a request line that is not HTTP.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

/// `METHOD SP target SP HTTP/1.x` (with or without the trailing CR).
fn is_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let parts: Vec<&str> = text.split(' ').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].bytes().all(|b| b.is_ascii_uppercase())
        && !parts[1].is_empty()
        && (parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0")
}

/// A server that answers every request with `canned`; like a real HTTP server, it answers
/// bytes that are not HTTP (a TLS ClientHello) with `400 Bad Request` as soon as it has read
/// a line of them.
pub fn canned(canned: Canned) -> FakeServer {
    let (listener, addr) = bind_tcp(0);
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let canned = Arc::new(canned);
    let task = Task::spawn(move |conns| async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let log = log2.clone();
            let canned = canned.clone();
            conns.spawn(async move {
                let mut buf = Vec::with_capacity(2048);
                let mut chunk = [0u8; 2048];
                // Like Go's net/http and nginx: read the request line; if it is not HTTP (e.g.
                // a TLS ClientHello from a client trying HTTPS first, as containerd does for
                // loopback hosts), answer 400 at once; else read to the end of the headers.
                let mut bad = false;
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65_536 {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                            if !is_request_line(&buf[..nl]) {
                                bad = true;
                                break;
                            }
                        }
                    }
                })
                .await;
                if read.is_err() || buf.is_empty() {
                    return;
                }
                if bad {
                    log.lock().unwrap().push(NOT_HTTP.to_string());
                    let _ = stream.write_all(BAD_REQUEST).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                let line = String::from_utf8_lossy(&buf)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let head_only = line.starts_with("HEAD ");
                log.lock().unwrap().push(line);
                let _ = stream.write_all(&canned.bytes(head_only)).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    FakeServer {
        addr,
        log,
        _task: task,
    }
}

/// Imitates a captive portal or a plain web server where a registry was expected: `200 OK`
/// with an HTML page and **no** `Docker-Distribution-API-Version` header, on every path
/// (including `/v2/`).
pub fn html_page() -> FakeServer {
    canned(
        Canned::new(
            200,
            "OK",
            "text/html; charset=utf-8",
            "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\
             <body><h1>Welcome to the guest network</h1>\
             <p>Please accept the terms of use to continue.</p></body></html>\n",
        )
        .header("Server", "nginx"),
    )
}

/// Imitates a registry behind a load balancer in maintenance: `503 Service Temporarily
/// Unavailable` with nginx's HTML error page on every path.
pub fn maintenance_503() -> FakeServer {
    canned(
        Canned::new(
            503,
            "Service Temporarily Unavailable",
            "text/html",
            "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n\
             <body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n\
             <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        )
        .header("Server", "nginx"),
    )
}

/// Imitates a rate-limited registry (Docker Hub, Harbor): `429 Too Many Requests` with
/// `Retry-After: <retry_after_secs>`, `Docker-Distribution-API-Version: registry/2.0` and the
/// registry error body `{"errors":[{"code":"TOOMANYREQUESTS",…}]}`, on every path.
pub fn rate_limited_429(retry_after_secs: u64) -> FakeServer {
    canned(
        Canned::new(
            429,
            "Too Many Requests",
            "application/json",
            "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached your pull rate limit.\"}]}\n",
        )
        .header("Retry-After", &retry_after_secs.to_string())
        .header("Docker-Distribution-API-Version", "registry/2.0"),
    )
}

/// Imitates a registry behind an authenticating proxy that speaks only Kerberos/NTLM (IIS,
/// corporate proxies): `401 Unauthorized` with `WWW-Authenticate: Negotiate` and
/// `WWW-Authenticate: NTLM`, no Basic or Bearer challenge.
pub fn unsupported_challenge() -> FakeServer {
    canned(
        Canned::new(
            401,
            "Unauthorized",
            "text/html",
            "<h1>401 Unauthorized</h1>\n",
        )
        .header("WWW-Authenticate", "Negotiate")
        .header("WWW-Authenticate", "NTLM"),
    )
}

/// Imitates a host that accepts TCP but never answers (a stuck registry, a firewall that
/// completes the handshake, an overloaded proxy). Connections stay open until the fake is
/// dropped; each connection is recorded as `"<connection>"`.
pub fn hang() -> FakeServer {
    let (listener, addr) = bind_tcp(0);
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let task = Task::spawn(move |conns| async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            log2.lock().unwrap().push("<connection>".to_string());
            conns.spawn(async move {
                let mut sink = [0u8; 4096];
                // Read and discard until the peer closes; never write.
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    FakeServer {
        addr,
        log,
        _task: task,
    }
}

/// The "HTTPS client talks to an HTTP server" case, with a real server: docker-registry
/// without TLS. A TLS ClientHello gets Go's `HTTP/1.1 400 Bad Request` back.
pub fn plain_http_registry() -> Registry {
    Registry::start(RegistryOptions::default())
}

/// A port on 127.0.0.1 where nothing listens (bound, noted, closed): connecting gets
/// `ECONNREFUSED`.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// A UDP socket that receives and never answers: imitates an unreachable or dead DNS server
/// (resolver timeout). Use its address as `--dns-server`.
pub struct SilentUdp {
    socket: UdpSocket,
}

impl SilentUdp {
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }
}

pub fn silent_udp() -> SilentUdp {
    SilentUdp {
        socket: UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap(),
    }
}

/// A DNS server that answers every query with SERVFAIL: imitates a resolver whose upstream is
/// broken (or fails DNSSEC validation). The response echoes the query's id and question.
pub struct ServfailDns {
    addr: SocketAddr,
    count: Arc<Mutex<usize>>,
    _task: Task,
}

impl ServfailDns {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries it has answered.
    pub fn queries(&self) -> usize {
        *self.count.lock().unwrap()
    }
}

pub fn dns_servfail() -> ServfailDns {
    let std_sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    std_sock.set_nonblocking(true).unwrap();
    let addr = std_sock.local_addr().unwrap();
    let sock = {
        let _g = handle().enter();
        tokio::net::UdpSocket::from_std(std_sock).unwrap()
    };
    let count = Arc::new(Mutex::new(0));
    let count2 = count.clone();
    let task = Task::spawn(move |_conns| async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            if n < 12 {
                continue;
            }
            let mut resp = buf[..n].to_vec();
            // QR=1, opcode copied, RD copied, RA=1, RCODE=2; no answer/authority/additional.
            resp[2] = 0x80 | (buf[2] & 0x79);
            resp[3] = 0x80 | 0x02;
            resp[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
            // Keep only the question section (drop an EDNS OPT record if any).
            let mut i = 12;
            while i < n && resp[i] != 0 {
                i += 1 + resp[i] as usize;
            }
            resp.truncate(usize::min(i + 5, n));
            *count2.lock().unwrap() += 1;
            let _ = sock.send_to(&resp, peer).await;
        }
    });
    ServfailDns {
        addr,
        count,
        _task: task,
    }
}
