//! kubelet's keyring: which credentials kubelet hands to containerd for an image, and in which
//! order (`docs/containerd-kubelet.md` §3.3–3.5, §3.7).
//!
//! This is a transcription of kubernetes `pkg/credentialprovider/keyring.go`:
//! `BasicDockerKeyring.Add` (index of keys, de-duplicated and sorted in reverse byte order, several
//! entries per key appended in order), `BasicDockerKeyring.Lookup` (every matching key contributes,
//! then the `index.docker.io` fallback for Docker Hub images), `URLsMatchStr`/`URLsMatch` (host
//! labels globbed with Go's `path/filepath.Match`, ports compared as strings, the path as a plain
//! string prefix) and `UnionDockerKeyring` (pod secrets first, then the node's `config.json`).
//!
//! Keys arrive already normalised ([`AuthEntry::key`], `secrets::key`); this module only indexes
//! and matches them. Both sides are parsed with the crate's port of Go's `net/url`
//! (`crate::golang`), the authority split with its `net.SplitHostPort`. Current Go refuses a `[`
//! inside a host, so a key's labels can hold `*` globs but no `[...]` classes.
//! [`Keyring::explain`] says, for every key, why it did or did not match.
//!
//! Exec credential-provider plugins (§3.6) are run by `crate::providers`; their answers arrive
//! here as secrets with id `provider:NAME` and make the third sub-keyring, after the node's
//! (`kuberuntime_image.go`: `MakeDockerKeyring(pullSecrets, UnionDockerKeyring{nodeKeyring,
//! externalCredentialProviderKeyring})`; `plugin/plugins.go` adds every provider's `auth` map
//! to one `BasicDockerKeyring`).
//!
//! Not modelled: Go's random order of two spellings of one key inside one secret (regprobe keeps
//! the secret's entry order).

use crate::golang::{self, GoUrl};
use crate::secrets::{AuthEntry, Credential, Secret};
use std::collections::HashMap;
use std::fmt;

/// The secret id of the node's kubelet `config.json` (`--node-config`).
pub const NODE_SECRET_ID: &str = "node";

/// The key kubelet falls back on for Docker Hub images (`defaultRegistryHost` in `keyring.go`).
pub const DEFAULT_REGISTRY_KEY: &str = "index.docker.io";

/// Which of kubelet's sub-keyrings a key or match comes from (`UnionDockerKeyring` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyringSource {
    /// The pod's `imagePullSecrets` (every secret but `node`), looked up first.
    PodSecrets,
    /// The node's kubelet `config.json` (secret id `node`), looked up second.
    Node,
    /// Exec credential-provider plugins (secret ids `provider:NAME`), looked up last
    /// (`externalCredentialProviderKeyring`).
    Provider,
}

/// The prefix of the secret id of a credential-provider plugin's answer (`provider:NAME`).
pub const PROVIDER_SECRET_PREFIX: &str = "provider:";

impl KeyringSource {
    /// `pod-secrets` or `node`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyringSource::PodSecrets => "pod-secrets",
            KeyringSource::Node => "node",
            KeyringSource::Provider => "provider",
        }
    }
}

impl fmt::Display for KeyringSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One credential kubelet would try for an image, in the order of [`Keyring::lookup`]
/// (`keyring.go` `Lookup` returns these; `kuberuntime_image.go` `PullImage` tries each in turn).
#[derive(Debug, Clone)]
pub struct KeyMatch {
    /// The secret the entry comes from (`node` for the node's `config.json`).
    pub secret: String,
    /// The keyring key that matched, e.g. `registry.example.com/team`.
    pub key: String,
    /// The key as written in the secret (user-info redacted).
    pub raw_key: String,
    /// The entry's `registry` metrics label.
    pub registry: String,
    /// The user name and password kubelet passes to the CRI.
    pub credential: Credential,
    /// The user name is empty: containerd's `ParseAuth` then returns no credential, so this
    /// attempt pulls anonymously (`docs/containerd-kubelet.md` §3.7, §4). kubelet still makes the attempt.
    pub anonymous: bool,
    /// The sub-keyring the entry comes from.
    pub source: KeyringSource,
    /// Matched only through the `index.docker.io` fallback for Docker Hub images
    /// (`isDefaultRegistryMatch`), not through `URLsMatchStr`.
    pub docker_hub_fallback: bool,
}

