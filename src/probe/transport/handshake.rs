//! The TLS handshake over an open TCP stream, its typed failure (from the `rustls::Error`, or
//! "plain HTTP" from the first bytes the server sent) and the facts of the presented chain.
//! The rustls configurations are built in [`crate::probe::tls`].

use super::{excerpt, Session, TlsFailure, TransportError};
use crate::probe::outcome::{Phase, TlsInfo};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

impl Session {
    /// Runs the TLS handshake with `host` over `tcp`, recording `tls` and, on success, the
    /// chain's facts under `authority`. `limit` replaces [`super::Timeouts::tls`].
    pub(super) async fn tls_handshake(
        &mut self,
        tcp: TcpStream,
        host: &str,
        authority: &str,
        cfg: Arc<rustls::ClientConfig>,
        limit: Option<std::time::Duration>,
    ) -> Result<tokio_rustls::client::TlsStream<Sniff<TcpStream>>, TransportError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(bare.to_string()).map_err(|_| {
            TransportError::InvalidUrl(format!("{host:?} is not a valid TLS server name"))
        })?;
        let started = Instant::now();
        let wait = self.budget(limit.unwrap_or(self.transport.timeouts.tls), Phase::Tls)?;
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

/// A stream that remembers the first bytes the server sent, so a TLS failure can tell "the
/// server answered in plain HTTP" (its first bytes are `HTTP/`) from the bytes themselves, as
/// Go's `tls.RecordHeaderError` check does.
pub(super) struct Sniff<S> {
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

/// Finds the `rustls::Error` inside an `io::Error` from tokio-rustls (it may be wrapped in
/// further `io::Error`s, which `source()` does not walk: `docs/containerd-kubelet.md` §10.2, item 3).
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    let mut inner: &(dyn std::error::Error + Send + Sync + 'static) = e.get_ref()?;
    loop {
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        inner = inner.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

/// The typed failure of a handshake; `first_bytes` are the first bytes the server sent.
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
                excerpt(presented.join(", ").as_bytes()),
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

/// A Unix time in RFC 3339 (seconds), for expiry messages.
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
            info.subject = excerpt(cert.subject().to_string().as_bytes());
            info.issuer = excerpt(cert.issuer().to_string().as_bytes());
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
}
