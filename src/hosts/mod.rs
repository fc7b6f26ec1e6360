//! containerd host configuration: which endpoints containerd contacts for a registry namespace,
//! and with which TLS settings.
//!
//! This follows containerd 2.x, `core/remotes/docker/config/hosts.go` (`ConfigureHosts`,
//! `HostDirFromRoot`, `hostDirectory`, `loadHostDir`, `parseHostsFile`, `parseHostConfig`,
//! `loadCertFiles`), `config_unix.go` (`hostPaths`) and the CRI plugin's local-pull
//! `hostDirFromRoots` (each `config_path` entry is a root, the first root holding a host directory
//! wins), as described in `docs/containerd-kubelet.md` §6.2–6.3. The CRI plugin sets neither
//! `DefaultScheme` nor `DefaultTLS`, so neither exists here.
//!
//! Entry point: [`hosts_for`]. TLS client configurations for the returned hosts are built by
//! [`crate::probe::tls::client_config`].

mod file;

use crate::golang;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// URL scheme of a registry endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a host may be used for (containerd `docker.HostCapabilities`, set by hosts.toml
/// `capabilities`; default all). Tag resolution uses only hosts with `pull` and `resolve`; a digest
/// reference needs only `pull` (containerd `resolver.go` `Resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities {
    /// Fetch manifests and blobs by digest.
    pub pull: bool,
    /// Resolve a tag to a digest.
    pub resolve: bool,
    /// Push.
    pub push: bool,
}

impl Capabilities {
    /// `pull`, `resolve` and `push`: containerd's default when `capabilities` is absent or empty.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One endpoint containerd tries for a namespace, in order (containerd `docker.RegistryHost` plus
/// the TLS settings of its `hostConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost {
    /// Scheme of the first attempt. With [`RegistryHost::http_fallback`] this is `Https`.
    pub scheme: Scheme,
    /// `host[:port]` as contacted, e.g. `registry-1.docker.io`, `mirror.local:5000`.
    pub host: String,
    /// API root, normally `/v2`; whatever `server`/`[host."…"]` and `override_path` make of it
    /// (may be empty with `override_path` and no path).
    pub path: String,
    /// What this host may be used for.
    pub capabilities: Capabilities,
    /// Accept any server certificate (`skip_verify`, Go `InsecureSkipVerify`; also containerd's
    /// default for localhost upstreams).
    pub skip_verify: bool,
    /// CA files added to the node bundle (hosts.toml `ca`, made absolute against the host
    /// directory; certs.d `*.crt`).
    pub ca_files: Vec<PathBuf>,
    /// Client certificate and key files; key `None` = the key is in the certificate file.
    pub client_pairs: Vec<(PathBuf, Option<PathBuf>)>,
    /// Extra request headers (`header`), in key order; repeated keys for list values.
    pub headers: Vec<(String, String)>,
    /// hosts.toml `dial_timeout`; `None` = containerd's default (30 s). `Some(ZERO)` means *no*
    /// dial timeout (Go `net.Dialer` semantics for `"0"`); a negative Go duration becomes 1 ns
    /// (Go's dial fails at once).
    pub dial_timeout: Option<Duration>,
    /// The host is not the namespace itself, so containerd adds `?ns=<namespace>` to its requests
    /// (`resolver.go` `isProxy`; `docker.io` served by `registry-1.docker.io` is not a mirror).
    pub is_mirror: bool,
    /// containerd's "HTTPS first, HTTP on failure" case (`docker.NewHTTPFallback`): a host written
    /// as `http` that has TLS settings and a port other than 80, or a localhost upstream on a port
    /// other than 80/443. `scheme` is then `Https`.
    pub http_fallback: bool,
}

impl RegistryHost {
    /// `scheme://host` + `path`, e.g. `https://registry-1.docker.io/v2`.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }
}

/// What [`hosts_for`] found for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsResolution {
    /// The endpoints in the order containerd tries them; the upstream is last unless hosts.toml
    /// has a `server`.
    pub hosts: Vec<RegistryHost>,
    /// The host directory used (`<root>/<host>`, `<root>/<host>_<port>_` or `<root>/_default`),
    /// `None` when no root has one.
    pub source: Option<PathBuf>,
    /// Things containerd would silently do differently from what the files suggest (a
    /// `hosts.toml` it cannot decode, ignored keys, ignored certificate files, …). No file content
    /// beyond key names and paths.
    pub warnings: Vec<String>,
}

