//! The walk's model: steps, marks, verdicts, and the facts of secrets and images it is built
//! from.

use serde::Serialize;

use crate::probe::{Class, Exchange, Reason};
use crate::secrets::{Secret, SecretKind};

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
    /// A kubelet credential-provider plugin asked for the image or host: which one matched,
    /// its exit status, time, cache state and the keys it returned (never the values).
    Provider,
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
            StepKind::Provider => "provider",
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

pub(crate) fn is_one(n: &usize) -> bool {
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
    pub(crate) fn new(step: StepKind, mark: Mark, summary: impl Into<String>) -> Step {
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

    pub(crate) fn timed(mut self, seconds: Option<f64>) -> Step {
        self.seconds = seconds;
        self
    }

    pub(crate) fn with_evidence(mut self, lines: impl IntoIterator<Item = String>) -> Step {
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
    /// kubelet skips it (wrong type, no key, empty value: `MakeDockerKeyring`) rather than
    /// failing the pod's pulls ([`crate::secrets::SecretError::kubelet_skips`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Its entries.
    pub keys: Vec<KeyInfo>,
    /// What kubelet ignores in it (`credsStore`, unusable keys, duplicates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Time to read and parse its source.
    pub seconds: f64,
    /// For a credential-provider answer (`provider:NAME`): its `provider` step, shown in place
    /// of the `secret` step.
    #[serde(skip)]
    pub provider: Option<Step>,
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
        let skipped = secret
            .entries
            .as_ref()
            .err()
            .is_some_and(|e| e.kubelet_skips());
        SecretInfo {
            id: secret.id.clone(),
            path: secret.path.display().to_string(),
            kind: match secret.kind {
                SecretKind::DockerConfigJson => "kubernetes.io/dockerconfigjson".into(),
                SecretKind::DockerCfg => "kubernetes.io/dockercfg (legacy)".into(),
                SecretKind::NodeConfig => "kubelet config.json (the node's keyring)".into(),
                SecretKind::Unknown => "unknown type".into(),
                SecretKind::Provider => "kubelet credential provider plugin answer".into(),
            },
            node: secret.kind == SecretKind::NodeConfig
                || secret.id == crate::secrets::keyring::NODE_SECRET_ID,
            error,
            skipped,
            keys,
            warnings: secret.warnings.clone(),
            seconds,
            provider: None,
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
    pub(crate) fn ns_flag(&self) -> String {
        format!("-n {} ", self.namespace.as_deref().unwrap_or("NAMESPACE"))
    }

    pub(crate) fn roll(&self) -> String {
        self.roll
            .clone()
            .unwrap_or_else(|| format!("kubectl {}rollout restart deployment/NAME", self.ns_flag()))
    }
}

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
    /// Why each key does not match (from [`super::mismatch_phrases`]).
    pub mismatches: Vec<String>,
    /// The user name of the first key that does not match, for the fix's command.
    pub mismatch_user: Option<String>,
    /// The secret of the first key that does not match (the first of [`super::mismatch_phrases`]).
    pub mismatch_secret: Option<String>,
}
