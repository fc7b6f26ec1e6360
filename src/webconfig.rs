//! `--web.config.file`: the Prometheus exporter convention (exporter-toolkit's `web-config.yml`)
//! for TLS and basic authentication of the HTTP endpoints (issue 13, "Access").
//!
//! ```yaml
//! tls_server_config:            # optional: serve HTTPS
//!   cert_file: /etc/regprobe/web/tls.crt
//!   key_file: /etc/regprobe/web/tls.key
//!   client_ca_file: /etc/regprobe/web/ca.crt     # optional: verify client certificates
//!   client_auth_type: RequireAndVerifyClientCert # default with a client CA; or VerifyClientCertIfGiven
//! basic_auth_users:             # optional: user -> bcrypt hash (htpasswd -nbB USER PASS)
//!   prometheus: $2y$10$...
//! ```
//!
//! Upstream: prometheus/exporter-toolkit `web/tls_config.go` (`Config`, `TLSConfig`) and
//! `web/handler.go` (`webHandler.ServeHTTP`: `401` with `WWW-Authenticate: Basic`, bcrypt
//! comparison, successful comparisons cached). Other keys of the format (`http_server_config`,
//! cipher and version settings) are refused rather than silently ignored.
//!
//! The file is re-read when its stamp (inode, size, mtime) changes, checked at each new
//! connection; a file that stops parsing keeps the last good configuration (logged). Every file
//! is read with [`crate::fsread`].

use crate::fsread;
use secrecy::zeroize::Zeroizing;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a web configuration file was not used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// A file could not be read.
    #[error("--web.config.file: {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: fsread::ReadError,
    },
    /// The YAML does not have the format's shape.
    #[error("--web.config.file: {path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The TLS files do not make a server configuration.
    #[error("--web.config.file: tls_server_config: {0}")]
    Tls(String),
}

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    tls_server_config: Option<TlsFormat>,
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
}

/// A loaded web configuration.
#[derive(Default)]
pub struct WebConfig {
    /// The TLS server configuration, when `tls_server_config` is given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `basic_auth_users`; empty means no authentication.
    pub users: BasicAuth,
}

impl std::fmt::Debug for WebConfig {
    /// Whether TLS and authentication are on, never the hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.users.users.len())
            .finish()
    }
}

/// `basic_auth_users` with a cache of successful checks (keyed by a per-process keyed hash of
/// the `Authorization` value, never the value itself).
#[derive(Default)]
pub struct BasicAuth {
    users: HashMap<String, String>,
    hasher: std::collections::hash_map::RandomState,
    ok: Mutex<HashSet<u64>>,
}

/// Successful checks remembered at most (the cache is cleared when full).
const MAX_CACHED: usize = 1024;

impl BasicAuth {
    /// Whether authentication is required.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether `authorization` (an `Authorization` header value) names a user of the file with
    /// the right password. bcrypt is slow on purpose: call off the async runtime's workers.
    pub fn check(&self, authorization: &[u8]) -> bool {
        let key = self.hasher.hash_one(authorization);
        if self.ok.lock().is_ok_and(|c| c.contains(&key)) {
            return true;
        }
        let Some(b64) = authorization
            .strip_prefix(b"Basic ")
            .or_else(|| authorization.strip_prefix(b"basic "))
        else {
            return false;
        };
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim_ascii()) else {
            return false;
        };
        let raw = Zeroizing::new(raw);
        let Some(colon) = raw.iter().position(|b| *b == b':') else {
            return false;
        };
        let (user, password) = (&raw[..colon], &raw[colon + 1..]);
        let Some(hash) = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get(u))
        else {
            // Spend the same time as for a known user, so user names cannot be probed.
            let _ = bcrypt::verify(password, DUMMY_HASH);
            return false;
        };
        let good = bcrypt::verify(password, hash).unwrap_or(false);
        if good {
            if let Ok(mut c) = self.ok.lock() {
                if c.len() >= MAX_CACHED {
                    c.clear();
                }
                c.insert(key);
            }
        }
        good
    }
}

/// A bcrypt hash (cost 10) of a random string, for the unknown-user path.
const DUMMY_HASH: &str = "$2b$10$OGb0Rqx3bVy7a8vY6ZbK5OmCkAC1vnvHvO6uNQmdiRwQwPrD1cFrG";

