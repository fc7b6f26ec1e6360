//! The HTTP steps: the challenge, the token, the authenticated `/v2/`, the manifest request;
//! and the walks of a credential probe and of an image attempt.

use url::Url;

use crate::probe::{AuthMode, Exchange, Phase, ProbeResult, Reason};

use super::model::*;
use super::network::*;

pub(crate) fn status_text(e: &Exchange) -> String {
    let mut s = e
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "no response".into());
    if let Some(c) = &e.error_code {
        s.push_str(&format!(" {c}"));
    }
    if let Some(m) = &e.error_message {
        s.push_str(&format!(": {m}"));
    }
    s
}

pub(crate) fn view(e: &Exchange, request: Vec<String>) -> ExchangeView {
    ExchangeView {
        exchange: e.clone(),
        request,
        repeated: 1,
    }
}

/// Consecutive identical exchanges folded into one with a count (containerd's retries).
pub(crate) fn fold(views: Vec<ExchangeView>) -> Vec<ExchangeView> {
    let mut out: Vec<ExchangeView> = Vec::new();
    for v in views {
        if let Some(last) = out.last_mut() {
            if last.exchange == v.exchange && last.request == v.request {
                last.repeated += 1;
                continue;
            }
        }
        out.push(v);
    }
    out
}

/// The `error` parameter of an exchange's challenge (`insufficient_scope`, `invalid_token`).
pub(crate) fn challenge_error(e: &Exchange) -> Option<String> {
    let text = e.challenge.as_deref()?;
    crate::probe::challenge::parse_challenges(text.split(" | ").map(str::as_bytes))
        .into_iter()
        .find_map(|c| c.param("error").map(str::to_owned))
}

/// The exchanges shown under a failing step: all of them when there are two or fewer, else a
/// one-line trail of every exchange and the last one in full. Transport failures that were
/// recovered (HTTPS before containerd's HTTP fallback) are left out unless last.
pub(crate) fn failing_exchanges(views: &[ExchangeView]) -> (Option<String>, Vec<ExchangeView>) {
    let n = views.len();
    let kept: Vec<ExchangeView> = views
        .iter()
        .enumerate()
        .filter(|(i, v)| v.exchange.status.is_some() || i + 1 == n)
        .map(|(_, v)| v.clone())
        .collect();
    let kept = fold(kept);
    if kept.len() <= 2 {
        return (None, kept);
    }
    let trail: Vec<String> = kept
        .iter()
        .map(|v| {
            let e = &v.exchange;
            let mut t = format!(
                "{} {} → {}",
                e.phase.map(|p| p.as_str()).unwrap_or("?"),
                e.method,
                e.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no response".into())
            );
            if let Some(err) = challenge_error(e).or_else(|| e.error_code.clone()) {
                t.push_str(&format!(" {err}"));
            }
            if v.repeated > 1 {
                t.push_str(&format!(" ×{}", v.repeated));
            }
            t
        })
        .collect();
    (
        Some(format!("trail: {}", trail.join(", "))),
        kept.last().cloned().into_iter().collect(),
    )
}

pub(crate) fn phase_exchanges(r: &ProbeResult, phase: Phase) -> Vec<&Exchange> {
    r.exchanges
        .iter()
        .filter(|e| e.phase == Some(phase))
        .collect()
}

pub(crate) fn user_of(r: &ProbeResult) -> String {
    r.username
        .as_deref()
        .map(|u| format!("`{u}`"))
        .unwrap_or_else(|| "(no username)".into())
}

