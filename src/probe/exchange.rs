//! Steps shared by the credential probe ([`super::credential`]) and the pull probe
//! ([`super::pull`]): per-host TLS settings and requests, a timed and recorded exchange,
//! containerd's HTTP fallback rule, and building a token request from a Bearer challenge.

use http::header::AUTHORIZATION;
use http::Method;
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};
use url::Url;

use super::challenge::{parse_challenges, Challenge};
use super::classify::{Failure, Peer};
use super::evidence;
use super::outcome::{Exchange, Phase, ProbeResult};
use super::redact::Redactor;
use super::tls::{client_config, NodeRoots};
use super::transport::{Request, Response, Session, TlsFailure, TransportError};
use crate::hosts::{RegistryHost, Scheme as HostScheme};
use std::collections::HashMap;
use std::sync::Mutex;

/// The node's trust anchors and the rustls configurations built from them, one per distinct
/// host TLS settings (hosts.toml `ca`, `client`, `skip_verify`). Building a configuration walks
/// the whole node bundle, so probes share them, across reloads too: an entry is rebuilt only
/// when one of its CA, certificate or key files changed (its [`file_stamps`] differ).
pub struct TlsConfigs {
    roots: NodeRoots,
    /// Settings → (file stamps when built, configuration, where its trust comes from).
    cache: Mutex<HashMap<String, CachedConfig>>,
}

type CachedConfig = (String, Arc<rustls::ClientConfig>, String);

/// `(device, inode, length, mtime)` of each of `host`'s CA and client files, symlinks followed
/// (kubelet's `..data` swap changes the inode), or `-` for one that cannot be stat'ed.
pub fn file_stamps(host: &RegistryHost) -> String {
    use std::os::unix::fs::MetadataExt;
    let files = host.ca_files.iter().chain(
        host.client_pairs
            .iter()
            .flat_map(|(c, k)| std::iter::once(c).chain(k.iter())),
    );
    files
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => format!(
                "{}:{}:{}:{}.{}",
                m.dev(),
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            ),
            Err(_) => "-".to_string(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

impl TlsConfigs {
    /// Over the node's `roots`, with an empty cache.
    pub fn new(roots: NodeRoots) -> TlsConfigs {
        TlsConfigs {
            roots,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration for `host`'s TLS settings (built once, then shared), and where its
    /// trust comes from. Errors: an unreadable or invalid CA or client file.
    pub fn get(
        &self,
        host: &RegistryHost,
    ) -> Result<(Arc<rustls::ClientConfig>, String), super::tls::TlsConfigError> {
        let key = format!(
            "{:?}|{:?}|{:?}",
            host.skip_verify, host.ca_files, host.client_pairs
        );
        let stamps = file_stamps(host);
        if let Some((_, config, source)) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).filter(|e| e.0 == stamps).cloned())
        {
            return Ok((config, source));
        }
        let built = client_config(host, &self.roots)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, (stamps, built.0.clone(), built.1.clone()));
        }
        Ok(built)
    }

    /// Forgets every built configuration (the inputs were re-read).
    pub fn clear(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }
}

/// The rustls configuration of an `https` host (hosts.toml `ca`, `client`, `skip_verify` on
/// top of the node's roots), or `None` for plain HTTP. A CA or client file that cannot be
/// loaded is a TLS failure of the host (containerd fails the pull before any request).
pub fn tls_for(
    host: &RegistryHost,
    tls: &TlsConfigs,
    result: &mut ProbeResult,
) -> Result<Option<Arc<rustls::ClientConfig>>, Failure> {
    match host.scheme {
        HostScheme::Http => Ok(None),
        HostScheme::Https => match tls.get(host) {
            Ok((cfg, source)) => {
                result
                    .notes
                    .push(super::outcome::Note::TlsTrust(source.to_string()));
                Ok(Some(cfg))
            }
            Err(e) => Err(Failure::Transport {
                peer: Peer::Registry,
                error: TransportError::Tls {
                    host: host.host.clone(),
                    kind: TlsFailure::Untrusted(format!("cannot load TLS settings: {e}")),
                },
            }),
        },
    }
}

/// The TLS settings for the token realm: the host's own (containerd's authorizer uses the
/// host's HTTP client for the realm too), or, for a plain-HTTP host, a client built from the
/// same hosts.toml settings over the node's roots (shared through [`TlsConfigs`]), so that an
/// `https://` realm (or a realm redirecting to HTTPS) works, as it does with Go's transport.
pub fn realm_tls(
    host: &RegistryHost,
    tls: &TlsConfigs,
    host_tls: &Option<Arc<rustls::ClientConfig>>,
) -> Option<Arc<rustls::ClientConfig>> {
    host_tls
        .clone()
        .or_else(|| tls.get(host).ok().map(|(cfg, _)| cfg))
}