fn read(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, WebConfigError> {
    fsread::read_file(path, limit).map_err(|source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks the file at `path` (module docs).
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let bytes = read(path, fsread::MAX_CONFIG_BYTES)?;
    let format_err = |message: String| WebConfigError::Format {
        path: path.to_path_buf(),
        message,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| format_err(e.to_string()))?;
    let parsed: FileFormat = if text.trim().is_empty() {
        FileFormat::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| format_err(e.to_string()))?
    };
    for (user, hash) in &parsed.basic_auth_users {
        if !hash.starts_with("$2") {
            return Err(format_err(format!(
                "basic_auth_users: {user}: not a bcrypt hash (make one with `htpasswd -nbB USER PASSWORD`)"
            )));
        }
    }
    let tls = parsed
        .tls_server_config
        .map(|t| tls_config(&t))
        .transpose()?;
    Ok(WebConfig {
        tls,
        users: BasicAuth {
            users: parsed.basic_auth_users,
            ..BasicAuth::default()
        },
    })
}

fn tls_config(t: &TlsFormat) -> Result<Arc<rustls::ServerConfig>, WebConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |m: String| WebConfigError::Tls(m);
    let cert_pem = read(&t.cert_file, fsread::MAX_PEM_BYTES)?;
    let key_pem = read(&t.key_file, fsread::MAX_PEM_BYTES)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("{}: {e}", t.cert_file.display())))?;
    if chain.is_empty() {
        return Err(tls_err(format!(
            "{}: no PEM certificate",
            t.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| tls_err(format!("{}: {e}", t.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = match &t.client_ca_file {
        None => {
            if t.client_auth_type
                .as_deref()
                .is_some_and(|a| a != "NoClientCert")
            {
                return Err(tls_err(format!(
                    "client_auth_type {:?} needs client_ca_file",
                    t.client_auth_type.as_deref().unwrap_or("")
                )));
            }
            builder.with_no_client_auth()
        }
        Some(ca) => {
            let pem = read(ca, fsread::MAX_PEM_BYTES)?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
                roots
                    .add(c)
                    .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match t.client_auth_type.as_deref() {
                None | Some("RequireAndVerifyClientCert") => verifier,
                Some("VerifyClientCertIfGiven") => verifier.allow_unauthenticated(),
                Some(other) => {
                    return Err(tls_err(format!(
                        "client_auth_type {other:?}: use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
                    )))
                }
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| tls_err(e.to_string()))?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The file and its last good configuration, re-read when the file's stamp changes.
pub struct WebConfigFile {
    path: PathBuf,
    state: Mutex<(String, Arc<WebConfig>)>,
}

fn stamp(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => format!("{}:{}:{}.{}", m.ino(), m.len(), m.mtime(), m.mtime_nsec()),
        Err(_) => "-".to_string(),
    }
}

impl WebConfigFile {
    /// Loads `path`; errors are the start-up's configuration errors (exit 2).
    pub fn open(path: &Path) -> Result<WebConfigFile, WebConfigError> {
        let s = stamp(path);
        let config = load(path)?;
        Ok(WebConfigFile {
            path: path.to_path_buf(),
            state: Mutex::new((s, Arc::new(config))),
        })
    }

    /// The configuration in force: re-read first when the file changed; a file that no longer
    /// loads keeps the last good configuration (and is logged once per change).
    pub fn current(&self) -> Arc<WebConfig> {
        let now = stamp(&self.path);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 != now {
            state.0 = now;
            match load(&self.path) {
                Ok(c) => {
                    tracing::info!(path = %self.path.display(), "web configuration re-read");
                    state.1 = Arc::new(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "web configuration unusable; keeping the last good one")
                }
            }
        }
        Arc::clone(&state.1)
    }
}

/// bcrypt checks running at once at most; more requests wait (a flood of bad passwords costs
/// at most this many cores).
const MAX_CONCURRENT_CHECKS: usize = 2;

static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_CHECKS);

/// Paths served without authentication: kubelet's probes, which reveal nothing.
pub const UNAUTHENTICATED_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

/// axum middleware: with `basic_auth_users` in the connection's [`WebConfig`] (a request
/// extension set by [`crate::httpd`]), a request without valid credentials gets `401` and
/// `WWW-Authenticate: Basic` (exporter-toolkit `webHandler.ServeHTTP`), except
/// [`UNAUTHENTICATED_PATHS`].
pub async fn require_auth(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(config) = request.extensions().get::<Arc<WebConfig>>().cloned() else {
        return next.run(request).await;
    };
    if !config.users.enabled() || UNAUTHENTICATED_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| Zeroizing::new(v.as_bytes().to_vec()));
    let ok = match given {
        None => false,
        Some(value) => {
            let Ok(_permit) = CHECKS.acquire().await else {
                return http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            };
            let config = Arc::clone(&config);
            tokio::task::spawn_blocking(move || config.users.check(&value))
                .await
                .unwrap_or(false)
        }
    };
    if ok {
        next.run(request).await
    } else {
        (
            http::StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_checks_bcrypt_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth {
            users: [("prom".to_string(), hash)].into(),
            ..BasicAuth::default()
        };
        use base64::Engine;
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(auth.check(header("prom", "s3cret").as_bytes()));
        assert!(auth.check(header("prom", "s3cret").as_bytes()), "cached");
        assert!(!auth.check(header("prom", "wrong").as_bytes()));
        assert!(!auth.check(header("nobody", "s3cret").as_bytes()));
        assert!(!auth.check(b"Bearer x"));
        assert!(!auth.check(b"Basic !!!"));
    }

    #[test]
    fn the_format_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("web.yml");
        std::fs::write(&f, "basic_auth_users:\n  prom: plaintext\n").unwrap();
        assert!(load(&f)
            .unwrap_err()
            .to_string()
            .contains("not a bcrypt hash"));
        std::fs::write(&f, "http_server_config:\n  http2: false\n").unwrap();
        assert!(load(&f).is_err(), "unknown keys are refused");
        std::fs::write(&f, "").unwrap();
        let c = load(&f).unwrap();
        assert!(c.tls.is_none() && !c.users.enabled());
    }
}
