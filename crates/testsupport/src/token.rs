//! A test token issuer for distribution's token auth (docs/containerd-kubelet.md §9.1), on 127.0.0.1.
//!
//! It is the "authorization service" a registry with `auth.token` points clients to:
//! * `GET /token?service=S&scope=repository:NAME:pull[,push]` (scope repeatable), with optional
//!   `Authorization: Basic` (no header = anonymous), and `offline_token=true` for a refresh token;
//! * `POST /token`, form `grant_type=password&username=&password=` or
//!   `grant_type=refresh_token&refresh_token=`, plus `service`, `scope` (space-separated),
//!   `client_id`, `access_type=offline`.
//!
//! It answers `{"token","access_token","expires_in","issued_at"}` (plus `scope` on POST and
//! `refresh_token` when offline access was asked and the user has one). The token is an ES256
//! JWT whose header carries `x5c = [base64 DER of the signing certificate]`; that certificate is
//! written to the `rootcertbundle` of [`TokenIssuer::registry_auth`], the file the registry's
//! `auth.token.rootcertbundle` names, so distribution 2.8 accepts the tokens. Claims: `iss`,
//! `sub`, `aud` (= service), `exp`, `nbf`, `iat`, `jti`, `access` (the requested actions the
//! user was granted, per repository).
//!
//! ```ignore
//! let issuer = TokenIssuer::start(
//!     TokenIssuerOptions::new()
//!         .user(TokenUser::new("alice", "pw").pull("team/app"))
//!         .user(TokenUser::new("gcr", "pw").pull("team/app").behaviour(Behaviour::PostNotFound)),
//! );
//! let reg = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
//! // ... run the prober ...
//! assert_eq!(issuer.count("POST", "not_found"), 1);
//! assert_eq!(issuer.count("GET", "issued"), 1);
//! ```
//!
//! Wrong password or unknown user: 401 `{"details":"incorrect username or password"}` (Docker
//! Hub's answer). A user with no grant for the asked repository still gets a token, with an
//! empty `access` list, as the token spec says; the registry then answers the manifest request
//! with 401 `error="insufficient_scope"`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{CertificateParams, DnType, KeyPair};
use serde::Serialize;
use tempfile::TempDir;

use crate::registry::Auth;
use crate::rt::{bind_tcp, serve_router, Task};

/// How the token issuer treats one user, to imitate real token services' failures.
///
/// Status behaviours (`Forbidden`, `TooManyRequests`, `ServerError`, `Html`, `Hang`, and the
/// POST ones on POST) apply to every request that names the user, before the password is
/// checked, as a server that fails this way does. Token-shaping behaviours (`WrongAudience`,
/// `Expired`, `UntrustedKey`, `TokenFieldOnly`, `NoToken`) apply after a successful login.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Issue tokens normally.
    #[default]
    Normal,
    /// 403 `{"details":"access forbidden"}` (GitLab/Harbor-style refusal at the token step:
    /// blocked or locked account, IP allow list).
    Forbidden,
    /// 429 with `Retry-After: 30` (Docker Hub's token service under rate limiting).
    TooManyRequests,
    /// 500 with a JSON error body (a broken token service).
    ServerError,
    /// 200 with an HTML login page (an SSO proxy or captive portal in front of the realm).
    Html,
    /// POST answers 404, GET works (GCR/Artifact Registry: no OAuth2 POST; containerd then
    /// falls back to GET).
    PostNotFound,
    /// POST answers 405, GET works (Quay: containerd falls back to GET only when it has a
    /// username).
    PostMethodNotAllowed,
    /// 200 with `{"token": …}` only, no `access_token` (token services that follow only the
    /// GET spec; containerd's POST path reads only `access_token`).
    TokenFieldOnly,
    /// 200 with a JSON object that has no token at all.
    NoToken,
    /// Accept the request and never answer (a token service that hangs).
    Hang,
    /// A valid signature but `aud` = `wrong-service`: the registry answers 401
    /// `error="invalid_token"` (service mismatch between realm and registry).
    WrongAudience,
    /// A token that expired 10 minutes ago (beyond distribution's 60 s leeway): 401
    /// `invalid_token` (clock skew).
    Expired,
    /// Signed by a key whose certificate is not in the registry's `rootcertbundle`: 401
    /// `invalid_token` (the registry trusts another issuer).
    UntrustedKey,
}