pub(crate) fn challenge_step(r: &ProbeResult, fail: bool) -> Step {
    let t = phase_time(r, Phase::Challenge);
    let ex = phase_exchanges(r, Phase::Challenge);
    let all: Vec<ExchangeView> = ex.iter().map(|e| view(e, Vec::new())).collect();
    let answered = ex.iter().rev().find(|e| e.status.is_some());
    let mut s = if fail {
        let (trail, shown) = failing_exchanges(&all);
        let mut s =
            Step::new(StepKind::Challenge, Mark::Fail, r.detail.clone()).with_evidence(trail);
        s.exchanges = shown;
        s
    } else {
        match answered {
            Some(e) if e.status == Some(401) => {
                Step::new(StepKind::Challenge, Mark::Ok, challenge_summary(e))
            }
            Some(e) => Step::new(
                StepKind::Challenge,
                Mark::Ok,
                format!(
                    "{} {} → {}: the registry is open, no authentication asked",
                    e.method,
                    e.url,
                    status_text(e)
                ),
            ),
            None => Step::new(StepKind::Challenge, Mark::Skip, "no request was made"),
        }
    };
    s.all_exchanges = all;
    s.timed(t)
}

pub(crate) fn token_request_facts(e: &Exchange, r: &ProbeResult) -> Vec<String> {
    let user = r.username.as_deref().unwrap_or("");
    match (e.method.as_str(), user.is_empty()) {
        ("POST", false) => vec![format!(
            "> form: grant_type=password, username={user}, password=<redacted>, client_id=containerd-client"
        )],
        ("POST", true) => vec![
            "> form: grant_type=refresh_token, refresh_token=<redacted>, client_id=containerd-client"
                .into(),
        ],
        ("GET", false) => vec![format!("> Authorization: Basic <redacted> (user {user})")],
        _ => Vec::new(),
    }
}

pub(crate) fn token_step(
    r: &ProbeResult,
    registry_host: &str,
    fail: bool,
    challenge_open: bool,
) -> Step {
    let t = phase_time(r, Phase::Token);
    let ex = phase_exchanges(r, Phase::Token);
    let all: Vec<ExchangeView> = ex
        .iter()
        .map(|e| view(e, token_request_facts(e, r)))
        .collect();
    let realm = ex.first().and_then(|e| host_of_url(&e.url));
    let realm_net: Vec<String> = realm
        .as_deref()
        .filter(|h| *h != registry_host)
        .and_then(|h| network_of(r, h))
        .map(|n| {
            format!(
                "token service {} → {}{}",
                n.host,
                addresses(n),
                n.connected
                    .as_deref()
                    .map(|c| format!(", connected to {c}"))
                    .unwrap_or_default()
            )
        })
        .into_iter()
        .collect();
    let realm = realm_of(r).unwrap_or_else(|| "the realm".into());
    let mut s = if fail {
        let summary = match r.reason {
            Some(reason) if network_layer(r).is_some() || reason == Reason::Timeout => {
                format!(
                    "the token service {realm} cannot be reached: {}",
                    transport_text(r)
                )
            }
            Some(Reason::CredentialMissing) => format!(
                "no username or password to send to the token service: {}",
                r.detail
            ),
            _ => match ex.iter().rev().find(|e| e.status.is_some()) {
                Some(last) if last.status.is_some_and(|s| s < 300) => format!(
                    "the token service at {realm} answered {} to user {} but gave no usable token",
                    last.status.unwrap_or(0),
                    user_of(r)
                ),
                Some(last) => format!(
                    "the token service at {realm} answered {} to user {}",
                    last.status.unwrap_or(0),
                    user_of(r)
                ),
                None => r.detail.clone(),
            },
        };
        let (trail, shown) = failing_exchanges(&all);
        let mut s = Step::new(StepKind::Token, Mark::Fail, summary)
            .with_evidence(realm_net)
            .with_evidence(trail);
        s.exchanges = shown;
        s
    } else if ex.is_empty() {
        let why = if r.auth_mode == Some(AuthMode::Basic) {
            "not used: the registry asks for Basic auth"
        } else if challenge_open {
            "not needed: /v2/ is open"
        } else {
            "no token request was made"
        };
        Step::new(StepKind::Token, Mark::Skip, why)
    } else {
        let chain: Vec<String> = ex
            .iter()
            .map(|e| format!("{} {} → {}", e.method, e.url, status_text(e)))
            .collect();
        Step::new(
            StepKind::Token,
            Mark::Ok,
            format!(
                "{}: token issued for user {}",
                chain.join(", then "),
                user_of(r)
            ),
        )
        .with_evidence(realm_net)
    };
    s.all_exchanges = all;
    s.timed(t)
}

