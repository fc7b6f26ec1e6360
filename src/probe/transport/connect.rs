//! TCP connections: the dial budget split between addresses (Go's `dialSerial`), and the
//! proxy from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (`CONNECT` for HTTPS, the absolute request
//! form for plain HTTP), never for loopback hosts.

use super::{excerpt, ConnKey, ConnectFailure, Session, TransportError, UrlScheme};
use crate::probe::outcome::Phase;
use http::header::HeaderValue;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

impl Session {
    /// The proxy the environment names for `url`, if any (none for a loopback host).
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

    /// The `Proxy-Authorization` for the proxy of `url` (from the proxy URL's user), if any.
    pub(super) fn proxy_auth(&self, url: &Url) -> Option<HeaderValue> {
        self.proxy_for(url).and_then(|i| i.basic_auth().cloned())
    }

    /// Opens the TCP stream for `key`: directly, or through the proxy (with `CONNECT` for
    /// HTTPS). Returns whether requests go through the proxy as plain HTTP (absolute form).
    pub(super) async fn open_tcp(
        &mut self,
        key: &ConnKey,
        authority: &str,
        dial_timeout: Option<Duration>,
    ) -> Result<(TcpStream, bool), TransportError> {
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

        let opened = match &intercept {
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
        Ok(opened)
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

    /// Records the address the last resolution of `host` connected to.
    fn note_connected(&mut self, host: &str, addr: &SocketAddr) {
        if let Some(step) = self.network.iter_mut().rev().find(|n| n.host == host) {
            step.connected = Some(addr.to_string());
        }
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
    let line = excerpt(&buf[..line_end.min(200)]);
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else {
        Err(format!("CONNECT refused: {line}"))
    }
}

/// `true` for `localhost` and loopback IP literals (with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// The typed failure of a TCP connect.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::transport::{loopback_transport, Request};
    use http::Method;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.5"));
        assert!(is_loopback_host("[::1]"));
        assert!(!is_loopback_host("registry.test"));
        assert!(!is_loopback_host("10.0.0.1"));
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
}