/// Why a key does not match an image, as an SRE would want it said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// Same number of labels, but a label differs (labels are matched case-sensitively with
    /// `filepath.Match`).
    Host {
        /// The key's host without port.
        key_host: String,
        /// The image's host without port.
        image_host: String,
        /// The first label that does not match: 1-based index, key label, image label.
        label: (usize, String, String),
    },
    /// The hosts have a different number of `.`-separated labels (a glob `*` never spans a dot).
    LabelCount {
        /// The key's host without port.
        key_host: String,
        /// The image's host without port.
        image_host: String,
        /// Labels in the key's host.
        key_labels: usize,
        /// Labels in the image's host.
        image_labels: usize,
    },
    /// The ports differ as strings (`""` is not `"443"`).
    Port {
        /// The key's port, `""` when none.
        key_port: String,
        /// The image's port, `""` when none.
        image_port: String,
    },
    /// The key's path is not a string prefix of the image's path.
    Path {
        /// The key's path, e.g. `/team`.
        key_path: String,
        /// The image's path, e.g. `/other/app`.
        image_path: String,
    },
    /// A key label is not a valid `filepath.Match` pattern (kubelet then never matches it).
    BadPattern {
        /// The offending label.
        label: String,
    },
    /// Go's `url.Parse` refuses `https://` + the key, so kubelet never matches it.
    KeyNotUrl,
    /// Go's `url.Parse` refuses `https://` + the image name, so no key matches it.
    ImageNotUrl,
    /// The key is `index.docker.io`, used for a Docker Hub image only when no other key of its
    /// sub-keyring matched, and another one did.
    DockerHubFallbackOnly,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Host {
                key_host,
                image_host,
                label: (index, key_label, image_label),
            } => {
                write!(f, "host differs: key {key_host} vs image {image_host}")?;
                if key_host.eq_ignore_ascii_case(image_host) {
                    write!(f, " (kubelet compares host names case-sensitively)")
                } else if key_host.contains(['*', '?', '[', '\\']) {
                    write!(
                        f,
                        " (label {index}: pattern {key_label:?} does not match {image_label:?})"
                    )
                } else {
                    Ok(())
                }
            }
            Mismatch::LabelCount {
                key_host,
                image_host,
                key_labels,
                image_labels,
            } => {
                if key_host.contains(['*', '?', '[', '\\']) {
                    write!(
                        f,
                        "label count differs: key {key_host} has {key_labels} labels, image \
                         {image_host} has {image_labels} (a `*` matches exactly one label)"
                    )
                } else {
                    write!(f, "host differs: key {key_host} vs image {image_host}")
                }
            }
            Mismatch::Port {
                key_port,
                image_port,
            } => write!(
                f,
                "port differs: {key_port:?} vs {image_port:?} (key vs image; the port must be \
                 written the same way in both)"
            ),
            Mismatch::Path {
                key_path,
                image_path,
            } => write!(f, "path {key_path} is not a prefix of {image_path}"),
            Mismatch::BadPattern { label } => write!(
                f,
                "key label {label:?} is not a valid glob pattern, so kubelet never matches this key"
            ),
            Mismatch::KeyNotUrl => write!(
                f,
                "kubelet cannot parse the key as a URL, so it never matches any image"
            ),
            Mismatch::ImageNotUrl => write!(
                f,
                "kubelet cannot parse the image name as a URL, so no key matches it"
            ),
            Mismatch::DockerHubFallbackOnly => write!(
                f,
                "used only as the Docker Hub fallback when nothing else matches, and another key \
                 of the same keyring matched"
            ),
        }
    }
}

/// How one key fared against an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// `URLsMatchStr(key, image)` is true: all of the key's entries are tried.
    Matched,
    /// The key is `index.docker.io`, the image is a Docker Hub image and no other key of this
    /// sub-keyring matched: kubelet uses it as the fallback.
    DockerHubFallback,
    /// Not used, for these reasons (every failing check, not only the first one kubelet hits).
    NotMatched(Vec<Mismatch>),
}