pub(crate) fn verify_step(r: &ProbeResult, fail: bool, challenge_open: bool) -> Step {
    let t = phase_time(r, Phase::Verify);
    let ex = phase_exchanges(r, Phase::Verify);
    let scheme = if r.auth_mode == Some(AuthMode::Basic) {
        "Basic"
    } else {
        "Bearer"
    };
    let what = if scheme == "Basic" {
        "the Basic credential"
    } else {
        "the bearer token"
    };
    let all: Vec<ExchangeView> = ex
        .iter()
        .map(|e| view(e, vec![format!("> Authorization: {scheme} <redacted>")]))
        .collect();
    let mut s = if fail {
        let summary = if r.reason == Some(Reason::CredentialMissing) {
            format!("no username or password to send: {}", r.detail)
        } else {
            match ex.last() {
                Some(last) => format!(
                    "{} refused {what} of user {} ({}{})",
                    r.registry,
                    user_of(r),
                    last.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "no response".into()),
                    challenge_error(last)
                        .map(|e| format!(", error={e}"))
                        .unwrap_or_default()
                ),
                None => r.detail.clone(),
            }
        };
        let (trail, shown) = failing_exchanges(&all);
        let mut s = Step::new(StepKind::Verify, Mark::Fail, summary).with_evidence(trail);
        s.exchanges = shown;
        s
    } else {
        match ex.last() {
            Some(e) => Step::new(
                StepKind::Verify,
                Mark::Ok,
                format!(
                    "{} {} with {what} of user {} → {}",
                    e.method,
                    e.url,
                    user_of(r),
                    status_text(e)
                ),
            ),
            None if challenge_open => {
                Step::new(StepKind::Verify, Mark::Skip, "not needed: /v2/ is open")
            }
            None => Step::new(StepKind::Verify, Mark::Skip, "no request was made"),
        }
    };
    s.all_exchanges = all;
    s.timed(t)
}

