//! The daemon's loop: load inputs, probe every credential at start, then each one every
//! `--interval` (jittered ±10% so a fleet does not probe in lock-step), with at most
//! `--concurrency` probes in flight and at most one per `(registry, secret)`.
//!
//! Inputs are re-read on `SIGHUP`, on `POST /-/reload`, and every `--reload-interval` as a
//! safety net. A new or changed credential is probed at once; a removed one loses its series
//! ([`Store::set_inputs`]); when the inputs cannot be read the last good state is kept and
//! `regprobe_config_last_reload_successful` drops to 0.
//!
//! State changes are logged at info (recovered) or warn (failing, reason changed); every probe's
//! detail at debug. Nothing logged carries a credential.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::cli::{log_result, InputArgs};
use crate::plan::ImagePlan;
use crate::probe::credential::{probe_credential, CredentialTarget, ProbeEnv};
use crate::probe::pull::probe_image;
use crate::probe::ProbeResult;
use crate::report::{ProbeKey, Store};
use crate::server::AppState;

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Probe period per credential.
    pub interval: Duration,
    /// Periodic re-read of the inputs.
    pub reload_interval: Duration,
    /// Probes in flight at most.
    pub concurrency: usize,
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

struct Slot {
    job: Job,
    fingerprint: u64,
    next_due: Instant,
    in_flight: bool,
}

impl Job {
    async fn run(&self, env: &ProbeEnv, audit_all: bool) -> Vec<ProbeResult> {
        match self {
            Job::Credential(t) => vec![probe_credential(env, t).await],
            Job::Image(p) => probe_image(env, &p.attempts, &p.key_verdicts, audit_all).await,
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
}

/// `next = now + interval × U(0.9, 1.1)`.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

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
                for host in &a.hosts {
                    let (u, pw) = a
                        .credential
                        .as_ref()
                        .map(|c| (c.username.as_str(), c.password.expose_secret()))
                        .unwrap_or(("", ""));
                    hash_target(&mut h, host, u, pw);
                }
            }
        }
    }
    h.finish()
}

/// Runs until `shutdown` resolves. `state.ready` is set once the inputs were loaded.
pub async fn run(
    inputs: InputArgs,
    env: ProbeEnv,
    schedule: Schedule,
    state: Arc<AppState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let store = Arc::clone(&state.store);
    let hasher = RandomState::new();
    let mut slots: HashMap<SlotKey, Slot> = HashMap::new();
    let sem = Arc::new(Semaphore::new(schedule.concurrency.max(1)));
    let (tx, mut rx) = mpsc::channel::<(SlotKey, Vec<ProbeResult>)>(64);
    let audit_all = inputs.audit_all;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut reload_tick = tokio::time::interval_at(
        Instant::now() + schedule.reload_interval,
        schedule.reload_interval,
    );

    reload(&inputs, &store, &hasher, &mut slots);
    state.ready.store(true, Ordering::SeqCst);

    loop {
        // Launch everything due.
        let now = Instant::now();
        for (key, slot) in slots.iter_mut() {
            if slot.in_flight || slot.next_due > now {
                continue;
            }
            slot.in_flight = true;
            let (env, job, tx, sem, key) = (
                env.clone(),
                slot.job.clone(),
                tx.clone(),
                Arc::clone(&sem),
                key.clone(),
            );
            tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return;
                };
                let results = job.run(&env, audit_all).await;
                let _ = tx.send((key, results)).await;
            });
        }
        let next_due = slots
            .values()
            .filter(|s| !s.in_flight)
            .map(|s| s.next_due)
            .min()
            .unwrap_or_else(|| Instant::now() + schedule.interval);

        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next_due) => {}
            Some((key, results)) = rx.recv() => {
                if let Some(slot) = slots.get_mut(&key) {
                    slot.in_flight = false;
                    slot.next_due = Instant::now() + jittered(schedule.interval);
                    for result in results {
                        let previous = store.latest_for(&ProbeKey::of(&result));
                        log_transition(previous.as_ref(), &result);
                        log_result(&result);
                        store.record(result);
                    }
                }
                // Results for a slot removed by a reload meanwhile are dropped.
            }
            _ = state.reload.notified() => {
                tracing::info!("reload requested over HTTP");
                reload(&inputs, &store, &hasher, &mut slots);
            }
            _ = hup_fut => {
                tracing::info!("reload requested by SIGHUP");
                reload(&inputs, &store, &hasher, &mut slots);
            }
            _ = reload_tick.tick() => {
                reload(&inputs, &store, &hasher, &mut slots);
            }
            _ = shutdown.changed() => {
                tracing::info!("shutting down the scheduler");
                break;
            }
        }
    }
}

/// Re-reads the inputs and reconciles the slots. On failure the last good state is kept.
fn reload(
    inputs: &InputArgs,
    store: &Store,
    hasher: &RandomState,
    slots: &mut HashMap<SlotKey, Slot>,
) {
    let (plan, images) = match inputs.load(&[]) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "reloading inputs failed; keeping the last good state");
            store.set_reload_status(false, unix_now());
            return;
        }
    };
    for w in &plan.warnings {
        tracing::warn!(warning = %w, "host configuration");
    }
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
    for (key, job) in jobs {
        let fp = fingerprint(hasher, &job);
        keep.extend(job.keys());
        let slot = match slots.remove(&key) {
            Some(old) if old.fingerprint == fp => old,
            old => {
                tracing::info!(
                    ?key,
                    "{}; probing now",
                    if old.is_some() {
                        "inputs changed"
                    } else {
                        "new probe"
                    }
                );
                Slot {
                    job,
                    fingerprint: fp,
                    next_due: Instant::now(),
                    in_flight: old.is_some_and(|o| o.in_flight),
                }
            }
        };
        fresh.insert(key, slot);
    }
    for key in slots.keys() {
        tracing::info!(?key, "probe removed; dropping its series");
    }
    *slots = fresh;
    for r in &plan.invalid {
        keep.push(ProbeKey::of(r));
    }
    store.set_inputs(&plan.secrets, &keep);
    for r in plan.invalid {
        let previous = store.latest_for(&ProbeKey::of(&r));
        if previous.as_ref().map(|p| &p.detail) != Some(&r.detail) {
            tracing::warn!(secret = r.secret.as_deref().unwrap_or(""), detail = %r.detail, "secret invalid");
        }
        store.record(r);
    }
    store.set_reload_status(true, unix_now());
}

fn log_transition(previous: Option<&ProbeResult>, now: &ProbeResult) {
    let secret = now.secret.as_deref().unwrap_or("");
    match (previous, now.success) {
        (Some(p), true) if !p.success => tracing::info!(
            registry = %now.registry, secret, "recovered: the credential works again"
        ),
        (None, true) => tracing::info!(registry = %now.registry, secret, "credential works"),
        (prev, false) => {
            let changed = prev.is_none_or(|p| p.success || p.reason != now.reason);
            if changed {
                tracing::warn!(
                    registry = %now.registry,
                    secret,
                    reason = now.reason.map(|r| r.as_str()).unwrap_or(""),
                    class = now.class.map(|c| c.as_str()).unwrap_or(""),
                    detail = %now.detail,
                    "probe failing"
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
