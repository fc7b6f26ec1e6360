//! The daemon's HTTP/1.1 connection handling: an accept loop over hyper's server connection
//! with limits that `axum::serve` does not set (issue 13, "HTTP server").
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout is off: a peer that sends
//! half a request line holds a connection (and up to hyper's default ~400 KB read buffer) for
//! ever. This loop serves the same [`axum::Router`] with:
//!
//! | limit | default | flag | on breach |
//! |---|---|---|---|
//! | header-read timeout (also the keep-alive idle timeout: hyper starts it whenever it waits for a request head) | 5 s | `--web.read-header-timeout` | connection closed |
//! | connection lifetime | 60 s | `--web.max-connection-age` | graceful close, dropped [`GRACE`] later |
//! | request head (line + headers) | 16 KiB ([`MAX_HEADER_BYTES`]) | | `431`, closed |
//! | request body | 4 KiB ([`MAX_BODY_BYTES`]) | | `413` (no endpoint reads a body) |
//! | concurrent connections | 128 | `--web.max-connections` | the oldest connection is closed to make room |
//! | concurrent connections from one peer IP | a quarter of the above, at least 1 | | new connection closed at once |
//!
//! The per-peer cap keeps one noisy peer (a slowloris from one address) from taking every slot
//! from Prometheus and kubelet probes, which come from other addresses. Timeouts use hyper's own
//! [`hyper::server::conn::http1::Builder::header_read_timeout`] with
//! [`hyper_util::rt::TokioTimer`].
//!
//! Shutdown: when the shutdown future completes the loop stops accepting, asks every connection
//! to finish its request in flight and close (hyper's `graceful_shutdown`), and returns once all
//! closed or [`GRACE`] passed.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Largest request head (request line and headers) accepted, in bytes: 16 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted, in bytes (by `Content-Length` or as read): 4 KiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// How long connections get to finish after a graceful close was asked (shutdown or age).
pub const GRACE: Duration = Duration::from_secs(5);

/// Connection limits of the HTTP server (the module table), as `regprobe serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// Close a connection whose request head has not fully arrived this long after the server
    /// started waiting for it (also the keep-alive idle timeout).
    #[arg(long = "web.read-header-timeout", default_value = "5s", value_parser = parse_limit, value_name = "DUR")]
    pub read_header_timeout: Duration,
    /// Close a connection (gracefully) once it is this old.
    #[arg(long = "web.max-connection-age", default_value = "60s", value_parser = parse_limit, value_name = "DUR")]
    pub max_connection_age: Duration,
    /// Connections served at once; more are closed at once. One peer address gets a quarter.
    #[arg(long = "web.max-connections", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// Serve `POST /-/reload` (Prometheus' flag; without it the endpoint answers 403, and
    /// SIGHUP still reloads).
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Who may read /status: `loopback` peers only (the default: it names users and quotes
    /// registry errors), or `all`.
    #[arg(long = "web.status-access", value_enum, default_value = "loopback")]
    pub status_access: StatusAccess,
    /// Prometheus exporter-toolkit web configuration (TLS, client CA, basic_auth_users with
    /// bcrypt hashes), re-read when it changes (`src/webconfig.rs`).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub config_file: Option<std::path::PathBuf>,
}

/// The local address a connection came in on (a request extension next to axum's
/// `ConnectInfo<SocketAddr>` of the peer): a peer with the same IP is on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// `--web.status-access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusAccess {
    /// Peers on this node only: loopback, or the address the connection came in on.
    Loopback,
    /// Every peer.
    All,
}

impl Default for WebArgs {
    fn default() -> Self {
        WebArgs {
            read_header_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
            max_connections: 128,
            enable_lifecycle: false,
            status_access: StatusAccess::Loopback,
            config_file: None,
        }
    }
}

impl WebArgs {
    /// Connections one peer IP may hold at once: a quarter of `max_connections`, at least 1.
    pub fn max_per_peer(&self) -> usize {
        (self.max_connections as usize / 4).max(1)
    }
}

/// Durations of [`WebArgs`]: 1 ms to 1 hour.
fn parse_limit(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3_600) {
        return Err(format!("{s:?} is outside 1ms..1h"));
    }
    Ok(d)
}

/// How long a new connection waits for the slot of the connection it evicted.
const EVICT_WAIT: Duration = Duration::from_millis(100);

/// Live connections, oldest first, each with its eviction signal.
#[derive(Default)]
struct Live(Mutex<std::collections::VecDeque<(u64, Arc<tokio::sync::Notify>)>>);

/// Removes its connection from [`Live`] when the connection's task ends.
struct Registered {
    live: Arc<Live>,
    id: u64,
}

