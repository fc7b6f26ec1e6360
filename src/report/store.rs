//! [`Store`]: the latest probe results and their cumulative counters, the one state that both
//! `GET /metrics` and `GET /status` read.
//!
//! The store keeps *facts*, not rendered series: metrics are rendered from it at scrape time
//! ([`crate::report::metrics`]), so a key removed here can never leave a stale series behind.
//!
//! Life cycle, as the scheduler drives it:
//!
//! 1. [`Store::new`] once, with the build version.
//! 2. After each (re)load of the inputs: [`Store::set_reload_status`], and when the load succeeded
//!    [`Store::set_inputs`] with every secret and every probe key of the new inputs. Keys and
//!    secrets no longer listed disappear with all their series (contract: "Series of a secret or
//!    registry that disappeared are removed at the next reload").
//! 3. [`Store::record`] for every finished probe.

use crate::probe::{ProbeResult, Reason};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The `secret` label value of a probe that used no credential (an anonymous image probe).
pub const NO_SECRET: &str = "none";

/// What a probe is about: the identity under which its latest result and its counters are kept.
///
/// The derived order is the order of [`Store::latest`] and of the metric series: credential
/// probes first (by registry, then secret), then image probes (by image, then secret).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKey {
    /// A credential probe: the handshake of one secret's entry against its registry.
    /// `registry` is the normalised key (`""` for a secret that did not parse); `secret` the
    /// secret id.
    Credential {
        /// Normalised registry key, the `registry` label.
        registry: String,
        /// Secret id, the `secret` label.
        secret: String,
    },
    /// An image probe (`--image`): `secret` is the secret id whose credential kubelet would
    /// use, or [`NO_SECRET`] (`"none"`) for an anonymous pull.
    Image {
        /// Image reference as given, the `image` label.
        image: String,
        /// Secret id, or `"none"`.
        secret: String,
    },
}

impl ProbeKey {
    /// The key of a credential probe of `secret`'s entry for `registry`.
    pub fn credential(registry: impl Into<String>, secret: impl Into<String>) -> Self {
        ProbeKey::Credential {
            registry: registry.into(),
            secret: secret.into(),
        }
    }

    /// The key of an image probe; `secret` is `None` for an anonymous probe (label `"none"`).
    pub fn image(image: impl Into<String>, secret: Option<&str>) -> Self {
        ProbeKey::Image {
            image: image.into(),
            secret: secret.unwrap_or(NO_SECRET).to_owned(),
        }
    }

    /// The key a result is stored under: an image probe when `result.image` is set, a
    /// credential probe otherwise. A missing secret becomes `"none"` in either case.
    pub fn of(result: &ProbeResult) -> Self {
        match &result.image {
            Some(image) => ProbeKey::image(image.clone(), result.secret.as_deref()),
            None => ProbeKey::credential(
                result.registry.clone(),
                result.secret.as_deref().unwrap_or(NO_SECRET),
            ),
        }
    }

    /// The secret id (or `"none"`) of this key.
    pub fn secret(&self) -> &str {
        match self {
            ProbeKey::Credential { secret, .. } | ProbeKey::Image { secret, .. } => secret,
        }
    }
}

/// Everything the store knows about one [`ProbeKey`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// The latest result recorded for the key. Boxed: a `ProbeResult` is several hundred bytes
    /// inline, and a B-tree node holds room for 11 entries, so unboxed the map's spare slots
    /// alone cost ~0.4 KB per credential (heaptrack, `BENCHMARKS.md` "Footprint").
    pub latest: Box<ProbeResult>,
    /// Start time (Unix seconds) of the latest *successful* probe, kept when later probes fail;
    /// `None` when the key never succeeded since it appeared.
    pub last_success: Option<f64>,
    /// Probes recorded for the key (`regprobe_probes_total`).
    pub probes_total: u64,
    /// Failures recorded for the key, by reason (`regprobe_probe_failures_total`; the class
    /// label is [`Reason::class`]).
    pub failures: BTreeMap<Reason, u64>,
}