/// One key of the keyring and whether it applies to an image ([`Keyring::explain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVerdict {
    /// The sub-keyring holding the key.
    pub source: KeyringSource,
    /// The keyring key.
    pub key: String,
    /// The secrets with entries under this key, in the order their entries are tried.
    pub secrets: Vec<String>,
    /// Matched, used as the Docker Hub fallback, or why not.
    pub outcome: KeyOutcome,
}

impl KeyVerdict {
    /// Whether kubelet tries this key's entries for the image (a match or the fallback).
    pub fn matched(&self) -> bool {
        !matches!(self.outcome, KeyOutcome::NotMatched(_))
    }

    /// Why the key does not apply, in words (`None` when it does); several reasons are joined
    /// with `; `.
    pub fn reason(&self) -> Option<String> {
        match &self.outcome {
            KeyOutcome::NotMatched(why) => Some(
                why.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for KeyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} key {} (secret {}): ",
            self.source,
            self.key,
            self.secrets.join(", ")
        )?;
        match &self.outcome {
            KeyOutcome::Matched => f.write_str("matches"),
            KeyOutcome::DockerHubFallback => {
                f.write_str("used as the Docker Hub fallback (no other key matched)")
            }
            KeyOutcome::NotMatched(_) => {
                write!(f, "no match: {}", self.reason().unwrap_or_default())
            }
        }
    }
}

/// One entry stored under a key.
#[derive(Debug, Clone)]
struct Slot {
    secret: String,
    raw_key: String,
    registry: String,
    credential: Credential,
}

/// kubelet's `BasicDockerKeyring` (`pkg/credentialprovider/keyring.go`): entries indexed by
/// keyring key, keys kept de-duplicated in reverse byte order, entries of one key in the order
/// they were added.
#[derive(Debug, Clone, Default)]
pub struct BasicDockerKeyring {
    index: Vec<String>,
    creds: HashMap<String, Vec<Slot>>,
    /// Each key as `ParseSchemelessURL` sees it (`None`: Go cannot parse it).
    parsed: HashMap<String, Option<GoUrl>>,
}

