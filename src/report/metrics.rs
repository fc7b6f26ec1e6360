//! OpenMetrics rendering of the [`Store`] (`GET /metrics`), with `prometheus-client`.
//!
//! Every series is rendered at scrape time from one [`Snapshot`] of the store, so a key removed
//! from the store cannot leave a stale series behind, and one scrape is always consistent.
//! Names, types and labels follow `docs/metrics.md` ("Metrics"), plus the two
//! `regprobe_config_last_reload_*` gauges.
//!
//! * Credential probes (`ProbeResult.image` is `None`) feed the `registry`/`secret` metrics.
//! * Image probes feed only `regprobe_image_success` and `regprobe_image_failure_reason`, with
//!   `secret="none"` for an anonymous probe.
//! * A series whose value is not a finite number (a NaN duration) is left out rather than
//!   exposed as a value no alert can compare.
//! * Label values are escaped by `prometheus-client` (`\\`, `\"`, `\n`), so odd registry keys
//!   and image references stay parseable.

use super::store::{Entry, ProbeKey, Snapshot, Store, StoreReader, View};
use crate::probe::{ProbeResult, Reason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric of the store as an OpenMetrics text exposition, ending with `# EOF`.
///
/// The series are written straight from the store under its read lock (no copy of the
/// results), into a buffer sized for them up front: at 1,000 credentials a scrape used to
/// deep-copy every result (~2.5 MB) and grow its output by doubling (`BENCHMARKS.md`).
pub fn encode(store: &Store) -> String {
    let capacity = store.with_view(|view| estimated_size(&Facts::of_view(view)));
    encode_with(Box::new(ReaderCollector(store.reader())), capacity)
}

/// What `GET /metrics` serves: [`encode`] plus the standard process metrics
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...: [`process`]), read from
/// `/proc/self` at this scrape.
pub fn encode_served(store: &Store) -> String {
    let capacity = store.with_view(|view| estimated_size(&Facts::of_view(view))) + 2048;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ReaderCollector(store.reader())));
    registry.register_collector(Box::new(process::ProcessCollector));
    let mut out = String::with_capacity(capacity);
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("encoding metrics into a String");
    out
}

/// Renders a snapshot (see [`encode`]).
pub fn encode_snapshot(snapshot: Snapshot) -> String {
    let capacity = estimated_size(&Facts::of_snapshot(&snapshot));
    encode_with(Box::new(SnapshotCollector(snapshot)), capacity)
}

fn encode_with(collector: Box<dyn Collector>, capacity: usize) -> String {
    let mut registry = Registry::default();
    registry.register_collector(collector);
    let mut out = String::with_capacity(capacity);
    // Writing to a String cannot fail, and `render` only fails when the writer does.
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("encoding metrics into a String");
    out
}

/// A [`Collector`] over a shared [`Store`], for callers that want regprobe's metrics in a
/// larger `prometheus_client` registry. Each scrape renders the store as it is then, under its
/// read lock.
#[derive(Debug, Clone)]
pub struct StoreCollector(pub Arc<Store>);

impl Collector for StoreCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.0
            .with_view(|view| render(&Facts::of_view(view), encoder))
    }
}

#[derive(Debug)]
struct ReaderCollector(StoreReader);

impl Collector for ReaderCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.0
            .with_view(|view| render(&Facts::of_view(view), encoder))
    }
}

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

impl Collector for SnapshotCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        render(&Facts::of_snapshot(&self.0), encoder)
    }
}

