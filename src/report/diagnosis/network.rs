//! Where a result broke, and the network steps: DNS, TCP, TLS.

use std::time::{Duration, UNIX_EPOCH};
use url::Url;

use crate::clock::unix_secs;
use crate::probe::failure::Layer;
use crate::probe::{NetworkStep, Note, Phase, ProbeResult};

use super::model::*;

// ------------------------------------------------------------------------------------------
// Network and HTTP steps
// ------------------------------------------------------------------------------------------

/// Which walk a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A credential probe: `/v2/` challenge, token, authenticated `/v2/`.
    Credential,
    /// An image attempt walked from containerd's own requests: the manifest request, its 401
    /// challenge, the token, the manifest again.
    Pull,
}

pub(crate) fn host_of_url(url: &str) -> Option<String> {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
}

/// The host name (no port) the walk's network steps are about.
pub(crate) fn registry_host(r: &ProbeResult, mode: Mode) -> String {
    let from_url = match mode {
        Mode::Credential => r.endpoint.as_deref().and_then(host_of_url),
        Mode::Pull => r
            .hosts
            .last()
            .and_then(|h| host_of_url(&h.host))
            .or_else(|| {
                r.exchanges
                    .iter()
                    .find(|e| e.phase == Some(Phase::Manifest))
                    .and_then(|e| host_of_url(&e.url))
            }),
    };
    from_url.unwrap_or_else(|| {
        let h = crate::plan::host_of(&r.registry);
        match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => h,
        }
        .to_ascii_lowercase()
    })
}

/// The transport's account of a network failure (`resolving x: no such host (NXDOMAIN)`), or
/// the detail for other failures.
pub(crate) fn transport_text(r: &ProbeResult) -> String {
    r.failed
        .as_ref()
        .and_then(|f| f.failure.transport())
        .map(|e| e.to_string())
        .unwrap_or_else(|| r.detail.clone())
}

/// The walk's network step a failure belongs to: DNS, TCP (a proxy's `CONNECT` included) or
/// TLS; `None` for failures on an established connection and for answers.
pub(crate) fn network_layer(r: &ProbeResult) -> Option<StepKind> {
    let error = r.failed.as_ref()?.failure.transport()?;
    match error.layer()? {
        Layer::Dns => Some(StepKind::Dns),
        Layer::Tcp | Layer::Proxy => Some(StepKind::Tcp),
        Layer::Tls => Some(StepKind::Tls),
        Layer::Http => None,
    }
}

/// The host name of `host[:port]`, lower-cased, without the brackets of an IPv6 literal (so
/// `[::1]:5000` and `[::1]` compare equal).
pub(crate) fn host_part(authority: &str) -> String {
    let h = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    };
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// The step where `r` broke, or `None` when it did not: from the failure's own step and
/// server ([`crate::probe::failure::Failed`]).
pub(crate) fn failing_step(r: &ProbeResult, mode: Mode, host: &str) -> Option<StepKind> {
    if r.success {
        return None;
    }
    r.reason?;
    let f = r.failed.as_ref();
    let step = f.and_then(|f| f.step);
    let request_step = match (mode, step) {
        (_, Some(Phase::Token)) => StepKind::Token,
        (Mode::Pull, _) => StepKind::Manifest,
        (_, Some(Phase::Verify)) => StepKind::Verify,
        (_, Some(Phase::Manifest)) => StepKind::Manifest,
        _ => StepKind::Challenge,
    };
    if let (Some(layer), Some(f)) = (network_layer(r), f) {
        // A network failure at the host the walk's DNS/TCP/TLS steps are about is that
        // step's; at another server (the realm, a mirror) it is the request's.
        let at_host = f.host.is_empty() || host_part(&f.host) == host_part(host);
        return Some(if step != Some(Phase::Token) && at_host {
            layer
        } else {
            request_step
        });
    }
    Some(request_step)
}

pub(crate) fn phase_time(r: &ProbeResult, phase: Phase) -> Option<f64> {
    r.phases.get(&phase).copied()
}

pub(crate) fn network_of<'a>(r: &'a ProbeResult, host: &str) -> Option<&'a NetworkStep> {
    r.network
        .iter()
        .rev()
        .find(|n| n.host.eq_ignore_ascii_case(host))
}

pub(crate) fn addresses(n: &NetworkStep) -> String {
    if n.addresses.is_empty() {
        "no address".into()
    } else {
        n.addresses.join(", ")
    }
}

