//! A private DNS server for `.test` names: `dnsmasq` (package `dnsmasq-base`) on
//! `127.0.0.1:<free port>`, so tests resolve names deterministically and never touch real DNS.
//!
//! ```ignore
//! let dns = Dns::start(&[("auth.test", Ipv4Addr::new(127, 0, 0, 2))]);
//! // regprobe check --dns-server dns.server_arg() ...   ("127.0.0.1:PORT")
//! assert_eq!(dns.query_a("registry.test").addrs, vec![Ipv4Addr::LOCALHOST]);
//! ```
//!
//! What it answers (measured with dnsmasq 2.90):
//! * `registry.test` (and any name under it) -> A 127.0.0.1; each `(name, ip)` record the same;
//! * AAAA for those names -> NOERROR with no answer (NODATA), thanks to a `--host-record`
//!   beside each `--address` (with `--address` alone dnsmasq answers AAAA with NXDOMAIN);
//! * any other name under `.test` -> NXDOMAIN (`--local=/test/`);
//! * any name outside `.test` -> REFUSED (no upstream: `--no-resolv`, no `--server`).
//!
//! For SERVFAIL and timeouts see `fakes::dns_servfail` and `fakes::silent_udp`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ChildProcess;

/// The dnsmasq binary (from `dnsmasq-base`).
pub const DNSMASQ_BIN: &str = "/usr/sbin/dnsmasq";

/// DNS response code: no error.
pub const NOERROR: u8 = 0;
/// DNS response code: server failure.
pub const SERVFAIL: u8 = 2;
/// DNS response code: no such name.
pub const NXDOMAIN: u8 = 3;
/// DNS response code: refused (dnsmasq's answer outside its zones).
pub const REFUSED: u8 = 5;

/// A running dnsmasq. Killed on `Drop`.
pub struct Dns {
    // Field order matters: the process dies before its directory is removed.
    _process: ChildProcess,
    port: u16,
    _dir: TempDir,
}

impl Dns {
    /// Starts dnsmasq with `registry.test -> 127.0.0.1` plus `records`, and waits (at most
    /// 10 s) until it answers. Panics with dnsmasq's output if it does not.
    pub fn start(records: &[(&str, Ipv4Addr)]) -> Dns {
        assert!(
            Path::new(DNSMASQ_BIN).exists(),
            "{DNSMASQ_BIN} is missing: run .ci/install-deps"
        );
        for (_, ip) in records {
            assert!(ip.is_loopback(), "test DNS records must be 127.x, not {ip}");
        }
        let dir = tempfile::Builder::new()
            .prefix("regprobe-dns-")
            .tempdir()
            .unwrap();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = crate::free_udp_port();
            let log = dir.path().join("dnsmasq.log");
            let mut cmd = Command::new(DNSMASQ_BIN);
            cmd.args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={port}"),
                "--local=/test/",
                "--address=/registry.test/127.0.0.1",
                "--host-record=registry.test,127.0.0.1",
                "--pid-file=",
                "--log-facility=-",
                "--cache-size=0",
            ]);
            for (name, ip) in records {
                cmd.arg(format!("--address=/{name}/{ip}"));
                cmd.arg(format!("--host-record={name},{ip}"));
            }
            cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/bin");
            let mut process = ChildProcess::spawn("dnsmasq", cmd, &log);
            let server = crate::loopback(port);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = process.exited() {
                    last_err = format!("dnsmasq exited ({status}); output:\n{}", process.logs());
                    break;
                }
                if query(server, "registry.test", QTYPE_A, Duration::from_millis(200)).is_ok() {
                    return Dns {
                        _process: process,
                        port,
                        _dir: dir,
                    };
                }
                if Instant::now() >= deadline {
                    last_err = format!(
                        "dnsmasq did not answer on {server} within 10 s; output:\n{}",
                        process.logs()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(process);
            if !last_err.contains("Address already in use") {
                break;
            }
        }
        panic!("{last_err}");
    }

    /// The port it listens on (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        crate::loopback(self.port)
    }

    /// The value for regprobe's `--dns-server` flag: `127.0.0.1:PORT`.
    pub fn server_arg(&self) -> String {
        self.addr().to_string()
    }

    /// Asks this server for the A records of `name` (panics on timeout).
    pub fn query_a(&self, name: &str) -> DnsAnswer {
        query(self.addr(), name, QTYPE_A, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("DNS query for {name}: {e}"))
    }

    /// Asks this server for AAAA records of `name` (answer addresses are not decoded).
    pub fn query_aaaa(&self, name: &str) -> DnsAnswer {
        query(self.addr(), name, QTYPE_AAAA, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("DNS query for {name}: {e}"))
    }
}

/// Query type A (IPv4 address).
pub const QTYPE_A: u16 = 1;
/// Query type AAAA (IPv6 address).
pub const QTYPE_AAAA: u16 = 28;

/// The parts of a DNS answer that tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Response code: [`NOERROR`], [`SERVFAIL`], [`NXDOMAIN`], [`REFUSED`], ...
    pub rcode: u8,
    /// Number of answer records.
    pub answers: u16,
    /// A-record addresses in the answer section.
    pub addrs: Vec<Ipv4Addr>,
}

/// Sends one UDP DNS query (RD set) for `name`/`qtype` to `server` (loopback only) and parses
/// the answer. `Err` on timeout or a malformed answer.
pub fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<DnsAnswer, String> {
    assert!(server.ip().is_loopback(), "DNS goes to loopback only");
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id: u16 = fastrand::u16(..);
    let mut pkt = Vec::with_capacity(64);
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    pkt.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    pkt.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        pkt.push(label.len() as u8);
        pkt.extend_from_slice(label.as_bytes());
    }
    pkt.push(0);
    pkt.extend_from_slice(&qtype.to_be_bytes());
    pkt.extend_from_slice(&1u16.to_be_bytes()); // IN
    sock.send_to(&pkt, server).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("no answer: {e}"))?;
        let d = &buf[..n];
        if d.len() < 12 || u16::from_be_bytes([d[0], d[1]]) != id {
            continue;
        }
        return parse_answer(d).ok_or_else(|| "malformed DNS answer".to_string());
    }
}

fn skip_name(d: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *d.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        i += 1 + len;
    }
}

fn parse_answer(d: &[u8]) -> Option<DnsAnswer> {
    let u16_at = |i: usize| Some(u16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?]));
    let rcode = (u16_at(2)? & 0x000F) as u8;
    let qd = u16_at(4)?;
    let an = u16_at(6)?;
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(d, i)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        i = skip_name(d, i)?;
        let rtype = u16_at(i)?;
        let rdlen = u16_at(i + 8)? as usize;
        let rdata = d.get(i + 10..i + 10 + rdlen)?;
        if rtype == QTYPE_A && rdlen == 4 {
            addrs.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        i += 10 + rdlen;
    }
    Some(DnsAnswer {
        rcode,
        answers: an,
        addrs,
    })
}