/// A request to the registry host with that host's `dial_timeout` and its hosts.toml
/// `[host."…".header]` headers.
pub fn host_request(
    host: &RegistryHost,
    method: Method,
    url: Url,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Request {
    let mut r = Request::new(method, url, tls);
    r.dial_timeout = host.dial_timeout;
    add_host_headers(&mut r.headers, host);
    r
}

/// Appends the host's hosts.toml `header` values to `headers`, each marked sensitive (a header
/// may carry an API key; it is never logged, and [`redactor`] keeps it out of evidence).
///
/// containerd sends them on every request to that host: `core/remotes/docker/resolver.go`
/// `dockerBase.request` appends `host.Header` to each registry request, and
/// `core/remotes/docker/config/hosts.go` `ConfigureHosts` gives a host with headers its own
/// authorizer built `WithAuthHeader(host.header)`, so `auth.FetchToken` /
/// `FetchTokenWithOAuth` (`auth/fetch.go`) send them on the token GET and POST too. A name or
/// value Go's transport would refuse was already reported by [`crate::hosts`] and is skipped.
pub fn add_host_headers(headers: &mut http::HeaderMap, host: &RegistryHost) {
    for (name, value) in &host.headers {
        let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            continue;
        };
        value.set_sensitive(true);
        headers.append(name, value);
    }
}

/// What evidence must never show for requests to `host`: every form of the credential (`user`,
/// `secret`: [`super::redact::credential_forms`], the base64 `user:password` among them) and
/// every hosts.toml header value of the host, derived once for the probe.
pub fn redactor(host: &RegistryHost, user: &str, secret: &str) -> Redactor {
    let forms = super::redact::credential_forms(user, secret);
    Redactor::new(forms.iter().chain(host.headers.iter().map(|(_, v)| v)))
}

/// A request with an `Authorization` header (marked sensitive by its builder).
pub fn with_authorization(mut req: Request, authorization: Option<http::HeaderValue>) -> Request {
    if let Some(a) = authorization {
        req.headers.insert(AUTHORIZATION, a);
    }
    req
}

/// Moves what the session recorded since `started` into `result` (DNS answers and connections,
/// and the resolve/connect/tls times) and returns the rest of the time since `started`: the
/// HTTP exchanges themselves, which the caller books on its own phase.
pub fn http_seconds(session: &mut Session, started: Instant, result: &mut ProbeResult) -> f64 {
    let mut setup = 0.0;
    result.network.extend(session.take_network());
    for (p, s) in session.take_phases() {
        setup += s;
        result.add_phase(p, s);
    }
    (started.elapsed().as_secs_f64() - setup).max(0.0)
}

/// Sends one request, records the exchange and the phase time (network set-up goes to
/// resolve/connect/tls, the rest to `phase`).
pub async fn exchange(
    session: &mut Session,
    result: &mut ProbeResult,
    phase: Phase,
    req: Request,
    redactor: &Redactor,
) -> Result<Response, TransportError> {
    let method = req.method.to_string();
    let url = req.url.clone();
    let started = Instant::now();
    let out = session.send(req).await;
    let spent = http_seconds(session, started, result);
    // A request that never reached HTTP (refused, DNS, TLS) books nothing on `phase`.
    if !matches!(&out, Err(e) if e.before_http()) {
        result.add_phase(phase, spent);
    }
    match &out {
        Ok(resp) => {
            evidence::record(result, phase, &method, resp, redactor);
            note_retry_after(result, resp);
        }
        Err(_) => evidence::record_failed(result, phase, &method, &url),
    }
    out
}

/// Remembers a 429's `Retry-After` (delay in seconds; an HTTP date counts from now) on
/// `result`, so the scheduler holds that registry until then. The longest one seen wins, and a
/// day at most: a registry cannot park the prober for longer.
pub fn note_retry_after(result: &mut ProbeResult, resp: &Response) {
    if resp.status.as_u16() != 429 {
        return;
    }
    let Some(v) = resp.header_str("retry-after").map(str::trim) else {
        return;
    };
    let secs = v
        .parse::<u64>()
        .ok()
        .or_else(|| Some(httpdate_secs(v)?.saturating_sub(unix_now() as u64)));
    if let Some(secs) = secs {
        let secs = secs.min(86_400);
        result.retry_after_seconds = Some(result.retry_after_seconds.unwrap_or(0).max(secs));
    }
}

