//! The daemon's HTTP endpoints (`docs/metrics.md`, "Endpoints"), with axum.
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | the [`Store`]'s metrics ([`crate::report::metrics`]): OpenMetrics when `Accept` asks for it, else the Prometheus text format 0.0.4 ([`crate::report::exposition`]) |
//! | `GET /status` | `{"probes": [PROBE, …]}` of the latest cycle ([`crate::report::status`]) |
//! | `GET /-/healthy` | `200 OK` while the process serves and its scheduler runs ([`AppState::alive`]), `503` after |
//! | `GET /-/ready` | `200` once the inputs were loaded ([`AppState::ready`]), `503` before; never depends on probe results |
//! | `POST /-/reload` | with `--web.enable-lifecycle`: asks for a reload of the inputs ([`AppState::reload`]), `200`; without: `403` (as Prometheus; `SIGHUP` always reloads); other methods `405` |
//! | `GET /` | a short HTML page listing the endpoints |
//!
//! Anything else is `404`.
//!
//! **Who may read `/status`**: it names the users of credentials and quotes registry error text,
//! so by default it answers peers on this node only (loopback, or a peer with the address the
//! connection came in on: `curl $NODE_IP:9787/status` from a shell or debug pod on the node);
//! other peers get `403`. `--web.status-access=all` serves it to every
//! peer (behind `--web.config.file` authentication, or a firewall). `/metrics` carries no user
//! names and is served to every peer.

use crate::httpd::{WebArgs, MAX_BODY_BYTES};
use crate::report::{self, Store};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the handlers share with the scheduler.
#[derive(Debug)]
pub struct AppState {
    /// Latest results: read by `/metrics` and `/status`, written by the scheduler.
    pub store: Arc<Store>,
    /// Set by the scheduler once the inputs were loaded the first time: `/-/ready` answers 200.
    pub ready: AtomicBool,
    /// `POST /-/reload` calls `notify_one` on it; the scheduler waits on it (next to `SIGHUP`).
    pub reload: tokio::sync::Notify,
    /// Cleared when the scheduler stopped unasked (a panic): `/-/healthy` then answers `503`.
    pub alive: AtomicBool,
    /// `--web.enable-lifecycle`: `POST /-/reload` is served (else `403`, as Prometheus).
    pub lifecycle: AtomicBool,
    /// `--web.status-access=all` clears it; set (the default), `/status` answers loopback
    /// peers only (module docs).
    pub status_loopback_only: AtomicBool,
}

impl AppState {
    /// A not-yet-ready state over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        AppState {
            store,
            ready: AtomicBool::new(false),
            reload: tokio::sync::Notify::new(),
            alive: AtomicBool::new(true),
            lifecycle: AtomicBool::new(false),
            status_loopback_only: AtomicBool::new(true),
        }
    }
}

const INDEX: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>regprobe</title></head>
<body>
<h1>regprobe</h1>
<p>Checks, from this node, whether image pull secrets work against their registries.</p>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus metrics (OpenMetrics)</li>
<li><a href="/status">/status</a>: latest probe results (JSON)</li>
<li><a href="/-/healthy">/-/healthy</a>: liveness</li>
<li><a href="/-/ready">/-/ready</a>: readiness (inputs loaded)</li>
<li>POST /-/reload: reload secrets and host configuration now</li>
</ul>
</body>
</html>
"#;

/// The routes of the module documentation, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .fallback(not_found)
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn(crate::webconfig::require_auth))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`router`] on `listener` with the default [`WebArgs`] limits until `shutdown`
/// completes, then stops accepting and lets requests in flight finish (graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, WebArgs::default(), None, shutdown).await
}

/// [`serve`] with `limits` ([`crate::httpd`]: header-read timeout, connection caps, head and
/// body size caps).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: WebArgs,
    web: Option<Arc<crate::webconfig::WebConfigFile>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::httpd::serve(listener, router(state), limits, web, shutdown).await
}

/// `413` for a request that announces (`Content-Length`) a body over [`MAX_BODY_BYTES`];
/// [`DefaultBodyLimit`] caps what any extractor would read.
async fn limit_body(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    }
    next.run(request).await
}

