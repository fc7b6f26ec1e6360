//! The background tokio runtime that runs every in-process test server (token issuer, fakes).
//!
//! One multi-thread runtime for the whole test binary, started on first use. Servers are
//! spawned onto it, so they work the same from `#[test]` and `#[tokio::test]` functions. A
//! server is a [`Task`]: dropping it stops the accept loop and every connection task it
//! spawned through [`Conns`], and returns only once they are gone (listener and connections
//! closed), so "after drop, the port is closed" holds at once.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinSet;

/// Handle of the shared background runtime.
pub fn handle() -> Handle {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("support-rt")
            .enable_all()
            .build()
            .expect("build the support runtime")
    })
    .handle()
    .clone()
}

/// The connection tasks of one server; they are aborted and awaited when its [`Task`] drops.
#[derive(Clone, Default)]
pub struct Conns(Arc<Mutex<JoinSet<()>>>);

impl Conns {
    /// Spawns a connection task (call from the server's own task).
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock().unwrap();
        while set.try_join_next().is_some() {}
        set.spawn(fut);
    }
}

/// A server task on the background runtime, stopped on `Drop`.
pub struct Task {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: mpsc::Receiver<()>,
}

impl Task {
    /// Runs the future `make(conns)` (an accept loop) until the `Task` drops.
    pub fn spawn<F, Fut>(make: F) -> Task
    where
        F: FnOnce(Conns) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let conns = Conns::default();
        let fut = make(conns.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        handle().spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = stop_rx => {}
            }
            let mut set = std::mem::take(&mut *conns.0.lock().unwrap());
            set.shutdown().await;
            let _ = done_tx.send(());
        });
        Task {
            stop: Some(stop_tx),
            done: done_rx,
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.done.recv_timeout(Duration::from_secs(5));
    }
}

/// Binds a TCP listener on 127.0.0.1 (port 0 = any free port) and hands it to the background
/// runtime. The port is known (and bound) before the caller returns, so there is no race.
pub fn bind_tcp(port: u16) -> (tokio::net::TcpListener, SocketAddr) {
    bind_tcp_at(Ipv4Addr::LOCALHOST, port)
}

/// [`bind_tcp`] on another loopback address (`127.0.0.2` stands for "another host").
pub fn bind_tcp_at(ip: Ipv4Addr, port: u16) -> (tokio::net::TcpListener, SocketAddr) {
    assert!(
        ip.is_loopback(),
        "test servers stay on 127.0.0.0/8, not {ip}"
    );
    let std_listener = std::net::TcpListener::bind((ip, port)).expect("bind a loopback address");
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let _guard = handle().enter();
    let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
    (listener, addr)
}

/// Serves `router` on `listener` (HTTP/1.1). Unlike `axum::serve`, every connection belongs to
/// the returned [`Task`], so dropping it closes the listener *and* every open connection
/// (including requests a handler is still sleeping in).
pub fn serve_router(listener: tokio::net::TcpListener, router: axum::Router) -> Task {
    Task::spawn(move |conns| async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(router.clone());
            conns.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
