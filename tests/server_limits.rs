//! Hostile peers against a real `regprobe serve` (issue 13, "HTTP server"): a slowloris
//! (connections that never finish their request head), an oversized request head, an announced
//! oversized body, and SIGTERM while connections are held. All traffic is on loopback; the
//! "other peer" (Prometheus, kubelet) connects from 127.0.0.2 so the per-peer cap is exercised.

use regprobe_testsupport as support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// `regprobe serve` with no inputs, a 1 s header-read timeout and room for 16 connections
/// (4 per peer address).
fn start(dir: &std::path::Path) -> Daemon {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let daemon = Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--interval",
            "10m",
            "--web.read-header-timeout",
            "1s",
            "--web.max-connections",
            "16",
        ],
        Stdio::null(),
    );
    let start = Instant::now();
    while support::http::request(daemon.addr, "GET", "/-/healthy", &[], b"").is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One `Connection: close` request from `source`; the status code and the whole answer.
async fn request_from(source: &str, addr: SocketAddr, head: &str) -> (u16, String) {
    let mut conn = connect_from(source, addr).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .expect("answer within 10 s")
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: regprobe\r\nConnection: close\r\n\r\n")
}

/// Whether the server closed `conn` (EOF or reset) within `within`.
async fn closed_by_server(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // hyper may answer 408 before closing; keep reading to the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_held_off_and_the_endpoints_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let addr = daemon.addr;

    // 40 connections from one peer, each stuck in the middle of its request head.
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut c = connect_from("127.0.0.1", addr).await;
        // The server may already have closed an excess connection: a failed write is fine.
        let _ = c
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: regprobe\r\nX-Slow: a")
            .await;
        held.push(c);
    }

    // Another peer is still served while they are held.
    let (status, body) = request_from("127.0.0.2", addr, &get("/-/healthy")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = request_from("127.0.0.2", addr, &get("/metrics")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("regprobe_build_info"), "{body}");

    // Every held connection is closed by the server: excess ones at once, the others when the
    // 1 s header-read timeout passes (10 s is a generous bound, not a timing claim).
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(c, Duration::from_secs(10)).await,
            "held connection {i} still open"
        );
    }
    // And the same peer is served again once its slots are free.
    let (status, body) = request_from("127.0.0.1", addr, &get("/-/healthy")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_and_body_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let addr = daemon.addr;

    // 32 KiB of headers: over the 16 KiB cap.
    let big = "a".repeat(1024);
    let mut head =
        String::from("GET /-/healthy HTTP/1.1\r\nHost: regprobe\r\nConnection: close\r\n");
    for i in 0..32 {
        head.push_str(&format!("X-Pad-{i}: {big}\r\n"));
    }
    head.push_str("\r\n");
    let (status, answer) = request_from("127.0.0.1", addr, &head).await;
    assert_eq!(status, 431, "{answer}");

    // A head just under the cap is still served.
    let mut head =
        String::from("GET /-/healthy HTTP/1.1\r\nHost: regprobe\r\nConnection: close\r\n");
    for i in 0..8 {
        head.push_str(&format!("X-Pad-{i}: {big}\r\n"));
    }
    head.push_str("\r\n");
    let (status, answer) = request_from("127.0.0.1", addr, &head).await;
    assert_eq!(status, 200, "{answer}");

    // An announced 1 MiB body is refused before it is read.
    let post = "POST /-/reload HTTP/1.1\r\nHost: regprobe\r\nConnection: close\r\nContent-Length: 1048576\r\n\r\n";
    let (status, answer) = request_from("127.0.0.1", addr, post).await;
    assert_eq!(status, 413, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_serve_while_connections_are_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(dir.path());
    let addr = daemon.addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.1", addr).await;
        c.write_all(b"GET / HTTP/1.1\r\nHost: r").await.unwrap();
        held.push(c);
    }
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

/// `POST /-/reload` is refused without `--web.enable-lifecycle`; with it, a storm of requests
/// is coalesced: one reload at a time, the rest collapse into one pending reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_needs_the_lifecycle_flag_and_a_storm_is_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let post = "POST /-/reload HTTP/1.1\r\nHost: regprobe\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let (status, answer) = request_from("127.0.0.1", daemon.addr, post).await;
    assert_eq!(status, 403, "{answer}");
    drop(daemon);

    let secrets = dir.path().join("secrets");
    let log = dir.path().join("serve.log");
    let daemon = Daemon::start(
        &[
            "--no-default-paths",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--interval",
            "10m",
            "--reload-interval",
            "10m",
            "--web.enable-lifecycle",
            "--web.max-connections",
            "256",
        ],
        std::fs::File::create(&log).unwrap().into(),
    );
    let start = Instant::now();
    while !support::http::request(daemon.addr, "GET", "/-/ready", &[], b"")
        .is_ok_and(|r| r.status == 200)
    {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let storm = Instant::now();
    for _ in 0..200 {
        let (status, answer) = request_from("127.0.0.1", daemon.addr, post).await;
        assert_eq!(status, 200, "{answer}");
    }
    let took = storm.elapsed();
    // Let the one pending reload run, then count the reloads done.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    drop(daemon);
    let text = std::fs::read_to_string(&log).unwrap();
    let reloads = text.matches("reloading").count();
    // At most one per second of storm (the minimum gap), plus the pending one.
    let bound = took.as_secs() as usize + 2;
    assert!(
        (1..=bound).contains(&reloads),
        "{reloads} reloads for 200 requests in {took:?}:\n{text}"
    );
}

/// Attackers from many addresses fill every slot (8 addresses × 4 = twice the 16 allowed):
/// a new peer still gets an answer, because the oldest connection makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_from_many_addresses_does_not_lock_out_other_peers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let addr = daemon.addr;
    let mut held = Vec::new();
    for i in 0..32 {
        let mut c = connect_from(&format!("127.0.1.{}", i % 8 + 1), addr).await;
        let _ = c
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: regprobe\r\nX-Slow: a")
            .await;
        held.push(c);
    }
    for path in ["/-/healthy", "/metrics"] {
        let (status, body) = request_from("127.0.0.2", addr, &get(path)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(c, Duration::from_secs(10)).await,
            "held connection {i} still open"
        );
    }
}
