//! The daemon's loop: load inputs, probe every credential and canary image, then each one
//! every `--interval`, and keep the fleet gentle on registries.
//!
//! * **Timing**: the first probe of each slot is spread over `--startup-spread` (a DaemonSet
//!   rolled out at once does not hit a registry from every node in the same second); later
//!   probes come every `--interval` jittered ±10%, so nodes drift apart.
//! * **Load**: at most `--concurrency` probes in flight, at most one per slot (a
//!   `(registry, secret)` pair or an image), and at most `--registry-concurrency` per registry
//!   host.
//! * **Failures**: a slot that keeps failing backs off exponentially (×2 per consecutive
//!   failure, at most ×2 the interval, so the stale alert never mistakes it); one success, or a change of its inputs, brings it back
//!   to the normal interval at once. A `429` (`rate_limited`) is never retried within the
//!   probe; no slot of that registry is probed again before its `Retry-After` (or one
//!   interval when the registry gave none).
//! * **Reload**: inputs are re-read when a watched directory changes ([`crate::watch`],
//!   debounced), on `SIGHUP`, on `POST /-/reload`, and every `--reload-interval` as a safety
//!   net (every `--interval` while an input does not parse or credential providers are
//!   configured: [`reread_period`]).
//!   A new or changed credential is probed at once; a removed one loses its series
//!   ([`Store::set_inputs`]). A secret that stops parsing (a half-written file, a bad update)
//!   keeps its last good credentials probing while it reports `secret_invalid`, and
//!   `regprobe_config_last_reload_successful` drops to 0 until every input parses again.
//!
//! State changes are logged at info (recovered) or warn (failing, reason changed); every probe's
//! detail at debug. Nothing logged carries a credential.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::inputs::Inputs;
use crate::plan::ImagePlan;
use crate::probe::credential::{probe_credential, CredentialTarget, ProbeEnv};
use crate::probe::pull::probe_image;
use crate::probe::{ProbeResult, Reason};
use crate::report::{ProbeKey, Store};
use crate::run::log_result;
use crate::server::AppState;
use crate::watch::{watch, WatchSet};

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Probe period per slot.
    pub interval: Duration,
    /// Periodic re-read of the inputs.
    pub reload_interval: Duration,
    /// Probes in flight at most.
    pub concurrency: usize,
    /// Probes in flight per registry host at most.
    pub registry_concurrency: usize,
    /// The first probe of each slot is delayed by a random time in `[0, startup_spread)`.
    pub startup_spread: Duration,
}

/// Longest back-off, as a multiple of the interval. Kept at 2 so that a pair failing for good
/// is still probed within `RegprobeProbeStale`'s threshold of 3 intervals (with ±10% jitter,
/// at most 2.2 intervals apart).
pub const MAX_BACKOFF_FACTOR: u32 = 2;
/// Quiet time after a file event before reloading (kubelet's swap is several events).
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(300);
/// Shortest gap between the end of a reload and a requested one (`POST /-/reload`, `SIGHUP`):
/// at least this, and at least [`RELOAD_GAP_FACTOR`] times the last reload's duration. Requests
/// inside the gap collapse into one pending reload at its end.
pub const RELOAD_MIN_GAP: Duration = Duration::from_secs(1);
/// See [`RELOAD_MIN_GAP`]: a reload storm costs at most 1/(1+4) = 20% of a core.
pub const RELOAD_GAP_FACTOR: u32 = 4;

/// `interval × U(0.9, 1.1)`.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// The delay before the next probe of a slot after `consecutive_failures` failures in a row:
/// the interval, doubled per failure after the first, at most [`MAX_BACKOFF_FACTOR`] times.
pub fn backoff(interval: Duration, consecutive_failures: u32) -> Duration {
    let factor = match consecutive_failures {
        0 | 1 => 1,
        n => 2u32.saturating_pow(n - 1).min(MAX_BACKOFF_FACTOR),
    };
    interval * factor
}