/// Errors that make containerd's host lookup itself fail (so the pull fails before any request).
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// The namespace cannot be a registry host (empty, or would leave the root directory).
    #[error("invalid registry host {0:?}")]
    InvalidNamespace(String),
    /// A candidate host directory (or a `.key` next to a `.cert`) exists but cannot be examined
    /// (permission denied, a file where a directory is expected…): containerd
    /// `HostDirFromRoot` / `loadCertFiles` return the `os.Stat` error.
    #[error("cannot stat {path}: {source}")]
    Stat {
        /// The path that could not be examined.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
    /// `hosts.toml` exists but cannot be read (containerd `loadHostDir`).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
    /// The host directory cannot be listed for the certs.d layout (containerd `loadCertFiles`).
    #[error("cannot list {path}: {source}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
}

/// containerd's `hostConfig`: one entry before defaults are applied. `Option`s keep Go's
/// nil-vs-empty distinction, which decides whether TLS counts as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostConfig {
    pub scheme: String,
    pub host: String,
    pub path: String,
    pub capabilities: Capabilities,
    pub ca_certs: Option<Vec<PathBuf>>,
    pub client_pairs: Option<Vec<(PathBuf, Option<PathBuf>)>>,
    pub skip_verify: Option<bool>,
    pub dial_timeout: Option<Duration>,
    pub header: Option<Vec<(String, Vec<String>)>>,
}

/// The endpoints containerd's CRI plugin (local pull) would use for `namespace`, given the
/// `config_path` roots `dirs`.
///
/// Follows containerd `ConfigureHosts` + `hostDirFromRoots` (`core/remotes/docker/config/hosts.go`,
/// `config_unix.go`, `internal/cri/server/images/image_pull.go`):
///
/// 1. For each root in order (empty entries skipped), try `<root>/<host>_<port>_` (only when the
///    namespace has a port), `<root>/<namespace>`, `<root>/_default`; the first path that exists
///    is the host directory. A stat error other than "not found" is an error.
/// 2. In it, `hosts.toml` (missing or 0 bytes → the Docker certs.d layout: `*.crt` = CA, `*.cert`
///    with the same-name `*.key` = client pair). A `hosts.toml` containerd cannot decode is logged by
///    containerd, which then uses the certs.d layout: we do the same and add a warning.
/// 3. Hosts are `[host."…"]` tables in file order, then the root entry (`server`). If the last
///    entry has no host, it becomes the upstream (`default_upstream`: `docker.io` → `registry-1.docker.io`, localhost rule, else the namespace over https).
/// 4. An `http` host with TLS settings (`ca`, `client` or `skip_verify`, even `false`) and a port
///    other than 80 is tried as HTTPS with fallback to HTTP (`http_fallback`).
///
/// `namespace` is the reference domain as kubelet/containerd see it (`docker.io`,
/// `myreg:5000`, `localhost:5000`, `[::1]:5000`), not `registry-1.docker.io`.
pub fn hosts_for(dirs: &[PathBuf], namespace: &str) -> Result<HostsResolution, HostsError> {
    if namespace.is_empty()
        || namespace.contains('/')
        || namespace.contains('\0')
        || namespace == "."
        || namespace == ".."
    {
        return Err(HostsError::InvalidNamespace(namespace.to_string()));
    }
    let mut warnings = Vec::new();
    let source = host_dir_from_roots(dirs, namespace)?;
    let configs = match &source {
        Some(dir) => load_host_dir(dir, &mut warnings)?,
        None => vec![HostConfig::default()],
    };
    let hosts = configure_hosts(namespace, configs, &mut warnings);
    Ok(HostsResolution {
        hosts,
        source,
        warnings,
    })
}

