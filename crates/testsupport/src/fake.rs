//! The one engine behind every fake server ([`crate::fakes`], [`crate::hostile`] and the
//! scripted servers the tests write themselves): a TCP listener on 127.0.0.0/8 whose connections
//! each play a *script*.
//!
//! * [`FakeServer::serve`] speaks HTTP/1.x: for each connection it reads one request (request
//!   line, headers and a `Content-Length` body of at most 64 KiB), records it ([`Seen`]: method,
//!   target, header values as raw bytes, body), and plays the [`Step`]s the script returns for
//!   it (write bytes, trickle them, stream a huge body, keep the connection open), then closes
//!   the connection: one response per connection, as with `Connection: close`. Like Go's
//!   net/http and nginx on a plain-HTTP port, a connection whose first line is not HTTP (the TLS
//!   ClientHello of a client that tries HTTPS first, as containerd does for loopback
//!   registries) gets [`BAD_REQUEST`] and is recorded as [`NOT_HTTP`], so the client's HTTP
//!   fallback reaches the script.
//! * [`FakeServer::raw`] speaks nothing: the script gets the first bytes the peer sends (say, a
//!   ClientHello) and returns the steps to play, for peers that misbehave below HTTP (a stalled
//!   TLS handshake, a connection that is accepted and never answered).
//!
//! Every connection is counted, every HTTP request line (or [`NOT_HTTP`], or [`CONNECTION`] for
//! a raw connection) is logged in order for [`FakeServer::requests`], and how each script went
//! is kept ([`Played`]), so a test can prove what a peer was (not) sent and when it gave up.
//! A fake stops, and drops its connections, on `Drop`.
//!
//! Each fake built on the engine says which real-world behaviour it imitates; where a real
//! component can play a part (the registry that issues the challenge, a working token service),
//! tests use the real `docker-registry` and [`crate::TokenIssuer`] instead.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::rt::{bind_tcp_at, Task};

/// One HTTP request as a fake read it.
#[derive(Clone)]
pub struct Seen {
    /// The method (`GET`, `HEAD`, `POST`, ...).
    pub method: String,
    /// The request target (`/v2/`, `/token?service=…`).
    pub target: String,
    /// The request line as sent, without the line end (`GET /v2/ HTTP/1.1`).
    pub line: String,
    /// Header names lower-cased, values as raw bytes, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (at most 64 KiB of what `Content-Length` announced).
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

/// What a fake does on a connection, in order; after the last step it closes the connection.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes at once.
    Send(Vec<u8>),
    /// Write these bytes one at a time, `every` apart (a trickled response).
    Drip {
        /// The bytes to write.
        bytes: Vec<u8>,
        /// The pause after each byte.
        every: Duration,
    },
    /// Write `len` bytes of `fill` in 64 KiB writes, without holding them in memory, until
    /// done or the peer stops reading and goes away.
    Stream {
        /// How many bytes.
        len: u64,
        /// The byte repeated.
        fill: u8,
    },
    /// Read and discard whatever the peer sends, never write, until the peer closes the
    /// connection (or the fake is dropped): a peer that is never answered.
    Drain,
}

/// How one connection's script went.
#[derive(Clone, Debug)]
pub struct Played {
    /// Bytes written.
    pub written: u64,
    /// The peer closed or reset the connection before the script finished (always, once a
    /// [`Step::Drain`] ends).
    pub peer_gone: bool,
    /// When the script ended (finished, or the peer went away).
    pub ended: Instant,
}

/// What [`FakeServer::requests`] logs for a connection that did not speak HTTP (e.g. a TLS
/// ClientHello); it got [`BAD_REQUEST`].
pub const NOT_HTTP: &str = "<not HTTP>";

/// What [`FakeServer::requests`] logs for each connection to a [`FakeServer::raw`] fake.
pub const CONNECTION: &str = "<connection>";

/// Go's net/http answer to a request line that is not HTTP.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

/// The registry API version header every distribution response carries.
pub const API_VERSION: (&str, &[u8]) = ("Docker-Distribution-API-Version", b"registry/2.0");

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

/// A script that answers every HTTP request with the same bytes.
pub fn always(bytes: Vec<u8>) -> impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static {
    move |_| vec![Step::Send(bytes.clone())]
}

