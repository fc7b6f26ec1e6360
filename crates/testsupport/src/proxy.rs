//! A real HTTP proxy on loopback: Debian's `tinyproxy` (package `tinyproxy-bin`, no service),
//! for the `HTTPS_PROXY` tests. Configured to refuse `CONNECT` by port (its `ConnectPort`
//! allow-list answers 403, as squid's `CONNECT` ACLs do) or to demand credentials (`BasicAuth`
//! answers 407). Both refusals happen before the proxy resolves the target, so no name ever
//! leaves loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::ChildProcess;

/// Path of the proxy binary.
pub const TINYPROXY_BIN: &str = "/usr/bin/tinyproxy";

/// A running tinyproxy. Killed on `Drop`.
pub struct Proxy {
    _process: ChildProcess,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// How the proxy treats `CONNECT`.
pub enum ProxyPolicy {
    /// `CONNECT` only to port 443: any other port gets 403 (an egress allow-list).
    Only443,
    /// `BasicAuth` required: a request without it gets 407.
    RequireAuth,
}

impl Proxy {
    /// Starts tinyproxy on a free loopback port and waits (10 s at most) until it listens.
    pub fn start(policy: ProxyPolicy) -> Proxy {
        assert!(
            Path::new(TINYPROXY_BIN).exists(),
            "{TINYPROXY_BIN} is missing: run .ci/install-deps"
        );
        let dir = tempfile::Builder::new()
            .prefix("regprobe-proxy-")
            .tempdir()
            .unwrap();
        let port = crate::free_port();
        let policy_lines = match policy {
            ProxyPolicy::Only443 => "ConnectPort 443\n",
            ProxyPolicy::RequireAuth => "BasicAuth proxyuser proxy-S3cret\n",
        };
        let conf = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 5\nMaxClients 20\nLogLevel Info\nLogFile \"{}\"\n{policy_lines}",
            dir.path().join("tinyproxy.log").display()
        );
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(TINYPROXY_BIN);
        cmd.args(["-d", "-c"]).arg(&conf_path);
        let mut process = ChildProcess::spawn("tinyproxy", cmd, &dir.path().join("stdout.log"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        process
            .wait_for_tcp(addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        Proxy {
            _process: process,
            addr,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
