//! The HTTP/1.1 exchange with hyper: the request head, the response headers' deadline, the
//! body read up to its cap, connection reuse, and redirects with Go's rules, including which
//! credential may follow one.

use super::{
    authority, excerpt, ConnKey, HttpFailure, Request, Response, Sender, Session, TransportError,
    UrlScheme, MAX_HEAD_BYTES, MAX_REDIRECTS,
};
use crate::probe::outcome::Phase;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST, LOCATION, USER_AGENT};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

impl Session {
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
            let from = authority(&req.url);
            let next = req.url.join(&location_text(raw.as_bytes())).map_err(|_| {
                TransportError::Redirect(format!(
                    "{from} answered {status} with a Location that is not a usable URL: \"{}\"",
                    excerpt(raw.as_bytes())
                ))
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(TransportError::Redirect(format!(
                    "{from} answered {status} with a redirect to the unsupported scheme {}",
                    excerpt(next.scheme().as_bytes())
                )));
            }
            if sent >= MAX_REDIRECTS {
                return Err(TransportError::Redirect(format!(
                    "stopped after {MAX_REDIRECTS} redirects (the last, {status} from {from} to {}): a redirect loop, or a chain longer than Go's client follows",
                    authority(&next)
                )));
            }
            let to = authority(&next);
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

    /// Sends one request (no redirect) on a pooled connection to its scheme, host and port, or
    /// a new one, and reads the body up to its cap. The connection goes back to the pool
    /// unless the body was cut or the server asked to close it.
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
            Some(mut c) if !c.sender.is_closed() => {
                // Bounded like every step: a pooled connection that does not get ready within
                // the probe's budget is dropped for a new one (which then meets the deadline).
                let ready = c.driver.drive(c.sender.ready());
                match tokio::time::timeout(self.remaining(), ready).await {
                    Ok(Ok(())) => Some(c),
                    _ => None,
                }
            }
            _ => None,
        };
        let (mut conn, via_proxy) = match pooled {
            Some(c) => (c, false),
            None => {
                self.connect(
                    &key,
                    &authority,
                    req.tls.clone(),
                    req.dial_timeout,
                    req.tls_timeout,
                )
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
        let answer = conn.sender.send_request(hreq);
        let resp = match tokio::time::timeout(wait, conn.driver.drive(answer)).await {
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
            match tokio::time::timeout(left, conn.driver.drive(read)).await {
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
            self.conns.insert(key, conn);
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::from(buf),
            truncated,
            url: req.url.clone(),
        })
    }

    /// Opens a connection for `key` (TCP or proxy, then TLS for HTTPS) and runs hyper's
    /// HTTP/1.1 handshake on it. Returns the sender and whether it talks plain HTTP to a proxy
    /// (requests then use the absolute form).
    async fn connect(
        &mut self,
        key: &ConnKey,
        authority: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        dial_timeout: Option<Duration>,
        tls_timeout: Option<Duration>,
    ) -> Result<(Conn, bool), TransportError> {
        let (tcp, via_proxy) = self.open_tcp(key, authority, dial_timeout).await?;

        let io: Box<dyn Io> = match key.scheme {
            UrlScheme::Http => Box::new(tcp),
            UrlScheme::Https => {
                let cfg = tls.ok_or_else(|| {
                    TransportError::InvalidUrl("https URL without a TLS configuration".into())
                })?;
                Box::new(
                    self.tls_handshake(tcp, &key.host, authority, cfg, tls_timeout)
                        .await?,
                )
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
        let conn = Conn {
            sender,
            driver: Driver {
                conn: Box::pin(conn),
                ended: false,
            },
        };
        Ok((conn, via_proxy))
    }
}

/// One HTTP/1.1 connection of a session: hyper's request half, and the connection itself,
/// which the probe's own task polls while it waits for an answer ([`Driver::drive`]) instead
/// of a task spawned per connection (hyper's `client::conn` examples): no task, its wake-ups and
/// its graceful `shutdown` per connection (`BENCHMARKS.md`, issue 16's fifth round). Dropping it
/// closes the socket; nothing runs after the probe ends.
pub(super) struct Conn {
    sender: Sender,
    driver: Driver,
}

/// hyper's connection future over plain TCP or TLS.
type Connection = hyper::client::conn::http1::Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>;

/// The connection half of a [`Conn`].
struct Driver {
    conn: Pin<Box<Connection>>,
    /// The connection future finished (closed or failed): it is not polled again, and the
    /// request half then fails with "closed", as it does when a spawned connection ends.
    ended: bool,
}

impl Driver {
    /// Polls `fut` to its end, polling the connection first on every wake-up so that the
    /// request is written and the answer read. Callers bound it with a timeout.
    async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            if !self.ended && self.conn.as_mut().poll(cx).is_ready() {
                self.ended = true;
            }
            fut.as_mut().poll(cx)
        })
        .await
    }
}

/// A stream hyper speaks over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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

/// The typed failure of a hyper exchange.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::transport::loopback_transport;
    use std::time::Instant;

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