impl Live {
    fn add(self: &Arc<Self>, id: u64, evict: Arc<tokio::sync::Notify>) -> Registered {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((id, evict));
        Registered {
            live: Arc::clone(self),
            id,
        }
    }

    /// Signals the oldest live connection to close; false when there is none.
    fn evict_oldest(&self) -> bool {
        let oldest = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        match oldest {
            Some((_, evict)) => {
                evict.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut q = self.live.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = q.iter().position(|(id, _)| *id == self.id) {
            q.remove(i);
        }
    }
}

/// Open connections per peer IP; a slot is released when its [`PeerSlot`] drops.
#[derive(Debug, Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes (module docs).
///
/// Errors: only a failing `accept` that is not per-connection (e.g. out of file descriptors is
/// logged and retried after a pause, so in practice this returns `Ok`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: WebArgs,
    web: Option<Arc<crate::webconfig::WebConfigFile>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits.max_connections as usize;
    let slots = Arc::new(Semaphore::new(max));
    let peers = Arc::new(Peers::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = Arc::new(Live::default());
    let mut next_id: u64 = 0;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(2 * MAX_HEADER_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(peer_slot) = peers.take(peer.ip(), limits.max_per_peer()) else {
            tracing::debug!(%peer, "per-peer connection limit reached: closing");
            drop(stream);
            continue;
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(s) => s,
            // Full: close the oldest connection (most likely one that holds its slot without
            // finishing a request: a scrape takes milliseconds) and take its slot, so attackers
            // from many addresses cannot lock Prometheus and kubelet out.
            Err(_) if live.evict_oldest() => {
                match tokio::time::timeout(EVICT_WAIT, Arc::clone(&slots).acquire_owned()).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        drop(stream);
                        continue;
                    }
                }
            }
            Err(_) => {
                tracing::debug!(%peer, "connection limit reached: closing");
                drop(stream);
                continue;
            }
        };
        next_id += 1;
        let evict = Arc::new(tokio::sync::Notify::new());
        let registered = live.add(next_id, Arc::clone(&evict));
        // Handlers see the peer (`/status` is for loopback peers by default).
        let local = LocalAddr(stream.local_addr().unwrap_or(peer));
        let config = web.as_ref().map(|w| w.current()).unwrap_or_default();
        let tls = config.tls.clone();
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer)))
                .layer(axum::Extension(local))
                .layer(axum::Extension(config)),
        );
        let stop = stop_rx.clone();
        let (age, handshake) = (limits.max_connection_age, limits.read_header_timeout);
        let builder = builder.clone();
        tokio::spawn(async move {
            let _slots = (slot, peer_slot, registered);
            let body = async move {
                match tls {
                    None => drive(&builder, TokioIo::new(stream), service, stop, age).await,
                    Some(tls) => {
                        // The handshake gets the header-read timeout too (a slowloris over TLS).
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => drive(&builder, TokioIo::new(s), service, stop, age).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
            };
            // Evicted: the connection is dropped at once.
            tokio::select! {
                _ = body => {}
                _ = evict.notified() => tracing::debug!(%peer, "evicted: the connection limit was reached"),
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds one permit: all back means all closed.
    let _ = tokio::time::timeout(GRACE, slots.acquire_many(max as u32)).await;
    Ok(())
}

/// Serves one connection until it ends, `stop` asks, or it is `age` old (then gracefully, for at
/// most [`GRACE`]).
async fn drive<I>(
    builder: &http1::Builder,
    io: I,
    service: TowerToHyperService<Router>,
    mut stop: watch::Receiver<bool>,
    age: Duration,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => { log_conn_end(r); return; }
        _ = stop.wait_for(|s| *s) => {}
        _ = tokio::time::sleep(age) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Ok(r) = tokio::time::timeout(GRACE, conn.as_mut()).await {
        log_conn_end(r);
    }
}

fn log_conn_end(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_slots_are_counted_and_released() {
        let peers = Arc::new(Peers::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = peers.take(ip, 2).unwrap();
        let _b = peers.take(ip, 2).unwrap();
        assert!(peers.take(ip, 2).is_none());
        assert!(peers.take("127.0.0.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(peers.take(ip, 2).is_some());
    }

    #[test]
    fn per_peer_share_is_a_quarter_at_least_one() {
        let mut w = WebArgs::default();
        assert_eq!(w.max_per_peer(), 32);
        w.max_connections = 3;
        assert_eq!(w.max_per_peer(), 1);
    }

    #[test]
    fn limits_parse_within_bounds() {
        assert_eq!(parse_limit("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_limit("0s").is_err());
        assert!(parse_limit("2h").is_err());
        assert!(parse_limit("500000000000y").is_err());
    }
}
