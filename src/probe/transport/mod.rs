//! The instrumented HTTP/1.1 transport: resolve → connect → TLS → HTTP, each step timed and
//! each failing with its own typed error.
//!
//! A general HTTP client (reqwest) hides DNS, TCP and TLS inside one connector and reports an
//! outer timeout without saying which step hung (`docs/containerd-kubelet.md` §10.2). regprobe exists to say which
//! step broke, so it opens and times every step itself, one file a step:
//!
//! 1. **resolve** (`dns.rs`) with hickory (`/etc/hosts`, then the servers of
//!    `/etc/resolv.conf`, as Go does; or a `--dns-server`, or a `--resolve` override); typed
//!    NXDOMAIN / no-records / SERVFAIL / timeout (`docs/containerd-kubelet.md` §10.2);
//! 2. **connect** (`connect.rs`) with tokio, addresses tried in order with the dial budget split
//!    between them (Go's `dialSerial`), through the `HTTPS_PROXY` proxy with `CONNECT` when the
//!    environment names one (Go's `ProxyFromEnvironment`, as containerd's transport, `docs/containerd-kubelet.md` §6.5);
//! 3. **tls** (`handshake.rs`) with tokio-rustls (ALPN `http/1.1` only: containerd's Go
//!    transport never speaks HTTP/2), classified from the typed `rustls::Error`, and "the server
//!    answered in plain HTTP" recognised from the bytes it sent (Go checks for `HTTP/` in the
//!    record header); the rustls configurations themselves are built in [`crate::probe::tls`];
//! 4. **HTTP/1.1** (`http.rs`) with hyper's connection API; the response body is read up to a
//!    cap, and redirects are followed as Go's client does.
//!
//! This file holds the API: [`Transport`], [`Session`], [`Request`], [`Response`], options and
//! time limits. `text.rs` cuts a peer's bytes to a printable [`excerpt`].
//!
//! Time limits copy containerd's `DefaultHTTPTransport` (dial 30 s, TLS handshake 10 s, response
//! headers 30 s) and are further bounded by the probe's deadline.
//!
//! Connections are kept per probe ([`Session`]) and reused for the same scheme, host and port,
//! as Go's keep-alive pool would within one pull; a new probe starts with no connection.

mod connect;
mod dns;
mod handshake;
mod http;
mod text;

use ::http::header::{HeaderMap, HeaderValue};
use ::http::{Method, StatusCode};
use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http_body_util::Full;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

pub use super::failure::{
    ConnectFailure, DnsFailure, HttpFailure, TlsFailure, TransportError, MAX_HEAD_BYTES,
};
use super::outcome::{NetworkStep, Phase, TlsInfo};
pub use connect::is_loopback_host;
pub use dns::ResolveOverride;
pub use text::{excerpt, EXCERPT_CHARS};

/// Largest body read from an error response or a `/v2/` answer (bytes). Spec: errors 64 KiB.
pub const ERROR_BODY_CAP: usize = 64 * 1024;
/// Largest body read from a token response (bytes). Spec: token responses 1 MiB.
pub const TOKEN_BODY_CAP: usize = 1024 * 1024;
/// Requests sent at most for one [`Session::send`], redirects included, as Go's `http.Client`
/// (containerd's `request.do`): its default policy stops after 10 requests with
/// "stopped after 10 redirects".
pub const MAX_REDIRECTS: usize = 10;

/// How a host is contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlScheme {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
}

/// Time limits of the transport. Defaults are containerd's `DefaultHTTPTransport` (`docs/containerd-kubelet.md` §6.5).
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP connect budget (Go `net.Dialer.Timeout`), split between addresses.
    pub dial: Duration,
    /// TLS handshake budget.
    pub tls: Duration,
    /// Time from request sent to response headers received.
    pub response_header: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            dial: Duration::from_secs(30),
            tls: Duration::from_secs(10),
            response_header: Duration::from_secs(30),
        }
    }
}

