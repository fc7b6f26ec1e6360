//! The parts of the integration tests' support (`tests/support/`) that the token issuer needs,
//! compiled from the tests' own files, so the benchmark's token service is the one the tests
//! trust. Only these five files are included (not `tests/support/mod.rs`), so support modules
//! added for other tests cannot break this helper; the helpers below are the ones those files
//! call from their parent module, copied from `tests/support/mod.rs`.
#![allow(dead_code, unused_imports)]

#[path = "../../../../tests/support/certs.rs"]
pub mod certs;
#[path = "../../../../tests/support/process.rs"]
pub mod process;
#[path = "../../../../tests/support/registry.rs"]
pub mod registry;
#[path = "../../../../tests/support/rt.rs"]
pub mod rt;
#[path = "../../../../tests/support/token.rs"]
pub mod token;

pub use registry::Auth;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
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

/// RFC 3339 UTC time (`2026-11-21T09:00:01Z`) of a Unix time.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