async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// OpenMetrics when `Accept` asks for it, else the Prometheus text format 0.0.4
/// ([`report::exposition`]).
async fn metrics(State(state): State<Arc<AppState>>, headers: http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = report::exposition::Format::negotiate(accept);
    let mut body = report::encode_served(&state.store);
    if format == report::exposition::Format::PrometheusText {
        body = report::exposition::to_prometheus_text(&body);
    }
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn status(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    local: Option<Extension<crate::httpd::LocalAddr>>,
) -> Response {
    // Without a known peer (in-process calls) there is no remote reader to refuse. A peer is
    // on this node when it is loopback or has the address the connection came in on.
    let local_ip = local.map(|Extension(crate::httpd::LocalAddr(a))| a.ip());
    let remote = peer
        .is_some_and(|Extension(ConnectInfo(a))| !a.ip().is_loopback() && Some(a.ip()) != local_ip);
    if remote && state.status_loopback_only.load(Ordering::Acquire) {
        return (
            StatusCode::FORBIDDEN,
            "/status names users and quotes registry errors: served to peers on this node only (loopback, or the node's own address); start with --web.status-access=all to serve it to every peer\n",
        )
            .into_response();
    }
    let latest = state.store.latest();
    Json(report::status_json(&latest)).into_response()
}

async fn healthy(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.alive.load(Ordering::Acquire) {
        (StatusCode::OK, "OK\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: the scheduler stopped\n",
        )
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "OK\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: inputs not loaded yet\n",
        )
    }
}

