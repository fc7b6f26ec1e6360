//! Misbehaving registries and DNS servers on 127.0.0.1, for failures no real server shows on
//! demand. The HTTP ones run on the shared engine, [`crate::fake::FakeServer`].
//!
//! Each fake names the real-world behaviour it imitates. Where a real component can show the
//! failure, use it instead:
//! * HTTPS client talking to an HTTP server: [`plain_http_registry`] (the real docker-registry
//!   without TLS; Go answers the ClientHello with `HTTP/1.1 400 Bad Request`);
//! * TLS failures (expired, wrong name, unknown CA, client certificate required): the real
//!   registry with `TestPki` certificates ([`crate::RegistryOptions::with_tls`],
//!   `RegistryOptions::client_ca`);
//! * token-service failures (403, 429, 500, HTML, POST 404/405, hangs): [`crate::token`];
//! * NXDOMAIN and REFUSED: [`crate::Dns`].
//!
//! HTTP fakes answer every request on any path (`GET`, `HEAD`, `POST`, ...) the same way,
//! one response per connection (`Connection: close`), no body on `HEAD`, and record each
//! request line (`"GET /v2/ HTTP/1.1"`) for [`FakeServer::requests`]. Like Go's net/http and
//! nginx on a plain-HTTP port, they answer a TLS ClientHello with `400 Bad Request` (recorded
//! as [`crate::fake::NOT_HTTP`]), so a client that tries HTTPS first and falls back to HTTP
//! (containerd's rule for loopback hosts) sees the same thing as with a real web server.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use crate::fake::{response, FakeServer, Step, API_VERSION};
use crate::registry::{Registry, RegistryOptions};
use crate::rt::{handle, Task};

/// A server that answers every request with `status reason`, `Content-Type: content_type`, the
/// `headers` and `body` (on `HEAD`: the same head, no body).
fn canned(
    status: u16,
    reason: &str,
    content_type: &str,
    headers: &[(&str, &[u8])],
    body: &str,
) -> FakeServer {
    let mut all: Vec<(&str, &[u8])> = vec![("Content-Type", content_type.as_bytes())];
    all.extend_from_slice(headers);
    let full = response(status, reason.as_bytes(), &all, body.as_bytes());
    let head = full[..full.len() - body.len()].to_vec();
    FakeServer::serve(Ipv4Addr::LOCALHOST, move |seen| {
        let bytes = if seen.method == "HEAD" { &head } else { &full };
        vec![Step::Send(bytes.clone())]
    })
}

/// Imitates a captive portal or a plain web server where a registry was expected: `200 OK`
/// with an HTML page and **no** `Docker-Distribution-API-Version` header, on every path
/// (including `/v2/`).
pub fn html_page() -> FakeServer {
    canned(
        200,
        "OK",
        "text/html; charset=utf-8",
        &[("Server", b"nginx")],
        "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\
         <body><h1>Welcome to the guest network</h1>\
         <p>Please accept the terms of use to continue.</p></body></html>\n",
    )
}

/// Imitates a registry behind a load balancer in maintenance: `503 Service Temporarily
/// Unavailable` with nginx's HTML error page on every path.
pub fn maintenance_503() -> FakeServer {
    canned(
        503,
        "Service Temporarily Unavailable",
        "text/html",
        &[("Server", b"nginx")],
        "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n\
         <body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n\
         <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    )
}

/// Imitates a rate-limited registry (Docker Hub, Harbor): `429 Too Many Requests` with
/// `Retry-After: <retry_after_secs>`, `Docker-Distribution-API-Version: registry/2.0` and the
/// registry error body `{"errors":[{"code":"TOOMANYREQUESTS",…}]}`, on every path.
pub fn rate_limited_429(retry_after_secs: u64) -> FakeServer {
    canned(
        429,
        "Too Many Requests",
        "application/json",
        &[
            ("Retry-After", retry_after_secs.to_string().as_bytes()),
            API_VERSION,
        ],
        "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached your pull rate limit.\"}]}\n",
    )
}

/// Imitates a registry behind an authenticating proxy that speaks only Kerberos/NTLM (IIS,
/// corporate proxies): `401 Unauthorized` with `WWW-Authenticate: Negotiate` and
/// `WWW-Authenticate: NTLM`, no Basic or Bearer challenge.
pub fn unsupported_challenge() -> FakeServer {
    canned(
        401,
        "Unauthorized",
        "text/html",
        &[
            ("WWW-Authenticate", b"Negotiate"),
            ("WWW-Authenticate", b"NTLM"),
        ],
        "<h1>401 Unauthorized</h1>\n",
    )
}

/// Imitates a host that accepts TCP but never answers (a stuck registry, a firewall that
/// completes the handshake, an overloaded proxy). Connections stay open until the fake is
/// dropped; each connection is recorded as [`crate::fake::CONNECTION`].
pub fn hang() -> FakeServer {
    FakeServer::raw(Ipv4Addr::LOCALHOST, |_| vec![Step::Drain])
}

/// The "HTTPS client talks to an HTTP server" case, with a real server: docker-registry
/// without TLS. A TLS ClientHello gets Go's `HTTP/1.1 400 Bad Request` back.
pub fn plain_http_registry() -> Registry {
    Registry::start(RegistryOptions::default())
}

/// A port on 127.0.0.1 where nothing listens: connecting gets `ECONNREFUSED`.
///
/// The port stays bound (a TCP socket that never calls `listen`) until the test binary exits,
/// so no other test or process can take it in between; a port that was merely freed could be
/// handed out again by the kernel to a parallel test's listener and then accept.
pub fn closed_port() -> u16 {
    static HELD: Mutex<Vec<socket2::Socket>> = Mutex::new(Vec::new());
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .expect("an inet address")
        .port();
    HELD.lock().unwrap().push(socket);
    port
}

/// A UDP socket that receives and never answers: imitates an unreachable or dead DNS server
/// (resolver timeout). Use its address as `--dns-server`.
pub struct SilentUdp {
    socket: UdpSocket,
}

impl SilentUdp {
    /// Its address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }
}

/// Binds a [`SilentUdp`] on 127.0.0.1.
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
    /// Its address (`127.0.0.1:PORT`, UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries it has answered.
    pub fn queries(&self) -> usize {
        *self.count.lock().unwrap()
    }
}

/// Starts a [`ServfailDns`] on 127.0.0.1.
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
