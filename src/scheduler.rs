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
use crate::probe::credential::{probe_credential, CredentialTarget, ProbeEnv};
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

struct Slot {
    target: CredentialTarget,
    fingerprint: u64,
    next_due: Instant,
    in_flight: bool,
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

fn fingerprint(hasher: &RandomState, t: &CredentialTarget) -> u64 {
    // A keyed, per-process hash: it tells "the credential changed" without keeping a copy,
    // and means nothing outside this process.
    let mut h = hasher.build_hasher();
    t.host.host.hash(&mut h);
    t.host.path.hash(&mut h);
    format!("{:?}", t.host.scheme).hash(&mut h);
    t.host.skip_verify.hash(&mut h);
    t.host.ca_files.hash(&mut h);
    t.credential.username.hash(&mut h);
    t.credential.password.expose_secret().hash(&mut h);
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
    let mut slots: HashMap<ProbeKey, Slot> = HashMap::new();
    let sem = Arc::new(Semaphore::new(schedule.concurrency.max(1)));
    let (tx, mut rx) = mpsc::channel::<(ProbeKey, ProbeResult)>(64);
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
            let (env, target, tx, sem, key) = (
                env.clone(),
                slot.target.clone(),
                tx.clone(),
                Arc::clone(&sem),
                key.clone(),
            );
            tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return;
                };
                let r = probe_credential(&env, &target).await;
                let _ = tx.send((key, r)).await;
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
            Some((key, result)) = rx.recv() => {
                let previous = store.latest_for(&key);
                log_transition(previous.as_ref(), &result);
                log_result(&result);
                if let Some(slot) = slots.get_mut(&key) {
                    slot.in_flight = false;
                    slot.next_due = Instant::now() + jittered(schedule.interval);
                    store.record(result);
                }
                // A result for a key removed by a reload meanwhile is dropped.
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
    slots: &mut HashMap<ProbeKey, Slot>,
) {
    let (_, plan) = match inputs.load(&[]) {
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
    let mut keep: Vec<ProbeKey> = Vec::new();
    let mut fresh: HashMap<ProbeKey, Slot> = HashMap::new();
    for t in plan.targets {
        let key = ProbeKey::credential(t.registry.clone(), t.secret.clone());
        let fp = fingerprint(hasher, &t);
        keep.push(key.clone());
        let slot = match slots.remove(&key) {
            Some(old) if old.fingerprint == fp => old,
            Some(old) => {
                tracing::info!(registry = %t.registry, secret = %t.secret, "credential changed; probing now");
                Slot {
                    target: t,
                    fingerprint: fp,
                    next_due: Instant::now(),
                    in_flight: old.in_flight,
                }
            }
            None => {
                tracing::info!(registry = %t.registry, secret = %t.secret, "new credential; probing now");
                Slot {
                    target: t,
                    fingerprint: fp,
                    next_due: Instant::now(),
                    in_flight: false,
                }
            }
        };
        fresh.insert(key, slot);
    }
    for key in slots.keys() {
        tracing::info!(?key, "credential removed; dropping its series");
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