/// A user of the token issuer, with per-repository grants.
#[derive(Clone, Debug)]
pub struct TokenUser {
    /// Username (`""` for the anonymous user).
    pub name: String,
    /// Password.
    pub password: String,
    /// repository name (or `*` for any) -> granted actions (`pull`, `push`, `delete`, `*`)
    pub grants: HashMap<String, Vec<String>>,
    /// How the issuer treats this user.
    pub behaviour: Behaviour,
    /// A refresh (identity) token that logs this user in via `grant_type=refresh_token` (or
    /// via GET with Basic `:<token>`, empty username).
    pub refresh_token: Option<String>,
}

impl TokenUser {
    /// A user with no grants who gets [`Behaviour::Normal`].
    pub fn new(name: &str, password: &str) -> TokenUser {
        TokenUser {
            name: name.to_string(),
            password: password.to_string(),
            grants: HashMap::new(),
            behaviour: Behaviour::Normal,
            refresh_token: None,
        }
    }

    /// Grants `actions` on `repo` (`"*"` = every repository).
    pub fn grant(mut self, repo: &str, actions: &[&str]) -> TokenUser {
        self.grants
            .entry(repo.to_string())
            .or_default()
            .extend(actions.iter().map(|a| a.to_string()));
        self
    }

    /// Grants `pull` on `repo`.
    pub fn pull(self, repo: &str) -> TokenUser {
        self.grant(repo, &["pull"])
    }

    /// Grants `pull` and `push` on `repo`.
    pub fn push(self, repo: &str) -> TokenUser {
        self.grant(repo, &["pull", "push"])
    }

    /// Sets [`TokenUser::behaviour`].
    pub fn behaviour(mut self, b: Behaviour) -> TokenUser {
        self.behaviour = b;
        self
    }

    /// Sets [`TokenUser::refresh_token`].
    pub fn refresh_token(mut self, token: &str) -> TokenUser {
        self.refresh_token = Some(token.to_string());
        self
    }

    fn granted(&self, repo: &str, asked: &[String]) -> Vec<String> {
        let mut allowed: Vec<&String> = Vec::new();
        for key in [repo, "*"] {
            if let Some(a) = self.grants.get(key) {
                allowed.extend(a);
            }
        }
        let all = allowed.iter().any(|a| a.as_str() == "*");
        let mut out: Vec<String> = asked
            .iter()
            .filter(|a| all || allowed.iter().any(|g| g == a))
            .cloned()
            .collect();
        out.dedup();
        out
    }
}

/// Options for [`TokenIssuer::start`].
#[derive(Clone, Debug)]
pub struct TokenIssuerOptions {
    /// The `service` (JWT `aud`); the registry's `auth.token.service`. Default `registry.test`.
    pub service: String,
    /// The `iss` claim; the registry's `auth.token.issuer`. Default `regprobe-test-issuer`.
    pub issuer: String,
    /// `expires_in` of issued tokens, seconds. Default 300.
    pub expires_in: u64,
    /// The users who can log in.
    pub users: Vec<TokenUser>,
    /// Grants of anonymous requests (GET without Basic); `None` = anonymous gets 401.
    /// Default: `Some` with no grants (Docker Hub style: a token with an empty access list).
    pub anonymous: Option<TokenUser>,
}

impl Default for TokenIssuerOptions {
    fn default() -> Self {
        TokenIssuerOptions {
            service: "registry.test".into(),
            issuer: "regprobe-test-issuer".into(),
            expires_in: 300,
            users: Vec::new(),
            anonymous: Some(TokenUser::new("", "")),
        }
    }
}

impl TokenIssuerOptions {
    /// The defaults (see the fields).
    pub fn new() -> TokenIssuerOptions {
        TokenIssuerOptions::default()
    }

    /// Adds a user.
    pub fn user(mut self, u: TokenUser) -> Self {
        self.users.push(u);
        self
    }

    /// Sets [`TokenIssuerOptions::service`].
    pub fn service(mut self, s: &str) -> Self {
        self.service = s.into();
        self
    }

    /// Sets [`TokenIssuerOptions::issuer`].
    pub fn issuer(mut self, s: &str) -> Self {
        self.issuer = s.into();
        self
    }