pub(crate) fn manifest_step(p: &ProbeResult, fail: bool) -> Step {
    let t = phase_time(p, Phase::Manifest);
    let phases = [Phase::Manifest, Phase::Token];
    let ex: Vec<&Exchange> = p
        .exchanges
        .iter()
        .filter(|e| e.phase.is_some_and(|ph| phases.contains(&ph)))
        .collect();
    let all: Vec<ExchangeView> = ex
        .iter()
        .map(|e| {
            let facts = if e.phase == Some(Phase::Token) {
                token_request_facts(e, p)
            } else {
                Vec::new()
            };
            view(e, facts)
        })
        .collect();
    let hosts: Vec<String> = if p.hosts.len() > 1 {
        p.hosts
            .iter()
            .map(|h| {
                format!(
                    "{}{}: {} — {}",
                    h.host,
                    if h.mirror { " (mirror)" } else { "" },
                    if h.success {
                        "ok".to_string()
                    } else {
                        h.reason.map(|r| r.to_string()).unwrap_or("failed".into())
                    },
                    h.detail
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let last = ex
        .iter()
        .rev()
        .find(|e| e.phase == Some(Phase::Manifest))
        .copied();
    let mut s = if p.success {
        let mut s = Step::new(
            StepKind::Manifest,
            Mark::Ok,
            match last {
                Some(e) => format!(
                    "{} {} → {}: {}",
                    e.method,
                    e.url,
                    status_text(e),
                    p.digest.as_deref().unwrap_or("resolved")
                ),
                None => p.detail.clone(),
            },
        )
        .with_evidence(hosts);
        if let Some(rl) = &p.ratelimit {
            s.evidence.push(format!(
                "Docker Hub rate limit: {} of {} pulls left",
                rl.remaining, rl.limit
            ));
        }
        s
    } else if fail {
        let (trail, shown) = failing_exchanges(&all);
        let mut s = Step::new(StepKind::Manifest, Mark::Fail, manifest_failure(p))
            .with_evidence(hosts)
            .with_evidence(trail);
        s.exchanges = shown;
        s
    } else {
        Step::new(StepKind::Manifest, Mark::NotReached, "not reached")
    };
    s.all_exchanges = all;
    s.timed(t)
}

/// What the manifest request ended with, in words.
pub(crate) fn manifest_failure(p: &ProbeResult) -> String {
    let ex: Vec<&Exchange> = phase_exchanges(p, Phase::Manifest);
    // The answer the verdict rests on: the failing host's last exchange (a mirror's 404 is
    // not the upstream's 401).
    let decided = match p.failed.as_ref() {
        Some(f) => f.exchange.and_then(|i| p.exchanges.get(i)),
        None => ex.last().copied(),
    };
    let Some(last) = decided.filter(|e| e.status.is_some()) else {
        return p.detail.clone();
    };
    let host = Url::parse(&last.url)
        .ok()
        .map(|u| crate::probe::exchange::authority(&u))
        .unwrap_or_default();
    let what = p
        .image
        .as_deref()
        .and_then(|i| crate::reference::parse(i).ok())
        .map(|r| {
            let sep = if r.digest().is_some() { "@" } else { ":" };
            (
                r.path().to_string(),
                format!("{}{sep}{}", r.path(), r.reference()),
            )
        });
    let (repo, full) = what.unwrap_or_default();
    let scheme = ex
        .iter()
        .rev()
        .find_map(|e| e.challenge.as_deref())
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("");
    let status = last.status.unwrap_or(0);
    let token_issued = p
        .exchanges
        .iter()
        .any(|e| e.phase == Some(Phase::Token) && e.status.is_some_and(|s| s < 300));
    match p.reason {
        Some(Reason::NotFound) => format!("{full} not found on {host} ({})", status_text(last)),
        Some(Reason::PullDenied) => format!(
            "{host} refuses user {} the pull of {repo} ({status}{}){}",
            user_of(p),
            challenge_error(last)
                .map(|e| format!(", error={e}"))
                .unwrap_or_default(),
            if token_issued {
                ", although the token service issued a token"
            } else {
                ""
            }
        ),
        Some(Reason::NoMatchingCredential) => format!(
            "{host} refused the anonymous request ({status}{})",
            if scheme.is_empty() {
                String::new()
            } else {
                format!(", {scheme} authentication required")
            }
        ),
        Some(Reason::Unauthorized) => format!(
            "{host} refused the credential of user {} ({status})",
            user_of(p)
        ),
        Some(Reason::TokenRejected) => format!(
            "{host} refused the token its own token service issued ({status}, error=invalid_token)"
        ),
        _ => p.detail.clone(),
    }
}

/// Marks every step after the first failing one as not reached.
pub(crate) fn cut_after_failure(steps: &mut [Step]) {
    if let Some(i) = steps.iter().position(|s| s.mark == Mark::Fail) {
        for s in &mut steps[i + 1..] {
            *s = Step::new(s.step, Mark::NotReached, "not reached");
        }
    }
}

/// The network and HTTP steps of a credential probe: DNS, TCP, TLS, challenge, token, verify.
pub fn credential_steps(r: &ProbeResult) -> Vec<Step> {
    let host = registry_host(r, Mode::Credential);
    let failing = failing_step(r, Mode::Credential, &host);
    let f = |k: StepKind| failing == Some(k);
    let open = phase_exchanges(r, Phase::Challenge)
        .iter()
        .any(|e| e.status.is_some_and(|s| (200..300).contains(&s)));
    let mut steps = vec![
        dns_step(r, &host, f(StepKind::Dns)),
        tcp_step(r, &host, f(StepKind::Tcp)),
        tls_step(r, f(StepKind::Tls)),
        challenge_step(r, f(StepKind::Challenge)),
        token_step(r, &host, f(StepKind::Token), open),
        verify_step(r, f(StepKind::Verify), open),
    ];
    cut_after_failure(&mut steps);
    steps
}

/// The steps of one image attempt: with a credential, the credential probe's steps followed by
/// the pull's manifest `HEAD`; without one, the pull's own network steps and manifest `HEAD`.
pub fn attempt_steps(credential: Option<&ProbeResult>, pull: &ProbeResult) -> Vec<Step> {
    match credential {
        Some(c) => {
            let mut steps = credential_steps(c);
            let broken = steps.iter().any(|s| s.mark == Mark::Fail);
            let mut m = manifest_step(pull, true);
            if broken && !pull.success {
                m = Step::new(StepKind::Manifest, Mark::NotReached, "not reached");
            } else if broken {
                m.evidence.push(
                    "the pull works although the /v2/ check above failed (a mirror, or a registry that checks credentials only per repository)"
                        .into(),
                );
            }
            steps.push(m);
            steps
        }
        None => pull_steps(pull),
    }
}

/// `METHOD URL → 401, <challenge>`: the line of a challenge step.
pub(crate) fn challenge_summary(e: &Exchange) -> String {
    format!(
        "{} {} → 401, {}",
        e.method,
        e.url,
        e.challenge.as_deref().unwrap_or("no challenge")
    )
}

/// containerd's challenge in a pull: the first manifest request answered 401.
pub(crate) fn pull_challenge_step(p: &ProbeResult) -> Step {
    let first = p
        .exchanges
        .iter()
        .find(|e| e.phase == Some(Phase::Manifest) && e.status == Some(401));
    let all: Vec<ExchangeView> = first.iter().map(|e| view(e, Vec::new())).collect();
    let mut s = match first {
        Some(e) => Step::new(StepKind::Challenge, Mark::Ok, challenge_summary(e)),
        None => Step::new(
            StepKind::Challenge,
            Mark::Skip,
            "none: the registry answered the manifest request without asking for credentials",
        ),
    };
    s.all_exchanges = all;
    s
}

/// The steps of an image attempt from the pull's own requests, as containerd makes them: no
/// `/v2/` login; the manifest request's 401 is the challenge, then the token, then the manifest
/// again with the credential.
pub fn pull_steps(pull: &ProbeResult) -> Vec<Step> {
    let host = registry_host(pull, Mode::Pull);
    let failing = failing_step(pull, Mode::Pull, &host);
    let f = |k: StepKind| failing == Some(k);
    let verify_why = if pull.secret.is_some() && pull.username.is_some() {
        "not asked: containerd sends the credential with the manifest request (no /v2/ login)"
    } else {
        "no credential: containerd pulls anonymously"
    };
    let mut steps = vec![
        dns_step(pull, &host, f(StepKind::Dns)),
        tcp_step(pull, &host, f(StepKind::Tcp)),
        tls_step(pull, f(StepKind::Tls)),
        pull_challenge_step(pull),
        token_step(pull, &host, f(StepKind::Token), false),
        Step::new(StepKind::Verify, Mark::Skip, verify_why),
        manifest_step(
            pull,
            f(StepKind::Manifest) || (!pull.success && failing.is_none()),
        ),
    ];
    // A failure before any answer leaves the challenge unknown rather than skipped.
    if let Some(i) = steps.iter().position(|s| s.mark == Mark::Fail) {
        if i < 3 {
            steps[3] = Step::new(StepKind::Challenge, Mark::NotReached, "not reached");
        }
    }
    cut_after_failure(&mut steps);
    steps
}

/// `host[:port]` of the token service: the first token request's URL.
pub(crate) fn realm_of(r: &ProbeResult) -> Option<String> {
    r.exchanges
        .iter()
        .find(|e| e.phase == Some(Phase::Token))
        .and_then(|e| {
            let u = Url::parse(&e.url).ok()?;
            let h = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        })
}