/// What a scrape renders, borrowed from a [`View`] of the store or from a [`Snapshot`].
struct Facts<'a> {
    version: &'a str,
    /// Every key with its entry, in [`ProbeKey`] order.
    entries: Vec<(&'a ProbeKey, &'a Entry)>,
    secrets: Vec<(&'a str, bool)>,
    reload_ok: bool,
    reload_success_at: Option<f64>,
    providers: Vec<(&'a str, crate::report::store::ProviderRun)>,
    expiries: Vec<((&'a str, &'a str), i64)>,
    configured_probes: Option<usize>,
}

impl<'a> Facts<'a> {
    fn of_view(view: View<'a>) -> Self {
        Facts {
            version: view.version,
            entries: view.entries.iter().collect(),
            secrets: view
                .secrets
                .iter()
                .map(|(id, valid)| (id.as_str(), *valid))
                .collect(),
            reload_ok: view.reload_ok,
            reload_success_at: view.reload_success_at,
            providers: view
                .providers
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect(),
            expiries: view
                .expiries
                .iter()
                .map(|((r, s), v)| ((r.as_str(), s.as_str()), *v))
                .collect(),
            configured_probes: view.configured_probes,
        }
    }

    fn of_snapshot(snap: &'a Snapshot) -> Self {
        Facts {
            version: &snap.version,
            entries: snap.entries.iter().map(|(k, e)| (k, e)).collect(),
            secrets: snap
                .secrets
                .iter()
                .map(|(id, valid)| (id.as_str(), *valid))
                .collect(),
            reload_ok: snap.reload_ok,
            reload_success_at: snap.reload_success_at,
            providers: snap
                .providers
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect(),
            expiries: snap
                .expiries
                .iter()
                .map(|((r, s), v)| ((r.as_str(), s.as_str()), *v))
                .collect(),
            configured_probes: snap.configured_probes,
        }
    }
}

/// Bytes the exposition of `facts` will take, near enough to size its buffer once: per
/// credential about a dozen series of ~70 bytes plus the two label values, a little more per
/// phase and failure; 8 KiB for the `# HELP`/`# TYPE` lines and the unlabelled series.
fn estimated_size(facts: &Facts) -> usize {
    let per_entry: usize = facts
        .entries
        .iter()
        .map(|(key, e)| {
            let labels = match key {
                ProbeKey::Credential { registry, secret } => registry.len() + secret.len(),
                ProbeKey::Image { image, secret } => image.len() + secret.len(),
            };
            let series = 8 + e.latest.phases.len() + 2 * e.failures.len();
            series * (72 + labels)
        })
        .sum();
    let secrets: usize = facts.secrets.iter().map(|(id, _)| 40 + id.len()).sum();
    8192 + per_entry + secrets
}

/// Writes one gauge family: its descriptor, then one sample per `(labels, value)`.
fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// Writes one gauge without labels; no sample when `value` is `None`.
fn unlabelled_gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<V>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if let Some(value) = value {
        metric.encode_gauge(&value)?;
    }
    Ok(())
}

/// Writes one counter family; `name` is without `_total`, which the encoder appends.
fn counter<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, f64>(&value, None)?;
    }
    Ok(())
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// The reason of a failed result (`None` for a success, or a failure without a reason, which
/// has no place in the closed reason set).
fn failure(result: &ProbeResult) -> Option<Reason> {
    if result.success {
        None
    } else {
        result.reason
    }
}