/// A consistent copy of the store, taken under one lock. (A scrape renders from a [`View`]
/// instead, which copies nothing.)
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Build version (`regprobe_build_info`).
    pub version: String,
    /// Every key with its entry, in [`ProbeKey`] order.
    pub entries: Vec<(ProbeKey, Entry)>,
    /// Secret id -> whether it parsed (`regprobe_secret_valid`), by id.
    pub secrets: Vec<(String, bool)>,
    /// Whether the last (re)load of the inputs succeeded; `false` before the first one.
    pub reload_ok: bool,
    /// Unix time of the last successful (re)load, if any.
    pub reload_success_at: Option<f64>,
    /// Each credential provider's last run, by provider name.
    pub providers: Vec<(String, ProviderRun)>,
    /// `(registry, secret)` -> when the credential expires, Unix seconds, where known.
    pub expiries: Vec<((String, String), i64)>,
    /// Probes the current inputs configure (`regprobe_configured_probes`): every key kept by
    /// the last [`Store::set_inputs`], invalid secrets included; `None` before the first.
    pub configured_probes: Option<usize>,
}

/// The last run of a kubelet credential-provider plugin (`regprobe_credential_provider_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderRun {
    /// It answered with credentials.
    pub success: bool,
    /// Wall time of the run, seconds.
    pub duration_seconds: f64,
}

/// A consistent, borrowed view of the store, valid while its read lock is held
/// ([`Store::with_view`], [`StoreReader::with_view`]): what a scrape renders, without copying
/// the results.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Build version (`regprobe_build_info`).
    pub version: &'a str,
    /// Every key with its entry, in [`ProbeKey`] order.
    pub entries: &'a BTreeMap<ProbeKey, Entry>,
    /// Secret id -> whether it parsed (`regprobe_secret_valid`), by id.
    pub secrets: &'a BTreeMap<String, bool>,
    /// Whether the last (re)load of the inputs succeeded; `false` before the first one.
    pub reload_ok: bool,
    /// Unix time of the last successful (re)load, if any.
    pub reload_success_at: Option<f64>,
    /// Each credential provider's last run, by provider name.
    pub providers: &'a BTreeMap<String, ProviderRun>,
    /// `(registry, secret)` -> when the credential expires, Unix seconds, where known.
    pub expiries: &'a BTreeMap<(String, String), i64>,
    /// Probes the current inputs configure (`regprobe_configured_probes`): every key kept by
    /// the last [`Store::set_inputs`], invalid secrets included; `None` before the first.
    pub configured_probes: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<ProbeKey, Entry>,
    secrets: BTreeMap<String, bool>,
    /// The keys of the current inputs, once [`Store::set_inputs`] ran.
    keep: Option<BTreeSet<ProbeKey>>,
    reload_ok: bool,
    reload_success_at: Option<f64>,
    providers: BTreeMap<String, ProviderRun>,
    expiries: BTreeMap<(String, String), i64>,
}

/// The latest results, counters, secret validity and reload status. Thread-safe: share it as
/// `Arc<Store>` between the scheduler (writer) and the HTTP server (reader).
#[derive(Debug)]
pub struct Store {
    shared: Arc<Shared>,
}

/// What a [`Store`] and its [`StoreReader`]s share.
#[derive(Debug)]
struct Shared {
    version: String,
    inner: RwLock<Inner>,
}

impl Shared {
    // A panic while holding the lock cannot leave `Inner` half-updated in a way that matters
    // more than losing every metric, so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_view<R>(&self, f: impl FnOnce(View<'_>) -> R) -> R {
        let inner = self.read();
        f(View {
            version: &self.version,
            entries: &inner.entries,
            secrets: &inner.secrets,
            reload_ok: inner.reload_ok,
            reload_success_at: inner.reload_success_at,
            providers: &inner.providers,
            expiries: &inner.expiries,
            configured_probes: inner.keep.as_ref().map(BTreeSet::len),
        })
    }
}

/// An owned (`'static`) handle that reads the same data as the [`Store`] it came from
/// ([`Store::reader`]), for readers that must own what they read, such as a
/// `prometheus_client` collector.
#[derive(Debug, Clone)]
pub struct StoreReader(Arc<Shared>);

impl StoreReader {
    /// Runs `f` on a [`View`] of the store under its read lock (see [`Store::with_view`]).
    pub fn with_view<R>(&self, f: impl FnOnce(View<'_>) -> R) -> R {
        self.0.with_view(f)
    }
}

impl Store {
    /// An empty store for build `version` (the `version` label of `regprobe_build_info`).
    /// No results, no secrets, and `config_last_reload_successful` 0 until
    /// [`Store::set_reload_status`] is called.
    pub fn new(version: &str) -> Self {
        Store {
            shared: Arc::new(Shared {
                version: version.to_owned(),
                inner: RwLock::new(Inner::default()),
            }),
        }
    }

    /// The build version given to [`Store::new`].
    pub fn version(&self) -> &str {
        &self.shared.version
    }