/// Unix seconds of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form `Retry-After`
/// dates take (RFC 9110 §5.6.7); other forms give `None`.
fn httpdate_secs(v: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(&imf_to_rfc3339(v)?).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn imf_to_rfc3339(v: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut it = v.split_whitespace();
    let _weekday = it.next()?;
    let day: u32 = it.next()?.parse().ok()?;
    let month_name = it.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? + 1;
    let year: u32 = it.next()?.parse().ok()?;
    let time = it.next()?;
    (it.next()? == "GMT").then_some(())?;
    Some(format!("{year:04}-{month:02}-{day:02}T{time}Z"))
}

/// containerd's `httpFallback.RoundTrip` (`core/remotes/docker/resolver.go`, 2.x): a host
/// configured for HTTPS with fallback (a loopback registry with a port, or an `http` host with
/// TLS settings) is retried over plain HTTP when the TLS attempt fails with the server's
/// `HTTP/` reply (`tls.RecordHeaderError`), with "TLS handshake timeout", or, when the host
/// names no port, with a refused or timed-out connection (`isPortError`).
pub fn falls_back_to_http(e: &TransportError, host: &str) -> bool {
    use super::transport::ConnectFailure;
    match e {
        TransportError::Tls { kind, .. } => {
            matches!(kind, TlsFailure::PlainHttp | TlsFailure::Timeout)
        }
        TransportError::Connect { kind, .. } => {
            let has_port = host.rsplit_once(':').is_some_and(|(h, p)| {
                !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
            }) && !host.ends_with(']');
            !has_port && matches!(kind, ConnectFailure::Refused | ConnectFailure::Timeout)
        }
        _ => false,
    }
}

pub fn v2_url(host: &RegistryHost, scheme: HostScheme) -> Result<Url, Failure> {
    let s = match scheme {
        HostScheme::Http => "http",
        HostScheme::Https => "https",
    };
    let path = host.path.trim_end_matches('/');
    Url::parse(&format!("{s}://{}{}/", host.host, path)).map_err(|e| Failure::Transport {
        peer: Peer::Registry,
        error: TransportError::InvalidUrl(format!("{}: {e}", host.host)),
    })
}

pub use super::transport::authority;

/// The exchange a failure at `step` rests on: the last one of that step, else the last one
/// (a transport failure before any request of the step); `None` when there is none.
pub fn deciding_exchange(exchanges: &[Exchange], step: Phase) -> Option<usize> {
    exchanges
        .iter()
        .rposition(|e| e.phase == Some(step))
        .or_else(|| exchanges.len().checked_sub(1))
}

/// The `error` parameter of the response's challenge (`invalid_token`, `insufficient_scope`).
pub fn challenge_error(resp: &Response) -> Option<String> {
    parse_challenges(resp.header_values("www-authenticate"))
        .into_iter()
        .find_map(|c| c.param("error").map(str::to_owned))
}

/// Parses the challenges of a 401.
pub fn challenges(resp: &Response) -> Vec<Challenge> {
    parse_challenges(resp.header_values("www-authenticate"))
}

pub use crate::clock::unix_now;

#[cfg(test)]
mod tests {
    use super::*;

    fn resp429(retry_after: &str) -> Response {
        let mut h = http::HeaderMap::new();
        h.insert(
            "retry-after",
            http::HeaderValue::from_str(retry_after).unwrap(),
        );
        Response {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            headers: h,
            body: bytes::Bytes::new(),
            truncated: false,
            url: Url::parse("https://r.example/v2/").unwrap(),
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut r = ProbeResult::new("r", None);
        note_retry_after(&mut r, &resp429("120"));
        assert_eq!(r.retry_after_seconds, Some(120));
        note_retry_after(&mut r, &resp429("30"));
        assert_eq!(r.retry_after_seconds, Some(120), "the longest wins");
        let mut r = ProbeResult::new("r", None);
        note_retry_after(&mut r, &resp429("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(r.retry_after_seconds, Some(0), "a date in the past");
        let mut r = ProbeResult::new("r", None);
        note_retry_after(&mut r, &resp429("99999999"));
        assert_eq!(r.retry_after_seconds, Some(86_400));
        let mut r = ProbeResult::new("r", None);
        note_retry_after(&mut r, &resp429("soon"));
        assert_eq!(r.retry_after_seconds, None);
        assert_eq!(
            imf_to_rfc3339("Sun, 06 Nov 1994 08:49:37 GMT").unwrap(),
            "1994-11-06T08:49:37Z"
        );
    }

    #[test]
    fn http_fallback_conditions_follow_containerd() {
        use crate::probe::transport::ConnectFailure;
        let tls = |kind| TransportError::Tls {
            host: "h".into(),
            kind,
        };
        assert!(falls_back_to_http(
            &tls(TlsFailure::PlainHttp),
            "localhost:5000"
        ));
        assert!(falls_back_to_http(
            &tls(TlsFailure::Timeout),
            "localhost:5000"
        ));
        assert!(!falls_back_to_http(
            &tls(TlsFailure::Untrusted(String::new())),
            "localhost:5000"
        ));
        let refused = TransportError::Connect {
            addr: "x".into(),
            kind: ConnectFailure::Refused,
        };
        assert!(falls_back_to_http(&refused, "localhost"));
        assert!(!falls_back_to_http(&refused, "localhost:5000"));
    }
}