fn render(snap: &Facts, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
    let enc = &mut enc;
    // (registry, secret, entry) of credential probes; (image, secret, entry) of image probes.
    let creds: Vec<_> = snap
        .entries
        .iter()
        .filter_map(|(key, entry)| match key {
            ProbeKey::Credential { registry, secret } => {
                Some((registry.as_str(), secret.as_str(), entry))
            }
            ProbeKey::Image { .. } => None,
        })
        .collect();
    let images: Vec<_> = snap
        .entries
        .iter()
        .filter_map(|(key, entry)| match key {
            ProbeKey::Image { image, secret } => Some((image.as_str(), secret.as_str(), entry)),
            ProbeKey::Credential { .. } => None,
        })
        .collect();

    gauge(
        enc,
        "regprobe_success",
        "Whether the last credential handshake of the secret against the registry succeeded (1) or not (0).",
        creds.iter().map(|(registry, secret, e)| {
            ([("registry", *registry), ("secret", *secret)], i64::from(e.latest.success))
        }),
    )?;
    gauge(
        enc,
        "regprobe_failure_reason",
        "Why the last credential probe failed: value 1, one series per failing registry and secret, absent while it succeeds.",
        creds.iter().filter_map(|(registry, secret, e)| {
            let reason = failure(&e.latest)?;
            Some((
                [
                    ("registry", *registry),
                    ("secret", *secret),
                    ("reason", reason.as_str()),
                    ("class", reason.class().as_str()),
                ],
                1i64,
            ))
        }),
    )?;
    gauge(
        enc,
        "regprobe_duration_seconds",
        "Wall time of the last credential probe, in seconds.",
        creds.iter().filter_map(|(registry, secret, e)| {
            Some((
                [("registry", *registry), ("secret", *secret)],
                finite(e.latest.duration_seconds)?,
            ))
        }),
    )?;
    gauge(
        enc,
        "regprobe_phase_duration_seconds",
        "Seconds the last credential probe spent in each phase that ran (resolve, connect, tls, challenge, token, verify, manifest).",
        creds.iter().flat_map(|(registry, secret, e)| {
            e.latest.phases.iter().filter_map(move |(phase, seconds)| {
                Some((
                    [
                        ("registry", *registry),
                        ("secret", *secret),
                        ("phase", phase.as_str()),
                    ],
                    finite(*seconds)?,
                ))
            })
        }),
    )?;
    gauge(
        enc,
        "regprobe_insecure_token_realm",
        "1 when the registry is HTTPS but its token realm is plain http:// (the password travels unencrypted to the token service).",
        creds.iter().map(|(registry, secret, e)| {
            (
                [("registry", *registry), ("secret", *secret)],
                i64::from(e.latest.insecure_realm),
            )
        }),
    )?;
    gauge(
        enc,
        "regprobe_last_probe_timestamp_seconds",
        "Unix time the last credential probe started.",
        creds.iter().filter_map(|(registry, secret, e)| {
            Some((
                [("registry", *registry), ("secret", *secret)],
                finite(e.latest.timestamp)?,
            ))
        }),
    )?;
    gauge(
        enc,
        "regprobe_last_success_timestamp_seconds",
        "Unix time the last successful credential probe started; absent while the pair never succeeded.",
        creds.iter().filter_map(|(registry, secret, e)| {
            Some((
                [("registry", *registry), ("secret", *secret)],
                finite(e.last_success?)?,
            ))
        }),
    )?;
    counter(
        enc,
        "regprobe_probes",
        "Credential probes run for the registry and secret.",
        creds.iter().map(|(registry, secret, e)| {
            (
                [("registry", *registry), ("secret", *secret)],
                e.probes_total,
            )
        }),
    )?;
    counter(
        enc,
        "regprobe_probe_failures",
        "Failed credential probes for the registry and secret, by reason and class.",
        creds.iter().flat_map(|(registry, secret, e)| {
            e.failures.iter().map(move |(reason, count)| {
                (
                    [
                        ("registry", *registry),
                        ("secret", *secret),
                        ("reason", reason.as_str()),
                        ("class", reason.class().as_str()),
                    ],
                    *count,
                )
            })
        }),
    )?;
    gauge(
        enc,
        "regprobe_image_success",
        "Whether the canary image was pullable with the secret's credential (1) or not (0); secret is none for an anonymous pull.",
        images.iter().map(|(image, secret, e)| {
            ([("image", *image), ("secret", *secret)], i64::from(e.latest.success))
        }),
    )?;
    gauge(
        enc,
        "regprobe_image_failure_reason",
        "Why the last probe of the canary image failed: value 1, absent while it succeeds.",
        images.iter().filter_map(|(image, secret, e)| {
            let reason = failure(&e.latest)?;
            Some((
                [
                    ("image", *image),
                    ("secret", *secret),
                    ("reason", reason.as_str()),
                    ("class", reason.class().as_str()),
                ],
                1i64,
            ))
        }),
    )?;

    // One series per registry (several secrets may share one): the most recent probe's view.
    let mut tls: BTreeMap<&str, (f64, i64, i64)> = BTreeMap::new();
    for (registry, _, e) in &creds {
        let (Some(info), false) = (&e.latest.tls, registry.is_empty()) else {
            continue;
        };
        let seen = (
            e.latest.timestamp,
            info.leaf_not_after,
            info.chain_earliest_not_after,
        );
        match tls.get(registry) {
            Some(prev) if prev.0 >= seen.0 => {}
            _ => {
                tls.insert(registry, seen);
            }
        }
    }
    gauge(
        enc,
        "regprobe_tls_cert_expiry_timestamp_seconds",
        "Unix time the registry's TLS certificate expires: the leaf (cert=leaf) and the earliest in the presented chain (cert=chain_earliest).",
        tls.iter().flat_map(|(registry, (_, leaf, chain))| {
            [("leaf", *leaf), ("chain_earliest", *chain)]
                .into_iter()
                .filter(|(_, not_after)| *not_after > 0)
                .map(move |(cert, not_after)| {
                    ([("registry", *registry), ("cert", cert)], not_after)
                })
        }),
    )?;
    // Docker Hub's pull allowance, per registry, from the newest probe that saw the headers
    // (image probes' manifest HEAD; credential probes rarely get them).
    let mut limits: BTreeMap<&str, (f64, u64, u64)> = BTreeMap::new();
    for (key, e) in &snap.entries {
        let Some(rl) = e.latest.ratelimit else {
            continue;
        };
        let registry = match key {
            ProbeKey::Credential { registry, .. } => registry.as_str(),
            ProbeKey::Image { .. } => e.latest.registry.as_str(),
        };
        let seen = (e.latest.timestamp, rl.limit, rl.remaining);
        if limits.get(registry).is_none_or(|prev| prev.0 < seen.0) {
            limits.insert(registry, seen);
        }
    }
    gauge(
        enc,
        "regprobe_dockerhub_ratelimit_limit",
        "Docker Hub pulls allowed per window (ratelimit-limit header of the last manifest HEAD).",
        limits
            .iter()
            .map(|(registry, (_, limit, _))| ([("registry", *registry)], *limit as i64)),
    )?;
    gauge(
        enc,
        "regprobe_dockerhub_ratelimit_remaining",
        "Docker Hub pulls left in the window (ratelimit-remaining header of the last manifest HEAD).",
        limits
            .iter()
            .map(|(registry, (_, _, remaining))| ([("registry", *registry)], *remaining as i64)),
    )?;
    gauge(
        enc,
        "regprobe_secret_valid",
        "Whether the secret parsed as a dockerconfigjson or dockercfg (1) or not (0).",
        snap.secrets
            .iter()
            .map(|(id, valid)| ([("secret", *id)], i64::from(*valid))),
    )?;
    gauge(
        enc,
        "regprobe_build_info",
        "regprobe build information: value 1, labelled with the version and the source revision.",
        [(
            [("version", snap.version), ("revision", crate::REVISION)],
            1i64,
        )],
    )?;
    unlabelled_gauge(
        enc,
        "regprobe_config_last_reload_successful",
        "Whether the last load or reload of secrets and host configuration succeeded (1) or not (0).",
        Some(i64::from(snap.reload_ok)),
    )?;
    unlabelled_gauge(
        enc,
        "regprobe_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful load or reload of secrets and host configuration.",
        snap.reload_success_at.and_then(finite),
    )?;
    gauge(
        enc,
        "regprobe_credential_provider_success",
        "Whether the last run of the kubelet credential-provider plugin gave credentials (1) or not (0).",
        snap.providers
            .iter()
            .map(|(name, run)| ([("provider", *name)], i64::from(run.success))),
    )?;
    gauge(
        enc,
        "regprobe_credential_provider_duration_seconds",
        "Wall time of the last run of the kubelet credential-provider plugin.",
        snap.providers.iter().filter_map(|(name, run)| {
            finite(run.duration_seconds).map(|d| ([("provider", *name)], d))
        }),
    )?;
    gauge(
        enc,
        "regprobe_credential_expiry_timestamp_seconds",
        "Unix time the credential expires, where known: a credential provider's cache expiry, a JWT password's exp, an ECR token's expiration.",
        snap.expiries
            .iter()
            .map(|((registry, secret), t)| ([("registry", *registry), ("secret", *secret)], *t)),
    )?;
    unlabelled_gauge(
        enc,
        "regprobe_configured_probes",
        "Probes the current inputs configure (credential and image probes, invalid secrets included); 0 when the DaemonSet probes nothing.",
        snap.configured_probes.map(|n| n as i64),
    )?;
    {
        use crate::plan::caps::{capped, Cap};
        gauge(
            enc,
            "regprobe_inputs_capped",
            "Inputs left out at the last load because a cap (--max-secrets, --max-entries-per-secret, --max-probes) was reached.",
            Cap::ALL
                .iter()
                .map(|c| ([("cap", c.as_str())], capped(*c) as i64)),
        )?;
    }
    Ok(())
}

pub mod process;
#[cfg(test)]
mod tests;