/// Settings to build a [`Transport`].
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// Ask this DNS server (UDP and TCP) instead of the system configuration.
    pub dns_server: Option<SocketAddr>,
    /// Fixed addresses for `host:port` pairs.
    pub overrides: Vec<ResolveOverride>,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Ignore `HTTP(S)_PROXY` from the environment.
    pub no_proxy: bool,
    /// `User-Agent` sent on every request.
    pub user_agent: String,
}

/// Error building a [`Transport`].
#[derive(Debug, thiserror::Error)]
pub enum TransportInitError {
    /// `/etc/resolv.conf` could not be read or parsed.
    #[error("reading the system DNS configuration: {0}")]
    ResolvConf(String),
}

/// The shared, long-lived part of the transport: the resolver, overrides, proxy settings.
/// Cheap to share (`Arc`) between concurrent probes.
pub struct Transport {
    resolver: TokioResolver,
    overrides: Vec<ResolveOverride>,
    proxy: Option<hyper_util::client::proxy::matcher::Matcher>,
    timeouts: Timeouts,
    user_agent: HeaderValue,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("overrides", &self.overrides)
            .field("proxy", &self.proxy.is_some())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Transport {
    /// Builds the transport. The resolver reads `/etc/resolv.conf` (and `/etc/hosts`) unless
    /// `dns_server` is set; the proxy comes from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    ///
    /// Errors: the system DNS configuration cannot be read.
    pub fn new(opts: TransportOptions) -> Result<Transport, TransportInitError> {
        let resolver = dns::resolver(opts.dns_server)?;
        let proxy = if opts.no_proxy {
            None
        } else {
            let m = hyper_util::client::proxy::matcher::Matcher::from_env();
            Some(m)
        };
        let ua = if opts.user_agent.is_empty() {
            concat!("regprobe/", env!("CARGO_PKG_VERSION")).to_string()
        } else {
            opts.user_agent
        };
        Ok(Transport {
            resolver,
            overrides: opts.overrides,
            proxy,
            timeouts: opts.timeouts,
            user_agent: HeaderValue::from_str(&ua)
                .unwrap_or_else(|_| HeaderValue::from_static("regprobe")),
        })
    }

    /// Starts a probe's session: connections are reused inside it and closed when it drops.
    /// `deadline` bounds every step of the probe.
    pub fn session(self: &Arc<Self>, deadline: Instant) -> Session {
        Session {
            transport: Arc::clone(self),
            deadline,
            conns: HashMap::new(),
            phases: Vec::new(),
            tls: HashMap::new(),
            network: Vec::new(),
            dropped_credential: None,
            last_method: None,
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Full URL (`http` or `https`).
    pub url: Url,
    /// Extra headers (`Authorization`, `Accept`, `Content-Type`).
    pub headers: HeaderMap,
    /// Body (the token POST's form), empty otherwise.
    pub body: Bytes,
    /// TLS settings for an `https` URL; `None` means an `https` URL cannot be requested.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Cap on the body bytes read.
    pub body_cap: usize,
    /// Dial timeout for this request's host (hosts.toml `dial_timeout`), replacing
    /// [`Timeouts::dial`]; `Some(ZERO)` means no dial limit (Go's `net.Dialer` rule), so only
    /// the probe's deadline bounds it.
    pub dial_timeout: Option<Duration>,
    /// TLS handshake budget for a new connection of this request, replacing
    /// [`Timeouts::tls`] (still bounded by the probe's deadline). See
    /// [`Session::fallback_tls_budget`].
    pub tls_timeout: Option<Duration>,
}

impl Request {
    /// A request with no extra headers and no body.
    pub fn new(method: Method, url: Url, tls: Option<Arc<rustls::ClientConfig>>) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            tls,
            body_cap: ERROR_BODY_CAP,
            dial_timeout: None,
            tls_timeout: None,
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, at most the request's `body_cap` bytes.
    pub body: Bytes,
    /// Whether the body was longer than the cap (the rest was not read).
    pub truncated: bool,
    /// The URL that answered (after redirects).
    pub url: Url,
}

impl Response {
    /// All values of a header, as bytes.
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    }

    /// First value of a header, if it is valid text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a pooled connection is reused for: the same scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnKey {
    scheme: UrlScheme,
    host: String,
    port: u16,
}

/// The request half of a hyper HTTP/1.1 connection.
type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One probe's view of the transport: it records phase timings and TLS facts and reuses
/// connections per `(scheme, host, port)`.
pub struct Session {
    transport: Arc<Transport>,
    deadline: Instant,
    conns: HashMap<ConnKey, http::Conn>,
    phases: Vec<(Phase, f64)>,
    tls: HashMap<String, TlsInfo>,
    network: Vec<NetworkStep>,
    dropped_credential: Option<String>,
    last_method: Option<Method>,
}

impl Session {
    /// The method of the last request [`Session::send`] made: a POST answered 301/302/303 was
    /// re-sent as a GET (for evidence that says what reached the last host).
    pub fn last_method(&self) -> Option<&Method> {
        self.last_method.as_ref()
    }

    /// Whether the last [`Session::send`] dropped the request's credential on a redirect (the
    /// `Authorization` header to another host, or the POST's form when a 301/302/303 turned it
    /// into a GET), and how, in words naming the host; clears it. The answer that came back
    /// then says nothing about the credential.
    pub fn take_dropped_credential(&mut self) -> Option<String> {
        self.dropped_credential.take()
    }

    /// Name resolution and TCP connections made so far, and clears them.
    pub fn take_network(&mut self) -> Vec<NetworkStep> {
        std::mem::take(&mut self.network)
    }

    /// Timings recorded so far, in order, and clears them.
    pub fn take_phases(&mut self) -> Vec<(Phase, f64)> {
        std::mem::take(&mut self.phases)
    }

    /// TLS facts of the connection to `host` (`host` or `host:port` as in the URL), if one was made.
    pub fn tls_info(&self, authority: &str) -> Option<&TlsInfo> {
        self.tls.get(authority)
    }

    /// Time left before the probe's deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records the time `phase` took since `started`.
    fn record(&mut self, phase: Phase, started: Instant) {
        self.phases.push((phase, started.elapsed().as_secs_f64()));
    }

    /// `limit` cut to the time left before the deadline, or the deadline error at `phase`
    /// when no time is left.
    /// The TLS budget of a host containerd falls back to plain HTTP for: containerd's
    /// `TLSHandshakeTimeout` (10 s, `core/remotes/docker/registry.go` `DefaultHTTPTransport`;
    /// [`Timeouts::tls`] here), but at most half of what is left of the probe's deadline, so that
    /// a server that accepts TCP and never speaks TLS still leaves time for the plain-HTTP
    /// attempt `httpFallback` makes after "TLS handshake timeout" (containerd's pull has no
    /// overall deadline; regprobe's `--timeout` does).
    pub fn fallback_tls_budget(&self) -> Duration {
        self.transport.timeouts.tls.min(self.remaining() / 2)
    }

    fn budget(&self, limit: Duration, phase: Phase) -> Result<Duration, TransportError> {
        let left = self.remaining();
        if left.is_zero() {
            return Err(TransportError::Deadline { phase });
        }
        Ok(limit.min(left))
    }
}

/// A transport for loopback tests: no proxy, and a DNS server that is never asked
/// (IP literals need no lookup).
/// `host[:port]` of a URL, the host lower-cased (the URL parser already lower-cases the hosts
/// of `http` and `https` URLs): how the transport keys connections and TLS facts, and how every
/// layer names a server. The port is left out when the URL has the scheme's default.
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

#[cfg(test)]
fn loopback_transport() -> Arc<Transport> {
    Arc::new(
        Transport::new(TransportOptions {
            no_proxy: true,
            dns_server: Some("127.0.0.1:9".parse().unwrap()),
            ..Default::default()
        })
        .unwrap(),
    )
}