pub(crate) fn dns_step(r: &ProbeResult, host: &str, fail: bool) -> Step {
    let t = phase_time(r, Phase::Resolve);
    if fail {
        return Step::new(StepKind::Dns, Mark::Fail, transport_text(r)).timed(t);
    }
    match network_of(r, host) {
        Some(n) if n.source == "literal" => Step::new(
            StepKind::Dns,
            Mark::Ok,
            format!("{host}: an IP address, no lookup"),
        ),
        Some(n) if n.source == "--resolve" => Step::new(
            StepKind::Dns,
            Mark::Ok,
            format!("{host} → {} (from --resolve, DNS not asked)", addresses(n)),
        ),
        Some(n) => Step::new(
            StepKind::Dns,
            Mark::Ok,
            format!("{host} → {}", addresses(n)),
        ),
        None => Step::new(StepKind::Dns, Mark::Skip, "no lookup was made"),
    }
    .timed(t)
}

pub(crate) fn tcp_step(r: &ProbeResult, host: &str, fail: bool) -> Step {
    let t = phase_time(r, Phase::Connect);
    let n = network_of(r, host);
    if fail {
        return Step::new(StepKind::Tcp, Mark::Fail, transport_text(r))
            .timed(t)
            .with_evidence(
                n.filter(|n| n.source != "literal")
                    .map(|n| format!("{host} → {}", addresses(n))),
            );
    }
    match n.and_then(|n| n.connected.as_deref()) {
        Some(c) => Step::new(StepKind::Tcp, Mark::Ok, format!("connected to {c}")),
        None => Step::new(StepKind::Tcp, Mark::Skip, "no connection was made"),
    }
    .timed(t)
}

pub(crate) fn fmt_time(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
        .to_string()
}

pub(crate) fn days_left(unix: i64) -> String {
    let now = unix_secs();
    let days = (unix - now).div_euclid(86_400);
    if unix < now {
        format!("expired {} days ago", -days)
    } else {
        format!("in {days} days")
    }
}

pub(crate) fn tls_step(r: &ProbeResult, fail: bool) -> Step {
    let t = phase_time(r, Phase::Tls);
    let trust = r.notes.iter().find_map(|n| match n {
        Note::TlsTrust(source) => Some(format!("trust: {source}")),
        _ => None,
    });
    let fallback = r
        .notes
        .iter()
        .find(|n| matches!(n, Note::HttpFallback { .. }));
    let plain = r
        .endpoint
        .as_deref()
        .or_else(|| r.exchanges.first().map(|e| e.url.as_str()))
        .is_some_and(|u| u.starts_with("http://"));
    if fail {
        return Step::new(StepKind::Tls, Mark::Fail, transport_text(r))
            .timed(t)
            .with_evidence(trust);
    }
    if let Some(info) = &r.tls {
        let mut s = Step::new(
            StepKind::Tls,
            if info.leaf_not_after < unix_secs() + 7 * 86_400 {
                Mark::Warn
            } else {
                Mark::Ok
            },
            format!(
                "subject {} · issuer {} · expires {} ({})",
                info.subject,
                info.issuer,
                fmt_time(info.leaf_not_after),
                days_left(info.leaf_not_after)
            ),
        )
        .timed(t);
        if !info.verified_by.is_empty() {
            s.evidence.push(format!("trust: {}", info.verified_by));
        } else if let Some(tr) = trust {
            s.evidence.push(tr);
        }
        return s;
    }
    if let Some(note) = fallback {
        let host = match note {
            Note::HttpFallback { host, .. } => host.as_str(),
            _ => "the registry",
        };
        let why = fallback_why(note);
        return Step::new(
            StepKind::Tls,
            Mark::Skip,
            format!(
                "not used: {host} {why}, and containerd falls back to plain HTTP for it (a loopback registry, or hosts.toml)"
            ),
        )
        .timed(t);
    }
    if plain {
        return Step::new(
            StepKind::Tls,
            Mark::Skip,
            "not used: the registry is contacted over plain HTTP (hosts.toml `server = \"http://…\"`)",
        );
    }
    Step::new(StepKind::Tls, Mark::Skip, "no TLS handshake was made")
}

/// Why the HTTPS attempt of a [`Note::HttpFallback`] failed, in words that say what happened:
/// a plain-HTTP reply, a TLS handshake that timed out, a refused or timed-out connection.
fn fallback_why(note: &Note) -> String {
    use crate::probe::failure::{ConnectFailure, TlsFailure};
    use crate::probe::transport::TransportError as T;
    let Note::HttpFallback { error, .. } = note else {
        return "failed over HTTPS".to_string();
    };
    match error {
        T::Tls {
            kind: TlsFailure::PlainHttp,
            ..
        } => "answered the TLS handshake in plain HTTP".to_string(),
        T::Tls {
            kind: TlsFailure::Timeout,
            ..
        } => "accepted TCP but did not complete the TLS handshake in time (TLS handshake timeout)"
            .to_string(),
        T::Connect {
            kind: ConnectFailure::Refused,
            ..
        } => "refused the HTTPS connection".to_string(),
        T::Connect {
            kind: ConnectFailure::Timeout,
            ..
        } => "did not accept the HTTPS connection in time".to_string(),
        other => format!("failed over HTTPS ({other})"),
    }
}