type HttpScript = dyn Fn(&Seen) -> Vec<Step> + Send + Sync;
type RawScript = dyn Fn(&[u8]) -> Vec<Step> + Send + Sync;

/// How a fake treats each connection.
#[derive(Clone)]
enum Mode {
    Http(Arc<HttpScript>),
    Raw(Arc<RawScript>),
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
    played: Mutex<Vec<Played>>,
    connections: AtomicUsize,
    not_http: AtomicUsize,
}

/// A fake server on a loopback address (see the module documentation). Stops, with its
/// connections, on `Drop`.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _task: Task,
}

impl FakeServer {
    /// Serves HTTP on `ip` (any 127.x address; `127.0.0.2` is "another host"): each request is
    /// answered with the steps `script` returns for it.
    pub fn serve(
        ip: Ipv4Addr,
        script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> FakeServer {
        FakeServer::start(ip, Mode::Http(Arc::new(script)))
    }

    /// Serves raw TCP on `ip`: each connection plays the steps `script` returns for the first
    /// bytes the peer sent (empty if it closed without sending any).
    pub fn raw(ip: Ipv4Addr, script: impl Fn(&[u8]) -> Vec<Step> + Send + Sync + 'static) -> Self {
        FakeServer::start(ip, Mode::Raw(Arc::new(script)))
    }

    fn start(ip: Ipv4Addr, mode: Mode) -> FakeServer {
        assert!(ip.is_loopback(), "fake servers stay on 127.0.0.0/8");
        let (listener, addr) = bind_tcp_at(ip, 0);
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let task = Task::spawn(move |conns| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                state.connections.fetch_add(1, Ordering::SeqCst);
                if let Mode::Raw(_) = mode {
                    state.log.lock().unwrap().push(CONNECTION.to_string());
                }
                let (state, mode) = (state.clone(), mode.clone());
                conns.spawn(async move { connection(stream, state, mode).await });
            }
        });
        FakeServer {
            addr,
            shared,
            _task: task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
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

    /// In order: the request line of every HTTP request read (`"GET /v2/ HTTP/1.1"`),
    /// [`NOT_HTTP`] for each connection that did not speak HTTP, and [`CONNECTION`] for each
    /// connection to a raw fake.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many entries [`FakeServer::requests`] has.
    pub fn request_count(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    /// Every HTTP request read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How every script played so far went.
    pub fn played(&self) -> Vec<Played> {
        self.shared.played.lock().unwrap().clone()
    }

    /// TCP connections accepted (HTTP or not).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections to an HTTP fake that did not start with an HTTP request line (TLS
    /// ClientHellos).
    pub fn not_http(&self) -> usize {
        self.shared.not_http.load(Ordering::SeqCst)
    }
}

/// `METHOD SP target SP HTTP/1.x` (with or without the trailing CR): method and target.
fn request_line(line: &[u8]) -> Option<(String, String)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let parts: Vec<&str> = text.split(' ').collect();
    let ok = parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].bytes().all(|b| b.is_ascii_uppercase())
        && !parts[1].is_empty()
        && (parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0");
    ok.then(|| (parts[0].to_string(), parts[1].to_string()))
}

/// Reads one request; answers a first line that is not HTTP with [`BAD_REQUEST`]. `None` when
/// there is no complete request (not HTTP, a head over 64 KiB, EOF or 5 s of silence).
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
                shared.log.lock().unwrap().push(NOT_HTTP.to_string());
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
    let first = lines.next()?;
    let (method, target) = request_line(first)?;
    let line = String::from_utf8_lossy(first.strip_suffix(b"\r").unwrap_or(first)).into_owned();
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
        line,
        headers,
        body,
    })
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>, mode: Mode) {
    let steps = match mode {
        Mode::Http(script) => {
            let Some(seen) = read_request(&mut stream, &shared).await else {
                return;
            };
            let steps = script(&seen);
            shared.log.lock().unwrap().push(seen.line.clone());
            shared.seen.lock().unwrap().push(seen);
            steps
        }
        Mode::Raw(script) => {
            let mut first = [0u8; 4096];
            let n = stream.read(&mut first).await.unwrap_or(0);
            script(&first[..n])
        }
    };
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
            Step::Drain => {
                let mut sink = [0u8; 4096];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                peer_gone = true;
                break;
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
