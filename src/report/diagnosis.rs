//! The step-by-step diagnosis `regprobe check` prints: the steps kubelet and containerd take to
//! pull, in order, each with a [`Mark`], its time and its evidence, then one [`Verdict`] naming
//! the class of the failure and a concrete next step.
//!
//! The steps ([`StepKind`]): the secret parsed (and its type), its registry keys, the keys that
//! match the image (and why the others do not), DNS, TCP, TLS, the anonymous `/v2/` challenge,
//! the token request, the authenticated `/v2/`, the manifest `HEAD`. Steps after the one that
//! broke are [`Mark::NotReached`].
//!
//! Everything here is built from [`ProbeResult`]s (which hold no credential), from
//! [`SecretInfo`] (a secret's shape: keys, user names, warnings, never a password) and from
//! kubelet's key verdicts. Nothing here talks to the network.
//!
//! What the probes do not record, and this module therefore cannot show: the certificate a
//! server presented when verification failed (only the error), per-host timings (phase times are
//! summed over the registry and its token service), and response headers other than
//! `WWW-Authenticate`.

use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

use crate::probe::failure::Layer;
use crate::probe::{AuthMode, Class, Exchange, NetworkStep, Note, Phase, ProbeResult, Reason};
use crate::secrets::keyring::{KeyOutcome, KeyringSource, Mismatch};
use crate::secrets::{KeyVerdict, Secret, SecretKind};

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// It worked.
    Ok,
    /// It broke: the diagnosis stops here.
    Fail,
    /// It worked, with something to know (a warning, an anonymous pull).
    Warn,
    /// It does not apply (Basic auth has no token step, plain HTTP has no TLS).
    Skip,
    /// An earlier step broke.
    NotReached,
}

/// The steps of a pull, in the order kubelet and containerd take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The secret parses as kubelet reads it.
    Secret,
    /// Its registry keys.
    Keys,
    /// kubelet's keyring lookup for the image.
    Match,
    /// Name resolution of the registry.
    Dns,
    /// TCP connection.
    Tcp,
    /// TLS handshake.
    Tls,
    /// Anonymous `GET /v2/` and its `WWW-Authenticate` challenge.
    Challenge,
    /// The token request to the challenge's realm.
    Token,
    /// The authenticated `GET /v2/`.
    Verify,
    /// containerd's manifest `HEAD`.
    Manifest,
}

impl StepKind {
    /// The label printed (phase names where a step is a phase of the metrics).
    pub fn label(self) -> &'static str {
        match self {
            StepKind::Secret => "secret",
            StepKind::Keys => "keys",
            StepKind::Match => "match",
            StepKind::Dns => "dns",
            StepKind::Tcp => "tcp",
            StepKind::Tls => "tls",
            StepKind::Challenge => "challenge",
            StepKind::Token => "token",
            StepKind::Verify => "verify",
            StepKind::Manifest => "manifest",
        }
    }
}

/// An HTTP exchange as evidence, with what is known of the request it answered.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeView {
    /// The recorded exchange (status, challenge, registry error; no credential).
    #[serde(flatten)]
    pub exchange: Exchange,
    /// Request facts shown with `--verbose`: `Authorization: Basic <redacted>`, the token
    /// form's field names. Values of credentials are never kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<String>,
    /// How many identical exchanges in a row this stands for (containerd's retries).
    #[serde(skip_serializing_if = "is_one")]
    pub repeated: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// One step of the walk.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Which step.
    pub step: StepKind,
    /// How it went.
    pub mark: Mark,
    /// Time spent, when the step is timed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// One line.
    pub summary: String,
    /// More lines: facts, warnings, what the server said.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// The exchanges shown with the step (the failing ones; with `--verbose`, all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchanges: Vec<ExchangeView>,
    /// Every exchange of the step, for `--verbose`.
    #[serde(skip)]
    pub all_exchanges: Vec<ExchangeView>,
}

impl Step {
    fn new(step: StepKind, mark: Mark, summary: impl Into<String>) -> Step {
        Step {
            step,
            mark,
            seconds: None,
            summary: summary.into(),
            evidence: Vec::new(),
            exchanges: Vec::new(),
            all_exchanges: Vec::new(),
        }
    }

    fn timed(mut self, seconds: Option<f64>) -> Step {
        self.seconds = seconds;
        self
    }

    fn with_evidence(mut self, lines: impl IntoIterator<Item = String>) -> Step {
        self.evidence.extend(lines);
        self
    }
}

/// The conclusion: the class of the failure and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Whether the pull (or the credential) works.
    pub ok: bool,
    /// The class of the failure (who acts).
    pub class: Option<Class>,
    /// The reason.
    pub reason: Option<Reason>,
    /// What is wrong (or what works), in one sentence.
    pub summary: String,
    /// The concrete next step; empty when nothing is to be done.
    pub next: String,
    /// Further findings, each on its own line (a secret the pod names but that was not given, a
    /// credential kubelet tries first that fails).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// A secret as the diagnosis shows it: type, keys, user names, warnings. Holds no password.
#[derive(Debug, Clone, Serialize)]
pub struct SecretInfo {
    /// Secret id.
    pub id: String,
    /// Where it was read from.
    pub path: String,
    /// `kubernetes.io/dockerconfigjson`, `kubernetes.io/dockercfg`, `kubelet config.json`.
    pub kind: String,
    /// Whether it is the node's `config.json`.
    pub node: bool,
    /// Why kubelet would reject it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its entries.
    pub keys: Vec<KeyInfo>,
    /// What kubelet ignores in it (`credsStore`, unusable keys, duplicates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Time to read and parse its source.
    pub seconds: f64,
}

