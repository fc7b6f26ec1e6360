//! The instrumented HTTP/1.1 transport: resolve → connect → TLS → HTTP, each step timed and
//! each failing with its own typed error.
//!
//! A general HTTP client (reqwest) hides DNS, TCP and TLS inside one connector and reports an
//! outer timeout without saying which step hung (`crates.md` §2). regprobe exists to say which
//! step broke, so it opens and times every step itself:
//!
//! 1. **resolve** with hickory (`/etc/hosts`, then the servers of `/etc/resolv.conf`, as Go does;
//!    or a `--dns-server`, or a `--resolve` override); typed NXDOMAIN / no-records / SERVFAIL /
//!    timeout (`auth-spec.md` §10.2);
//! 2. **connect** with tokio, addresses tried in order with the dial budget split between them
//!    (Go's `dialSerial`), through the `HTTPS_PROXY` proxy with `CONNECT` when the environment
//!    names one (Go's `ProxyFromEnvironment`, as containerd's transport, spec §6.5);
//! 3. **tls** with tokio-rustls (ALPN `http/1.1` only: containerd's Go transport never speaks
//!    HTTP/2), classified from the typed `rustls::Error`, and "the server answered in plain
//!    HTTP" recognised from the bytes it sent (Go checks for `HTTP/` in the record header);
//! 4. **HTTP/1.1** with hyper's connection API; the response body is read up to a cap.
//!
//! Time limits copy containerd's `DefaultHTTPTransport` (dial 30 s, TLS handshake 10 s, response
//! headers 30 s) and are further bounded by the probe's deadline.
//!
//! Connections are kept per probe ([`Session`]) and reused for the same scheme, host and port,
//! as Go's keep-alive pool would within one pull; a new probe starts with no connection.

use bytes::Bytes;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioResolver;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, HOST, LOCATION, USER_AGENT};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use url::Url;

pub use super::failure::{
    ConnectFailure, DnsFailure, HttpFailure, TlsFailure, TransportError, MAX_HEAD_BYTES,
};
use super::outcome::{NetworkStep, Phase, TlsInfo};

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

/// Time limits of the transport. Defaults are containerd's `DefaultHTTPTransport` (spec §6.5).
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

/// A `--resolve HOST:PORT:ADDR` override: connect to `addr` for `host:port` without DNS,
/// keeping the name for TLS and the `Host` header (curl's option of the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// Host name as written in the URL.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Address to connect to.
    pub addr: IpAddr,
}

