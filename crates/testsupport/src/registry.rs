//! A real registry: Debian's `docker-registry` (CNCF distribution 2.8.2) on 127.0.0.1.
//!
//! ```ignore
//! let open = Registry::start(RegistryOptions::default());                  // no auth, plain HTTP
//! let basic = Registry::start(RegistryOptions::htpasswd(&[("alice", "pw")]));
//! let issuer = TokenIssuer::start(TokenIssuerOptions::new().user(TokenUser::new("bob", "pw").pull("team/app")));
//! let bearer = Registry::start(RegistryOptions::default().with_auth(issuer.registry_auth()));
//! let tls = Registry::start(RegistryOptions::default().with_tls(&pki.leaf(&["127.0.0.1"])));
//! // bearer.host() == "127.0.0.1:PORT", bearer.url() == "http://127.0.0.1:PORT"
//! ```
//!
//! Each registry gets its own temp dir with `config.yml`, the htpasswd file, filesystem storage
//! and `registry.log` (its stdout+stderr). The process runs with an empty environment (so no
//! `REGISTRY_*` variable of the caller overrides the config) and is killed on `Drop`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::certs::CertPair;
use crate::process::ChildProcess;

/// The registry binary (from the `docker-registry` package).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How the registry authenticates clients (distribution's `auth:` section).
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// No `auth:` section: anonymous pull and push.
    #[default]
    None,
    /// `auth.htpasswd` with bcrypt entries for these (user, password) pairs. Challenge:
    /// `Basic realm="regprobe-test"`. distribution answers a wrong password with 401.
    Htpasswd(Vec<(String, String)>),
    /// `auth.token`: Bearer challenge `realm="<realm>",service="<service>"` (plus `scope=`);
    /// tokens must be signed by a certificate chaining to `rootcertbundle`, carry
    /// `iss == issuer` and `aud == service`.
    Token {
        /// The token endpoint's URL.
        realm: String,
        /// The service name (the tokens' audience).
        service: String,
        /// The tokens' `iss`.
        issuer: String,
        /// PEM file of the CA the tokens' signing certificate chains to.
        rootcertbundle: PathBuf,
    },
}

impl Auth {
    /// [`Auth::Htpasswd`] with these `(user, password)` pairs.
    pub fn htpasswd(users: &[(&str, &str)]) -> Auth {
        Auth::Htpasswd(
            users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        )
    }
}

/// Options for [`Registry::start`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// How clients authenticate.
    pub auth: Auth,
    /// `(certificate PEM file, key PEM file)`: serve HTTPS with this certificate.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With `tls`: require a client certificate signed by this CA (`http.tls.clientcas`); a
    /// client without one fails the handshake (Debian's build sends TLS alert
    /// `bad_certificate`: Go says `remote error: tls: bad certificate`).
    pub client_ca: Option<PathBuf>,
}

impl RegistryOptions {
    /// Plain HTTP with htpasswd users.
    pub fn htpasswd(users: &[(&str, &str)]) -> RegistryOptions {
        RegistryOptions {
            auth: Auth::htpasswd(users),
            ..Default::default()
        }
    }

    /// Sets [`RegistryOptions::auth`].
    pub fn with_auth(mut self, auth: Auth) -> RegistryOptions {
        self.auth = auth;
        self
    }

    /// Serve HTTPS with this certificate and key.
    pub fn with_tls(mut self, pair: &CertPair) -> RegistryOptions {
        self.tls = Some((pair.cert.clone(), pair.key.clone()));
        self
    }

    /// Require client certificates signed by the CA in `ca_pem_file` (needs `with_tls`).
    pub fn with_client_ca(mut self, ca_pem_file: &Path) -> RegistryOptions {
        self.client_ca = Some(ca_pem_file.to_path_buf());
        self
    }
}

/// A running `docker-registry serve`. Killed and its temp dir removed on `Drop`.
pub struct Registry {
    // Field order matters: the process dies before its directory is removed.
    process: ChildProcess,
    port: u16,
    tls: bool,
    dir: TempDir,
}

/// bcrypt htpasswd line for (user, password), made by `htpasswd -Bbn` (apache2-utils).
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-Bbn", "-C", "4", user, password])
        .output()
        .expect("run htpasswd (apache2-utils; run .ci/install-deps)");
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    serde_json::to_string(s).unwrap()
}

fn path_str(p: &Path) -> String {
    yaml_str(p.to_str().expect("utf-8 path"))
}

fn config_yaml(dir: &Path, port: u16, opts: &RegistryOptions) -> String {
    let mut y = format!(
        "version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
health:
  storagedriver:
    enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: regprobe-test-http-secret
",
        storage = path_str(&dir.join("storage")),
    );
    if let Some((cert, key)) = &opts.tls {
        y.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            path_str(cert),
            path_str(key)
        ));
        if let Some(ca) = &opts.client_ca {
            y.push_str(&format!("    clientcas:\n      - {}\n", path_str(ca)));
        }
    }
    match &opts.auth {
        Auth::None => {}
        Auth::Htpasswd(_) => {
            y.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: regprobe-test\n    path: {}\n",
                path_str(&dir.join("htpasswd"))
            ));
        }
        Auth::Token {
            realm,
            service,
            issuer,
            rootcertbundle,
        } => {
            y.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                yaml_str(realm),
                yaml_str(service),
                yaml_str(issuer),
                path_str(rootcertbundle)
            ));
        }
    }
    y
}

impl Registry {
    /// Starts the registry on a free port of 127.0.0.1 and waits (at most 10 s) until it
    /// accepts TCP. Panics with the registry's output if it does not come up.
    pub fn start(opts: RegistryOptions) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: run .ci/install-deps"
        );
        let dir = tempfile::Builder::new()
            .prefix("regprobe-registry-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("storage")).unwrap();
        if let Auth::Htpasswd(users) = &opts.auth {
            let mut file = String::new();
            for (u, p) in users {
                file.push_str(&htpasswd_line(u, p));
                file.push('\n');
            }
            std::fs::write(dir.path().join("htpasswd"), file).unwrap();
        }
        let mut last_err = String::new();
        // The free port may be taken between our probe and the registry's bind: retry.
        for _attempt in 0..3 {
            let port = crate::free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, config_yaml(dir.path(), port, &opts)).unwrap();
            let log = dir.path().join("registry.log");
            let _ = std::fs::remove_file(&log);
            let mut cmd = Command::new(REGISTRY_BIN);
            cmd.arg("serve")
                .arg(&config)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .current_dir(dir.path());
            let mut process = ChildProcess::spawn("docker-registry", cmd, &log);
            match process.wait_for_tcp(crate::loopback(port), Duration::from_secs(10)) {
                Ok(()) => {
                    return Registry {
                        process,
                        port,
                        tls: opts.tls.is_some(),
                        dir,
                    }
                }
                Err(e) => {
                    let in_use = e.contains("address already in use");
                    last_err = e;
                    drop(process);
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!("docker-registry did not start: {last_err}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` as a socket address.
    pub fn addr(&self) -> SocketAddr {
        crate::loopback(self.port)
    }

    /// `127.0.0.1:PORT`: the registry host as it appears in image references and secret keys.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The registry's temp dir (`config.yml`, `htpasswd`, `storage/`, `registry.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the registry logged so far (level warn and above).
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The `docker-registry` process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
