//! Bounded work (issue 13): caps on what one load of the inputs may turn into probes.
//!
//! | cap | flag | default | what is left out |
//! |---|---|---|---|
//! | secrets | `--max-secrets` | 10,000 | secrets after the first N, in load order |
//! | entries per secret | `--max-entries-per-secret` | 1,000 | a secret's `auths` entries after the first N |
//! | probes per cycle | `--max-probes` | 20,000 | credential targets after the first N, in plan order |
//!
//! The defaults are sized from the benchmark (10,000 secrets run within the DaemonSet's
//! memory request; one 4 MB secret with 75,000 entries, uncapped, drove `check` past 839 MB).
//! Hitting a cap logs a warning and sets `regprobe_inputs_capped{cap}` to the number of items
//! left out at the last load (0 otherwise, [`capped`]).

use crate::secrets::Secret;
use std::sync::atomic::{AtomicU64, Ordering};

/// The caps, as flags of both commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Caps {
    /// Read at most this many secrets; more are left out with a warning.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_secrets: u32,
    /// Use at most this many entries (`auths` keys) of one secret.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_entries_per_secret: u32,
    /// Run at most this many credential probes per cycle.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_probes: u32,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_secrets: 10_000,
            max_entries_per_secret: 1_000,
            max_probes: 20_000,
        }
    }
}

/// Which cap (the `cap` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `--max-secrets`.
    Secrets,
    /// `--max-entries-per-secret`.
    Entries,
    /// `--max-probes`.
    Probes,
}

impl Cap {
    /// Every cap, in label order.
    pub const ALL: [Cap; 3] = [Cap::Secrets, Cap::Entries, Cap::Probes];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cap::Secrets => "secrets",
            Cap::Entries => "entries",
            Cap::Probes => "probes",
        }
    }
}

/// Items left out at the last load, per [`Cap`] (process-wide: one daemon, one set of inputs).
static LEFT_OUT: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Items `cap` left out at the last load.
pub fn capped(cap: Cap) -> u64 {
    LEFT_OUT[cap as usize].load(Ordering::Relaxed)
}

fn report(cap: Cap, left_out: usize, limit: u32) {
    LEFT_OUT[cap as usize].store(left_out as u64, Ordering::Relaxed);
    if left_out > 0 {
        tracing::warn!(
            cap = cap.as_str(),
            limit,
            left_out,
            "input cap reached: {left_out} {} left out",
            cap.as_str()
        );
    }
}

/// Applies the secret and entry caps to freshly loaded `secrets`.
pub fn limit_secrets(secrets: &mut Vec<Secret>, caps: &Caps) {
    let max = caps.max_secrets as usize;
    let dropped = secrets.len().saturating_sub(max);
    secrets.truncate(max);
    report(Cap::Secrets, dropped, caps.max_secrets);
    let max = caps.max_entries_per_secret as usize;
    let mut entries = 0;
    for s in secrets.iter_mut() {
        if let Ok(e) = &mut s.entries {
            entries += e.len().saturating_sub(max);
            e.truncate(max);
        }
    }
    report(Cap::Entries, entries, caps.max_entries_per_secret);
}

/// Applies the probe cap to planned `targets`.
pub fn limit_probes<T>(targets: &mut Vec<T>, caps: &Caps) {
    let max = caps.max_probes as usize;
    let dropped = targets.len().saturating_sub(max);
    targets.truncate(max);
    report(Cap::Probes, dropped, caps.max_probes);
}
