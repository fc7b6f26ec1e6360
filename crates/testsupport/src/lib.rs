//! regprobe's integration-test infrastructure: starts real components on loopback so the tests
//! run against a real registry, token service, resolver and containerd.
//!
//! The integration tests (`tests/*.rs`) and the benchmark's token issuer (`bench/token-issuer`)
//! use it as a dev-dependency:
//!
//! ```ignore
//! use regprobe_testsupport as support;
//! use support::{Auth, Registry, RegistryOptions, TestPki};
//!
//! let reg = Registry::start(RegistryOptions::htpasswd(&[("alice", "s3cret")]));
//! support::image::push_image(&reg, "team/app:1", Some(("alice", "s3cret")));
//! ```
//!
//! Rules this crate keeps (and tests built on it should keep too):
//! * every socket is on 127.0.0.0/8; nothing here resolves a real name through the system
//!   resolver (names under `.test` are answered by [`dns::Dns`], a private dnsmasq);
//! * every child process is killed and reaped on `Drop`, and also dies with the test process
//!   (`PR_SET_PDEATHSIG`, see [`process`]); every temp dir is removed on `Drop`;
//! * fakes exist only for misbehaviour that no real server shows on demand ([`fakes`],
//!   [`hostile`]), and all of them run on one engine, [`fake::FakeServer`].
//!
//! Concerns, one module each: [`certs`] (test PKI), [`registry`] (`docker-registry serve`),
//! [`token`] (token issuer for distribution's token auth), [`dns`] (dnsmasq), [`containerd`]
//! (a private containerd and `ctr`), [`proxy`] (tinyproxy), [`prometheus`] (a real Prometheus
//! with the project's rules), [`fake`] (the scripted fake-server engine), [`fakes`] (registries
//! misbehaving at the HTTP level, broken DNS servers), [`hostile`] (byte-level misbehaviour),
//! [`image`] (pushing a tiny image with skopeo), [`secrets`] (mounted secret layouts), [`http`]
//! (a tiny blocking HTTP/1.1 client for checks), [`cli`] (running the `regprobe` binary),
//! [`process`] and [`rt`] (child processes and the background tokio runtime), [`openmetrics`]
//! (Python's OpenMetrics reference parser, for `/metrics`).

#![warn(missing_docs)]

pub mod certs;
pub mod cli;
pub mod containerd;
pub mod containerd_run;
pub mod dns;
pub mod fake;
pub mod fakes;
pub mod gateway;
pub mod hostile;
pub mod http;
pub mod image;
pub mod openmetrics;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod registry;
pub mod rt;
pub mod secrets;
pub mod token;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

pub use certs::{CertPair, TestPki};
pub use cli::{output_with_stdin, regprobe, Daemon};
pub use dns::{Dns, DnsAnswer};
pub use fake::FakeServer;
pub use image::{push_image, PushedImage};
pub use registry::{Auth, Registry, RegistryOptions};
pub use secrets::{
    dockerconfigjson, write_dockerconfigjson, write_projected_volume, write_secret_volume,
    AtomicVolume,
};
pub use token::{Behaviour, TokenIssuer, TokenIssuerOptions, TokenUser};

/// Path of the `regprobe` binary built for this test run.
///
/// `$CARGO_BIN_EXE_regprobe` when set; otherwise the `regprobe` next to the running test
/// binary's `deps/` directory (`target/<profile>/regprobe`), where `cargo test` builds it before
/// running integration tests.
pub fn regprobe_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_regprobe") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("path of the running test binary");
    let mut dir = exe.parent().expect("test binary in a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps/ in a profile directory");
    }
    let bin = dir.join("regprobe");
    assert!(
        bin.is_file(),
        "regprobe binary not found at {} (build it first: cargo build --bin regprobe)",
        bin.display()
    );
    bin
}

/// The regprobe repository's root directory (for `deploy/`, `fuzz/corpus/` and the like).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, note it, close).
///
/// Another process may take it before you bind it; the spawners in this module retry.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// A port on 127.0.0.1 free for both UDP and TCP a moment ago (dnsmasq binds both).
pub fn free_udp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp 127.0.0.1:0");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// `127.0.0.1:port` as a socket address.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// UTC calendar fields `(year, month, day, hour, minute, second)` of a Unix time.
pub fn utc_fields(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// RFC 3339 UTC time (`2026-11-21T09:00:01Z`) of a Unix time.
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}
