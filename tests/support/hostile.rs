//! Hostile and broken peers on 127.0.0.0/8: servers that misbehave at the byte level, which no
//! real registry does on demand (a trickled head, a 100 MB body, invalid UTF-8 and NUL bytes,
//! a connection closed mid-response, a TLS handshake that never completes).
//!
//! [`Hostile::serve`] runs a *script*: for each HTTP request it reads (request line, headers
//! and a `Content-Length` body of at most 64 KiB), the script returns the [`Step`]s to play
//! (write bytes, trickle them, stream a huge body, hold the connection), after which the
//! connection is closed. Every request is recorded raw ([`Seen`]: method, target, header
//! values as bytes, body), so a test can prove what a peer was (not) sent. Like Go's net/http
//! and nginx on a plain-HTTP port, a connection whose first line is not HTTP (the TLS
//! ClientHello of a client that tries HTTPS first, as containerd does for loopback registries)
//! gets `400 Bad Request` and is counted in [`Hostile::not_http`], so regprobe's HTTP fallback
//! reaches the script.
//!
//! The named constructors below each say which real-world behaviour they imitate. Where a real
//! component can play a part (the registry that issues the challenge, a working token
//! service), tests use the real `docker-registry` and [`super::TokenIssuer`] instead.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fakes::BAD_REQUEST;
use super::rt::{handle, Task};

/// One request as the server read it.
#[derive(Clone)]
pub struct Seen {
    pub method: String,
    /// The request target (`/v2/`, `/token?service=…`).
    pub target: String,
    /// Header names lower-cased, values as raw bytes, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Seen {
    /// Readable: header values and body as (lossy) text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v)))
            .collect();
        f.debug_struct("Seen")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Seen {
    /// First value of header `name` (lower-case), as bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether `needle` occurs anywhere in the raw request: target, header values or body.
    pub fn contains(&self, needle: &[u8]) -> bool {
        let has = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        has(self.target.as_bytes()) || has(&self.body) || self.headers.iter().any(|(_, v)| has(v))
    }
}

/// What the server does after reading a request.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes at once.
    Send(Vec<u8>),
    /// Write these bytes one at a time, `every` apart (a trickled response).
    Drip { bytes: Vec<u8>, every: Duration },
    /// Write `len` bytes of `fill` in 64 KiB writes, without holding them in memory, until
    /// done or the peer stops reading and goes away.
    Stream { len: u64, fill: u8 },
    /// Keep the connection open for this long without writing.
    Hold(Duration),
}

/// How one scripted response went.
#[derive(Clone, Debug)]
pub struct Played {
    /// Bytes written.
    pub written: u64,
    /// The peer closed or reset the connection before the script finished.
    pub peer_gone: bool,
    /// When the script ended (finished, or the peer went away).
    pub ended: Instant,
}

type Script = dyn Fn(&Seen) -> Vec<Step> + Send + Sync;

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    played: Mutex<Vec<Played>>,
    connections: AtomicUsize,
    not_http: AtomicUsize,
}

/// A scripted server (see the module documentation). Stops, with its connections, on `Drop`.
pub struct Hostile {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _task: Task,
}

impl Hostile {
    /// Serves `script` on `ip` (any 127.x address; `127.0.0.2` is "another host").
    pub fn serve(
        ip: Ipv4Addr,
        script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> Hostile {
        assert!(ip.is_loopback(), "hostile servers stay on 127.0.0.0/8");
        let (listener, addr) = bind(ip);
        let shared = Arc::new(Shared::default());
        let script: Arc<Script> = Arc::new(script);
        let state = shared.clone();
        let task = Task::spawn(move |conns| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                state.connections.fetch_add(1, Ordering::SeqCst);
                let (state, script) = (state.clone(), script.clone());
                conns.spawn(async move { connection(stream, state, script).await });
            }
        });
        Hostile {
            addr,
            shared,
            _task: task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `IP:PORT`, the registry key of a loopback registry.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every HTTP request read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How every scripted response went so far.
    pub fn played(&self) -> Vec<Played> {
        self.shared.played.lock().unwrap().clone()
    }

    /// TCP connections accepted (HTTP or not).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections that did not start with an HTTP request line (TLS ClientHellos).
    pub fn not_http(&self) -> usize {
        self.shared.not_http.load(Ordering::SeqCst)
    }
}

fn bind(ip: Ipv4Addr) -> (tokio::net::TcpListener, SocketAddr) {
    let std_listener = std::net::TcpListener::bind((ip, 0)).expect("bind a loopback address");
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let _guard = handle().enter();
    let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
    (listener, addr)
}

/// `METHOD SP target SP HTTP/1.x`.
fn request_line(line: &[u8]) -> Option<(String, String)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let parts: Vec<&str> = text.split(' ').collect();
    let ok = parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].bytes().all(|b| b.is_ascii_uppercase())
        && (parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0");
    ok.then(|| (parts[0].to_string(), parts[1].to_string()))
}