/// One entry of a secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The key as written (user-info redacted).
    pub raw_key: String,
    /// kubelet's keyring key.
    pub key: String,
    /// The user name (may be empty).
    pub username: String,
    /// A glob key (`*.example.com`).
    pub wildcard: bool,
    /// An `identitytoken`/`registrytoken` kubelet drops.
    pub dropped_token: bool,
}

impl SecretInfo {
    /// The shape of `secret`; `seconds` is the time its source took to read and parse.
    pub fn new(secret: &Secret, seconds: f64) -> SecretInfo {
        let (keys, error) = match &secret.entries {
            Ok(entries) => (
                entries
                    .iter()
                    .map(|e| KeyInfo {
                        raw_key: e.raw_key.clone(),
                        key: e.key.clone(),
                        username: e.credential.username.clone(),
                        wildcard: e.wildcard,
                        dropped_token: e.dropped_token,
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        SecretInfo {
            id: secret.id.clone(),
            path: secret.path.display().to_string(),
            kind: match secret.kind {
                SecretKind::DockerConfigJson => "kubernetes.io/dockerconfigjson".into(),
                SecretKind::DockerCfg => "kubernetes.io/dockercfg (legacy)".into(),
                SecretKind::NodeConfig => "kubelet config.json (the node's keyring)".into(),
                SecretKind::Unknown => "unknown type".into(),
            },
            node: secret.kind == SecretKind::NodeConfig
                || secret.id == crate::secrets::keyring::NODE_SECRET_ID,
            error,
            keys,
            warnings: secret.warnings.clone(),
            seconds,
        }
    }
}

/// Who the fix is for: the pod's namespace and how to make kubelet pull again.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The namespace of the pod, when known (`--pod-spec`).
    pub namespace: Option<String>,
    /// The command that rolls the workload (`kubectl -n team rollout restart deployment/web`).
    pub roll: Option<String>,
    /// Secrets the pod names in `imagePullSecrets` that were not given.
    pub missing: Vec<String>,
    /// Secrets given but not named by the pod, with a key that matches the image: `(secret, key)`.
    pub unreferenced_matches: Vec<(String, String)>,
    /// The pod is a template whose ServiceAccount may add `imagePullSecrets`: its name.
    pub service_account: Option<String>,
}

impl Context {
    fn ns_flag(&self) -> String {
        format!("-n {} ", self.namespace.as_deref().unwrap_or("NAMESPACE"))
    }

    fn roll(&self) -> String {
        self.roll
            .clone()
            .unwrap_or_else(|| format!("kubectl {}rollout restart deployment/NAME", self.ns_flag()))
    }
}

// ------------------------------------------------------------------------------------------
// Secret, keys and match steps
// ------------------------------------------------------------------------------------------

/// The `secret` step of a secret kubelet uses (for the pod, or the node's `config.json`).
pub fn secret_step(s: &SecretInfo) -> Step {
    let from = format!("{}, read from {}", s.kind, s.path);
    match &s.error {
        Some(e) if s.node => Step::new(
            StepKind::Secret,
            Mark::Warn,
            format!("{}: does not parse: {e}", s.id),
        )
        .with_evidence([format!(
            "{from}; kubelet then has no node credentials (pod secrets still work)"
        )]),
        Some(e) => Step::new(
            StepKind::Secret,
            Mark::Fail,
            format!("{}: does not parse: {e}", s.id),
        )
        .with_evidence([from]),
        None => Step::new(StepKind::Secret, Mark::Ok, format!("{}: {from}", s.id)),
    }
    .timed(Some(s.seconds))
}

/// The `secret` step of a secret given but not named by the pod: kubelet does not use it.
pub fn unreferenced_step(s: &SecretInfo, service_account: Option<&str>) -> Step {
    let mut step = Step::new(
        StepKind::Secret,
        Mark::Skip,
        format!(
            "{}: given, but the pod does not list it in imagePullSecrets: kubelet does not use it for this pod",
            s.id
        ),
    );
    if let Some(e) = &s.error {
        step.evidence.push(format!("it does not parse either: {e}"));
    }
    if let Some(sa) = service_account {
        step.evidence.push(format!(
            "unless ServiceAccount `{sa}` lists it: admission adds those when the pod is created (`kubectl get pod POD -o yaml` shows the final list)"
        ));
    }
    step
}

/// The `secret` step of a name the pod lists in `imagePullSecrets` that was not given.
pub fn missing_step(name: &str, ctx: &Context) -> Step {
    Step::new(
        StepKind::Secret,
        Mark::Warn,
        format!("{name}: listed in the pod's imagePullSecrets but not given to regprobe"),
    )
    .with_evidence([format!(
        "if it does not exist in namespace {} (`kubectl {}get secret {name}`), kubelet skips it (event FailedToRetrieveImagePullSecret) and pulls without it: that is what is checked below",
        ctx.namespace.as_deref().unwrap_or("NAMESPACE"),
        ctx.ns_flag()
    )])
}

fn key_text(k: &KeyInfo) -> String {
    let mut s = k.key.clone();
    if k.raw_key != k.key {
        s.push_str(&format!(" (written {})", k.raw_key));
    }
    if k.username.is_empty() {
        s.push_str(", no username");
    } else {
        s.push_str(&format!(", user {}", k.username));
    }
    if k.wildcard {
        s.push_str(", wildcard: only matches images");
    }
    s
}

/// The `keys` step of a secret that parsed: its registry keys, as kubelet normalises them. With
/// `only`, just the key of that registry label is listed (a credential probe).
pub fn keys_step(s: &SecretInfo, only: Option<&str>) -> Step {
    let keys: Vec<&KeyInfo> = s
        .keys
        .iter()
        .filter(|k| {
            only.is_none_or(|o| k.key == o || crate::secrets::key::registry_label(&k.key) == o)
        })
        .collect();
    let mut evidence: Vec<String> = s.warnings.clone();
    for k in &keys {
        if k.dropped_token {
            evidence.push(format!(
                "{}: identitytoken/registrytoken ignored: kubelet passes only username and password",
                k.key
            ));
        }
    }
    let (mark, summary) = if s.keys.is_empty() {
        (
            Mark::Warn,
            format!("{}: no registry key (an empty \"auths\")", s.id),
        )
    } else {
        let list: Vec<String> = keys.iter().map(|k| key_text(k)).collect();
        let shown = if list.is_empty() {
            format!("{} keys", s.keys.len())
        } else {
            list.join("; ")
        };
        (
            if evidence.is_empty() {
                Mark::Ok
            } else {
                Mark::Warn
            },
            format!("{}: {shown}", s.id),
        )
    };
    Step::new(StepKind::Keys, mark, summary).with_evidence(evidence)
}

fn secrets_text(v: &KeyVerdict) -> String {
    let mut s = v.secrets.join(", ");
    if v.source == KeyringSource::Node {
        s.push_str(", node keyring");
    }
    s
}

/// The `match` step: kubelet's keyring lookup for the image, every key with why it does or does
/// not apply.
pub fn match_step(verdicts: &[KeyVerdict], repo_to_pull: &str) -> Step {
    let matched: Vec<String> = verdicts
        .iter()
        .filter(|v| v.matched())
        .flat_map(|v| v.secrets.iter().map(move |s| format!("{} ({s})", v.key)))
        .collect();
    let evidence: Vec<String> = verdicts
        .iter()
        .filter_map(|v| match &v.outcome {
            KeyOutcome::Matched => None,
            KeyOutcome::DockerHubFallback => Some(format!(
                "key {} ({}): used as the Docker Hub fallback: no other key matched",
                v.key,
                secrets_text(v)
            )),
            KeyOutcome::NotMatched(_) => Some(format!(
                "key {} ({}): no match: {}",
                v.key,
                secrets_text(v),
                v.reason().unwrap_or_default()
            )),
        })
        .collect();
    if !matched.is_empty() {
        Step::new(
            StepKind::Match,
            Mark::Ok,
            format!("keys matched, in kubelet's order: {}", matched.join(", ")),
        )
        .with_evidence(evidence)
    } else if verdicts.is_empty() {
        Step::new(
            StepKind::Match,
            Mark::Warn,
            format!("no registry key at all: kubelet pulls {repo_to_pull} anonymously"),
        )
    } else {
        Step::new(
            StepKind::Match,
            Mark::Warn,
            format!("no key matches {repo_to_pull}: kubelet pulls anonymously"),
        )
        .with_evidence(evidence)
    }
}

/// Why no key matched, one phrase per key, as an SRE says it: "secret `s` has key
/// `private.registry.com` but the image host is `registry.company.com`".
pub fn mismatch_phrases(verdicts: &[KeyVerdict]) -> Vec<String> {
    verdicts
        .iter()
        .filter_map(|v| {
            let KeyOutcome::NotMatched(why) = &v.outcome else {
                return None;
            };
            let who = format!("secret `{}` has key `{}`", v.secrets.join("`, `"), v.key);
            let first = why.first()?;
            Some(match first {
                Mismatch::Host { image_host, .. } | Mismatch::LabelCount { image_host, .. } => {
                    let port = why.iter().find_map(|m| match m {
                        Mismatch::Port { image_port, .. } if !image_port.is_empty() => {
                            Some(format!(":{image_port}"))
                        }
                        _ => None,
                    });
                    format!(
                        "{who} but the image host is `{image_host}{}`",
                        port.unwrap_or_default()
                    )
                }
                Mismatch::Port {
                    key_port,
                    image_port,
                } => format!(
                    "{who} but the image's port is {} and the key's is {}",
                    if image_port.is_empty() {
                        "not written".to_string()
                    } else {
                        format!("`{image_port}`")
                    },
                    if key_port.is_empty() {
                        "not written".to_string()
                    } else {
                        format!("`{key_port}`")
                    }
                ),
                Mismatch::Path {
                    key_path,
                    image_path,
                } => format!(
                    "{who} but its path {key_path} is not a prefix of the image path {image_path}"
                ),
                other => format!("{who} but {other}"),
            })
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Network and HTTP steps
// ------------------------------------------------------------------------------------------

/// Which walk a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A credential probe: `/v2/` challenge, token, authenticated `/v2/`.
    Credential,
    /// An image attempt walked from containerd's own requests: the manifest request, its 401
    /// challenge, the token, the manifest again.
    Pull,
}

fn host_of_url(url: &str) -> Option<String> {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
}

/// The host name (no port) the walk's network steps are about.
fn registry_host(r: &ProbeResult, mode: Mode) -> String {
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
fn transport_text(r: &ProbeResult) -> String {
    r.failed
        .as_ref()
        .and_then(|f| f.failure.transport())
        .map(|e| e.to_string())
        .unwrap_or_else(|| r.detail.clone())
}

/// The walk's network step a failure belongs to: DNS, TCP (a proxy's `CONNECT` included) or
/// TLS; `None` for failures on an established connection and for answers.
fn network_layer(r: &ProbeResult) -> Option<StepKind> {
    let error = r.failed.as_ref()?.failure.transport()?;
    match error.layer()? {
        Layer::Dns => Some(StepKind::Dns),
        Layer::Tcp | Layer::Proxy => Some(StepKind::Tcp),
        Layer::Tls => Some(StepKind::Tls),
        Layer::Http => None,
    }
}

/// The host name of `host[:port]` (brackets of an IPv6 literal kept), lower-cased.
fn host_part(authority: &str) -> String {
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
fn failing_step(r: &ProbeResult, mode: Mode, host: &str) -> Option<StepKind> {
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

fn phase_time(r: &ProbeResult, phase: Phase) -> Option<f64> {
    r.phases.get(&phase).copied()
}

fn network_of<'a>(r: &'a ProbeResult, host: &str) -> Option<&'a NetworkStep> {
    r.network
        .iter()
        .rev()
        .find(|n| n.host.eq_ignore_ascii_case(host))
}

fn addresses(n: &NetworkStep) -> String {
    if n.addresses.is_empty() {
        "no address".into()
    } else {
        n.addresses.join(", ")
    }
}

fn dns_step(r: &ProbeResult, host: &str, fail: bool) -> Step {
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

fn tcp_step(r: &ProbeResult, host: &str, fail: bool) -> Step {
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

fn fmt_time(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
        .to_string()
}

fn days_left(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = (unix - now).div_euclid(86_400);
    if unix < now {
        format!("expired {} days ago", -days)
    } else {
        format!("in {days} days")
    }
}

fn tls_step(r: &ProbeResult, fail: bool) -> Step {
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
            if info.leaf_not_after < unix_now() + 7 * 86_400 {
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
        let why = if note.is_plain_http_reply() {
            "answered the TLS handshake in plain HTTP"
        } else {
            "refused HTTPS"
        };
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn status_text(e: &Exchange) -> String {
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

fn view(e: &Exchange, request: Vec<String>) -> ExchangeView {
    ExchangeView {
        exchange: e.clone(),
        request,
        repeated: 1,
    }
}

/// Consecutive identical exchanges folded into one with a count (containerd's retries).
fn fold(views: Vec<ExchangeView>) -> Vec<ExchangeView> {
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
fn challenge_error(e: &Exchange) -> Option<String> {
    let text = e.challenge.as_deref()?;
    crate::probe::challenge::parse_challenges(text.split(" | ").map(str::as_bytes))
        .into_iter()
        .find_map(|c| c.param("error").map(str::to_owned))
}

/// The exchanges shown under a failing step: all of them when there are two or fewer, else a
/// one-line trail of every exchange and the last one in full. Transport failures that were
/// recovered (HTTPS before containerd's HTTP fallback) are left out unless last.
fn failing_exchanges(views: &[ExchangeView]) -> (Option<String>, Vec<ExchangeView>) {
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

fn phase_exchanges(r: &ProbeResult, phase: Phase) -> Vec<&Exchange> {
    r.exchanges
        .iter()
        .filter(|e| e.phase == Some(phase))
        .collect()
}

fn user_of(r: &ProbeResult) -> String {
    r.username
        .as_deref()
        .map(|u| format!("`{u}`"))
        .unwrap_or_else(|| "(no username)".into())
}

fn challenge_step(r: &ProbeResult, fail: bool) -> Step {
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

fn token_request_facts(e: &Exchange, r: &ProbeResult) -> Vec<String> {
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

fn token_step(r: &ProbeResult, registry_host: &str, fail: bool, challenge_open: bool) -> Step {
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

fn verify_step(r: &ProbeResult, fail: bool, challenge_open: bool) -> Step {
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

fn manifest_step(p: &ProbeResult, fail: bool) -> Step {
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
fn manifest_failure(p: &ProbeResult) -> String {
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
fn cut_after_failure(steps: &mut [Step]) {
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
fn challenge_summary(e: &Exchange) -> String {
    format!(
        "{} {} → 401, {}",
        e.method,
        e.url,
        e.challenge.as_deref().unwrap_or("no challenge")
    )
}

/// containerd's challenge in a pull: the first manifest request answered 401.
fn pull_challenge_step(p: &ProbeResult) -> Step {
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

// ------------------------------------------------------------------------------------------
// Verdicts
// ------------------------------------------------------------------------------------------

/// What kubelet pulls, for the verdict's words.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    /// The image as written.
    pub image: String,
    /// The registry domain (`registry.example.com:5000`, `docker.io`).
    pub domain: String,
    /// The repository path.
    pub repository: String,
    /// Tag or digest.
    pub reference: String,
    /// Why each key does not match (from [`mismatch_phrases`]).
    pub mismatches: Vec<String>,
    /// The user name of the first key that does not match, for the fix's command.
    pub mismatch_user: Option<String>,
    /// The secret of the first key that does not match (the first of [`mismatch_phrases`]).
    pub mismatch_secret: Option<String>,
}

fn server_flag(domain: &str) -> String {
    if domain == "docker.io" {
        String::new()
    } else {
        format!(" --docker-server={domain}")
    }
}

fn create_command(ctx: &Context, secret: &str, server: &str, user: &str) -> String {
    format!(
        "kubectl create secret docker-registry {secret} {ns}{} --docker-username={user} --docker-password=… --dry-run=client -o yaml | kubectl apply -f -",
        server_flag(server).trim_start(),
        ns = ctx.ns_flag()
    )
}

fn realm_of(r: &ProbeResult) -> Option<String> {
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

/// The verdict of a failed or successful result (a credential probe, or an image attempt).
pub fn verdict(r: &ProbeResult, image: Option<&ImageFacts>, ctx: &Context) -> Verdict {
    let registry = image
        .map(|i| i.domain.clone())
        .unwrap_or_else(|| r.registry.clone());
    let secret = r.secret.clone().unwrap_or_else(|| "NAME".into());
    let user = r.username.clone().unwrap_or_else(|| "USER".into());
    let realm = realm_of(r);
    let roll = ctx.roll();
    let create = create_command(ctx, &secret, crate::plan::host_of(&registry), &user);
    let mut v = Verdict {
        ok: r.success,
        class: r.class,
        reason: r.reason,
        summary: r.detail.clone(),
        next: String::new(),
        also: Vec::new(),
    };
    let Some(reason) = r.reason.filter(|_| !r.success) else {
        if r.success && image.is_some() && r.secret.is_none() {
            v.summary = format!("{} (anonymous: no credential was needed)", r.detail);
        }
        return v;
    };
    let failed = r.failed.as_ref();
    let token_failed = failed.is_some_and(|f| f.step == Some(Phase::Token));
    // The probe's hint names the registry; a failure at the token service is about its host.
    let hint = match failed.filter(|f| token_failed && !f.host.is_empty()) {
        Some(f) => super::advice::hint(
            reason,
            crate::plan::host_of(&registry),
            Some(&host_part(&f.host)),
        ),
        None => super::advice::hint_of(r),
    };
    let (summary, next): (String, String) = match reason {
        Reason::Unauthorized => (
            match (&realm, token_failed) {
                (Some(realm), true) => format!(
                    "the token service at {realm} rejected user `{user}`: the password is wrong or expired"
                ),
                _ => format!(
                    "{registry} rejected the credential of user `{user}`: the password is wrong or expired"
                ),
            },
            format!(
                "check it with `docker login {} -u {user}`; recreate the secret with `{create}` and roll the workload: `{roll}`",
                crate::plan::host_of(&registry)
            ),
        ),
        Reason::TokenForbidden => (
            format!(
                "the token service at {} refused user `{user}` (403): the account or access token is disabled, or a scope or IP policy blocks it",
                realm.as_deref().unwrap_or(&registry)
            ),
            format!(
                "check the account in the registry (locked user, revoked or expired access token, IP allow list); with a new token recreate the secret with `{create}` and roll the workload: `{roll}`"
            ),
        ),
        Reason::CredentialMissing => (
            format!(
                "{registry} requires authentication, but the entry for it in secret `{secret}` has no username or no password, so containerd sends no credential"
            ),
            format!(
                "recreate the secret with a username and password: `{create}`, then roll the workload: `{roll}`"
            ),
        ),
        Reason::CredentialExpired => (
            r.detail.clone(),
            format!(
                "refresh the credential (ECR and GCR tokens expire within hours: use a refresher or a kubelet credential provider), recreate the secret with `{create}` and roll the workload: `{roll}`"
            ),
        ),
        Reason::PullDenied => match image {
            Some(i) => (
                format!(
                    "{registry} accepted user `{user}` but refuses it the pull of {}",
                    i.repository
                ),
                format!(
                    "grant user `{user}` pull access to {} in the registry, or correct the repository path in the image",
                    i.repository
                ),
            ),
            None => (r.detail.clone(), hint.clone()),
        },
        Reason::NotFound => match image {
            Some(i) => (
                format!(
                    "{}:{} does not exist on {} (the manifest HEAD answered 404; {})",
                    i.repository,
                    i.reference,
                    failed
                        .filter(|f| !f.host.is_empty())
                        .map(|f| f.host.as_str())
                        .unwrap_or(&registry),
                    if failed.is_some_and(|f| f.credential_sent) {
                        "the credential works"
                    } else {
                        "no credential was sent"
                    }
                ),
                "correct the image name or tag in the pod spec, or push the image".to_string(),
            ),
            None => (r.detail.clone(), hint.clone()),
        },
        Reason::NoMatchingCredential => {
            let i = image.cloned().unwrap_or_default();
            let status = r
                .exchanges
                .iter()
                .rev()
                .find_map(|e| e.status)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let why = if i.mismatches.is_empty() {
                format!("no pull secret has a key for {}", i.domain)
            } else {
                i.mismatches.join("; ")
            };
            let next = if let Some((s, k)) = ctx.unreferenced_matches.first() {
                format!(
                    "secret `{s}` has key `{k}`, which matches: add it to the pod's imagePullSecrets, then roll the workload: `{roll}`"
                )
            } else if let Some(m) = ctx.missing.first() {
                format!(
                    "the pod lists `{m}`, which was not given: check it exists in namespace {} (`kubectl {}get secret {m}`) with a key for {}; if not, create it: `{}`, then roll the workload: `{roll}`",
                    ctx.namespace.as_deref().unwrap_or("NAMESPACE"),
                    ctx.ns_flag(),
                    i.domain,
                    create_command(ctx, m, &i.domain, "USER")
                )
            } else if i.mismatches.is_empty() {
                format!(
                    "create a pull secret for {}: `{}`, list it in the pod's imagePullSecrets and roll the workload: `{roll}`",
                    i.domain,
                    create_command(ctx, "NAME", &i.domain, "USER")
                )
            } else {
                format!(
                    "make the key the image's host and port exactly: `{}`, then roll the workload: `{roll}` (or correct the image name)",
                    create_command(
                        ctx,
                        i.mismatch_secret.as_deref().unwrap_or(&secret),
                        &i.domain,
                        i.mismatch_user.as_deref().unwrap_or("USER")
                    )
                )
            };
            (
                format!(
                    "{why}: kubelet pulls anonymously and {} refuses{status}",
                    i.domain
                ),
                next,
            )
        }
        Reason::SecretInvalid => (
            format!(
                "{} (kubelet cannot use it{})",
                r.detail,
                if image.is_some() {
                    ", and fails every pull of the pod before contacting a registry"
                } else {
                    ""
                }
            ),
            format!(
                "recreate it: `kubectl create secret docker-registry {secret} {}--docker-server=… --docker-username=… --docker-password=… --dry-run=client -o yaml | kubectl apply -f -` (by hand, the value is {{\"auths\": {{\"HOST\": {{\"auth\": base64 of user:password}}}}}})",
                ctx.ns_flag()
            ),
        ),
        Reason::TokenEndpoint => {
            let last = r
                .exchanges
                .iter()
                .rev()
                .find(|e| e.phase == Some(Phase::Token) && e.status.is_some());
            (
                format!(
                    "the token service at {} is broken: it answered user `{user}` with {} (not a credential problem)",
                    realm.as_deref().unwrap_or(&registry),
                    last.map(status_text)
                        .unwrap_or_else(|| "no usable token".into())
                ),
                hint.clone(),
            )
        }
        _ if network_layer(r).is_some() || reason == Reason::Timeout => {
            let who = if token_failed {
                format!("the token service {}", realm.as_deref().unwrap_or(""))
            } else {
                registry.clone()
            };
            let error = failed.and_then(|f| f.failure.transport());
            // The sentence names the peer itself: the transport's cause without its subject.
            let err = error.map(|e| e.cause()).unwrap_or_else(|| r.detail.clone());
            let summary = match network_layer(r) {
                Some(StepKind::Dns) => format!(
                    "this node cannot resolve {}: {err}",
                    error.and_then(|e| e.subject()).unwrap_or(&registry)
                ),
                Some(StepKind::Tcp) => format!("this node cannot connect to {who}: {err}"),
                Some(StepKind::Tls) => {
                    format!("the TLS handshake with {who} fails on this node: {err}")
                }
                _ => format!("{who} does not answer this node in time: {err}"),
            };
            (summary, hint.clone())
        }
        _ => (r.detail.clone(), hint.clone()),
    };
    v.summary = summary;
    v.next = next;
    v
}

// ------------------------------------------------------------------------------------------
// Whole diagnoses
// ------------------------------------------------------------------------------------------

/// The diagnosis of one credential probe (`check` without `--image`).
#[derive(Debug, Clone, Serialize)]
pub struct Walk {
    /// The steps.
    pub steps: Vec<Step>,
    /// The conclusion.
    pub verdict: Verdict,
}

/// Diagnoses a credential probe, or a secret that does not parse (`registry == ""`).
pub fn diagnose_credential(secret: Option<&SecretInfo>, r: &ProbeResult, ctx: &Context) -> Walk {
    let mut steps = Vec::new();
    if let Some(s) = secret {
        steps.push(secret_step(s));
        if s.error.is_none() {
            steps.push(keys_step(s, Some(&r.registry)));
        }
    }
    if r.reason == Some(Reason::SecretInvalid) {
        if let Some(first) = steps.first_mut() {
            first.mark = Mark::Fail;
        }
        for k in [
            StepKind::Keys,
            StepKind::Dns,
            StepKind::Tcp,
            StepKind::Tls,
            StepKind::Challenge,
            StepKind::Token,
            StepKind::Verify,
        ] {
            steps.push(Step::new(k, Mark::NotReached, "not reached"));
        }
    } else {
        steps.extend(credential_steps(r));
    }
    Walk {
        steps,
        verdict: verdict(r, None, ctx),
    }
}

/// One credential attempt of an image.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// `secret a-stale, user alice (key 127.0.0.1:5000/team)` or `no credential`.
    pub title: String,
    /// The secret used (none: anonymous).
    pub secret: Option<String>,
    /// The keyring key used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The steps from DNS to the manifest.
    pub steps: Vec<Step>,
    /// This attempt's conclusion.
    pub verdict: Verdict,
}

/// What is needed to diagnose one image.
#[derive(Debug, Clone, Default)]
pub struct ImageInput<'a> {
    /// The image and what the verdict says about it.
    pub facts: ImageFacts,
    /// The pod (`Deployment team/web`), with `--pod-spec`.
    pub workload: Option<String>,
    /// The containers that run it.
    pub containers: Vec<String>,
    /// The secrets kubelet uses for the pod, pod secrets first, then the node's.
    pub secrets: Vec<&'a SecretInfo>,
    /// Secrets given but not named by the pod.
    pub unreferenced: Vec<&'a SecretInfo>,
    /// Every keyring key with its verdict for the image.
    pub verdicts: Vec<KeyVerdict>,
    /// A secret of the pod that does not parse: kubelet fails the pull before any request.
    pub invalid: Option<&'a ProbeResult>,
    /// Each credential attempt: `(key, credential probe, pull probe)`.
    pub attempts: Vec<(Option<String>, Option<&'a ProbeResult>, &'a ProbeResult)>,
    /// Namespace, roll command, missing references.
    pub ctx: Context,
}

/// The diagnosis of one image (`check --image`, `check --pod-spec`).
#[derive(Debug, Clone, Serialize)]
pub struct ImageDiagnosis {
    /// The image as written.
    pub image: String,
    /// The pod it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Its containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// Whether kubelet's pull would succeed.
    pub pullable: bool,
    /// Secrets, keys and the keyring lookup.
    pub steps: Vec<Step>,
    /// Each credential kubelet tries, in order, until one works.
    pub attempts: Vec<Attempt>,
    /// The conclusion for the image.
    pub verdict: Verdict,
    /// Names in `imagePullSecrets` that were not given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_secrets: Vec<String>,
}

fn attempt_title(key: Option<&str>, pull: &ProbeResult) -> String {
    match (&pull.secret, &pull.username) {
        (Some(s), Some(u)) => format!(
            "secret {s}, user {u}{}",
            key.map(|k| format!(" (key {k})")).unwrap_or_default()
        ),
        (Some(s), None) => format!(
            "secret {s}, no username: containerd pulls anonymously{}",
            key.map(|k| format!(" (key {k})")).unwrap_or_default()
        ),
        _ => "no credential (anonymous pull)".to_string(),
    }
}

fn attempt_short(a: &Attempt) -> String {
    match (&a.secret, &a.key) {
        (Some(s), Some(k)) => format!("secret {s}, key {k}"),
        (Some(s), None) => format!("secret {s}"),
        _ => "anonymous".into(),
    }
}

/// Diagnoses one image: the secrets, keys and keyring lookup, then each credential attempt,
/// then the verdict.
pub fn diagnose_image(input: &ImageInput<'_>) -> ImageDiagnosis {
    let ctx = &input.ctx;
    let mut steps: Vec<Step> = Vec::new();
    if input.secrets.is_empty() && ctx.missing.is_empty() {
        steps.push(Step::new(
            StepKind::Secret,
            Mark::Skip,
            "no pull secret given and no node config.json",
        ));
    }
    for s in &input.secrets {
        steps.push(secret_step(s));
    }
    for m in &ctx.missing {
        steps.push(missing_step(m, ctx));
    }
    for s in &input.unreferenced {
        steps.push(unreferenced_step(s, ctx.service_account.as_deref()));
    }
    let blocked = input.invalid.is_some();
    if !blocked {
        for s in input.secrets.iter().filter(|s| s.error.is_none()) {
            steps.push(keys_step(s, None));
        }
        steps.push(match_step(
            &input.verdicts,
            &format!("{}/{}", input.facts.domain, input.facts.repository),
        ));
    } else {
        for k in [StepKind::Keys, StepKind::Match] {
            steps.push(Step::new(k, Mark::NotReached, "not reached"));
        }
    }
    let mismatch_user = input.verdicts.iter().find(|v| !v.matched()).and_then(|v| {
        let secret = v.secrets.first()?;
        input
            .secrets
            .iter()
            .find(|s| &s.id == secret)?
            .keys
            .iter()
            .find(|k| k.key == v.key && !k.username.is_empty())
            .map(|k| k.username.clone())
    });
    let mismatch_secret = input
        .verdicts
        .iter()
        .find(|v| matches!(&v.outcome, KeyOutcome::NotMatched(why) if !why.is_empty()))
        .and_then(|v| v.secrets.first().cloned());
    let facts = ImageFacts {
        mismatches: mismatch_phrases(&input.verdicts),
        mismatch_user,
        mismatch_secret,
        ..input.facts.clone()
    };
    let attempts: Vec<Attempt> = input
        .attempts
        .iter()
        .map(|(key, cred, pull)| {
            let cred_failed_first = cred.is_some_and(|c| !c.success) && !pull.success;
            // The verdict follows the walk: the first step that broke.
            let basis = match cred {
                Some(c) if cred_failed_first => c,
                _ => pull,
            };
            Attempt {
                title: attempt_title(key.as_deref(), pull),
                secret: pull.secret.clone(),
                key: key.clone(),
                steps: attempt_steps(*cred, pull),
                verdict: verdict(basis, Some(&facts), ctx),
            }
        })
        .collect();
    let pullable = !blocked && input.attempts.iter().any(|(_, _, p)| p.success);
    let mut v = if let Some(inv) = input.invalid {
        verdict(inv, Some(&facts), ctx)
    } else if let Some(i) = attempts.iter().position(|a| a.verdict.ok) {
        let a = &attempts[i];
        let with = match &a.secret {
            Some(s) => format!("secret {s}"),
            None => "no credential: the registry lets anyone pull".to_string(),
        };
        Verdict {
            ok: true,
            class: None,
            reason: None,
            summary: format!(
                "pullable: kubelet's pull would succeed ({with}, attempt {} of {})",
                i + 1,
                attempts.len()
            ),
            next: String::new(),
            also: attempts[..i]
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    format!(
                        "attempt {} ({}) fails first: {} ({}): {}; kubelet tries it before every pull: fix it or remove the key",
                        j + 1,
                        attempt_short(f),
                        f.verdict.class.map(|c| c.as_str()).unwrap_or(""),
                        f.verdict.reason.map(|r| r.as_str()).unwrap_or(""),
                        f.verdict.summary
                    )
                })
                .collect(),
        }
    } else {
        let mut first = attempts
            .first()
            .map(|a| a.verdict.clone())
            .unwrap_or_else(|| Verdict {
                ok: false,
                class: None,
                reason: None,
                summary: "no attempt was made".into(),
                next: String::new(),
                also: Vec::new(),
            });
        for (j, a) in attempts.iter().enumerate().skip(1) {
            first.also.push(format!(
                "attempt {} ({}) fails too: {} ({}): {}",
                j + 1,
                attempt_short(a),
                a.verdict.class.map(|c| c.as_str()).unwrap_or(""),
                a.verdict.reason.map(|r| r.as_str()).unwrap_or(""),
                a.verdict.summary
            ));
        }
        first
    };
    for m in &ctx.missing {
        v.also.push(format!(
            "the pod lists imagePullSecrets `{m}`, which was not given: if it is missing in namespace {}, kubelet pulls without it (event FailedToRetrieveImagePullSecret); create it there or give it with --secret",
            ctx.namespace.as_deref().unwrap_or("NAMESPACE")
        ));
    }
    if v.ok {
        for (s, k) in &ctx.unreferenced_matches {
            v.also.push(format!(
                "secret `{s}` has a matching key `{k}` but the pod does not list it: kubelet does not use it"
            ));
        }
    }
    ImageDiagnosis {
        image: input.facts.image.clone(),
        workload: input.workload.clone(),
        containers: input.containers.clone(),
        pullable,
        steps,
        attempts,
        verdict: v,
        missing_secrets: ctx.missing.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::failure::{AuthScheme, DnsFailure, Failed, Failure, Peer, TransportError};
    use crate::probe::{HostVerdict, NetworkStep};

    fn basic_unauthorized() -> ProbeResult {
        let mut r = ProbeResult::new("127.0.0.1:5000", Some("stale".into()));
        r.username = Some("alice".into());
        r.auth_mode = Some(AuthMode::Basic);
        r.endpoint = Some("http://127.0.0.1:5000/v2/".into());
        r.reason = Some(Reason::Unauthorized);
        r.class = Some(Class::Credential);
        r.detail = "GET http://127.0.0.1:5000/v2/ with Basic credentials of user `alice` answered 401: UNAUTHORIZED".into();
        r.network.push(NetworkStep {
            host: "127.0.0.1".into(),
            source: "literal".into(),
            addresses: vec!["127.0.0.1".into()],
            connected: Some("127.0.0.1:5000".into()),
        });
        r.add_phase(Phase::Resolve, 0.0);
        r.add_phase(Phase::Connect, 0.001);
        for (phase, status) in [(Phase::Challenge, 401), (Phase::Verify, 401)] {
            r.exchanges.push(Exchange {
                phase: Some(phase),
                method: "GET".into(),
                url: "http://127.0.0.1:5000/v2/".into(),
                status: Some(status),
                challenge: Some("Basic realm=\"r\"".into()),
                error_code: Some("UNAUTHORIZED".into()),
                error_message: Some("authentication required".into()),
                response_headers: vec![],
            });
        }
        r.failed = Some(Failed {
            failure: Failure::VerifyStatus {
                scheme: AuthScheme::Basic,
                status: 401,
                challenge_error: None,
            },
            step: Some(Phase::Verify),
            host: "127.0.0.1:5000".into(),
            credential_sent: true,
            exchange: Some(1),
        });
        r
    }

    #[test]
    fn a_wrong_password_breaks_at_verify() {
        let r = basic_unauthorized();
        let steps = credential_steps(&r);
        let marks: Vec<(StepKind, Mark)> = steps.iter().map(|s| (s.step, s.mark)).collect();
        assert_eq!(
            marks,
            vec![
                (StepKind::Dns, Mark::Ok),
                (StepKind::Tcp, Mark::Ok),
                (StepKind::Tls, Mark::Skip),
                (StepKind::Challenge, Mark::Ok),
                (StepKind::Token, Mark::Skip),
                (StepKind::Verify, Mark::Fail),
            ]
        );
        assert!(
            steps[5]
                .summary
                .contains("refused the Basic credential of user `alice` (401)"),
            "{}",
            steps[5].summary
        );
        let v = verdict(&r, None, &Context::default());
        assert_eq!(v.class, Some(Class::Credential));
        assert!(
            v.summary
                .contains("rejected the credential of user `alice`"),
            "{}",
            v.summary
        );
        assert!(v.next.contains("kubectl create secret docker-registry stale -n NAMESPACE --docker-server=127.0.0.1:5000 --docker-username=alice --docker-password=…"), "{}", v.next);
    }

    #[test]
    fn a_realm_that_does_not_resolve_breaks_at_token() {
        let mut r = basic_unauthorized();
        r.auth_mode = Some(AuthMode::Bearer);
        r.exchanges.pop();
        r.exchanges.push(Exchange {
            phase: Some(Phase::Token),
            method: "POST".into(),
            url: "http://auth.test:1/token".into(),
            ..Exchange::default()
        });
        r.reason = Some(Reason::Dns);
        r.class = Some(Class::Network);
        r.detail = "POST http://auth.test:1/token: the token service could not be reached: resolving auth.test: no such host (NXDOMAIN)".into();
        r.failed = Some(Failed {
            failure: Failure::Transport {
                peer: Peer::Realm,
                error: TransportError::Dns {
                    host: "auth.test".into(),
                    kind: DnsFailure::NxDomain,
                },
            },
            step: Some(Phase::Token),
            host: "auth.test:1".into(),
            credential_sent: true,
            exchange: Some(r.exchanges.len() - 1),
        });
        let steps = credential_steps(&r);
        assert_eq!(steps[0].mark, Mark::Ok, "the registry resolved");
        assert_eq!(steps[4].mark, Mark::Fail);
        assert!(
            steps[4]
                .summary
                .contains("the token service auth.test:1 cannot be reached: resolving auth.test"),
            "{}",
            steps[4].summary
        );
        assert_eq!(steps[5].mark, Mark::NotReached);
        let v = verdict(&r, None, &Context::default());
        assert!(
            v.summary
                .contains("this node cannot resolve auth.test: no such host (NXDOMAIN)"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn an_anonymous_refused_pull_names_the_key_mismatch() {
        let mut p = ProbeResult::new("registry.company.com", None);
        p.image = Some("registry.company.com/app:1".into());
        p.reason = Some(Reason::NoMatchingCredential);
        p.class = Some(Class::Config);
        p.hosts.push(HostVerdict {
            host: "https://registry.company.com/v2".into(),
            mirror: false,
            success: false,
            reason: Some(Reason::NoMatchingCredential),
            detail: "401".into(),
            failed: None,
        });
        p.exchanges.push(Exchange {
            phase: Some(Phase::Manifest),
            method: "HEAD".into(),
            url: "https://registry.company.com/v2/app/manifests/1".into(),
            status: Some(401),
            ..Exchange::default()
        });
        let facts = ImageFacts {
            image: "registry.company.com/app:1".into(),
            domain: "registry.company.com".into(),
            repository: "app".into(),
            reference: "1".into(),
            mismatches: vec!["secret `regcred` has key `private.registry.com` but the image host is `registry.company.com`".into()],
            mismatch_user: Some("ci-bot".into()),
            mismatch_secret: Some("regcred".into()),
        };
        let v = verdict(&p, Some(&facts), &Context::default());
        assert_eq!(v.class, Some(Class::Config));
        assert!(v.summary.starts_with("secret `regcred` has key `private.registry.com` but the image host is `registry.company.com`: kubelet pulls anonymously"), "{}", v.summary);
        assert!(v.next.contains("create secret docker-registry regcred -n NAMESPACE --docker-server=registry.company.com --docker-username=ci-bot"), "{}", v.next);
        let steps = attempt_steps(None, &p);
        assert_eq!(steps.last().unwrap().mark, Mark::Fail);
    }

    #[test]
    fn retries_fold_into_one_line() {
        let e = Exchange {
            phase: Some(Phase::Manifest),
            method: "HEAD".into(),
            url: "u".into(),
            status: Some(401),
            ..Exchange::default()
        };
        let folded = fold(vec![view(&e, vec![]), view(&e, vec![]), view(&e, vec![])]);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].repeated, 3);
    }
}
