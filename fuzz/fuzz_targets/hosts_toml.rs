//! containerd `hosts.toml`, through `hosts_for` (the only public entry: it reads the file from a
//! host directory, so each input is written to `<tmp>/root/_default/hosts.toml`, the directory
//! containerd falls back on for every namespace; a `ca.crt` and a `client.cert` lie beside it).
//!
//! A first line `#ns=NAME` (a TOML comment) picks the namespace, default `registry.example.com`.
//!
//! Oracles: a valid namespace on a readable directory never errors except for an over-long name;
//! every host has a host name, an `http_fallback` host is tried as https first; `base_url` and
//! `is_localhost` never panic; and header values are secrets (`Authorization = "Basic …"`): when
//! the planted [`MARKER`] occurs once in the file and lands in a header value, it shows in no
//! warning and nowhere else in the result; when the file fails to decode and the marker's line is
//! a value under a `header` table, the warning does not quote it either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regprobe::hosts::{hosts_for, is_localhost, HostsError, Scheme};
use regprobe_fuzz::{check_no_marker, MARKER};
use std::path::PathBuf;
use std::sync::OnceLock;

struct Dirs {
    root: PathBuf,
    file: PathBuf,
}

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        // run.sh names a scratch dir it removes; else tmpfs when there is one (a file is
        // written per input).
        let tmp = if let Some(dir) = std::env::var_os("REGPROBE_FUZZ_SCRATCH") {
            PathBuf::from(dir)
        } else if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let base = tmp.join(format!("regprobe-fuzz-hosts-{}", std::process::id()));
        let root = base.join("root");
        let dir = root.join("_default");
        std::fs::create_dir_all(&dir).expect("create host directory");
        std::fs::write(dir.join("ca.crt"), b"not a certificate").expect("write ca.crt");
        std::fs::write(dir.join("client.cert"), b"not a certificate").expect("write client.cert");
        Dirs {
            root,
            file: dir.join("hosts.toml"),
        }
    })
}

/// Whether the marker's (only) line looks like `key = "…MARKER…"` inside a `[….header]` table or
/// a `header = {…}` inline table: a header value in containerd's schema.
fn marker_in_header_value(text: &str) -> bool {
    let mut table = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            table = t.to_string();
            continue;
        }
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let Some(eq) = line.find('=') else {
            return false;
        };
        let quote = line[eq..].find(['"', '\'']).map(|q| q + eq);
        let in_value = matches!(quote, Some(q) if q < at);
        let key = line[..eq].trim();
        let header_table = table.trim_end().trim_end_matches(']').ends_with(".header")
            || table.contains(".header.");
        let inline = key == "header" || key.ends_with(".header");
        return in_value && (header_table || inline);
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let dirs = dirs();
    let text = String::from_utf8_lossy(data);
    let namespace = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#ns="))
        .unwrap_or("registry.example.com")
        .to_string();
    let _ = is_localhost(&namespace);
    std::fs::write(&dirs.file, data).expect("write hosts.toml");
    let res = match hosts_for(std::slice::from_ref(&dirs.root), &namespace) {
        Ok(res) => res,
        Err(HostsError::InvalidNamespace(_)) => return,
        Err(HostsError::Stat { source, .. }) if source.raw_os_error() == Some(36) => return,
        Err(e) => panic!("hosts_for failed on a readable directory: {e}"),
    };
    for h in &res.hosts {
        assert!(!h.host.is_empty(), "host entry without a host: {h:?}");
        assert!(!h.http_fallback || h.scheme == Scheme::Https);
        let _ = h.base_url();
        let _ = is_localhost(&h.host);
    }
    if text.matches(MARKER).count() != 1 {
        return;
    }
    let in_header = res
        .hosts
        .iter()
        .any(|h| h.headers.iter().any(|(_, v)| v.contains(MARKER)));
    let decode_failed = res.warnings.iter().any(|w| w.contains("failed to decode"));
    if in_header || (decode_failed && marker_in_header_value(&text)) {
        for w in &res.warnings {
            check_no_marker(w);
        }
        for h in &res.hosts {
            let mut shown = h.clone();
            shown.headers.clear();
            check_no_marker(&format!("{shown:?}"));
            for (name, _) in &h.headers {
                check_no_marker(name);
            }
        }
    }
});