/// How long after a reload the next periodic re-read comes: `--reload-interval`, shortened to
/// one `--interval` while `often` (at least 1 s either way). `often` is
/// [`Scheduler::reread_often`]: the last reload failed or found an input that does not
/// parse (`secret_invalid`, a failed credential provider: those results come from re-reads, and
/// `RegprobeProbeStale` looks at 3 intervals), or credential providers are configured (their
/// answers expire, and kubelet asks again at every pull: kubernetes
/// `pkg/credentialprovider/plugin/plugin.go`, `pluginProvider.provide`). Otherwise
/// nothing read changes between reloads but the files, which the directory watch and this
/// safety net cover; re-reading N secrets every interval cost 6–10% of a probe's CPU
/// (`BENCHMARKS.md`, issue 16).
pub fn reread_period(schedule: &Schedule, often: bool) -> Duration {
    let period = if often {
        schedule.reload_interval.min(schedule.interval)
    } else {
        schedule.reload_interval
    };
    period.max(Duration::from_secs(1))
}

/// What a slot probes.
#[derive(Clone)]
enum Job {
    /// A credential against its registry.
    Credential(CredentialTarget),
    /// kubelet's pull loop for a canary image.
    Image(ImagePlan),
}

/// A slot's identity: a credential probe's `(registry, secret)`, or an image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SlotKey {
    Credential(ProbeKey),
    Image(String),
}

impl Job {
    async fn run(&self, env: &ProbeEnv, audit_all: bool) -> Vec<ProbeResult> {
        crate::failclosed::inject_panic(match self {
            Job::Credential(t) => &t.registry,
            Job::Image(p) => &p.image,
        });
        match self {
            Job::Credential(t) => vec![probe_credential(env, t).await],
            Job::Image(p) => probe_image(env, &p.attempts, &p.key_verdicts, audit_all).await,
        }
    }

    /// The results of this job when its task ends without any ([`crate::failclosed`]).
    fn internal_error(&self) -> Vec<ProbeResult> {
        match self {
            Job::Credential(t) => vec![crate::failclosed::internal_error(
                &t.registry,
                Some(&t.secret),
            )],
            Job::Image(p) => crate::failclosed::internal_error_image(p),
        }
    }

    /// The store keys this job may produce.
    fn keys(&self) -> Vec<ProbeKey> {
        match self {
            Job::Credential(t) => vec![ProbeKey::credential(t.registry.clone(), t.secret.clone())],
            Job::Image(p) => p
                .attempts
                .iter()
                .map(|a| ProbeKey::image(p.image.clone(), a.secret.as_deref()))
                .collect(),
        }
    }

    /// The registry host the job's requests go to (for the per-registry limit and holds).
    fn registry_host(&self) -> &str {
        match self {
            Job::Credential(t) => &t.host.host,
            Job::Image(p) => p.attempts.first().map_or("", |a| a.namespace.as_str()),
        }
    }

    /// The secret of a credential job.
    fn secret(&self) -> Option<&str> {
        match self {
            Job::Credential(t) => Some(&t.secret),
            Job::Image(_) => None,
        }
    }
}

struct Slot {
    /// Shared with the probe task while it runs (a launch copies no target).
    job: Arc<Job>,
    fingerprint: u64,
    next_due: Instant,
    in_flight: bool,
    consecutive_failures: u32,
}

use crate::clock::unix_now;

fn hash_target(h: &mut impl Hasher, host: &crate::hosts::RegistryHost, user: &str, password: &str) {
    host.host.hash(h);
    host.path.hash(h);
    host.scheme.as_str().hash(h);
    host.skip_verify.hash(h);
    host.ca_files.hash(h);
    user.hash(h);
    password.hash(h);
}

/// A keyed, per-process hash of what a job would send: it tells "the credential or the hosts
/// changed" without keeping a copy, and means nothing outside this process.
fn fingerprint(hasher: &RandomState, job: &Job) -> u64 {
    let mut h = hasher.build_hasher();
    match job {
        Job::Credential(t) => hash_target(
            &mut h,
            &t.host,
            &t.credential.username,
            t.credential.password.expose_secret(),
        ),
        Job::Image(p) => {
            for a in &p.attempts {
                a.secret.hash(&mut h);
                a.key.hash(&mut h);
                let (u, pw) = a
                    .credential
                    .as_ref()
                    .map(|c| (c.username.as_str(), c.password.expose_secret()))
                    .unwrap_or(("", ""));
                for host in &a.hosts {
                    hash_target(&mut h, host, u, pw);
                }
            }
        }
    }
    h.finish()
}