async fn read_request(stream: &mut TcpStream, shared: &Shared) -> Option<Seen> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            if request_line(&buf[..nl]).is_none() {
                shared.not_http.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(BAD_REQUEST).await;
                let _ = stream.shutdown().await;
                return None;
            }
        }
        if buf.len() > 65_536 {
            return None;
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    };
    let head = &buf[..head_end];
    let mut lines = head.split(|&b| b == b'\n');
    let (method, target) = request_line(lines.next()?)?;
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let colon = l.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&l[..colon]).to_ascii_lowercase();
            let value = l[colon + 1..].trim_ascii().to_vec();
            Some((name, value))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
        .min(65_536);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    body.truncate(len);
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>, script: Arc<Script>) {
    let Some(seen) = read_request(&mut stream, &shared).await else {
        return;
    };
    let steps = script(&seen);
    shared.seen.lock().unwrap().push(seen);
    let mut written = 0u64;
    let mut peer_gone = false;
    'steps: for step in steps {
        match step {
            Step::Send(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    peer_gone = true;
                    break;
                }
                written += bytes.len() as u64;
            }
            Step::Drip { bytes, every } => {
                for b in bytes {
                    if stream.write_all(&[b]).await.is_err() {
                        peer_gone = true;
                        break 'steps;
                    }
                    written += 1;
                    tokio::time::sleep(every).await;
                }
            }
            Step::Stream { len, fill } => {
                let block = vec![fill; 64 * 1024];
                let mut left = len;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    if stream.write_all(&block[..n]).await.is_err() {
                        peer_gone = true;
                        break 'steps;
                    }
                    written += n as u64;
                    left -= n as u64;
                }
            }
            Step::Hold(d) => {
                // Holding, but notice a peer that hangs up (read returns 0 or fails).
                let mut sink = [0u8; 1024];
                let until = tokio::time::Instant::now() + d;
                loop {
                    match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
                        Err(_) => break,
                        Ok(Ok(n)) if n > 0 => continue,
                        Ok(_) => {
                            peer_gone = true;
                            break 'steps;
                        }
                    }
                }
            }
        }
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
    shared.played.lock().unwrap().push(Played {
        written,
        peer_gone,
        ended: Instant::now(),
    });
}

/// An HTTP/1.1 response head and body from raw parts: `reason` and header values are written
/// byte for byte (they may hold invalid UTF-8 or NUL), then `Content-Length` and
/// `Connection: close` are added.
pub fn response(status: u16, reason: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} ").into_bytes();
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// The registry API version header every distribution response carries.
pub const API_VERSION: (&str, &[u8]) = ("Docker-Distribution-API-Version", b"registry/2.0");

/// The same response to every request.
pub fn always(bytes: Vec<u8>) -> impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static {
    move |_| vec![Step::Send(bytes.clone())]
}

/// Imitates a stuck registry or middlebox that trickles its answer (a saturated reverse proxy
/// relaying a stalled upstream, a "slowloris" in reverse): the response head of distribution's
/// `401` for `/v2/`, one byte every `every`.
pub fn slow_headers(every: Duration) -> Hostile {
    let head = response(
        401,
        b"Unauthorized",
        &[
            ("Content-Type", b"application/json; charset=utf-8"),
            API_VERSION,
            ("Www-Authenticate", b"Basic realm=\"slow\""),
        ],
        b"",
    );
    Hostile::serve(Ipv4Addr::LOCALHOST, move |_| {
        vec![Step::Drip {
            bytes: head.clone(),
            every,
        }]
    })
}

