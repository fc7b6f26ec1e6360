//! The standard process metrics every Prometheus exporter has, read from `/proc/self` at scrape
//! time with the `procfs` crate (`GET /metrics` only, through [`super::encode_served`]).
//!
//! Names, types, units and help texts are those of client_golang's process collector
//! (`prometheus/client_golang`, `prometheus/process_collector_procfs.go`, `processCollect`), so
//! dashboards and alerts written for any exporter work unchanged:
//!
//! | metric | type | source |
//! |---|---|---|
//! | `process_cpu_seconds_total` | counter, seconds | `/proc/self/stat` `utime + stime`, divided by `_SC_CLK_TCK` |
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | `/proc/self/limits` "Max open files", soft limit |
//! | `process_virtual_memory_bytes` | gauge, bytes | `/proc/self/stat` `vsize` |
//! | `process_virtual_memory_max_bytes` | gauge, bytes | `/proc/self/limits` "Max address space", soft limit |
//! | `process_resident_memory_bytes` | gauge, bytes | `/proc/self/stat` `rss` times the page size |
//! | `process_start_time_seconds` | gauge, Unix seconds | `/proc/stat` `btime` plus `/proc/self/stat` `starttime` |
//! | `process_threads` | gauge | `/proc/self/stat` `num_threads` |
//!
//! An "unlimited" limit is exported as 2^64 - 1 (as client_golang, whose procfs reads
//! `unlimited` as the largest `uint64`). A file that cannot be read (no `/proc`, `hidepid`)
//! leaves its metrics without a sample rather than failing the scrape.

use procfs::process::{LimitValue, Process};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::fmt;

/// One reading of the process metrics; `None` where `/proc` did not answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Soft limit of open file descriptors.
    pub max_fds: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Soft limit of the address space, bytes.
    pub virtual_memory_max_bytes: Option<u64>,
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Process start, Unix seconds.
    pub start_time_seconds: Option<f64>,
    /// OS threads.
    pub threads: Option<u64>,
}

fn limit(value: LimitValue) -> u64 {
    match value {
        LimitValue::Unlimited => u64::MAX,
        LimitValue::Value(v) => v,
    }
}

impl ProcessStats {
    /// Reads `/proc/self` now. Never fails: what cannot be read stays `None`.
    pub fn read() -> ProcessStats {
        let mut stats = ProcessStats::default();
        let Ok(me) = Process::myself() else {
            return stats;
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            if ticks > 0.0 {
                stats.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
                if let Ok(boot) = procfs::boot_time_secs() {
                    stats.start_time_seconds = Some(boot as f64 + stat.starttime as f64 / ticks);
                }
            }
            stats.virtual_memory_bytes = Some(stat.vsize);
            stats.resident_memory_bytes = Some(stat.rss.saturating_mul(procfs::page_size()));
            stats.threads = u64::try_from(stat.num_threads).ok();
        }
        if let Ok(n) = me.fd_count() {
            stats.open_fds = Some(n as u64);
        }
        if let Ok(limits) = me.limits() {
            stats.max_fds = Some(limit(limits.max_open_files.soft_limit));
            stats.virtual_memory_max_bytes = Some(limit(limits.max_address_space.soft_limit));
        }
        stats
    }
}

/// A [`Collector`] of [`ProcessStats`], read afresh at every scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<f64>,
) -> Result<(), fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if let Some(v) = value.filter(|v| v.is_finite()) {
        metric.encode_gauge(&v)?;
    }
    Ok(())
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = ProcessStats::read();
        let f = |v: Option<u64>| v.map(|v| v as f64);
        {
            // The encoder appends `_total` to a counter's name.
            let mut metric = enc.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            if let Some(v) = s.cpu_seconds.filter(|v| v.is_finite()) {
                metric.encode_counter::<NoLabelSet, f64, f64>(&v, None)?;
            }
        }
        let enc = &mut enc;
        gauge(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            f(s.open_fds),
        )?;
        gauge(
            enc,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            f(s.max_fds),
        )?;
        gauge(
            enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            f(s.virtual_memory_bytes),
        )?;
        gauge(
            enc,
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            f(s.virtual_memory_max_bytes),
        )?;
        gauge(
            enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            f(s.resident_memory_bytes),
        )?;
        gauge(
            enc,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            s.start_time_seconds,
        )?;
        gauge(
            enc,
            "process_threads",
            "Number of OS threads in the process.",
            f(s.threads),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        let rss = s.resident_memory_bytes.expect("rss");
        let vsize = s.virtual_memory_bytes.expect("vsize");
        assert!(rss > 0 && vsize >= rss, "rss {rss}, vsize {vsize}");
        // The limit is the soft RLIMIT_NOFILE, as getrlimit(2) reports it.
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
        let expected = if rl.rlim_cur == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            rl.rlim_cur
        };
        assert_eq!(s.max_fds, Some(expected));
        let open = s.open_fds.expect("open fds");
        assert!(open >= 3 && open <= expected, "open fds {open}");
        assert!(s.threads.expect("threads") >= 1);
        // Started before now and, for a test binary, not long before.
        let start = s.start_time_seconds.expect("start time");
        assert!(
            start <= now() + 1.0 && start > now() - 3600.0,
            "start {start}"
        );
        assert!(s.virtual_memory_max_bytes.is_some());
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = ProcessStats::read().cpu_seconds.expect("cpu");
        // Spin until this thread alone has used 50 ms of CPU (bounded by wall time).
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while ProcessStats::read().cpu_seconds.unwrap() < before + 0.05
            && t0.elapsed() < std::time::Duration::from_secs(20)
        {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(ProcessStats::read().cpu_seconds.unwrap() >= before + 0.05);
    }

    #[test]
    fn exposition_has_the_standard_names() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_virtual_memory_max_bytes", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_start_time_seconds", "gauge"),
            ("process_threads", "gauge"),
        ] {
            let family = name.trim_end_matches("_total");
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{name}:\n{text}"
            );
            let sample = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no sample of {name}:\n{text}"));
            let value: f64 = sample.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(value >= 0.0, "{sample}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