    /// Sets [`TokenIssuerOptions::expires_in`].
    pub fn expires_in(mut self, secs: u64) -> Self {
        self.expires_in = secs;
        self
    }
}

/// One request the issuer saw.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// `issued`, `unauthorized`, `forbidden`, `rate_limited`, `server_error`, `html`,
    /// `not_found`, `method_not_allowed`, `no_token`, `bad_request`, `hang`.
    pub outcome: String,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// Username from Basic auth or the POST form (`None` = anonymous or refresh token).
    pub user: Option<String>,
    /// POST `grant_type`.
    pub grant_type: Option<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// Every `scope` parameter, in order.
    pub scopes: Vec<String>,
    /// The `client_id` parameter.
    pub client_id: Option<String>,
    /// GET `account` parameter (containers/image, regclient send it).
    pub account: Option<String>,
}

struct Signer {
    key: EncodingKey,
    x5c: String,
}

impl Signer {
    fn new(cn: &str) -> (Signer, String) {
        let key = KeyPair::generate().unwrap(); // ECDSA P-256
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        let signer = Signer {
            key: EncodingKey::from_ec_der(&key.serialize_der()),
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
        };
        (signer, cert.pem())
    }
}

struct IssuerState {
    opts: Mutex<TokenIssuerOptions>,
    signer: Signer,
    untrusted: Signer,
    log: Mutex<Vec<TokenRequest>>,
}

#[derive(Serialize)]
struct ResourceActions {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<ResourceActions>,
}

/// A running token issuer. Stops on `Drop`.
pub struct TokenIssuer {
    addr: SocketAddr,
    state: Arc<IssuerState>,
    rootcertbundle: PathBuf,
    _dir: TempDir,
    _task: Task,
}

impl TokenIssuer {
    /// Starts the issuer on a free port of 127.0.0.1 (ready when this returns).
    pub fn start(opts: TokenIssuerOptions) -> TokenIssuer {
        let dir = tempfile::Builder::new()
            .prefix("regprobe-token-")
            .tempdir()
            .unwrap();
        let (signer, pem) = Signer::new("regprobe test token issuer");
        let (untrusted, _) = Signer::new("regprobe untrusted token issuer");
        let rootcertbundle = dir.path().join("token-signing.crt");
        std::fs::write(&rootcertbundle, pem).unwrap();
        let state = Arc::new(IssuerState {
            opts: Mutex::new(opts),
            signer,
            untrusted,
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/token", get(handle).post(handle))
            .with_state(state.clone());
        let (listener, addr) = bind_tcp(0);
        let task = serve_router(listener, app);
        TokenIssuer {
            addr,
            state,
            rootcertbundle,
            _dir: dir,
            _task: task,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port())
    }

    /// The realm under another host name, e.g. `auth.test` served by [`crate::Dns`]:
    /// `http://auth.test:PORT/token`.
    pub fn realm_at(&self, host: &str) -> String {
        format!("http://{host}:{}/token", self.port())
    }

    /// The `service` it issues tokens for (their `aud`).
    pub fn service(&self) -> String {
        self.state.opts.lock().unwrap().service.clone()
    }

    /// The tokens' `iss`.
    pub fn issuer_name(&self) -> String {
        self.state.opts.lock().unwrap().issuer.clone()
    }

    /// The registry `auth.token` section for this issuer, realm [`TokenIssuer::realm`].
    pub fn registry_auth(&self) -> Auth {
        self.registry_auth_with_realm(&self.realm())
    }

    /// The registry `auth.token` section with another realm URL (e.g. [`TokenIssuer::realm_at`]).
    pub fn registry_auth_with_realm(&self, realm: &str) -> Auth {
        Auth::Token {
            realm: realm.to_string(),
            service: self.service(),
            issuer: self.issuer_name(),
            rootcertbundle: self.rootcertbundle.clone(),
        }
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// `(method, outcome)` of every request so far, in order, e.g. `[("POST","not_found"),
    /// ("GET","issued")]`.
    pub fn sequence(&self) -> Vec<(String, String)> {
        self.requests()
            .into_iter()
            .map(|r| (r.method, r.outcome))
            .collect()
    }

    /// How many requests had this method and outcome.
    pub fn count(&self, method: &str, outcome: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.outcome == outcome)
            .count()
    }

    /// Request counts by `(method, outcome)`.
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        let mut m = BTreeMap::new();
        for r in self.requests() {
            *m.entry((r.method, r.outcome)).or_default() += 1;
        }
        m
    }

    /// Forgets the requests seen so far.
    pub fn reset_counts(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Mints a token directly (no HTTP) for `user` with the given grants applied to `scopes`,
    /// shaped by the user's token-shaping behaviour. `user` `""` = anonymous.
    pub fn mint(&self, user: &str, scopes: &[&str]) -> String {
        let opts = self.state.opts.lock().unwrap().clone();
        let u = if user.is_empty() {
            opts.anonymous
                .clone()
                .unwrap_or_else(|| TokenUser::new("", ""))
        } else {
            opts.users
                .iter()
                .find(|u| u.name == user)
                .cloned()
                .unwrap_or_else(|| panic!("no token user {user:?}"))
        };
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        sign_token(&self.state, &opts, &u, &scopes)
    }
}

impl TokenIssuer {
    /// Signs arbitrary `claims` with the trusted key (header `alg: ES256`, `x5c`): for tokens
    /// no user behaviour produces (e.g. another `iss`, `exp` inside the leeway).
    pub fn sign_claims(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(vec![self.state.signer.x5c.clone()]);
        jsonwebtoken::encode(&header, claims, &self.state.signer.key).expect("sign JWT")
    }
}

fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    // type:name:actions, where name may itself contain ':' (e.g. a port) — split at both ends.
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        kind.to_string(),
        name.to_string(),
        actions.split(',').map(str::to_string).collect(),
    ))
}