/// The credential targets the slots probe for the secrets in `secrets` (those that no longer
/// parse): what their last good parse gave, since a slot outlives reloads until its target
/// leaves the plan. In no particular order (slots are keyed, so order does not matter).
fn last_good_targets(
    slots: &HashMap<SlotKey, Slot>,
    secrets: &BTreeSet<&str>,
) -> Vec<CredentialTarget> {
    if secrets.is_empty() {
        return Vec::new();
    }
    slots
        .values()
        .filter_map(|slot| match &*slot.job {
            Job::Credential(t) if secrets.contains(t.secret.as_str()) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// The loop's state between events.
struct Scheduler {
    inputs: Inputs,
    schedule: Schedule,
    store: Arc<Store>,
    hasher: RandomState,
    slots: HashMap<SlotKey, Slot>,
    /// Registry host → no probe before this instant (after a 429).
    holds: HashMap<String, Instant>,
    /// Registry host → its limit on probes in flight.
    registry_sems: HashMap<String, Arc<Semaphore>>,
    first_load: bool,
    /// When the last reload ended and how long it took (for coalescing requests).
    last_reload: Option<(Instant, Duration)>,
    /// Whether the next periodic re-read comes after one interval ([`reread_period`]).
    reread_often: bool,
    trim: Trim,
}

/// When freed memory goes back to the system ([`crate::footprint::release_free_memory`]): once
/// the daemon is idle (no probe in flight) after a burst of probes or a reload, and at most once
/// per [`TRIM_MIN_GAP`]. Trimming at every idle moment, which with probes spread over the
/// interval is about once per probe, cost 3–4% of a probe's CPU (the trim, and the page faults
/// of growing the heap again; `perf`, issue 16).
#[derive(Debug, Default)]
struct Trim {
    due: Option<Instant>,
    last: Option<Instant>,
}

/// Shortest time between two trims of the allocator's free memory ([`Trim`]).
pub const TRIM_MIN_GAP: Duration = Duration::from_secs(1);

impl Trim {
    /// Asks for a trim: at `now`, or [`TRIM_MIN_GAP`] after the last one.
    fn request(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(self.last.map_or(now, |l| (l + TRIM_MIN_GAP).max(now)));
        }
    }

    /// At the due time: trims if the daemon is `idle`; otherwise the next idle moment asks again.
    /// Whether it trimmed.
    fn fire(&mut self, now: Instant, idle: bool) -> bool {
        self.due = None;
        if idle {
            crate::footprint::release_free_memory();
            self.last = Some(now);
        }
        idle
    }
}

/// Runs until `shutdown` resolves. `state.ready` is set once the inputs were loaded.
pub async fn run(
    inputs: Inputs,
    env: ProbeEnv,
    schedule: Schedule,
    state: Arc<AppState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let audit_all = inputs.audit_all;
    let sem = Arc::new(Semaphore::new(schedule.concurrency.max(1)));
    // Unbounded, yet at most one message per slot in flight (the drop guard's, or its own).
    let (tx, mut rx) = mpsc::unbounded_channel::<(SlotKey, Vec<ProbeResult>)>();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let (fs_tx, mut fs_rx) = mpsc::unbounded_channel::<()>();
    let watcher = watch(&WatchSet::of_inputs(&inputs), fs_tx);
    for w in &watcher.warnings {
        tracing::warn!(warning = %w, "input watch");
    }
    let mut pending_reload: Option<Instant> = None;

    let mut s = Scheduler {
        inputs,
        schedule,
        store: Arc::clone(&state.store),
        hasher: RandomState::new(),
        slots: HashMap::new(),
        holds: HashMap::new(),
        registry_sems: HashMap::new(),
        first_load: true,
        last_reload: None,
        reread_often: true,
        trim: Trim::default(),
    };
    s.reload();
    state.ready.store(true, Ordering::SeqCst);
    crate::failclosed::inject_panic("scheduler");

    loop {
        s.launch_due(&env, &sem, &tx, audit_all);
        let next_due = s.next_due();
        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let debounce = async {
            match pending_reload {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        let trim_due = async {
            match s.trim.due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        // The periodic re-read: a period after the end of the last reload, whatever caused it.
        let reread_at = s.last_reload.map_or_else(Instant::now, |(end, _)| end)
            + reread_period(&s.schedule, s.reread_often);
        let all_permits = s.schedule.concurrency.max(1);
        let idle = |sem: &Semaphore| sem.available_permits() == all_permits;
        tokio::select! {
            _ = tokio::time::sleep_until(next_due) => {}
            Some((key, results)) = rx.recv() => {
                s.finished(&key, results);
                // The last probe in flight finished: hand the burst's freed memory back.
                if idle(&sem) {
                    s.trim.request(Instant::now());
                }
            }
            _ = trim_due => {
                let idle = idle(&sem);
                s.trim.fire(Instant::now(), idle);
            }
            Some(()) = fs_rx.recv() => {
                pending_reload = Some(Instant::now() + RELOAD_DEBOUNCE);
            }
            _ = debounce => {
                pending_reload = None;
                tracing::info!("inputs changed on disk, or a reload request was coalesced; reloading");
                s.reload();
            }
            _ = state.reload.notified() => s.request_reload("over HTTP", &mut pending_reload),
            _ = hup_fut => s.request_reload("by SIGHUP", &mut pending_reload),
            _ = tokio::time::sleep_until(reread_at) => s.reload(),
            _ = shutdown.changed() => {
                tracing::info!("shutting down the scheduler");
                break;
            }
        }
    }
    drop(watcher);
}

impl Scheduler {
    /// Forgets the per-registry limits and rate-limit holds of registries no slot probes any
    /// more (and holds that have passed), so they do not grow with every registry ever seen.
    fn prune_registries(&mut self) {
        let hosts: BTreeSet<&str> = self.slots.values().map(|s| s.job.registry_host()).collect();
        let now = Instant::now();
        self.registry_sems.retain(|h, _| hosts.contains(h.as_str()));
        self.holds
            .retain(|h, until| hosts.contains(h.as_str()) && *until > now);
    }

    fn launch_due(
        &mut self,
        env: &ProbeEnv,
        sem: &Arc<Semaphore>,
        tx: &mpsc::UnboundedSender<(SlotKey, Vec<ProbeResult>)>,
        audit_all: bool,
    ) {
        let now = Instant::now();
        // One pass over the slots, copying nothing but what a launched probe takes, and over
        // only as many as it takes to fill the free permits (this runs on every finished probe:
        // at 1,000 credentials, copying every due key each time was most of the scheduler's
        // CPU, `BENCHMARKS.md` "Footprint").
        let per_registry_limit = self.schedule.registry_concurrency.max(1);
        let Scheduler {
            slots,
            holds,
            registry_sems,
            ..
        } = self;
        let mut full: Vec<String> = Vec::new();
        for (key, slot) in slots.iter_mut() {
            if sem.available_permits() == 0 {
                return;
            }
            if slot.in_flight || slot.next_due > now {
                continue;
            }
            let host = slot.job.registry_host();
            if full.iter().any(|h| h == host) {
                continue;
            }
            if let Some(until) = holds.get(host).copied() {
                if until > now {
                    // Rate-limited registry: wait for its Retry-After.
                    slot.next_due = until;
                    continue;
                }
            }
            // Take both permits before spawning (the registry's first, so a stalled registry
            // never holds permits other registries need); a slot that gets none stays due and
            // is launched when a running probe finishes. No task waits holding memory.
            if !registry_sems.contains_key(host) {
                let limit = Arc::new(Semaphore::new(per_registry_limit));
                registry_sems.insert(host.to_owned(), limit);
            }
            let Ok(per_registry) = Arc::clone(&registry_sems[host]).try_acquire_owned() else {
                // This registry is at its limit: skip its other due slots without looking up.
                full.push(host.to_owned());
                continue;
            };
            let Ok(global) = Arc::clone(sem).try_acquire_owned() else {
                return;
            };
            slot.in_flight = true;
            let (env, job, tx, key) = (env.clone(), Arc::clone(&slot.job), tx.clone(), key.clone());
            // A panicking probe still reports (internal_error) and clears its in-flight mark.
            let guard = crate::failclosed::InFlight::new(key, job.internal_error(), tx);
            tokio::spawn(async move {
                // Boxed: a probe's future holds every step's locals (kilobytes), and tokio moves
                // a spawned future, and writes each stage of its task, by value: six to eight
                // copies of it per probe were 8% of a probe's instructions (callgrind, issue 16).
                let results = Box::pin(job.run(&env, audit_all)).await;
                drop((per_registry, global));
                guard.finish(results);
            });
        }
    }

    /// When the loop must wake to launch something: the earliest future due time. Slots already
    /// due are waiting for a permit, and a probe finishing (which frees one) wakes the loop.
    fn next_due(&self) -> Instant {
        let now = Instant::now();
        self.slots
            .values()
            .filter(|s| !s.in_flight && s.next_due > now)
            .map(|s| s.next_due)
            .min()
            .unwrap_or_else(|| now + self.schedule.interval)
    }

    /// Records a slot's results and schedules its next run.
    fn finished(&mut self, key: &SlotKey, results: Vec<ProbeResult>) {
        let Some(slot) = self.slots.get_mut(key) else {
            // Removed by a reload meanwhile: its results are dropped.
            return;
        };
        slot.in_flight = false;
        let ok = match key {
            SlotKey::Image(_) => results.iter().any(|r| r.success),
            SlotKey::Credential(_) => results.iter().all(|r| r.success),
        };
        slot.consecutive_failures = if ok { 0 } else { slot.consecutive_failures + 1 };
        let wait = backoff(self.schedule.interval, slot.consecutive_failures);
        slot.next_due = Instant::now() + jittered(wait);
        if let Some(limited) = results
            .iter()
            .find(|r| r.reason == Some(Reason::RateLimited))
        {
            let hold = limited
                .retry_after_seconds
                .map(Duration::from_secs)
                .unwrap_or(self.schedule.interval)
                .max(self.schedule.interval.min(Duration::from_secs(60)));
            let host = slot.job.registry_host().to_owned();
            tracing::warn!(
                registry = %host,
                hold = %humantime::format_duration(hold),
                "rate limited; holding probes of this registry"
            );
            self.holds.insert(host, Instant::now() + hold);
        }
        for mut result in results {
            // Response headers serve `check -v`; the daemon keeps only what it reports.
            for e in &mut result.exchanges {
                e.response_headers = Vec::new();
            }
            self.store.with_latest(&ProbeKey::of(&result), |previous| {
                log_transition(previous, &result)
            });
            log_result(&result);
            self.store.record(result);
        }
    }

    /// [`Scheduler::reload_inputs`], off the runtime's worker on a multi-threaded runtime
    /// (`block_in_place`): file reads block (each bounded by [`crate::fsread`]'s timeout), and
    /// the HTTP endpoints and the signal handler must keep a worker meanwhile.
    fn reload(&mut self) {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let started = Instant::now();
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.reload_inputs()),
            _ => self.reload_inputs(),
        }
        self.last_reload = Some((Instant::now(), started.elapsed()));
    }

    /// A reload asked for `how` (over HTTP, by SIGHUP): now, unless the last one ended less
    /// than the gap ([`RELOAD_MIN_GAP`]) ago; then it joins the one pending reload at the gap's
    /// end, so a storm of requests does one reload at a time and at most one more.
    fn request_reload(&mut self, how: &str, pending: &mut Option<Instant>) {
        let earliest = self
            .last_reload
            .map(|(end, took)| end + RELOAD_MIN_GAP.max(took.saturating_mul(RELOAD_GAP_FACTOR)));
        match earliest {
            Some(at) if at > Instant::now() => {
                tracing::debug!("reload requested {how}: coalesced into the pending one");
                *pending = Some(pending.map_or(at, |p| p.min(at)));
            }
            _ => {
                tracing::info!("reload requested {how}; reloading");
                self.reload();
            }
        }
    }

    /// Re-reads the inputs and reconciles the slots. When the inputs cannot be read the last
    /// good state is kept whole; a secret that no longer parses keeps its last good targets.
    fn reload_inputs(&mut self) {
        // The TLS cache is kept: its entries are rebuilt when a CA, certificate or key file
        // changes (`TlsConfigs::get` compares the files' stamps).
        let (mut plan, images) = match crate::plan::load(&self.inputs, &[]) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "reloading inputs failed; keeping the last good state");
                self.store.set_reload_status(false, unix_now());
                self.reread_often = true;
                return;
            }
        };
        for w in &plan.warnings {
            tracing::warn!(warning = %w, "host configuration");
        }
        // A secret that no longer parses keeps its last good targets: the ones its slots
        // probe now (the slots are the one copy of them; a secret that never parsed has none).
        let invalid: BTreeSet<&str> = plan
            .secrets
            .iter()
            .filter(|(_, valid)| !valid)
            .map(|(id, _)| id.as_str())
            .collect();
        let kept = last_good_targets(&self.slots, &invalid);
        for id in kept
            .iter()
            .map(|t| t.secret.as_str())
            .collect::<BTreeSet<_>>()
        {
            tracing::warn!(secret = %id, "secret no longer parses; probing its last good credentials");
        }
        plan.targets.extend(kept);

        let jobs = plan
            .targets
            .into_iter()
            .map(|t| {
                (
                    SlotKey::Credential(ProbeKey::credential(t.registry.clone(), t.secret.clone())),
                    Job::Credential(t),
                )
            })
            .chain(
                images
                    .into_iter()
                    .map(|p| (SlotKey::Image(p.image.clone()), Job::Image(p))),
            );
        let mut keep: Vec<ProbeKey> = Vec::new();
        let mut fresh: HashMap<SlotKey, Slot> = HashMap::new();
        let spread = if self.first_load {
            self.schedule.startup_spread.min(self.schedule.interval)
        } else {
            Duration::ZERO
        };
        for (key, job) in jobs {
            let fp = fingerprint(&self.hasher, &job);
            keep.extend(job.keys());
            let slot = match self.slots.remove(&key) {
                Some(old) if old.fingerprint == fp => old,
                old => {
                    if !self.first_load {
                        let what = if old.is_some() {
                            "inputs changed; probing now"
                        } else {
                            "new probe; probing now"
                        };
                        log_key(&key, job.secret().unwrap_or(""), what);
                    }
                    Slot {
                        job: Arc::new(job),
                        fingerprint: fp,
                        next_due: Instant::now() + spread.mul_f64(fastrand::f64()),
                        in_flight: old.is_some_and(|o| o.in_flight),
                        consecutive_failures: 0,
                    }
                }
            };
            fresh.insert(key, slot);
        }
        for (key, slot) in &self.slots {
            log_key(
                key,
                slot.job.secret().unwrap_or(""),
                "probe removed; dropping its series",
            );
        }
        self.slots = fresh;
        self.first_load = false;
        self.prune_registries();
        for r in &plan.invalid {
            keep.push(ProbeKey::of(r));
        }
        if keep.is_empty() {
            let p = &self.inputs.paths;
            let paths = |v: &[std::path::PathBuf]| {
                v.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            tracing::warn!(
                secrets_dirs = %paths(&p.secrets_dirs),
                secret_files = %paths(&p.secret_files),
                node_config = %p.node_config.as_deref().map(|n| n.display().to_string()).unwrap_or_default(),
                default_paths = p.default_paths,
                "nothing to probe: the inputs hold no pull secret, node config.json or image \
                 (regprobe_configured_probes is 0; mount secrets at DIR/<name>/.dockerconfigjson)"
            );
        }
        self.store.set_inputs(&plan.secrets, &keep);
        let reported = &plan.providers;
        self.store.set_providers(
            &reported.configured,
            &reported
                .runs
                .iter()
                .map(|(name, success, seconds)| {
                    (
                        name.clone(),
                        crate::report::store::ProviderRun {
                            success: *success,
                            duration_seconds: *seconds,
                        },
                    )
                })
                .collect::<Vec<_>>(),
            reported.expiries.clone(),
        );
        self.reread_often = !plan.invalid.is_empty() || !plan.providers.configured.is_empty();
        for r in plan.invalid {
            let previous = self.store.latest_for(&ProbeKey::of(&r));
            if previous.as_ref().map(|p| &p.detail) != Some(&r.detail) {
                let what = match r.reason {
                    Some(Reason::ProviderFailed | Reason::ProviderMissing) => {
                        "credential provider failed"
                    }
                    _ => "secret invalid",
                };
                tracing::warn!(secret = r.secret.as_deref().unwrap_or(""), detail = %r.detail, "{what}");
            }
            self.store.record(r);
        }
        self.store.set_reload_status(invalid.is_empty(), unix_now());
        // What the re-read allocated (N files, the plan) is freed by now.
        self.trim.request(Instant::now());
    }
}

/// Logs `message` at INFO with the probe's plain fields: `registry` (a credential probe) or
/// `image` (an image probe), and `secret`.
fn log_key(key: &SlotKey, secret: &str, message: &str) {
    match key {
        SlotKey::Credential(k) => {
            let registry = match k {
                ProbeKey::Credential { registry, .. } => registry.as_str(),
                ProbeKey::Image { image, .. } => image.as_str(),
            };
            tracing::info!(registry, secret, "{message}");
        }
        SlotKey::Image(image) => tracing::info!(image = %image, secret, "{message}"),
    }
}

/// Logs a probe's change of state: `registry` (or `image` for an image probe), `secret`, and
/// on failure `reason`, `class`, `detail`.
fn log_transition(previous: Option<&ProbeResult>, now: &ProbeResult) {
    let secret = now.secret.as_deref().unwrap_or("");
    let message = match (previous, now.success) {
        (Some(p), true) if !p.success => "recovered: the probe succeeds again",
        (None, true) => "probe succeeds",
        (prev, false) if prev.is_none_or(|p| p.success || p.reason != now.reason) => {
            let reason = now.reason.map(|r| r.as_str()).unwrap_or("");
            let class = now.class.map(|c| c.as_str()).unwrap_or("");
            let detail = now.detail.as_str();
            match &now.image {
                Some(image) => {
                    tracing::warn!(image = %image, secret, reason, class, detail, "probe failing")
                }
                None => {
                    tracing::warn!(registry = %now.registry, secret, reason, class, detail, "probe failing")
                }
            }
            return;
        }
        _ => return,
    };
    match &now.image {
        Some(image) => tracing::info!(image = %image, secret, "{message}"),
        None => tracing::info!(registry = %now.registry, secret, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(paths: crate::inputs::InputPaths) -> Scheduler {
        let inputs = Inputs {
            paths,
            network: crate::inputs::Network {
                timeout: Duration::from_secs(1),
                dns_server: None,
                resolve: Vec::new(),
                no_proxy: true,
            },
            concurrency: 1,
            images: Vec::new(),
            audit_all: false,
            caps: Default::default(),
        };
        Scheduler {
            inputs,
            schedule: Schedule {
                interval: Duration::from_secs(60),
                reload_interval: Duration::from_secs(60),
                concurrency: 1,
                registry_concurrency: 1,
                startup_spread: Duration::ZERO,
            },
            store: Arc::new(Store::new("test")),
            hasher: RandomState::new(),
            slots: HashMap::new(),
            holds: HashMap::new(),
            registry_sems: HashMap::new(),
            first_load: true,
            last_reload: None,
            reread_often: true,
            trim: Trim::default(),
        }
    }

    /// Per-registry limits and holds go with their registries (issue 13, bounded work).
    #[test]
    fn registry_limits_and_holds_are_pruned_with_their_registries() {
        let mut s = scheduler(crate::inputs::InputPaths::default());
        s.registry_sems
            .insert("gone.example".into(), Arc::new(Semaphore::new(1)));
        s.holds.insert(
            "gone.example".into(),
            Instant::now() + Duration::from_secs(600),
        );
        s.reload_inputs();
        assert!(s.registry_sems.is_empty(), "{:?}", s.registry_sems.keys());
        assert!(s.holds.is_empty());
    }

    fn credential_slots(s: &Scheduler) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = s
            .slots
            .values()
            .filter_map(|slot| match &*slot.job {
                Job::Credential(t) => Some((
                    t.secret.clone(),
                    t.registry.clone(),
                    t.credential.username.clone(),
                )),
                Job::Image(_) => None,
            })
            .collect();
        out.sort();
        out
    }

    /// A secret that stops parsing keeps probing what its last good parse gave (its slots are
    /// that copy); one that never parsed probes nothing; a removed one takes its slots along.
    #[test]
    fn a_secret_that_stops_parsing_keeps_its_last_good_targets() {
        use regprobe_testsupport::write_dockerconfigjson;
        let dir = tempfile::tempdir().unwrap();
        let a = write_dockerconfigjson(dir.path(), "a", &[("registry.example", "alice", "pw")]);
        write_dockerconfigjson(dir.path(), "b", &[("registry.example", "bob", "pw")]);
        let never = write_dockerconfigjson(dir.path(), "never", &[("registry.example", "x", "pw")]);
        std::fs::write(never, "{").unwrap();
        let mut s = scheduler(crate::inputs::InputPaths {
            secrets_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        });
        s.reload_inputs();
        let both = vec![
            (
                "a".to_string(),
                "registry.example".to_string(),
                "alice".to_string(),
            ),
            (
                "b".to_string(),
                "registry.example".to_string(),
                "bob".to_string(),
            ),
        ];
        assert_eq!(credential_slots(&s), both);
        std::fs::write(&a, "{\"auths\": ").unwrap();
        s.reload_inputs();
        assert_eq!(
            credential_slots(&s),
            both,
            "a keeps its last good credential"
        );
        s.reload_inputs();
        assert_eq!(
            credential_slots(&s),
            both,
            "and keeps it on the next reload"
        );
        std::fs::remove_dir_all(dir.path().join("a")).unwrap();
        s.reload_inputs();
        assert_eq!(credential_slots(&s), both[1..].to_vec());
    }

    /// A trim is due at once the first time, then no sooner than [`TRIM_MIN_GAP`] after the
    /// last one; one that finds probes in flight is skipped and waits for the next request.
    #[test]
    fn trims_are_spaced_and_only_when_idle() {
        let t0 = Instant::now();
        let mut t = Trim::default();
        t.request(t0);
        assert_eq!(t.due, Some(t0));
        assert!(t.fire(t0, true));
        t.request(t0 + Duration::from_millis(100));
        assert_eq!(t.due, Some(t0 + TRIM_MIN_GAP));
        // A second request does not move the due time.
        t.request(t0 + Duration::from_millis(200));
        assert_eq!(t.due, Some(t0 + TRIM_MIN_GAP));
        assert!(!t.fire(t0 + TRIM_MIN_GAP, false));
        assert_eq!((t.due, t.last), (None, Some(t0)));
        t.request(t0 + Duration::from_secs(5));
        assert_eq!(t.due, Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(300);
        for _ in 0..1000 {
            let j = jittered(base);
            assert!(
                j >= Duration::from_secs(270) && j <= Duration::from_secs(330),
                "{j:?}"
            );
        }
    }

    /// The safety-net re-read follows `--reload-interval`, and one interval while an input
    /// needs it; the reload decides which from what it read.
    #[test]
    fn inputs_are_re_read_every_interval_only_while_one_does_not_parse() {
        let mut schedule = scheduler(Default::default()).schedule;
        schedule.interval = Duration::from_secs(5);
        schedule.reload_interval = Duration::from_secs(3600);
        assert_eq!(reread_period(&schedule, false), schedule.reload_interval);
        assert_eq!(reread_period(&schedule, true), schedule.interval);
        schedule.reload_interval = Duration::from_secs(2);
        assert_eq!(reread_period(&schedule, true), schedule.reload_interval);
        schedule.interval = Duration::from_millis(200);
        assert_eq!(reread_period(&schedule, true), Duration::from_secs(1));

        use regprobe_testsupport::write_dockerconfigjson;
        let dir = tempfile::tempdir().unwrap();
        let a = write_dockerconfigjson(dir.path(), "a", &[("registry.example", "alice", "pw")]);
        let mut s = scheduler(crate::inputs::InputPaths {
            secrets_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        });
        s.reload_inputs();
        assert!(!s.reread_often, "every input parses");
        std::fs::write(&a, "{").unwrap();
        s.reload_inputs();
        assert!(s.reread_often, "a secret does not parse");
        write_dockerconfigjson(dir.path(), "a", &[("registry.example", "alice", "pw")]);
        s.reload_inputs();
        assert!(!s.reread_often, "it parses again");
        std::fs::remove_dir_all(dir.path()).unwrap();
        s.reload_inputs();
        assert!(
            s.reread_often,
            "the secrets directory is gone: the reload failed"
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let i = Duration::from_secs(300);
        assert_eq!(backoff(i, 0), i);
        assert_eq!(backoff(i, 1), i);
        assert_eq!(backoff(i, 2), i * 2);
        assert_eq!(backoff(i, 3), i * MAX_BACKOFF_FACTOR);
        assert_eq!(backoff(i, 10), i * MAX_BACKOFF_FACTOR);
        assert_eq!(backoff(i, u32::MAX), i * MAX_BACKOFF_FACTOR);
    }
}