impl BasicDockerKeyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry of secret `secret` under its key (`BasicDockerKeyring.Add`).
    pub fn add(&mut self, secret: &str, entry: &AuthEntry) {
        let slot = Slot {
            secret: secret.to_string(),
            raw_key: entry.raw_key.clone(),
            registry: entry.registry.clone(),
            credential: entry.credential.clone(),
        };
        match self.creds.get_mut(&entry.key) {
            Some(slots) => slots.push(slot),
            None => {
                // Reverse byte order: `sort.Sort(sort.Reverse(sort.StringSlice(index)))`.
                let at = self
                    .index
                    .partition_point(|k| k.as_str() > entry.key.as_str());
                self.index.insert(at, entry.key.clone());
                self.creds.insert(entry.key.clone(), vec![slot]);
                self.parsed
                    .insert(entry.key.clone(), parse_schemeless(&entry.key));
            }
        }
    }

    /// Adds every entry of a secret that parsed; returns `false` (and adds nothing) for a secret
    /// kubelet would reject.
    pub fn add_secret(&mut self, secret: &Secret) -> bool {
        match &secret.entries {
            Ok(entries) => {
                for entry in entries {
                    self.add(&secret.id, entry);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// The keys, in kubelet's lookup order (reverse byte order).
    pub fn keys(&self) -> &[String] {
        &self.index
    }

    /// Whether no key was added.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every matching entry for `repo_to_pull` in kubelet's order (`BasicDockerKeyring.Lookup`).
    pub fn lookup(&self, repo_to_pull: &str, source: KeyringSource) -> Vec<KeyMatch> {
        let target = parse_schemeless(repo_to_pull);
        let mut out = Vec::new();
        for key in &self.index {
            let matched = match (&target, self.glob(key)) {
                (Some(t), Some(g)) => compare(g, t).is_empty(),
                _ => false,
            };
            if matched {
                self.push_matches(&mut out, key, source, false);
            }
        }
        if out.is_empty()
            && is_default_registry_match(repo_to_pull)
            && self.creds.contains_key(DEFAULT_REGISTRY_KEY)
        {
            self.push_matches(&mut out, DEFAULT_REGISTRY_KEY, source, true);
        }
        out
    }

    /// Every key with its verdict for `repo_to_pull`, in lookup order.
    pub fn explain(&self, repo_to_pull: &str, source: KeyringSource) -> Vec<KeyVerdict> {
        let target = parse_schemeless(repo_to_pull);
        let mut verdicts: Vec<KeyVerdict> = self
            .index
            .iter()
            .map(|key| {
                let why = match (self.glob(key), &target) {
                    (None, _) => vec![Mismatch::KeyNotUrl],
                    (Some(_), None) => vec![Mismatch::ImageNotUrl],
                    (Some(g), Some(t)) => compare(g, t),
                };
                let mut secrets: Vec<String> = Vec::new();
                for slot in &self.creds[key] {
                    if !secrets.contains(&slot.secret) {
                        secrets.push(slot.secret.clone());
                    }
                }
                KeyVerdict {
                    source,
                    key: key.clone(),
                    secrets,
                    outcome: if why.is_empty() {
                        KeyOutcome::Matched
                    } else {
                        KeyOutcome::NotMatched(why)
                    },
                }
            })
            .collect();
        if is_default_registry_match(repo_to_pull) {
            let any = verdicts.iter().any(KeyVerdict::matched);
            if let Some(v) = verdicts.iter_mut().find(|v| v.key == DEFAULT_REGISTRY_KEY) {
                if !any {
                    v.outcome = KeyOutcome::DockerHubFallback;
                } else if !v.matched() {
                    v.outcome = KeyOutcome::NotMatched(vec![Mismatch::DockerHubFallbackOnly]);
                }
            }
        }
        verdicts
    }

    fn glob(&self, key: &str) -> Option<&GoUrl> {
        self.parsed.get(key).and_then(Option::as_ref)
    }

    fn push_matches(
        &self,
        out: &mut Vec<KeyMatch>,
        key: &str,
        source: KeyringSource,
        fallback: bool,
    ) {
        for slot in self.creds.get(key).into_iter().flatten() {
            out.push(KeyMatch {
                secret: slot.secret.clone(),
                key: key.to_string(),
                raw_key: slot.raw_key.clone(),
                registry: slot.registry.clone(),
                credential: slot.credential.clone(),
                anonymous: slot.credential.username.is_empty(),
                source,
                docker_hub_fallback: fallback,
            });
        }
    }
}

/// kubelet's keyring for one pod: `UnionDockerKeyring{pod secrets, node keyring}`
/// (`pkg/credentialprovider/secrets/secrets.go` `MakeDockerKeyring`, `keyring.go`).
///
/// Every secret but `node` goes into the pod-secrets [`BasicDockerKeyring`], in the order given
/// (the order of `imagePullSecrets`); the secret with id `node` (the node's `config.json`) into the
/// second one.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    pod: BasicDockerKeyring,
    node: BasicDockerKeyring,
    provider: BasicDockerKeyring,
    invalid: Vec<String>,
}

impl Keyring {
    /// Builds the keyring from loaded secrets. Secrets that do not parse are left out and listed
    /// by [`Keyring::invalid_secrets`].
    pub fn new(secrets: &[Secret]) -> Keyring {
        let mut keyring = Keyring::default();
        for secret in secrets {
            let ring = if secret.id == NODE_SECRET_ID {
                &mut keyring.node
            } else if secret.id.starts_with(PROVIDER_SECRET_PREFIX) {
                &mut keyring.provider
            } else {
                &mut keyring.pod
            };
            if !ring.add_secret(secret) {
                keyring.invalid.push(secret.id.clone());
            }
        }
        keyring
    }

    /// The pod secrets' sub-keyring.
    pub fn pod_secrets(&self) -> &BasicDockerKeyring {
        &self.pod
    }

    /// The node `config.json` sub-keyring.
    pub fn node(&self) -> &BasicDockerKeyring {
        &self.node
    }

    /// Ids of secrets left out because they do not parse. For a pod secret kubelet fails every
    /// pull of the pod before any request (`MakeDockerKeyring` returns the error); an unreadable
    /// node `config.json` only leaves the node keyring empty.
    pub fn invalid_secrets(&self) -> &[String] {
        &self.invalid
    }

    /// Every credential kubelet would try for `repo_to_pull` (kubelet's lookup key, e.g.
    /// [`crate::reference::ImageRef::repo_to_pull`]), in order: the pod secrets' matches, then the
    /// node's. Within a sub-keyring: every matching key in reverse byte order, all of its entries
    /// in secret order; if none matched and the image is a Docker Hub image, the entries of key
    /// `index.docker.io`. Empty: kubelet pulls anonymously.
    pub fn lookup(&self, repo_to_pull: &str) -> Vec<KeyMatch> {
        let mut out = self.pod.lookup(repo_to_pull, KeyringSource::PodSecrets);
        out.extend(self.node.lookup(repo_to_pull, KeyringSource::Node));
        out.extend(self.provider.lookup(repo_to_pull, KeyringSource::Provider));
        out
    }

    /// [`Keyring::lookup`] for a parsed image reference.
    pub fn lookup_image(&self, image: &crate::reference::ImageRef) -> Vec<KeyMatch> {
        self.lookup(&image.repo_to_pull())
    }

    /// Every key of both sub-keyrings, in lookup order, with whether it applies to `repo_to_pull`
    /// and, if not, why (`host differs: …`, `port differs: …`, `path … is not a prefix of …`,
    /// `label count differs: …`, `used only as the Docker Hub fallback …`).
    pub fn explain(&self, repo_to_pull: &str) -> Vec<KeyVerdict> {
        let mut out = self.pod.explain(repo_to_pull, KeyringSource::PodSecrets);
        out.extend(self.node.explain(repo_to_pull, KeyringSource::Node));
        out.extend(self.provider.explain(repo_to_pull, KeyringSource::Provider));
        out
    }
}

/// kubelet's `isDefaultRegistryMatch` (`keyring.go`): whether an image name pulls from Docker
/// Hub judging by its first `/`-component (empty → no; none → yes; `docker.io` or
/// `index.docker.io` → yes; otherwise yes iff it has no `.` and no `:`, so `localhost/x` counts).
pub fn is_default_registry_match(image: &str) -> bool {
    match image.split_once('/') {
        None => !image.is_empty(),
        Some(("", _)) => false,
        Some(("docker.io" | "index.docker.io", _)) => true,
        Some((first, _)) => !first.contains(['.', ':']),
    }
}

/// kubelet's `URLsMatchStr(glob, target)` (`keyring.go`): both parsed as `https://` + string with
/// Go's `url.Parse`; ports (`net.SplitHostPort`, none → `""`) equal as strings; the same number of
/// `.`-separated host labels, each matched with Go's `filepath.Match`; the target's path starts
/// with the glob's path (plain string prefix). Unparsable input or a bad pattern never matches.
pub fn urls_match_str(glob: &str, target: &str) -> bool {
    match (parse_schemeless(glob), parse_schemeless(target)) {
        (Some(g), Some(t)) => compare(&g, &t).is_empty(),
        _ => false,
    }
}

/// Whether kubelet's `ParseSchemelessURL` accepts `s` (`config.go` validates `matchImages` so).
pub fn is_schemeless_url(s: &str) -> bool {
    parse_schemeless(s).is_some()
}

/// kubelet's `ParseSchemelessURL` (`keyring.go`): Go's `url.Parse("https://" + s)`; `None` where
/// it fails.
fn parse_schemeless(s: &str) -> Option<GoUrl> {
    golang::parse_url(&format!("https://{s}")).ok()
}

/// kubelet's `SplitURL`: the host without port, and the port (`""` when `net.SplitHostPort`
/// fails, e.g. for `[::1]` or `host`).
fn split_url(url: &GoUrl) -> (&str, &str) {
    golang::split_host_port(&url.host).unwrap_or((&url.host, ""))
}

/// kubelet's `URLsMatch`, reporting every failed check (empty = match). kubelet checks port,
/// label count, path, then labels, and stops at the first failure; the outcome is the same.
fn compare(glob: &GoUrl, target: &GoUrl) -> Vec<Mismatch> {
    let (glob_host, glob_port) = split_url(glob);
    let (target_host, target_port) = split_url(target);
    let glob_labels: Vec<&str> = glob_host.split('.').collect();
    let target_labels: Vec<&str> = target_host.split('.').collect();
    let mut why = Vec::new();
    if glob_labels.len() != target_labels.len() {
        why.push(Mismatch::LabelCount {
            key_host: glob_host.to_string(),
            image_host: target_host.to_string(),
            key_labels: glob_labels.len(),
            image_labels: target_labels.len(),
        });
    } else {
        for (i, (g, t)) in glob_labels.iter().zip(&target_labels).enumerate() {
            match go_filepath_match(g, t) {
                Ok(true) => {}
                Ok(false) => {
                    why.push(Mismatch::Host {
                        key_host: glob_host.to_string(),
                        image_host: target_host.to_string(),
                        label: (i + 1, g.to_string(), t.to_string()),
                    });
                    break;
                }
                Err(BadPattern) => {
                    why.push(Mismatch::BadPattern {
                        label: g.to_string(),
                    });
                    break;
                }
            }
        }
    }
    if glob_port != target_port {
        why.push(Mismatch::Port {
            key_port: glob_port.to_string(),
            image_port: target_port.to_string(),
        });
    }
    if !target.path.starts_with(&glob.path) {
        why.push(Mismatch::Path {
            key_path: glob.path.clone(),
            image_path: target.path.clone(),
        });
    }
    why
}

/// Go's `path/filepath.ErrBadPattern`: a malformed glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go's `path/filepath.Match` on Unix: `*` (any run without `/`), `?` (one character, not `/`),
/// `[...]` classes with ranges and `^` negation, `\` escapes; case-sensitive; byte-wise literals.
/// Like Go, a malformed pattern is an error even when the match already failed.
pub fn go_filepath_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern = pattern.as_bytes();
    let mut name = name.as_bytes();
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it has a `/`.
            return Ok(!name.contains(&b'/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(BadPattern);
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if err {
                    return Err(BadPattern);
                }
                i += 1;
            }
        }
        // Before failing, check that the rest of the pattern is well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, b"").2 {
                return Err(BadPattern);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Go's `scanChunk`: leading stars, then a run up to the next `*` outside a class.
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut p = pattern;
    let mut star = false;
    while let [b'*', rest @ ..] = p {
        p = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            // An escaped character is skipped (a trailing `\` is left for `match_chunk`).
            b'\\' if i + 1 < p.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &p[..i], &p[i..])
}

const RUNE_ERROR: u32 = 0xFFFD;

/// Go's `utf8.DecodeRune`: (rune, width); invalid or empty → (`RuneError`, 1 or 0).
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let Some(&b0) = s.first() else {
        return (RUNE_ERROR, 0);
    };
    if b0 < 0x80 {
        return (u32::from(b0), 1);
    }
    let width = match b0 {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (RUNE_ERROR, 1),
    };
    match s.get(..width).and_then(|w| std::str::from_utf8(w).ok()) {
        Some(text) => (text.chars().next().map_or(RUNE_ERROR, u32::from), width),
        None => (RUNE_ERROR, 1),
    }
}

/// Go's `matchChunk`: (rest of `s`, matched, bad pattern).
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> (&'a [u8], bool, bool) {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (rune, n) = decode_rune(s);
                    r = rune;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return (b"", false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let Some((h, rest)) = get_esc(&chunk[1..]) else {
                            return (b"", false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return (b"", false, true);
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        (b"", false, false)
    } else {
        (s, true, false)
    }
}

/// Go's `getEsc`: a possibly escaped character of a class; `None` for a bad pattern. The
/// returned rest is never empty.
fn get_esc(chunk: &[u8]) -> Option<(u32, &[u8])> {
    let mut chunk = match chunk.first() {
        None | Some(b'-' | b']') => return None,
        Some(_) => chunk,
    };
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return None;
        }
    }
    let (r, n) = decode_rune(chunk);
    if r == RUNE_ERROR && n == 1 {
        return None;
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return None;
    }
    Some((r, rest))
}

#[cfg(test)]
mod tests;