fn sign_token(
    state: &IssuerState,
    opts: &TokenIssuerOptions,
    user: &TokenUser,
    scopes: &[String],
) -> String {
    let now = crate::unix_now();
    let mut access = Vec::new();
    for s in scopes {
        if let Some((kind, name, actions)) = parse_scope(s) {
            if kind != "repository" {
                continue;
            }
            let granted = user.granted(&name, &actions);
            if !granted.is_empty() {
                access.push(ResourceActions {
                    kind,
                    name,
                    actions: granted,
                });
            }
        }
    }
    let (exp, nbf, iat) = if user.behaviour == Behaviour::Expired {
        (now - 600, now - 1200, now - 1200)
    } else {
        (now + opts.expires_in, now - 1, now)
    };
    let aud = if user.behaviour == Behaviour::WrongAudience {
        "wrong-service".to_string()
    } else {
        opts.service.clone()
    };
    let claims = Claims {
        iss: opts.issuer.clone(),
        sub: user.name.clone(),
        aud,
        exp,
        nbf,
        iat,
        jti: format!("{:016x}", fastrand::u64(..)),
        access,
    };
    let signer = if user.behaviour == Behaviour::UntrustedKey {
        &state.untrusted
    } else {
        &state.signer
    };
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(vec![signer.x5c.clone()]);
    jsonwebtoken::encode(&header, &claims, &signer.key).expect("sign JWT")
}