/// containerd `docker.IsLocalhost` (`core/remotes/docker/resolver.go`): the host part (port
/// removed with Go's `net.SplitHostPort`, if it splits) is `localhost` or a loopback IP
/// (`127.0.0.0/8`, `::1`, `::ffff:127.x`). Case-sensitive, like Go.
pub fn is_localhost(host: &str) -> bool {
    let h = golang::split_host_port(host)
        .map(|(h, _)| h)
        .unwrap_or(host);
    if h == "localhost" {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// containerd `hostDirectory`: `host:port` → `host_port_` (last colon), else unchanged.
fn host_directory(host: &str) -> String {
    match host.rfind(':') {
        Some(idx) if idx > 0 => format!("{}_{}_", &host[..idx], &host[idx + 1..]),
        _ => host.to_string(),
    }
}

/// containerd `hostPaths` (`config_unix.go`).
fn host_paths(root: &Path, host: &str) -> Vec<PathBuf> {
    let mut paths = Vec::with_capacity(3);
    let dir = host_directory(host);
    if dir != host {
        paths.push(root.join(dir));
    }
    paths.push(root.join(host));
    paths.push(root.join("_default"));
    paths
}

/// CRI `hostDirFromRoots` over containerd `HostDirFromRoot`.
fn host_dir_from_roots(roots: &[PathBuf], host: &str) -> Result<Option<PathBuf>, HostsError> {
    for root in roots.iter().filter(|r| !r.as_os_str().is_empty()) {
        for path in host_paths(root, host) {
            match std::fs::metadata(&path) {
                Ok(_) => return Ok(Some(path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(HostsError::Stat { path, source }),
            }
        }
    }
    Ok(None)
}

/// containerd `loadHostDir`.
fn load_host_dir(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<HostConfig>, HostsError> {
    let toml_path = dir.join("hosts.toml");
    // Regular files only, at most 1 MiB, with a timeout (`crate::fsread`).
    let bytes = match crate::fsread::read_file(&toml_path, crate::fsread::MAX_CONFIG_BYTES) {
        Ok(bytes) => bytes.to_vec(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            return Err(HostsError::Read {
                path: toml_path,
                source: e.into(),
            })
        }
    };
    if bytes.is_empty() {
        return load_cert_files(dir);
    }
    let parsed = match std::str::from_utf8(&bytes) {
        Ok(text) => file::parse_hosts_file(dir, text),
        Err(e) => Err(file::FileError {
            line: None,
            message: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        }),
    };
    match parsed {
        Ok(parsed) => {
            warnings.extend(
                parsed
                    .warnings
                    .into_iter()
                    .map(|w| format!("{}: {w}", toml_path.display())),
            );
            note_ignored_cert_files(dir, &parsed.hosts, warnings);
            Ok(parsed.hosts)
        }
        Err(err) => {
            let at = err.line.map(|l| format!(" line {l}:")).unwrap_or_default();
            warnings.push(format!(
                "{}:{at} {}; containerd logs \"failed to decode\" and uses the certs.d files of {} \
                 instead, so this file's hosts and server are ignored",
                toml_path.display(),
                err.message,
                dir.display()
            ));
            load_cert_files(dir)
        }
    }
}

/// When hosts.toml is used, certs.d-style files beside it are not read by containerd unless
/// hosts.toml names them; say so, since it is a common reason for `unknown authority`.
fn note_ignored_cert_files(dir: &Path, hosts: &[HostConfig], warnings: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut referenced: Vec<&Path> = Vec::new();
    for h in hosts {
        referenced.extend(h.ca_certs.iter().flatten().map(PathBuf::as_path));
        for (cert, key) in h.client_pairs.iter().flatten() {
            referenced.push(cert);
            referenced.extend(key.as_deref());
        }
    }
    let mut ignored: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            [".crt", ".cert", ".key"].iter().any(|s| name.ends_with(s))
        })
        .filter(|e| !referenced.iter().any(|r| *r == e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !ignored.is_empty() {
        ignored.sort();
        warnings.push(format!(
            "{}: {} ignored by containerd because hosts.toml exists and does not name them (use \
             `ca` / `client`)",
            dir.display(),
            ignored.join(", ")
        ));
    }
}

/// containerd `loadCertFiles`: one host entry (no host yet) with `*.crt` as CAs and `*.cert` (+
/// `*.key` when it exists) as client pairs, in file-name order.
fn load_cert_files(dir: &Path) -> Result<Vec<HostConfig>, HostsError> {
    let mut host = HostConfig::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![host]),
        Err(source) => {
            return Err(HostsError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| HostsError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        // Like Go's DirEntry.IsDir: the entry's own type, symlinks not followed.
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        files.push(entry.file_name());
    }
    files.sort();
    for name in files {
        let text = name.to_string_lossy();
        if text.ends_with(".crt") {
            host.ca_certs
                .get_or_insert_with(Vec::new)
                .push(dir.join(&name));
        }
        if let Some(stem) = text.strip_suffix(".cert") {
            let key = dir.join(format!("{stem}.key"));
            let key = match std::fs::metadata(&key) {
                Ok(_) => Some(key),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(source) => return Err(HostsError::Stat { path: key, source }),
            };
            host.client_pairs
                .get_or_insert_with(Vec::new)
                .push((dir.join(&name), key));
        }
    }
    Ok(vec![host])
}

/// The upstream containerd appends when the last host entry has no host (`ConfigureHosts`,
/// `core/remotes/docker/config/hosts.go` lines 100–135 at containerd commit `bc8b6229`; the same
/// block in v2.0–main):
///
/// * `docker.io` → `https://registry-1.docker.io/v2`;
/// * a localhost namespace ([`is_localhost`]; `CRI` sets no `DefaultScheme`): port `""` or `443`
///   → `https`, any other port → `http`; and unless the port is `80`, `skip_verify = true`. That
///   `http` + `skip_verify` then meets the fallback rule of step 4 of [`hosts_for`]
///   (`if host.scheme == "http" && explicitTLS`, port ≠ 80 → `https` + `NewHTTPFallback`). So:
///   `localhost:5000`, `127.0.0.1:5000`, `[::1]:5000` → https with fallback to http, skip_verify;
///   `localhost`, `localhost:443`, `::1` → https, skip_verify, no fallback; `localhost:80` → plain
///   http. These are the `TestHTTPFallback` vectors of `hosts_test.go`;
/// * anything else → `https://<namespace>/v2`.
///
/// The path becomes `/v2` and the capabilities all, whatever the root entry said; its TLS
/// settings (`ca`, `client`, `skip_verify`) are kept, except that localhost forces `skip_verify`.
fn default_upstream(namespace: &str, host: &mut HostConfig) {
    if namespace == "docker.io" {
        host.scheme = "https".to_string();
        host.host = "registry-1.docker.io".to_string();
    } else if is_localhost(namespace) {
        host.host = namespace.to_string();
        let port = golang::port_of(namespace);
        host.scheme = if port.is_empty() || port == "443" {
            "https"
        } else {
            "http"
        }
        .to_string();
        if port != "80" {
            host.skip_verify = Some(true);
        }
    } else {
        host.host = namespace.to_string();
        host.scheme = "https".to_string();
    }
    host.path = "/v2".to_string();
    host.capabilities = Capabilities::ALL;
}

/// containerd `ConfigureHosts` after the host directory was loaded.
fn configure_hosts(
    namespace: &str,
    mut configs: Vec<HostConfig>,
    warnings: &mut Vec<String>,
) -> Vec<RegistryHost> {
    if let Some(last) = configs.last_mut() {
        if last.host.is_empty() {
            default_upstream(namespace, last);
        }
    }
    let mut hosts = Vec::with_capacity(configs.len());
    for config in configs {
        // containerd main: `explicitTLSFromHost := host.caCerts != nil || host.clientPairs != nil
        // || host.skipVerify != nil` (no DefaultTLS in CRI).
        let explicit_tls = config.ca_certs.is_some()
            || config.client_pairs.is_some()
            || config.skip_verify.is_some();
        let mut scheme = config.scheme.as_str();
        let mut http_fallback = false;
        if scheme == "http" && explicit_tls && golang::port_of(&config.host) != "80" {
            scheme = "https";
            http_fallback = true;
        }
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                warnings.push(format!(
                    "host entry {:?} has scheme {other:?}: containerd's requests to it fail \
                     (unsupported protocol scheme) and it moves on to the next host; skipped",
                    config.host
                ));
                continue;
            }
        };
        if config.host.is_empty() {
            warnings.push(format!(
                "a {scheme} host entry has no host name: containerd's requests to it fail (no Host \
                 in request URL) and it moves on to the next host; skipped"
            ));
            continue;
        }
        let headers: Vec<(String, String)> = config
            .header
            .iter()
            .flatten()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
            .collect();
        // Go's transport refuses such a request ("net/http: invalid header field name/value"),
        // so every request containerd sends to this host fails; regprobe drops the header and
        // says so (never quoting the value, which may be a secret).
        for (name, value) in &headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                warnings.push(format!(
                    "host {}: header {name:?} has a name or value Go's HTTP client refuses: \
                     containerd's requests to this host fail; regprobe does not send it",
                    config.host
                ));
            }
        }
        hosts.push(RegistryHost {
            scheme,
            is_mirror: is_proxy(&config.host, namespace),
            host: config.host,
            path: config.path,
            capabilities: config.capabilities,
            skip_verify: config.skip_verify.unwrap_or(false),
            ca_files: config.ca_certs.unwrap_or_default(),
            client_pairs: config.client_pairs.unwrap_or_default(),
            headers,
            dial_timeout: config.dial_timeout,
            http_fallback,
        });
    }
    hosts
}

/// containerd `isProxy` (`resolver.go`).
fn is_proxy(host: &str, namespace: &str) -> bool {
    namespace != host && !(namespace == "docker.io" && host == "registry-1.docker.io")
}

#[cfg(test)]
mod tests;
