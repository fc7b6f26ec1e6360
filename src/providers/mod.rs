//! kubelet's exec credential-provider plugins (`docs/containerd-kubelet.md` §3.6): the
//! credentials EKS, GKE and AKS nodes pull their cloud's registry with.
//!
//! * [`config`]: `--image-credential-provider-config`, read and validated as kubelet does.
//! * [`exec`]: one plugin run as `execPlugin.ExecPlugin` runs it, with caps and a timeout.
//! * [`cache`]: `pluginProvider`'s cache (`Image` / `Registry` / `Global` keys, `cacheDuration`).
//!
//! [`Providers`] ties them together as kubelet's `pluginProvider.provide` does: a provider is
//! asked for an image only when one of its `matchImages` matches it (`isImageAllowed`,
//! `URLsMatchStr`), a live cached answer is used without running the plugin, and a failed run
//! gives no credentials (kubelet logs it and pulls with what else it has). The answers become
//! secrets with id `provider:NAME` ([`answer_secret`]), which the keyring looks up after the
//! node's `config.json` (`crate::secrets::keyring`). The cache lives as long as the process (as
//! kubelet's, `plugins.go` keeps providers in package variables): [`shared`] hands the same
//! [`Providers`] to every reload of `serve`, so a plugin runs no more often than kubelet's cache
//! would run it.

pub mod cache;
pub mod config;
pub mod exec;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

pub use config::{Provider, ProviderConfigError};
pub use exec::{CacheKeyType, ExecError, Run};

use crate::probe::classify::{self, Failure};
use crate::probe::ProbeResult;
use crate::secrets::keyring::urls_match_str;
use crate::secrets::{normalize_key, AuthEntry, Secret, SecretKind};

/// Where kubelet's plugin configuration is (kubelet's two flags) and how long a run may take.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderSettings {
    /// `--image-credential-provider-config`: a file or a directory.
    pub config: PathBuf,
    /// `--image-credential-provider-bin-dir`.
    pub bin_dir: PathBuf,
    /// Kill a run after this long (kubelet: [`exec::KUBELET_TIMEOUT`]).
    pub timeout: Duration,
}

/// Where an answer came from.
#[derive(Debug, Clone)]
pub enum AnswerSource {
    /// A live cache entry; the plugin did not run.
    Cached,
    /// The plugin ran.
    Ran(Run),
}

/// One provider asked for one image.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The provider's name (secret id `provider:NAME`).
    pub provider: String,
    /// The image asked for (kubelet's `repoToPull`, or a `matchImages` host).
    pub image: String,
    /// The `matchImages` pattern that matched.
    pub matched: String,
    /// Cached or run.
    pub source: AnswerSource,
    /// The `auth` map, or why there is none.
    pub result: Result<exec::Auth, ExecError>,
    /// The answer's cache key type, when it answered.
    pub cache_key_type: Option<CacheKeyType>,
    /// When the cached answer expires (Unix seconds); `None`: not cached.
    pub expires_unix: Option<u64>,
    /// The plugin's path.
    pub path: PathBuf,
}

impl Answer {
    /// The secret id of its credentials: `provider:NAME`.
    pub fn secret_id(&self) -> String {
        format!(
            "{}{}",
            crate::secrets::keyring::PROVIDER_SECRET_PREFIX,
            self.provider
        )
    }