impl std::str::FromStr for ResolveOverride {
    type Err = String;
    /// Parses `HOST:PORT:ADDR`; `ADDR` may be an IPv6 address, bracketed or not.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.splitn(3, ':');
        let (Some(host), Some(port), Some(addr)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("expected HOST:PORT:ADDR, got {s:?}"));
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port in {s:?}"))?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = addr.parse().map_err(|_| format!("bad address in {s:?}"))?;
        if host.is_empty() {
            return Err(format!("empty host in {s:?}"));
        }
        Ok(ResolveOverride {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
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
        let provider = TokioRuntimeProvider::default();
        let mut builder = match opts.dns_server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    provider,
                )
            }
            None => TokioResolver::builder(provider)
                .map_err(|e| TransportInitError::ResolvConf(e.to_string()))?,
        };
        let o = builder.options_mut();
        // Every probe must see the network as it is now: no answer cache across probes.
        o.cache_size = 0;
        if opts.dns_server.is_some() {
            o.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        }
        let resolver = builder
            .build()
            .map_err(|e| TransportInitError::ResolvConf(e.to_string()))?;
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnKey {
    scheme: UrlScheme,
    host: String,
    port: u16,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One probe's view of the transport: it records phase timings and TLS facts and reuses
/// connections per `(scheme, host, port)`.
pub struct Session {
    transport: Arc<Transport>,
    deadline: Instant,
    conns: HashMap<ConnKey, Sender>,
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

    /// Sends `req`, following redirects as Go's `http.Client` does (containerd's `request.do`):
    /// at most [`MAX_REDIRECTS`] requests in all; 301/302/303 turn a POST into a GET without
    /// body; 307/308 keep method and body; a `Location` with bytes that are not ASCII is
    /// percent-encoded byte for byte (Go's `EscapedPath`).
    ///
    /// A credential follows a redirect only to the host the request was made to or a
    /// subdomain of it (Go's `shouldCopyHeaderOnRedirect`), and never from HTTPS down to plain
    /// HTTP. Elsewhere the `Authorization` header is dropped, as Go does; and a request with a
    /// body (the token POST, whose form holds the password) is not followed at all, where Go
    /// would re-send the body to any host on 307/308. A dropped credential is reported by
    /// [`Session::take_dropped_credential`].
    pub async fn send(&mut self, req: Request) -> Result<Response, TransportError> {
        self.dropped_credential = None;
        let origin = req.url.clone();
        let mut req = req;
        let mut sent = 0;
        loop {
            self.last_method = Some(req.method.clone());
            let resp = self.send_once(&req).await?;
            sent += 1;
            if !resp.status.is_redirection() || resp.status == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let Some(raw) = resp.headers.get(LOCATION) else {
                return Ok(resp);
            };
            let status = resp.status.as_u16();
            let from = url_authority(&req.url);
            let next = req.url.join(&location_text(raw.as_bytes())).map_err(|_| {
                TransportError::Redirect(format!(
                    "{from} answered {status} with a Location that is not a usable URL: \"{}\"",
                    super::evidence::excerpt(raw.as_bytes())
                ))
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(TransportError::Redirect(format!(
                    "{from} answered {status} with a redirect to the unsupported scheme {}",
                    super::evidence::excerpt(next.scheme().as_bytes())
                )));
            }
            if sent >= MAX_REDIRECTS {
                return Err(TransportError::Redirect(format!(
                    "stopped after {MAX_REDIRECTS} redirects (the last, {status} from {from} to {}): a redirect loop, or a chain longer than Go's client follows",
                    url_authority(&next)
                )));
            }
            let to = url_authority(&next);
            if matches!(status, 301..=303) && req.method == Method::POST {
                if !req.body.is_empty() {
                    self.dropped_credential = Some(format!(
                        "{from} answered the POST with {status}, which turns it into a GET to {to} without the form that holds the credential"
                    ));
                }
                req.method = Method::GET;
                req.body = Bytes::new();
                req.headers.remove(http::header::CONTENT_TYPE);
            }
            if !credential_may_follow(&origin, &next) {
                if !req.body.is_empty() {
                    return Err(TransportError::Redirect(format!(
                        "{from} redirected the {} ({status}) to {to}, a host the request was not made to: not followed, so its body, which holds the credential, is not sent there (Go's client would re-send it)",
                        req.method
                    )));
                }
                if req.headers.remove(AUTHORIZATION).is_some() {
                    self.dropped_credential = Some(format!(
                        "{from} redirected the {} ({status}) to {to}, a host the request was not made to, so the Authorization header was not sent there",
                        req.method
                    ));
                }
            }
            req.url = next;
        }
    }

    fn record(&mut self, phase: Phase, started: Instant) {
        self.phases.push((phase, started.elapsed().as_secs_f64()));
    }

    fn budget(&self, limit: Duration, phase: Phase) -> Result<Duration, TransportError> {
        let left = self.remaining();
        if left.is_zero() {
            return Err(TransportError::Deadline { phase });
        }
        Ok(limit.min(left))
    }

    async fn send_once(&mut self, req: &Request) -> Result<Response, TransportError> {
        let scheme = match req.url.scheme() {
            "http" => UrlScheme::Http,
            "https" => UrlScheme::Https,
            s => return Err(TransportError::InvalidUrl(format!("scheme {s}"))),
        };
        let host = req
            .url
            .host_str()
            .ok_or_else(|| TransportError::InvalidUrl("no host".into()))?
            .to_ascii_lowercase();
        let port = req
            .url
            .port_or_known_default()
            .ok_or_else(|| TransportError::InvalidUrl("no port".into()))?;
        let key = ConnKey {
            scheme,
            host: host.clone(),
            port,
        };
        let authority = match req.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };

        let pooled = match self.conns.remove(&key) {
            Some(mut s) if !s.is_closed() => s.ready().await.ok().map(|_| s),
            _ => None,
        };
        let (mut sender, via_proxy) = match pooled {
            Some(s) => (s, false),
            None => {
                self.connect(&key, &authority, req.tls.clone(), req.dial_timeout)
                    .await?
            }
        };

        let path_and_query = match req.url.query() {
            Some(q) => format!("{}?{}", req.url.path(), q),
            None => req.url.path().to_string(),
        };
        // Plain HTTP through a proxy uses the absolute form of the request target.
        let target = if via_proxy && scheme == UrlScheme::Http {
            req.url.as_str().to_string()
        } else {
            path_and_query
        };
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(target);
        {
            let h = builder.headers_mut().expect("fresh builder has headers");
            for (k, v) in &req.headers {
                h.append(k, v.clone());
            }
            h.insert(
                HOST,
                HeaderValue::from_str(&authority)
                    .map_err(|_| TransportError::InvalidUrl("host header".into()))?,
            );
            if !h.contains_key(USER_AGENT) {
                h.insert(USER_AGENT, self.transport.user_agent.clone());
            }
            if via_proxy && scheme == UrlScheme::Http {
                if let Some(auth) = self.proxy_auth(&req.url) {
                    h.insert(HeaderName::from_static("proxy-authorization"), auth);
                }
            }
        }
        let hreq = builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| TransportError::InvalidUrl(e.to_string()))?;

        let wait = self.budget(self.transport.timeouts.response_header, Phase::Challenge)?;
        let resp = match tokio::time::timeout(wait, sender.send_request(hreq)).await {
            Err(_) => {
                return Err(TransportError::Http {
                    host: authority,
                    kind: HttpFailure::HeaderTimeout,
                })
            }
            Ok(Err(e)) => {
                return Err(TransportError::Http {
                    host: authority,
                    kind: hyper_failure(&e),
                })
            }
            Ok(Ok(r)) => r,
        };
        let (parts, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        let mut truncated = false;
        if req.method != Method::HEAD {
            let left = self.remaining();
            let read = async {
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| hyper_failure(&e))?;
                    if let Ok(data) = frame.into_data() {
                        let room = req.body_cap.saturating_sub(buf.len());
                        if data.len() > room {
                            buf.extend_from_slice(&data[..room]);
                            truncated = true;
                            break;
                        }
                        buf.extend_from_slice(&data);
                    }
                }
                Ok::<(), HttpFailure>(())
            };
            match tokio::time::timeout(left, read).await {
                Err(_) => {
                    return Err(TransportError::Http {
                        host: authority,
                        kind: HttpFailure::BodyTimeout,
                    })
                }
                Ok(Err(kind)) => {
                    return Err(TransportError::Http {
                        host: authority,
                        kind,
                    })
                }
                Ok(Ok(())) => {}
            }
        }
        let closes = parts
            .headers
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if !truncated && !closes {
            self.conns.insert(key, sender);
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::from(buf),
            truncated,
            url: req.url.clone(),
        })
    }

    fn proxy_for(&self, url: &Url) -> Option<hyper_util::client::proxy::matcher::Intercept> {
        let m = self.transport.proxy.as_ref()?;
        let host = url.host_str()?;
        // Go's ProxyFromEnvironment never proxies localhost or loopback addresses.
        if is_loopback_host(host) {
            return None;
        }
        let uri: http::Uri = url.as_str().parse().ok()?;
        m.intercept(&uri)
    }

    fn proxy_auth(&self, url: &Url) -> Option<HeaderValue> {
        self.proxy_for(url).and_then(|i| i.basic_auth().cloned())
    }

    async fn connect(
        &mut self,
        key: &ConnKey,
        authority: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        dial_timeout: Option<Duration>,
    ) -> Result<(Sender, bool), TransportError> {
        let dial_limit = match dial_timeout {
            Some(d) if d.is_zero() => Duration::MAX,
            Some(d) => d,
            None => self.transport.timeouts.dial,
        };
        let url = Url::parse(&format!(
            "{}://{}/",
            if key.scheme == UrlScheme::Https {
                "https"
            } else {
                "http"
            },
            authority
        ))
        .map_err(|e| TransportError::InvalidUrl(e.to_string()))?;
        let intercept = self.proxy_for(&url);

        let (tcp, via_proxy) = match &intercept {
            None => (self.dial(&key.host, key.port, dial_limit).await?, false),
            Some(i) => {
                let puri = i.uri().clone();
                let phost = puri
                    .host()
                    .unwrap_or("")
                    .trim_matches(['[', ']'])
                    .to_string();
                let pport = puri.port_u16().unwrap_or(match puri.scheme_str() {
                    Some("https") => 443,
                    _ => 80,
                });
                let pname = format!("{phost}:{pport}");
                if puri.scheme_str() == Some("https") {
                    return Err(TransportError::Proxy {
                        proxy: pname,
                        detail: "HTTPS proxies are not supported; use an http:// proxy URL".into(),
                    });
                }
                let mut tcp = match self.dial(&phost, pport, dial_limit).await {
                    Ok(t) => t,
                    Err(e) => {
                        return Err(TransportError::Proxy {
                            proxy: pname,
                            detail: e.to_string(),
                        })
                    }
                };
                if key.scheme == UrlScheme::Https {
                    let started = Instant::now();
                    let auth = i.basic_auth().cloned();
                    let wait = self.budget(dial_limit, Phase::Connect)?;
                    let res = tokio::time::timeout(
                        wait,
                        proxy_connect(&mut tcp, &key.host, key.port, auth),
                    )
                    .await;
                    self.record(Phase::Connect, started);
                    match res {
                        Err(_) => {
                            return Err(TransportError::Proxy {
                                proxy: pname,
                                detail: "no answer to CONNECT in time".into(),
                            })
                        }
                        Ok(Err(detail)) => {
                            return Err(TransportError::Proxy {
                                proxy: pname,
                                detail,
                            })
                        }
                        Ok(Ok(())) => (tcp, false),
                    }
                } else {
                    (tcp, true)
                }
            }
        };

        let io: Box<dyn Io> = match key.scheme {
            UrlScheme::Http => Box::new(tcp),
            UrlScheme::Https => {
                let cfg = tls.ok_or_else(|| {
                    TransportError::InvalidUrl("https URL without a TLS configuration".into())
                })?;
                Box::new(self.tls_handshake(tcp, &key.host, authority, cfg).await?)
            }
        };
        let wait = self.budget(self.transport.timeouts.response_header, Phase::Challenge)?;
        let hs = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES)
            .handshake::<_, Full<Bytes>>(TokioIo::new(io));
        let (sender, conn) = match tokio::time::timeout(wait, hs).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                return Err(TransportError::Http {
                    host: authority.to_string(),
                    kind: hyper_failure(&e),
                })
            }
            Err(_) => {
                return Err(TransportError::Http {
                    host: authority.to_string(),
                    kind: HttpFailure::HeaderTimeout,
                })
            }
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, via_proxy))
    }

    /// Resolves and connects, recording `resolve` and `connect`.
    async fn dial(
        &mut self,
        host: &str,
        port: u16,
        limit: Duration,
    ) -> Result<TcpStream, TransportError> {
        let addrs = self.resolve(host, port, limit).await?;
        let started = Instant::now();
        let total = self.budget(limit, Phase::Connect)?;
        let mut last = ConnectFailure::Other("no address".into());
        let mut last_addr = String::new();
        for (i, ip) in addrs.iter().enumerate() {
            // Go's dialSerial: each remaining address gets an equal share of what is left.
            let left = total.saturating_sub(started.elapsed());
            let share = left / (addrs.len() - i) as u32;
            let sa = SocketAddr::new(*ip, port);
            last_addr = sa.to_string();
            match tokio::time::timeout(share, TcpStream::connect(sa)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    self.record(Phase::Connect, started);
                    self.note_connected(host, &sa);
                    return Ok(s);
                }
                Ok(Err(e)) => last = connect_failure(&e),
                Err(_) => last = ConnectFailure::Timeout,
            }
        }
        self.record(Phase::Connect, started);
        Err(TransportError::Connect {
            addr: last_addr,
            kind: last,
        })
    }

    async fn resolve(
        &mut self,
        host: &str,
        port: u16,
        limit: Duration,
    ) -> Result<Vec<IpAddr>, TransportError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.phases.push((Phase::Resolve, 0.0));
            self.note_resolved(host, "literal", &[ip]);
            return Ok(vec![ip]);
        }
        if let Some(o) = self
            .transport
            .overrides
            .iter()
            .find(|o| o.host == host && o.port == port)
        {
            let addr = o.addr;
            self.phases.push((Phase::Resolve, 0.0));
            self.note_resolved(host, "--resolve", &[addr]);
            return Ok(vec![addr]);
        }
        let started = Instant::now();
        // Go resolves inside the dialer, so the dial timeout bounds the lookup too.
        let wait = self.budget(limit, Phase::Resolve)?;
        // A trailing dot makes the name absolute so no search domain is tried when the name
        // has enough dots; hickory applies ndots/search like Go for relative names.
        let res = tokio::time::timeout(wait, self.transport.resolver.lookup_ip(host)).await;
        self.record(Phase::Resolve, started);
        let kind = match res {
            Err(_) => DnsFailure::Timeout,
            Ok(Ok(lookup)) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    DnsFailure::NoRecords
                } else {
                    // Go prefers IPv4 first only through Happy Eyeballs; keep the order given.
                    self.note_resolved(host, "dns", &ips);
                    return Ok(ips);
                }
            }
            Ok(Err(e)) => dns_failure(&e),
        };
        self.note_resolved(host, "dns", &[]);
        Err(TransportError::Dns {
            host: host.to_string(),
            kind,
        })
    }

    fn note_resolved(&mut self, host: &str, source: &str, ips: &[IpAddr]) {
        self.network.push(NetworkStep {
            host: host.to_string(),
            source: source.to_string(),
            addresses: ips.iter().map(IpAddr::to_string).collect(),
            connected: None,
        });
    }

    fn note_connected(&mut self, host: &str, addr: &SocketAddr) {
        if let Some(step) = self.network.iter_mut().rev().find(|n| n.host == host) {
            step.connected = Some(addr.to_string());
        }
    }

    async fn tls_handshake(
        &mut self,
        tcp: TcpStream,
        host: &str,
        authority: &str,
        cfg: Arc<rustls::ClientConfig>,
    ) -> Result<tokio_rustls::client::TlsStream<Sniff<TcpStream>>, TransportError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(bare.to_string()).map_err(|_| {
            TransportError::InvalidUrl(format!("{host:?} is not a valid TLS server name"))
        })?;
        let started = Instant::now();
        let wait = self.budget(self.transport.timeouts.tls, Phase::Tls)?;
        let sniff = Sniff::new(tcp);
        let seen = sniff.seen.clone();
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let res = tokio::time::timeout(wait, connector.connect(name, sniff)).await;
        self.record(Phase::Tls, started);
        match res {
            Err(_) => Err(TransportError::Tls {
                host: host.to_string(),
                kind: TlsFailure::Timeout,
            }),
            Ok(Err(e)) => {
                let first = seen.lock().map(|s| s.clone()).unwrap_or_default();
                Err(TransportError::Tls {
                    host: host.to_string(),
                    kind: tls_failure(&e, &first),
                })
            }
            Ok(Ok(stream)) => {
                if let Some(certs) = stream.get_ref().1.peer_certificates() {
                    if let Some(info) = tls_info(certs) {
                        self.tls.insert(authority.to_string(), info);
                    }
                }
                Ok(stream)
            }
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A stream that remembers the first bytes the server sent, so a TLS failure can tell "the
/// server answered in plain HTTP" (its first bytes are `HTTP/`) from the bytes themselves, as
/// Go's `tls.RecordHeaderError` check does.
struct Sniff<S> {
    inner: S,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<S> Sniff<S> {
    fn new(inner: S) -> Self {
        Sniff {
            inner,
            seen: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            if let Ok(mut seen) = self.seen.lock() {
                if seen.len() < 5 {
                    let new = &buf.filled()[before..];
                    let take = (5 - seen.len()).min(new.len());
                    seen.extend_from_slice(&new[..take]);
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sends `CONNECT host:port` and reads the proxy's answer (head capped at 8 KiB).
/// Errors are the status line or the socket error, never the proxy credential.
async fn proxy_connect(
    tcp: &mut TcpStream,
    host: &str,
    port: u16,
    auth: Option<HeaderValue>,
) -> Result<(), String> {
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(a) = auth {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(a.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    tcp.write_all(&head)
        .await
        .map_err(|e| e.kind().to_string())?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| e.kind().to_string())?;
        if n == 0 {
            return Err("proxy closed the connection during CONNECT".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > 8192 {
            return Err("proxy answer to CONNECT too large".into());
        }
    }
    let line_end = buf.iter().position(|b| *b == b'\r').unwrap_or(buf.len());
    let line = super::evidence::excerpt(&buf[..line_end.min(200)]);
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else {
        Err(format!("CONNECT refused: {line}"))
    }
}

/// `host[:port]` of a URL, for messages.
fn url_authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// A `Location` value as text: bytes that are not ASCII are percent-encoded, as Go's `net/url`
/// does when it sends a path it parsed from raw bytes. (hyper has already refused NUL and the
/// other control bytes.)
fn location_text(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a credential of a request to `origin` may be sent to `next` after a redirect: the
/// same host or a subdomain of it (Go's `isDomainOrSubdomain`; ports are not compared, as in
/// Go), and no downgrade from HTTPS to plain HTTP.
fn credential_may_follow(origin: &Url, next: &Url) -> bool {
    if origin.scheme() == "https" && next.scheme() != "https" {
        return false;
    }
    let (Some(o), Some(n)) = (origin.host_str(), next.host_str()) else {
        return false;
    };
    let (o, n) = (o.to_ascii_lowercase(), n.to_ascii_lowercase());
    if n == o {
        return true;
    }
    let is_ip = o.starts_with('[') || o.parse::<IpAddr>().is_ok();
    !is_ip && n.ends_with(&format!(".{o}"))
}

/// `true` for `localhost` and loopback IP literals (with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn dns_failure(e: &NetError) -> DnsFailure {
    if e.is_nx_domain() {
        return DnsFailure::NxDomain;
    }
    if e.is_no_records_found() {
        return DnsFailure::NoRecords;
    }
    match e {
        NetError::Timeout => DnsFailure::Timeout,
        NetError::Dns(DnsError::ResponseCode(rc)) => DnsFailure::ServerError(response_code(*rc)),
        NetError::Io(io) if io.kind() == io::ErrorKind::TimedOut => DnsFailure::Timeout,
        other => DnsFailure::Other(other.to_string()),
    }
}

fn response_code(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn connect_failure(e: &io::Error) -> ConnectFailure {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => ConnectFailure::Refused,
        K::TimedOut => ConnectFailure::Timeout,
        K::HostUnreachable | K::NetworkUnreachable => ConnectFailure::Unreachable,
        k => match e.raw_os_error() {
            // EHOSTUNREACH, ENETUNREACH on Linux.
            Some(113) | Some(101) => ConnectFailure::Unreachable,
            _ => ConnectFailure::Other(k.to_string()),
        },
    }
}

fn hyper_failure(e: &hyper::Error) -> HttpFailure {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return HttpFailure::Closed;
    }
    if e.is_timeout() {
        return HttpFailure::HeaderTimeout;
    }
    if e.is_parse_too_large() {
        return HttpFailure::HeadTooLarge;
    }
    if e.is_parse() || e.is_parse_status() {
        return HttpFailure::Protocol("not an HTTP/1.1 response".into());
    }
    // An I/O error under hyper: a reset or broken pipe mid-exchange.
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.downcast_ref::<io::Error>().is_some() {
            return HttpFailure::Closed;
        }
        src = s.source();
    }
    HttpFailure::Protocol(e.to_string())
}

/// Finds the `rustls::Error` inside an `io::Error` from tokio-rustls (it may be wrapped in
/// further `io::Error`s, which `source()` does not walk: `crates.md` §2.3, gotcha 1).
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    let mut inner: &(dyn std::error::Error + Send + Sync + 'static) = e.get_ref()?;
    loop {
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        inner = inner.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

fn tls_failure(e: &io::Error, first_bytes: &[u8]) -> TlsFailure {
    if first_bytes.starts_with(b"HTTP/") {
        return TlsFailure::PlainHttp;
    }
    let Some(r) = rustls_error(e) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => TlsFailure::Handshake(
                "the server closed the connection during the handshake".into(),
            ),
            io::ErrorKind::ConnectionReset => {
                TlsFailure::Handshake("the server reset the connection during the handshake".into())
            }
            k => TlsFailure::Handshake(k.to_string()),
        };
    };
    use rustls::CertificateError as C;
    match r {
        rustls::Error::InvalidCertificate(ce) => match ce {
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => {
                TlsFailure::Untrusted(format!("{ce:?}"))
            }
            C::NotValidForName => TlsFailure::HostnameMismatch(String::new()),
            C::NotValidForNameContext {
                expected,
                presented,
            } => TlsFailure::HostnameMismatch(format!(
                "valid for {}, not {:?}",
                super::evidence::excerpt(presented.join(", ").as_bytes()),
                expected
            )),
            C::Expired | C::NotValidYet => TlsFailure::Expired(format!("{ce:?}")),
            C::ExpiredContext { time, not_after } => TlsFailure::Expired(format!(
                "expired at {}, now {}",
                fmt_unix(not_after.as_secs() as i64),
                fmt_unix(time.as_secs() as i64)
            )),
            C::NotValidYetContext { time, not_before } => TlsFailure::Expired(format!(
                "not valid before {}, now {}",
                fmt_unix(not_before.as_secs() as i64),
                fmt_unix(time.as_secs() as i64)
            )),
            C::Other(o) => {
                // webpki reports a self-signed CA certificate used as the server certificate
                // as `CaUsedAsEndEntity`; Go calls that an unknown authority.
                let text = format!("{o:?}");
                if text.contains("CaUsedAsEndEntity") || text.contains("UnknownIssuer") {
                    TlsFailure::Untrusted(text)
                } else {
                    TlsFailure::Handshake(format!("invalid certificate: {text}"))
                }
            }
            other => TlsFailure::Untrusted(format!("{other:?}")),
        },
        rustls::Error::AlertReceived(a) => {
            TlsFailure::Handshake(format!("server sent alert {a:?}"))
        }
        rustls::Error::InvalidMessage(m) => {
            TlsFailure::Handshake(format!("invalid TLS message {m:?}"))
        }
        rustls::Error::NoApplicationProtocol => {
            TlsFailure::Handshake("the server does not speak HTTP/1.1 (ALPN)".into())
        }
        other => TlsFailure::Handshake(format!("{other:?}")),
    }
}

fn fmt_unix(secs: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64),
    )
    .to_string()
}

/// Subject, issuer and expiry of a presented chain (leaf first), parsed with x509-parser.
fn tls_info(certs: &[rustls_pki_types::CertificateDer<'_>]) -> Option<TlsInfo> {
    let mut info = TlsInfo::default();
    let mut earliest = i64::MAX;
    for (i, der) in certs.iter().enumerate() {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
            continue;
        };
        let na = cert.validity().not_after.timestamp();
        earliest = earliest.min(na);
        if i == 0 {
            // Names are the peer's bytes (a UTF8String may hold control characters).
            info.subject = super::evidence::excerpt(cert.subject().to_string().as_bytes());
            info.issuer = super::evidence::excerpt(cert.issuer().to_string().as_bytes());
            info.leaf_not_after = na;
        }
    }
    if earliest == i64::MAX {
        return None;
    }
    info.chain_earliest_not_after = earliest;
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_override_parses() {
        let o: ResolveOverride = "registry.test:5000:127.0.0.1".parse().unwrap();
        assert_eq!(o.host, "registry.test");
        assert_eq!(o.port, 5000);
        assert_eq!(o.addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        let o: ResolveOverride = "r.test:443:[::1]".parse().unwrap();
        assert_eq!(o.addr, "::1".parse::<IpAddr>().unwrap());
        assert!("r.test:x:127.0.0.1".parse::<ResolveOverride>().is_err());
        assert!("r.test:1".parse::<ResolveOverride>().is_err());
        assert!(":1:127.0.0.1".parse::<ResolveOverride>().is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.5"));
        assert!(is_loopback_host("[::1]"));
        assert!(!is_loopback_host("registry.test"));
        assert!(!is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn plain_http_is_recognised_from_the_bytes() {
        let e = io::Error::new(io::ErrorKind::InvalidData, "whatever");
        assert_eq!(tls_failure(&e, b"HTTP/"), TlsFailure::PlainHttp);
        assert_ne!(tls_failure(&e, b"\x15\x03\x03"), TlsFailure::PlainHttp);
    }

    #[test]
    fn rustls_errors_are_found_inside_nested_io_errors() {
        let r = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = io::Error::new(io::ErrorKind::InvalidData, r);
        let outer = io::Error::other(inner);
        assert!(matches!(tls_failure(&outer, b""), TlsFailure::Untrusted(_)));
        let r = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let e = io::Error::new(io::ErrorKind::InvalidData, r);
        assert!(matches!(tls_failure(&e, b""), TlsFailure::Expired(_)));
        let r = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let e = io::Error::new(io::ErrorKind::InvalidData, r);
        assert!(matches!(
            tls_failure(&e, b""),
            TlsFailure::HostnameMismatch(_)
        ));
    }

    #[test]
    fn credentials_follow_a_redirect_only_to_the_same_host_or_a_subdomain() {
        let u = |s: &str| Url::parse(s).unwrap();
        let follows = |a: &str, b: &str| credential_may_follow(&u(a), &u(b));
        // Go's rule: the same host name (any port) or a subdomain of it.
        assert!(follows(
            "https://auth.example/t",
            "https://AUTH.example:8443/x"
        ));
        assert!(follows("https://example.com/t", "https://eu.example.com/t"));
        assert!(follows("http://auth.example/t", "https://auth.example/t"));
        assert!(!follows(
            "https://eu.example.com/t",
            "https://example.com/t"
        ));
        assert!(!follows(
            "https://example.com/t",
            "https://badexample.com/t"
        ));
        assert!(!follows("http://127.0.0.1:1/t", "http://127.0.0.2:1/t"));
        assert!(!follows("http://[::1]:1/t", "http://[::2]:1/t"));
        // Never from HTTPS down to plain HTTP, even on the same host.
        assert!(!follows("https://auth.example/t", "http://auth.example/t"));
    }

    #[test]
    fn a_location_beyond_ascii_is_percent_encoded_byte_for_byte() {
        assert_eq!(location_text(b"/v2/\xff\xfe\xc3\x28"), "/v2/%FF%FE%C3(");
        assert_eq!(
            location_text(b"https://r.example/v2/"),
            "https://r.example/v2/"
        );
        let next = Url::parse("http://r.example/v2/")
            .unwrap()
            .join(&location_text(b"http://\xff\xfe:1/"));
        assert!(next.is_err(), "{next:?}");
    }

    #[test]
    fn connect_errors_are_typed() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(connect_failure(&e), ConnectFailure::Refused);
        let e = io::Error::from_raw_os_error(113);
        assert_eq!(connect_failure(&e), ConnectFailure::Unreachable);
        let e = io::Error::from_raw_os_error(101);
        assert_eq!(connect_failure(&e), ConnectFailure::Unreachable);
    }

    /// A transport for loopback tests: no proxy, and a DNS server that is never asked
    /// (IP literals need no lookup).
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

    #[tokio::test]
    async fn refused_port_gives_a_typed_connect_error_with_timings() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let t = loopback_transport();
        let mut s = t.session(Instant::now() + Duration::from_secs(5));
        let url = Url::parse(&format!("http://127.0.0.1:{port}/v2/")).unwrap();
        let err = s
            .send(Request::new(Method::GET, url, None))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Connect {
                    kind: ConnectFailure::Refused,
                    ..
                }
            ),
            "{err:?}"
        );
        let phases: Vec<Phase> = s.take_phases().into_iter().map(|(p, _)| p).collect();
        assert_eq!(phases, vec![Phase::Resolve, Phase::Connect]);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_awaiting_headers() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let t = loopback_transport();
        let mut s = t.session(Instant::now() + Duration::from_millis(300));
        let url = Url::parse(&format!("http://127.0.0.1:{port}/v2/")).unwrap();
        let err = s
            .send(Request::new(Method::GET, url, None))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Http {
                    kind: HttpFailure::HeaderTimeout,
                    ..
                }
            ),
            "{err:?}"
        );
        keep.abort();
    }
}