    /// Runs `f` on a borrowed [`View`] of everything, under one read lock: a consistent scrape
    /// that copies no result. Probes finishing meanwhile wait for `f` to return (rendering
    /// 10,000 series takes a few milliseconds), so `f` should do nothing slow.
    pub fn with_view<R>(&self, f: impl FnOnce(View<'_>) -> R) -> R {
        self.shared.with_view(f)
    }

    /// An owned handle on this store's data (see [`StoreReader`]).
    pub fn reader(&self) -> StoreReader {
        StoreReader(Arc::clone(&self.shared))
    }

    /// Records a finished probe: it replaces the latest result of its key ([`ProbeKey::of`]),
    /// bumps the key's probe counter and, when it failed with a reason, that reason's failure
    /// counter; a success also sets the key's last-success time to `result.timestamp`.
    ///
    /// A credential result with reason `secret_invalid` also marks its secret invalid
    /// (`regprobe_secret_valid 0`), so the two agree even before [`Store::set_inputs`] runs.
    ///
    /// Once [`Store::set_inputs`] has run, a result whose key is not among the current inputs
    /// is dropped: a probe still in flight when its secret or registry was removed must not
    /// bring the removed series back. So call `set_inputs` *before* probing the new inputs.
    pub fn record(&self, result: ProbeResult) {
        let key = ProbeKey::of(&result);
        let mut inner = self.write();
        if let Some(keep) = &inner.keep {
            if !keep.contains(&key) {
                tracing::debug!(
                    secret = key.secret(),
                    "dropping the result of a probe no longer in the inputs"
                );
                return;
            }
        }
        if result.image.is_none() && !result.success && result.reason == Some(Reason::SecretInvalid)
        {
            if let Some(secret) = &result.secret {
                inner.secrets.insert(secret.clone(), false);
            }
        }
        let mut result = result;
        shrink(&mut result);
        let failed_reason = if result.success { None } else { result.reason };
        let succeeded_at = result.success.then_some(result.timestamp);
        let entry = match inner.entries.entry(key) {
            std::collections::btree_map::Entry::Occupied(slot) => {
                let entry = slot.into_mut();
                *entry.latest = result;
                entry
            }
            std::collections::btree_map::Entry::Vacant(slot) => slot.insert(Entry {
                latest: Box::new(result),
                last_success: None,
                probes_total: 0,
                failures: BTreeMap::new(),
            }),
        };
        entry.probes_total += 1;
        if let Some(reason) = failed_reason {
            *entry.failures.entry(reason).or_insert(0) += 1;
        }
        if let Some(at) = succeeded_at {
            entry.last_success = Some(match entry.last_success {
                Some(prev) if prev > at => prev,
                _ => at,
            });
        }
    }

    /// Declares the current inputs, after each successful (re)load.
    ///
    /// * `secrets`: every secret id with whether it parsed (`regprobe_secret_valid`); secrets
    ///   not listed are forgotten.
    /// * `keep`: every probe key of the new inputs. The latest result, the counters and the
    ///   last-success time of every other key are removed, so their series disappear from the
    ///   next scrape. A secret listed as invalid implicitly keeps its `secret_invalid` key
    ///   (`registry=""`); a secret listed as valid drops it.
    ///
    /// From the first call on, [`Store::record`] only accepts results of kept keys.
    pub fn set_inputs(&self, secrets: &[(String, bool)], keep: &[ProbeKey]) {
        let mut keep: BTreeSet<ProbeKey> = keep.iter().cloned().collect();
        for (id, valid) in secrets {
            let invalid_key = ProbeKey::credential("", id.clone());
            if *valid {
                keep.remove(&invalid_key);
            } else {
                keep.insert(invalid_key);
            }
        }
        let mut inner = self.write();
        inner.secrets = secrets.iter().cloned().collect();
        inner.entries.retain(|key, _| keep.contains(key));
        inner.keep = Some(keep);
    }

    /// Records the outcome of a (re)load of the inputs at Unix time `at`:
    /// `regprobe_config_last_reload_successful` becomes `ok`, and when `ok`,
    /// `regprobe_config_last_reload_success_timestamp_seconds` becomes `at`.
    pub fn set_reload_status(&self, ok: bool, at: f64) {
        let mut inner = self.write();
        inner.reload_ok = ok;
        if ok {
            inner.reload_success_at = Some(at);
        }
    }

    /// Records the credential providers of a (re)load: `configured` names every provider of
    /// the config (others are dropped), `runs` the runs of this reload (a provider that
    /// answered from its cache keeps its last run); `expiries` replaces every known credential
    /// expiry (`regprobe_credential_expiry_timestamp_seconds`).
    pub fn set_providers(
        &self,
        configured: &[String],
        runs: &[(String, ProviderRun)],
        expiries: BTreeMap<(String, String), i64>,
    ) {
        let mut inner = self.write();
        inner.providers.retain(|name, _| configured.contains(name));
        for (name, run) in runs {
            inner.providers.insert(name.clone(), *run);
        }
        inner.expiries = expiries;
    }

    /// The latest result of every key, sorted deterministically: credential probes by registry
    /// then secret, then image probes by image then secret. This is the `probes` array of
    /// `/status`.
    pub fn latest(&self) -> Vec<ProbeResult> {
        self.read()
            .entries
            .values()
            .map(|entry| ProbeResult::clone(&entry.latest))
            .collect()
    }

    /// The latest result recorded for `key`, if any (e.g. to log a transition before
    /// [`Store::record`] replaces it).
    pub fn latest_for(&self, key: &ProbeKey) -> Option<ProbeResult> {
        self.read()
            .entries
            .get(key)
            .map(|entry| ProbeResult::clone(&entry.latest))
    }

    /// Runs `f` on the latest result recorded for `key` (`None` if none), under the read lock,
    /// without copying it ([`Store::latest_for`] copies).
    pub fn with_latest<R>(&self, key: &ProbeKey, f: impl FnOnce(Option<&ProbeResult>) -> R) -> R {
        f(self.read().entries.get(key).map(|entry| &*entry.latest))
    }

    /// A consistent copy of everything, taken under one read lock.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.read();
        Snapshot {
            version: self.shared.version.clone(),
            entries: inner
                .entries
                .iter()
                .map(|(key, entry)| (key.clone(), entry.clone()))
                .collect(),
            secrets: inner
                .secrets
                .iter()
                .map(|(id, valid)| (id.clone(), *valid))
                .collect(),
            reload_ok: inner.reload_ok,
            configured_probes: inner.keep.as_ref().map(BTreeSet::len),
            reload_success_at: inner.reload_success_at,
            providers: inner
                .providers
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            expiries: inner
                .expiries
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.shared.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.shared.write()
    }
}

/// What the store keeps of a result until the next probe of its key (issue #16: the evidence
/// is kept for failures only, where `/status` readers need it).
///
/// * A **successful** result drops its evidence: the HTTP exchanges (method, URL, status,
///   challenge of each request) and the network steps (addresses DNS gave, the one connected
///   to). Nothing rendered from the store reads them but `/status`, which then shows
///   `"exchanges": []` and no `network` for that probe (`docs/metrics.md` §2.3); `check` keeps
///   everything. At 1,000 credentials this is about 1.5 KB per credential.
/// * A **failed** result keeps them, without spare capacity: `Vec` growth leaves up to three
///   empty slots in each list (3 exchanges sit in room for 4).
fn shrink(result: &mut ProbeResult) {
    if result.success {
        result.exchanges = Vec::new();
        result.network = Vec::new();
    }
    result.detail.shrink_to_fit();
    result.exchanges.shrink_to_fit();
    result.network.shrink_to_fit();
    result.notes.shrink_to_fit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Class;

    fn cred(registry: &str, secret: &str, ok: bool, at: f64) -> ProbeResult {
        let mut r = ProbeResult::new(registry, Some(secret.to_owned()));
        r.success = ok;
        r.timestamp = at;
        if !ok {
            r.reason = Some(Reason::Unauthorized);
            r.class = Some(Class::Credential);
        }
        r
    }

    fn image(image: &str, secret: Option<&str>, ok: bool) -> ProbeResult {
        let mut r = ProbeResult::new("registry.example.com", secret.map(str::to_owned));
        r.image = Some(image.to_owned());
        r.success = ok;
        r
    }

    #[test]
    fn record_replaces_latest_and_counts() {
        let store = Store::new("1.2.3");
        store.record(cred("quay.io", "a", true, 10.0));
        store.record(cred("quay.io", "a", false, 20.0));
        store.record(cred("quay.io", "a", false, 30.0));
        let snap = store.snapshot();
        assert_eq!(snap.entries.len(), 1);
        let (key, entry) = &snap.entries[0];
        assert_eq!(key, &ProbeKey::credential("quay.io", "a"));
        assert_eq!(entry.probes_total, 3);
        assert_eq!(entry.failures.get(&Reason::Unauthorized), Some(&2));
        assert_eq!(entry.last_success, Some(10.0));
        assert_eq!(entry.latest.timestamp, 30.0);
        assert_eq!(snap.version, "1.2.3");
        let latest = store.latest_for(&ProbeKey::credential("quay.io", "a"));
        assert_eq!(latest.map(|r| r.timestamp), Some(30.0));
        assert!(store
            .latest_for(&ProbeKey::credential("quay.io", "b"))
            .is_none());
    }

    #[test]
    fn latest_is_sorted_credentials_then_images() {
        let store = Store::new("v");
        store.record(image("b/img:1", None, true));
        store.record(cred("z.example", "s1", true, 1.0));
        store.record(image("a/img:1", Some("s2"), true));
        store.record(cred("a.example", "s2", true, 1.0));
        store.record(cred("a.example", "s1", true, 1.0));
        let order: Vec<_> = store.latest().iter().map(ProbeKey::of).collect();
        assert_eq!(
            order,
            vec![
                ProbeKey::credential("a.example", "s1"),
                ProbeKey::credential("a.example", "s2"),
                ProbeKey::credential("z.example", "s1"),
                ProbeKey::image("a/img:1", Some("s2")),
                ProbeKey::image("b/img:1", None),
            ]
        );
        assert_eq!(order[4].secret(), "none");
    }

    #[test]
    fn set_inputs_removes_dropped_keys_and_secrets() {
        let store = Store::new("v");
        store.record(cred("quay.io", "gone", false, 1.0));
        store.record(cred("quay.io", "kept", true, 1.0));
        store.record(image("quay.io/x:1", Some("gone"), true));
        store.set_inputs(
            &[("kept".to_owned(), true)],
            &[ProbeKey::credential("quay.io", "kept")],
        );
        let snap = store.snapshot();
        let keys: Vec<_> = snap.entries.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![ProbeKey::credential("quay.io", "kept")]);
        assert_eq!(snap.secrets, vec![("kept".to_owned(), true)]);

        // A probe of the removed secret that was still in flight does not come back.
        store.record(cred("quay.io", "gone", false, 2.0));
        assert_eq!(store.latest().len(), 1);
        // A re-added key starts from zero.
        store.set_inputs(
            &[("kept".to_owned(), true), ("gone".to_owned(), true)],
            &[
                ProbeKey::credential("quay.io", "kept"),
                ProbeKey::credential("quay.io", "gone"),
            ],
        );
        store.record(cred("quay.io", "gone", false, 3.0));
        let snap = store.snapshot();
        let gone = &snap.entries[0];
        assert_eq!(gone.0, ProbeKey::credential("quay.io", "gone"));
        assert_eq!(gone.1.probes_total, 1);
        assert_eq!(gone.1.last_success, None);
    }