    /// The `registry` label of its results: the image up to its first `/`.
    pub fn registry(&self) -> &str {
        cache::registry_of(&self.image)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Shared with each [`Providers::providers`] caller (no copy per image asked).
    providers: Arc<[Provider]>,
    caches: HashMap<String, cache::Cache>,
    /// Each provider's last run: gave credentials, seconds.
    last_runs: HashMap<String, (bool, f64)>,
}

/// kubelet's registered plugins with their caches.
#[derive(Debug)]
pub struct Providers {
    settings: ProviderSettings,
    state: Mutex<State>,
}

/// The process-wide [`Providers`] of `settings` (created on first use).
pub fn shared(settings: &ProviderSettings) -> Arc<Providers> {
    static ALL: OnceLock<Mutex<HashMap<ProviderSettings, Arc<Providers>>>> = OnceLock::new();
    let all = ALL.get_or_init(Default::default);
    let mut all = all.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(
        all.entry(settings.clone())
            .or_insert_with(|| Arc::new(Providers::new(settings.clone()))),
    )
}

impl Providers {
    /// Plugins of `settings`, none loaded yet ([`Providers::load`]).
    pub fn new(settings: ProviderSettings) -> Providers {
        Providers {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (Re-)reads the config. On success the providers are replaced; a provider whose settings
    /// changed loses its cache (kubelet reads the config once, at start: a change takes a
    /// restart there, which empties the cache). On error the last good providers stay.
    ///
    /// Errors: [`ProviderConfigError`] (the bin dir missing, the config unreadable or invalid).
    pub fn load(&self) -> Result<Arc<[Provider]>, ProviderConfigError> {
        if !self.settings.bin_dir.is_dir() {
            return Err(ProviderConfigError::BinDir(self.settings.bin_dir.clone()));
        }
        let providers: Arc<[Provider]> = config::read(&self.settings.config)?.into();
        let mut st = self.state();
        let old = std::mem::replace(&mut st.providers, Arc::clone(&providers));
        let old: HashMap<&str, &Provider> = old.iter().map(|p| (p.name.as_str(), p)).collect();
        let same = |name: &String| {
            providers
                .iter()
                .any(|p| &p.name == name && old.get(name.as_str()) == Some(&p))
        };
        st.caches.retain(|name, _| same(name));
        st.last_runs.retain(|name, _| same(name));
        Ok(providers)
    }

    /// The providers last loaded.
    pub fn providers(&self) -> Arc<[Provider]> {
        Arc::clone(&self.state().providers)
    }

    /// `(provider, host)` for every `matchImages` item without a glob: hosts a credential probe
    /// can go to. The item is used as the request's image.
    pub fn concrete_targets(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in self.state().providers.iter() {
            for m in &p.match_images {
                if !m.contains(['*', '?', '[']) {
                    out.push((p.name.clone(), m.clone()));
                }
            }
        }
        out
    }

    /// Names of providers whose `matchImages` are all globs: only images (`--image`, a pod
    /// spec, a canary) make regprobe ask them.
    pub fn wildcard_only(&self) -> Vec<String> {
        self.state()
            .providers
            .iter()
            .filter(|p| p.match_images.iter().all(|m| m.contains(['*', '?', '['])))
            .map(|p| p.name.clone())
            .collect()
    }

    /// kubelet's `provide(image)` for every provider whose `matchImages` match `image`, in
    /// config order: a live cached answer, else a run (cached as the answer says). `only`
    /// limits it to one provider. Blocking: each run waits for its plugin; from async code use
    /// [`Providers::resolve`].
    pub fn provide(&self, image: &str, only: Option<&str>) -> Vec<Answer> {
        let providers = self.providers();
        let mut out = Vec::new();
        for p in providers
            .iter()
            .filter(|p| only.is_none_or(|o| o == p.name))
        {
            let Some(matched) = p.match_images.iter().find(|m| urls_match_str(m, image)) else {
                continue;
            };
            let path = self.settings.bin_dir.join(&p.name);
            let now = Instant::now();
            let cached = self
                .state()
                .caches
                .get(&p.name)
                .and_then(|c| c.get(image, now))
                .cloned();
            if let Some(e) = cached {
                out.push(Answer {
                    provider: p.name.clone(),
                    image: image.to_string(),
                    matched: matched.clone(),
                    source: AnswerSource::Cached,
                    result: Ok(e.auth),
                    cache_key_type: Some(e.key_type),
                    expires_unix: Some(e.expires_unix),
                    path,
                });
                continue;
            }
            let (run, result) = exec::exec(&self.settings.bin_dir, p, image, self.settings.timeout);
            tracing::debug!(provider = %p.name, image, duration = ?run.duration, exit = ?run.exit, ok = result.is_ok(), "credential provider ran");
            self.state()
                .last_runs
                .insert(p.name.clone(), (result.is_ok(), run.duration.as_secs_f64()));
            let (result, key_type, expires) = match result {
                Ok(resp) => {
                    let entry = self.state().caches.entry(p.name.clone()).or_default().put(
                        image,
                        &resp,
                        p.default_cache_duration,
                        Instant::now(),
                        crate::clock::unix_now() as u64,
                    );
                    (
                        Ok(resp.auth),
                        Some(resp.cache_key_type),
                        entry.map(|e| e.expires_unix),
                    )
                }
                Err(e) => (Err(e), None, None),
            };
            out.push(Answer {
                provider: p.name.clone(),
                image: image.to_string(),
                matched: matched.clone(),
                source: AnswerSource::Ran(run),
                result,
                cache_key_type: key_type,
                expires_unix: expires,
                path,
            });
        }
        out
    }

    /// Every provider's answer for every image of `images` (as [`Providers::provide`], with
    /// `(image, only)` pairs), stepping off the async runtime's worker while plugins run when
    /// there is one with several workers.
    pub fn resolve(&self, requests: &[(String, Option<String>)]) -> Vec<Answer> {
        let work = || {
            requests
                .iter()
                .flat_map(|(image, only)| self.provide(image, only.as_deref()))
                .collect()
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
            _ => work(),
        }
    }
}

/// The secret an answer gives kubelet's keyring: id `provider:NAME`, one entry per `auth` key,
/// keys normalised as kubelet normalises every keyring key (`BasicDockerKeyring.Add`). `None`
/// for a failed answer.
pub fn answer_secret(a: &Answer) -> Option<Secret> {
    let auth = a.result.as_ref().ok()?;
    let mut warnings = Vec::new();
    let mut entries = Vec::new();
    for (raw, credential) in auth.iter() {
        match normalize_key(raw) {
            Ok(n) => entries.push(AuthEntry {
                raw_key: raw.clone(),
                key: n.key,
                registry: n.registry,
                wildcard: n.wildcard,
                credential: credential.clone(),
                dropped_token: false,
            }),
            Err(e) => warnings.push(format!(
                "key \"{raw}\" of provider {} is not a valid registry URL ({e}); kubelet skips it",
                a.provider
            )),
        }
    }
    Some(Secret {
        id: a.secret_id(),
        path: a.path.clone(),
        kind: SecretKind::Provider,
        entries: Ok(entries),
        warnings,
    })
}

/// The secret a credential probe of a concrete `matchImages` host uses: the entries of the
/// answer whose key matches the host (as kubelet's lookup of an image there would), each keyed
/// by the host itself, so a globbed answer (`*.azurecr.io`) is probed where it was asked for.
pub fn target_secret(a: &Answer) -> Option<Secret> {
    let mut s = answer_secret(a)?;
    let host = normalize_key(&a.image).ok()?;
    let mut entries = s.entries.unwrap_or_default();
    entries.retain(|e| urls_match_str(&e.key, &a.image));
    // kubelet's order among matching keys: reverse byte order (`BasicDockerKeyring.Add`).
    entries.sort_by(|x, y| y.key.cmp(&x.key));
    for e in &mut entries {
        e.key = host.key.clone();
        e.registry = host.registry.clone();
        e.wildcard = false;
    }
    if entries.is_empty() {
        s.warnings.push(format!(
            "provider {} answered no key matching {}",
            a.provider, a.image
        ));
    }
    s.entries = Ok(entries);
    Some(s)
}

/// The result of a failed answer: `provider_missing` or `provider_failed`, secret
/// `provider:NAME`, registry the image's host, the error (with the plugin's capped, redacted
/// stderr) as the detail. `None` for an answer with credentials.
pub fn failure_result(a: &Answer) -> Option<ProbeResult> {
    let e = a.result.as_ref().err()?;
    let mut r = ProbeResult::new(a.registry(), Some(a.secret_id()));
    r.timestamp = crate::clock::unix_now();
    if let AnswerSource::Ran(run) = &a.source {
        r.duration_seconds = run.duration.as_secs_f64();
    }
    let f = if e.is_missing() {
        Failure::ProviderMissing(e.to_string())
    } else {
        Failure::ProviderFailed(e.to_string())
    };
    let reason = classify::reason(&f);
    r.reason = Some(reason);
    r.class = Some(reason.class());
    r.detail = format!("credential provider {}: {e}", a.provider);
    r.failed = Some(crate::probe::failure::Failed::without_request(f));
    Some(r)
}

/// A one-line account of an answer for logs and `check` (keys, never values): which pattern
/// matched, run or cached, exit status, duration, cache key and expiry.
pub fn describe(a: &Answer) -> String {
    let how = match &a.source {
        AnswerSource::Cached => "cached answer".to_string(),
        AnswerSource::Ran(run) => format!(
            "ran {} ({}, {:.0} ms)",
            a.path.display(),
            run.exit.as_deref().unwrap_or("killed"),
            run.duration.as_secs_f64() * 1000.0
        ),
    };
    let what = match &a.result {
        Ok(auth) => {
            let keys: Vec<&str> = auth.iter().map(|(k, _)| k.as_str()).collect();
            let cache = match (a.cache_key_type, a.expires_unix) {
                (Some(t), Some(exp)) => format!("; cached per {} until {exp}", t.as_str()),
                (Some(t), None) => format!("; cacheKeyType {}, not cached", t.as_str()),
                _ => String::new(),
            };
            format!("keys [{}]{cache}", keys.join(", "))
        }
        Err(e) => e.to_string(),
    };
    format!(
        "provider {} matched {} by {:?}: {how}: {what}",
        a.provider, a.image, a.matched
    )
}

/// What a (re)load tells the metrics about the providers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    /// Every provider of the config.
    pub configured: Vec<String>,
    /// `(provider, answered with credentials, seconds)`: each provider's last run, whenever it
    /// was (a cached answer is not a run).
    pub runs: Vec<(String, bool, f64)>,
    /// `(registry, secret)` -> Unix seconds: when each answer's credentials stop being used or
    /// valid, the earliest of the cache expiry and the passwords' own (`credential_expiry`).
    pub expiries: BTreeMap<(String, String), i64>,
}

/// The metrics' account of `answers`.
pub fn report(providers: &Providers, answers: &[Answer]) -> Reported {
    let mut out = Reported {
        configured: providers
            .providers()
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        ..Reported::default()
    };
    {
        let st = providers.state();
        for name in &out.configured {
            if let Some((ok, seconds)) = st.last_runs.get(name) {
                out.runs.push((name.clone(), *ok, *seconds));
            }
        }
    }
    for a in answers {
        let Ok(auth) = &a.result else { continue };
        let own = auth.iter().filter_map(|(_, c)| {
            use secrecy::ExposeSecret as _;
            crate::probe::credential::credential_expiry(c.password.expose_secret())
        });
        let cache = a.expires_unix.and_then(|t| i64::try_from(t).ok());
        if let Some(t) = own.chain(cache).min() {
            let key = (a.registry().to_string(), a.secret_id());
            let e = out.expiries.entry(key).or_insert(t);
            *e = (*e).min(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A plugin answering as ecr-credential-provider does (Registry key), counting its runs.
    fn setup(cache: &str) -> (tempfile::TempDir, Providers) {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let runs = d.path().join("runs");
        let script = format!(
            "#!/bin/sh\ncat >/dev/null\necho run >> '{}'\necho '{{\"kind\":\"CredentialProviderResponse\",\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\",\"cacheKeyType\":\"Registry\",\"auth\":{{\"*.dkr.ecr.*.amazonaws.com\":{{\"username\":\"AWS\",\"password\":\"pw\"}}}}}}'\n",
            runs.display()
        );
        std::fs::write(bin.join("ecr"), script).unwrap();
        std::fs::set_permissions(bin.join("ecr"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = d.path().join("c.yaml");
        std::fs::write(
            &config,
            format!("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n  - name: ecr\n    matchImages: [\"*.dkr.ecr.*.amazonaws.com\"]\n    defaultCacheDuration: {cache}\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
        )
        .unwrap();
        let p = Providers::new(ProviderSettings {
            config,
            bin_dir: bin,
            timeout: Duration::from_secs(10),
        });
        p.load().unwrap();
        (d, p)
    }

    fn runs(d: &tempfile::TempDir) -> usize {
        std::fs::read_to_string(d.path().join("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    const A: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/a";
    const B: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/b";

    #[test]
    fn a_registry_answer_serves_every_image_of_the_registry_until_it_expires() {
        let (d, p) = setup("12h");
        let first = p.provide(A, None);
        assert_eq!(first.len(), 1);
        assert!(matches!(first[0].source, AnswerSource::Ran(_)));
        assert_eq!(first[0].matched, "*.dkr.ecr.*.amazonaws.com");
        let second = p.provide(B, None);
        assert!(matches!(second[0].source, AnswerSource::Cached));
        assert_eq!(runs(&d), 1);
        // Not matched: not asked.
        assert!(p.provide("gcr.io/x/y", None).is_empty());
        // The same config re-read keeps the cache; a changed one drops it.
        p.load().unwrap();
        p.provide(A, None);
        assert_eq!(runs(&d), 1);
        let c = std::fs::read_to_string(&p.settings.config).unwrap();
        std::fs::write(&p.settings.config, c.replace("12h", "11h")).unwrap();
        p.load().unwrap();
        p.provide(A, None);
        assert_eq!(runs(&d), 2);
        let secret = answer_secret(&p.provide(A, None)[0]).unwrap();
        assert_eq!(secret.id, "provider:ecr");
        assert!(secret.entries.as_ref().unwrap()[0].wildcard);
    }

    #[test]
    fn a_zero_default_duration_runs_the_plugin_every_time() {
        let (d, p) = setup("0s");
        p.provide(A, None);
        p.provide(A, None);
        assert_eq!(runs(&d), 2);
    }

    #[test]
    fn a_globbed_answer_is_probed_at_the_host_it_was_asked_for() {
        let (_d, p) = setup("1m");
        let a = &p.provide("123456789012.dkr.ecr.eu-west-1.amazonaws.com", None)[0];
        let s = target_secret(a).unwrap();
        let e = s.entries.unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, "123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(e[0].raw_key, "*.dkr.ecr.*.amazonaws.com");
        assert!(!e[0].wildcard);
    }
}
