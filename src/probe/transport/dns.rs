//! Name resolution: IP literals, the `--resolve` overrides, then the hickory resolver (the
//! system configuration or a `--dns-server`), with the typed DNS failure.

use super::{DnsFailure, Session, TransportError, TransportInitError};
use crate::probe::outcome::{NetworkStep, Phase};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioResolver;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A `--resolve HOST:PORT:ADDR` override: connect to `addr` for `host:port` without DNS,
/// keeping the name for TLS and the `Host` header (curl's option of the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// Host name as written in the URL.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Address to connect to.
    pub addr: IpAddr,
}

impl std::str::FromStr for ResolveOverride {
    type Err = String;
    /// Parses `HOST:PORT:ADDR`; `ADDR` may be an IPv6 address, bracketed or not.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.splitn(3, ':');
        let (Some(host), Some(port), Some(addr)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("expected HOST:PORT:ADDR, got {s:?}"));
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port in {s:?}"))?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = addr.parse().map_err(|_| format!("bad address in {s:?}"))?;
        if host.is_empty() {
            return Err(format!("empty host in {s:?}"));
        }
        Ok(ResolveOverride {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
    }
}

/// The resolver of a [`super::Transport`]: the servers of `/etc/resolv.conf` (and `/etc/hosts`),
/// or only `dns_server` when set; no answer cache.
///
/// Errors: the system DNS configuration cannot be read.
pub(super) fn resolver(
    dns_server: Option<SocketAddr>,
) -> Result<TokioResolver, TransportInitError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match dns_server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                provider,
            )
        }
        None => TokioResolver::builder(provider)
            .map_err(|e| TransportInitError::ResolvConf(e.to_string()))?,
    };
    let o = builder.options_mut();
    // Every probe must see the network as it is now: no answer cache across probes.
    o.cache_size = 0;
    if dns_server.is_some() {
        o.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    }
    builder
        .build()
        .map_err(|e| TransportInitError::ResolvConf(e.to_string()))
}

impl Session {
    /// The addresses of `host` for `port`: an IP literal, a `--resolve` override, or a DNS
    /// lookup bounded by `limit`; records `resolve` and the addresses found.
    pub(super) async fn resolve(
        &mut self,
        host: &str,
        port: u16,
        limit: Duration,
    ) -> Result<Vec<IpAddr>, TransportError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.phases.push((Phase::Resolve, 0.0));
            self.note_resolved(host, "literal", &[ip]);
            return Ok(vec![ip]);
        }
        if let Some(o) = self
            .transport
            .overrides
            .iter()
            .find(|o| o.host == host && o.port == port)
        {
            let addr = o.addr;
            self.phases.push((Phase::Resolve, 0.0));
            self.note_resolved(host, "--resolve", &[addr]);
            return Ok(vec![addr]);
        }
        let started = Instant::now();
        // Go resolves inside the dialer, so the dial timeout bounds the lookup too.
        let wait = self.budget(limit, Phase::Resolve)?;
        // A trailing dot makes the name absolute so no search domain is tried when the name
        // has enough dots; hickory applies ndots/search like Go for relative names.
        let res = tokio::time::timeout(wait, self.transport.resolver.lookup_ip(host)).await;
        self.record(Phase::Resolve, started);
        let kind = match res {
            Err(_) => DnsFailure::Timeout,
            Ok(Ok(lookup)) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    DnsFailure::NoRecords
                } else {
                    // Go prefers IPv4 first only through Happy Eyeballs; keep the order given.
                    self.note_resolved(host, "dns", &ips);
                    return Ok(ips);
                }
            }
            Ok(Err(e)) => dns_failure(&e),
        };
        self.note_resolved(host, "dns", &[]);
        Err(TransportError::Dns {
            host: host.to_string(),
            kind,
        })
    }

    /// Records a resolution of `host` (`source`: `literal`, `--resolve` or `dns`).
    fn note_resolved(&mut self, host: &str, source: &str, ips: &[IpAddr]) {
        self.network.push(NetworkStep {
            host: host.to_string(),
            source: source.to_string(),
            addresses: ips.iter().map(IpAddr::to_string).collect(),
            connected: None,
        });
    }
}

/// The typed failure of a hickory lookup.
fn dns_failure(e: &NetError) -> DnsFailure {
    if e.is_nx_domain() {
        return DnsFailure::NxDomain;
    }
    if e.is_no_records_found() {
        return DnsFailure::NoRecords;
    }
    match e {
        NetError::Timeout => DnsFailure::Timeout,
        NetError::Dns(DnsError::ResponseCode(rc)) => DnsFailure::ServerError(response_code(*rc)),
        NetError::Io(io) if io.kind() == io::ErrorKind::TimedOut => DnsFailure::Timeout,
        other => DnsFailure::Other(other.to_string()),
    }
}

/// A DNS response code as `dig` writes it (`SERVFAIL`, `REFUSED`, …).
fn response_code(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_override_parses() {
        let o: ResolveOverride = "registry.test:5000:127.0.0.1".parse().unwrap();
        assert_eq!(o.host, "registry.test");
        assert_eq!(o.port, 5000);
        assert_eq!(o.addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        let o: ResolveOverride = "r.test:443:[::1]".parse().unwrap();
        assert_eq!(o.addr, "::1".parse::<IpAddr>().unwrap());
        assert!("r.test:x:127.0.0.1".parse::<ResolveOverride>().is_err());
        assert!("r.test:1".parse::<ResolveOverride>().is_err());
        assert!(":1:127.0.0.1".parse::<ResolveOverride>().is_err());
    }
}