    #[test]
    fn invalid_secret_keeps_its_empty_registry_key() {
        let store = Store::new("v");
        store.set_inputs(&[("broken".to_owned(), false)], &[]);
        let mut r = ProbeResult::new("", Some("broken".to_owned()));
        r.reason = Some(Reason::SecretInvalid);
        r.class = Some(Class::Config);
        store.record(r);
        assert_eq!(store.latest().len(), 1);
        // Fixed: the secret is valid now, its secret_invalid series goes.
        store.set_inputs(&[("broken".to_owned(), true)], &[]);
        assert!(store.latest().is_empty());
        assert_eq!(store.snapshot().secrets, vec![("broken".to_owned(), true)]);
    }

    #[test]
    fn secret_invalid_result_marks_the_secret_invalid() {
        let store = Store::new("v");
        let mut r = ProbeResult::new("", Some("broken".to_owned()));
        r.reason = Some(Reason::SecretInvalid);
        store.record(r);
        assert_eq!(store.snapshot().secrets, vec![("broken".to_owned(), false)]);
    }

    #[test]
    fn reload_status() {
        let store = Store::new("v");
        let snap = store.snapshot();
        assert!(!snap.reload_ok);
        assert_eq!(snap.reload_success_at, None);
        store.set_reload_status(true, 100.0);
        store.set_reload_status(false, 200.0);
        let snap = store.snapshot();
        assert!(!snap.reload_ok);
        assert_eq!(snap.reload_success_at, Some(100.0));
    }

    #[test]
    fn store_is_shareable_across_threads() {
        let store = std::sync::Arc::new(Store::new("v"));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for n in 0..50 {
                        store.record(cred("r", &format!("s{i}"), n % 2 == 0, n as f64));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let snap = store.snapshot();
        assert_eq!(snap.entries.len(), 4);
        assert!(snap.entries.iter().all(|(_, e)| e.probes_total == 50));
        assert!(snap
            .entries
            .iter()
            .all(|(_, e)| e.last_success == Some(48.0)));
    }
}