async fn reload(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if !state.lifecycle.load(Ordering::Acquire) {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled (start with --web.enable-lifecycle; SIGHUP always reloads).\n",
        );
    }
    // notify_one keeps at most one permit: a storm of requests is one pending reload, and the
    // scheduler spaces reloads out (`scheduler::RELOAD_MIN_GAP`).
    state.reload.notify_one();
    (StatusCode::OK, "reload requested\n")
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ProbeResult, Reason};
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::ServiceExt;

    fn state() -> Arc<AppState> {
        let store = Arc::new(Store::new("1.0.0-test"));
        let mut r = ProbeResult::new("quay.io", Some("pull".to_owned()));
        r.reason = Some(Reason::Unauthorized);
        r.class = Some(Reason::Unauthorized.class());
        r.timestamp = 1.0;
        store.record(r);
        Arc::new(AppState::new(store))
    }

    async fn call(
        state: &Arc<AppState>,
        method: Method,
        uri: &str,
    ) -> (StatusCode, Option<String>, String) {
        call_accepting(state, method, uri, None).await
    }

    async fn call_accepting(
        state: &Arc<AppState>,
        method: Method,
        uri: &str,
        accept: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(a) = accept {
            request = request.header(header::ACCEPT, a);
        }
        let response = router(state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn metrics_route() {
        let state = state();
        let (status, ct, body) = call_accepting(
            &state,
            Method::GET,
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some(report::CONTENT_TYPE));
        assert!(body.ends_with("# EOF\n"));
        // Without Accept (curl, promtool): the Prometheus text format, no `# EOF`.
        let (_, plain_ct, plain) = call(&state, Method::GET, "/metrics").await;
        assert_eq!(
            plain_ct.as_deref(),
            Some(report::exposition::PROMETHEUS_TEXT)
        );
        assert!(!plain.contains("# EOF"), "{plain}");
        assert!(body.contains(r#"regprobe_failure_reason{registry="quay.io",secret="pull",reason="unauthorized",class="credential"} 1"#));
        assert!(body.contains(&format!(
            r#"regprobe_build_info{{version="1.0.0-test",revision="{}"}} 1"#,
            crate::REVISION
        )));
        // The served exposition carries the process metrics too.
        assert!(body.contains("\nprocess_resident_memory_bytes "), "{body}");
    }

    #[tokio::test]
    async fn status_route() {
        let state = state();
        let (status, ct, body) = call(&state, Method::GET, "/status").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::to_value(report::status_json(&state.store.latest())).unwrap()
        );
        assert_eq!(v["probes"][0]["reason"], "unauthorized");
    }

    #[tokio::test]
    async fn healthy_route() {
        let (status, ct, body) = call(&state(), Method::GET, "/-/healthy").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.unwrap().starts_with("text/plain"));
        assert_eq!(body.trim(), "OK");
    }

    #[tokio::test]
    async fn healthy_fails_once_the_scheduler_died() {
        let state = state();
        state.alive.store(false, Ordering::Release);
        let (status, _, body) = call(&state, Method::GET, "/-/healthy").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("scheduler"), "{body}");
    }

    #[tokio::test]
    async fn ready_flips_and_ignores_probe_results() {
        let state = state();
        let (status, ct, _) = call(&state, Method::GET, "/-/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(ct.unwrap().starts_with("text/plain"));
        state.ready.store(true, Ordering::Release);
        // The only probe result is a failure: readiness does not care.
        let (status, _, body) = call(&state, Method::GET, "/-/ready").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.trim(), "OK");
        state.ready.store(false, Ordering::Release);
        let (status, _, _) = call(&state, Method::GET, "/-/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn reload_notifies_and_only_on_post() {
        let state = state();
        state.lifecycle.store(true, Ordering::Release);
        let (status, _, _) = call(&state, Method::GET, "/-/reload").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        // A GET must not have requested a reload.
        let waited = tokio::time::timeout(Duration::from_millis(50), state.reload.notified()).await;
        assert!(waited.is_err(), "GET /-/reload notified");

        let (status, ct, _) = call(&state, Method::POST, "/-/reload").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.unwrap().starts_with("text/plain"));
        // notify_one stores a permit when nobody waits yet: the scheduler sees it later.
        tokio::time::timeout(Duration::from_secs(1), state.reload.notified())
            .await
            .expect("POST /-/reload notifies");
    }

    #[tokio::test]
    async fn reload_is_forbidden_without_the_lifecycle_flag() {
        let state = state();
        let (status, _, body) = call(&state, Method::POST, "/-/reload").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("--web.enable-lifecycle"), "{body}");
        let waited = tokio::time::timeout(Duration::from_millis(50), state.reload.notified()).await;
        assert!(waited.is_err(), "a forbidden reload notified");
    }

    async fn status_from(state: &Arc<AppState>, peer: &str) -> StatusCode {
        let peer: SocketAddr = peer.parse().unwrap();
        router(state.clone())
            .layer(Extension(ConnectInfo(peer)))
            .oneshot(
                Request::builder()
                    .uri("/status")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn status_is_for_loopback_peers_unless_opened() {
        let state = state();
        assert_eq!(status_from(&state, "127.0.0.1:5000").await, StatusCode::OK);
        assert_eq!(status_from(&state, "[::1]:5000").await, StatusCode::OK);
        assert_eq!(
            status_from(&state, "10.1.2.3:5000").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_from(&state, "[fd00::1]:5000").await,
            StatusCode::FORBIDDEN
        );
        // The node's own address (the connection's local address) is on this node.
        let on_node = router(state.clone())
            .layer(Extension(ConnectInfo(
                "10.1.2.3:5000".parse::<SocketAddr>().unwrap(),
            )))
            .layer(Extension(crate::httpd::LocalAddr(
                "10.1.2.3:9787".parse().unwrap(),
            )))
            .oneshot(
                Request::builder()
                    .uri("/status")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status();
        assert_eq!(on_node, StatusCode::OK);
        state.status_loopback_only.store(false, Ordering::Release);
        assert_eq!(status_from(&state, "10.1.2.3:5000").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn index_lists_the_endpoints() {
        let (status, ct, body) = call(&state(), Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.unwrap().starts_with("text/html"));
        for endpoint in ["/metrics", "/status", "/-/healthy", "/-/ready", "/-/reload"] {
            assert!(body.contains(endpoint), "{endpoint}");
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let state = state();
        for uri in ["/nope", "/metrics/x", "/-/", "/status.json"] {
            let (status, _, _) = call(&state, Method::GET, uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        }
        let (status, _, _) = call(&state, Method::POST, "/metrics").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn serve_answers_and_shuts_down_gracefully() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state(), async {
            let _ = stopped.await;
        }));

        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}