fn json_error(status: StatusCode, details: &str) -> Response {
    (status, Json(serde_json::json!({ "details": details }))).into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

enum Login {
    Anonymous,
    Password(String, String),
    Refresh(String),
}

async fn handle(
    State(state): State<Arc<IssuerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_post = method == Method::POST;
    let pairs: Vec<(String, String)> = if is_post {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    };
    let param = |k: &str| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let mut rec = TokenRequest {
        method: method.to_string(),
        outcome: String::new(),
        status: 0,
        user: None,
        grant_type: param("grant_type"),
        service: param("service"),
        scopes: scopes.clone(),
        client_id: param("client_id"),
        account: param("account"),
    };

    let login = if is_post {
        match rec.grant_type.as_deref() {
            Some("password") => Login::Password(
                param("username").unwrap_or_default(),
                param("password").unwrap_or_default(),
            ),
            Some("refresh_token") => Login::Refresh(param("refresh_token").unwrap_or_default()),
            _ => {
                return finish(
                    &state,
                    rec,
                    "bad_request",
                    json_error(StatusCode::BAD_REQUEST, "unsupported grant_type"),
                )
            }
        }
    } else {
        match basic_credentials(&headers) {
            Some((u, p)) if u.is_empty() => Login::Refresh(p),
            Some((u, p)) => Login::Password(u, p),
            None => Login::Anonymous,
        }
    };

    let opts = state.opts.lock().unwrap().clone();
    // Who the request names (for behaviours), and whether the credential is right.
    let (named, authenticated): (Option<TokenUser>, bool) = match &login {
        Login::Anonymous => (opts.anonymous.clone(), opts.anonymous.is_some()),
        Login::Password(u, p) => {
            let user = opts.users.iter().find(|x| &x.name == u).cloned();
            let ok = user.as_ref().is_some_and(|x| &x.password == p);
            (user, ok)
        }
        Login::Refresh(t) => {
            let user = opts
                .users
                .iter()
                .find(|x| !t.is_empty() && x.refresh_token.as_deref() == Some(t.as_str()))
                .cloned();
            let ok = user.is_some();
            (user, ok)
        }
    };
    rec.user = match &login {
        Login::Password(u, _) => Some(u.clone()),
        _ => None,
    };
    let behaviour = named
        .as_ref()
        .map(|u| u.behaviour)
        .unwrap_or(Behaviour::Normal);

    match behaviour {
        Behaviour::PostNotFound if is_post => {
            return finish(
                &state,
                rec,
                "not_found",
                (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
            )
        }
        Behaviour::PostMethodNotAllowed if is_post => {
            return finish(
                &state,
                rec,
                "method_not_allowed",
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(header::ALLOW, "GET")],
                    "method not allowed\n",
                )
                    .into_response(),
            )
        }
        Behaviour::Forbidden => {
            return finish(
                &state,
                rec,
                "forbidden",
                json_error(StatusCode::FORBIDDEN, "access forbidden"),
            )
        }
        Behaviour::TooManyRequests => {
            let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
            r.headers_mut()
                .insert(header::RETRY_AFTER, "30".parse().unwrap());
            return finish(&state, rec, "rate_limited", r);
        }
        Behaviour::ServerError => {
            return finish(
                &state,
                rec,
                "server_error",
                json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
            )
        }
        Behaviour::Html => {
            return finish(
                &state,
                rec,
                "html",
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<!DOCTYPE html><html><head><title>Sign in</title></head>\
                     <body><form action=\"/login\">Sign in to continue</form></body></html>\n",
                )
                    .into_response(),
            )
        }
        Behaviour::Hang => {
            rec.outcome = "hang".into();
            state.log.lock().unwrap().push(rec);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        _ => {}
    }

    let user = match (named, authenticated) {
        (Some(u), true) => u,
        _ => {
            let mut r = json_error(StatusCode::UNAUTHORIZED, "incorrect username or password");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"regprobe-test-token\"".parse().unwrap(),
            );
            return finish(&state, rec, "unauthorized", r);
        }
    };

    let token = sign_token(&state, &opts, &user, &scopes);
    let now = crate::unix_now();
    let mut body = serde_json::Map::new();
    match behaviour {
        Behaviour::NoToken => {}
        Behaviour::TokenFieldOnly => {
            body.insert("token".into(), token.into());
        }
        _ => {
            body.insert("token".into(), token.clone().into());
            body.insert("access_token".into(), token.into());
        }
    }
    body.insert("expires_in".into(), opts.expires_in.into());
    body.insert("issued_at".into(), crate::rfc3339(now).into());
    if is_post {
        body.insert("scope".into(), scopes.join(" ").into());
    }
    let offline = param("access_type").as_deref() == Some("offline")
        || param("offline_token").as_deref() == Some("true");
    if offline {
        if let Some(rt) = &user.refresh_token {
            body.insert("refresh_token".into(), rt.clone().into());
        }
    }
    let outcome = if behaviour == Behaviour::NoToken {
        "no_token"
    } else {
        "issued"
    };
    finish(
        &state,
        rec,
        outcome,
        (StatusCode::OK, Json(serde_json::Value::Object(body))).into_response(),
    )
}

fn finish(state: &IssuerState, mut rec: TokenRequest, outcome: &str, resp: Response) -> Response {
    rec.outcome = outcome.to_string();
    rec.status = resp.status().as_u16();
    state.log.lock().unwrap().push(rec);
    resp
}