/// Imitates a broken token service (a misrouted realm serving a huge file, a runaway
/// generator): every request gets `200 application/json` with a body of `len` bytes,
/// `{"token":"aaaa…`, streamed, never held in memory.
pub fn huge_token(len: u64) -> Hostile {
    Hostile::serve(Ipv4Addr::LOCALHOST, move |_| {
        let prefix = b"{\"token\":\"";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        let mut first = head.into_bytes();
        first.extend_from_slice(prefix);
        vec![
            Step::Send(first),
            Step::Stream {
                len: len - prefix.len() as u64,
                fill: b'a',
            },
        ]
    })
}

/// Imitates a registry (or an auth proxy in front of one) that answers `/v2/` with a
/// `WWW-Authenticate` challenge of `size` bytes (a bloated `scope`, a proxy that appends
/// without bound): `Bearer realm="<realm>",service="registry.test",scope="aaaa…"`.
pub fn huge_challenge(realm: &str, size: usize) -> Hostile {
    let mut challenge =
        format!("Bearer realm=\"{realm}\",service=\"registry.test\",scope=\"").into_bytes();
    let pad = size.saturating_sub(challenge.len() + 1);
    challenge.extend(std::iter::repeat_n(b'a', pad));
    challenge.push(b'"');
    let bytes = response(
        401,
        b"Unauthorized",
        &[API_VERSION, ("WWW-Authenticate", &challenge)],
        b"",
    );
    Hostile::serve(Ipv4Addr::LOCALHOST, always(bytes))
}

/// Imitates a misconfigured reverse proxy in a redirect loop (an `http`→`https` rule and an
/// upstream that redirects back, a trailing-slash rule fighting the application): every
/// request is answered `status` with `Location` pointing at the same URL.
pub fn redirect_loop(status: u16) -> Hostile {
    Hostile::serve(Ipv4Addr::LOCALHOST, move |seen| {
        vec![Step::Send(response(
            status,
            b"Moved",
            &[("Location", seen.target.as_bytes())],
            b"",
        ))]
    })
}

/// Imitates a token service that moved: every request is answered `status` with
/// `Location: <to>` plus the request's query string (a realm behind a redirecting load
/// balancer, or one that was hijacked). A realm URL query `post=404` makes it answer a POST
/// `404` instead (GCR's token endpoint has no POST), so containerd's GET with Basic follows.
pub fn redirector(status: u16, to: &str) -> Hostile {
    let to = to.to_string();
    Hostile::serve(Ipv4Addr::LOCALHOST, move |seen| {
        if seen.method == "POST" && seen.target.contains("post=404") {
            return vec![Step::Send(response(
                404,
                b"Not Found",
                &[],
                b"404 page not found\n",
            ))];
        }
        let query = seen.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let location = if query.is_empty() {
            to.clone()
        } else {
            format!("{to}?{query}")
        };
        vec![Step::Send(response(
            status,
            b"Redirect",
            &[("Location", location.as_bytes())],
            b"",
        ))]
    })
}

/// "Another host": a server on `127.0.0.2` that records every request raw and answers like
/// Docker Hub's token service to a bad login (`401 {"details":"incorrect username or
/// password"}`). It stands for any host a challenge did not name.
pub fn recorder() -> Hostile {
    Hostile::serve(
        Ipv4Addr::new(127, 0, 0, 2),
        always(response(
            401,
            b"Unauthorized",
            &[("Content-Type", b"application/json")],
            b"{\"details\":\"incorrect username or password\"}\n",
        )),
    )
}

/// Imitates a TLS terminator that stalls mid-handshake (an overloaded load balancer or TLS
/// offload whose handshake workers are exhausted): it accepts TCP, reads the ClientHello,
/// writes the first 5 bytes of a ServerHello record (a header announcing 122 bytes) and never
/// sends the rest. Counts connections; never speaks HTTP.
pub struct TlsStall {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _task: Task,
}

impl TlsStall {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub fn tls_stall() -> TlsStall {
    let (listener, addr) = bind(Ipv4Addr::LOCALHOST);
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let task = Task::spawn(move |conns| async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            conns.spawn(async move {
                let mut buf = [0u8; 4096];
                if let Ok(n) = stream.read(&mut buf).await {
                    if n > 0 && buf[0] == 0x16 {
                        let _ = stream.write_all(&[0x16, 0x03, 0x03, 0x00, 0x7a]).await;
                    }
                }
                // Read and discard until the peer closes; never complete the handshake.
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    TlsStall {
        addr,
        connections,
        _task: task,
    }
}

/// The peak resident set (`VmHWM`, KiB) of process `pid`, or `None` once it has exited.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
