//! containerd's own registry credentials: the CRI plugin's `registry.configs."HOST".auth`
//! (`--containerd-config FILE`), which containerd uses for a host when kubelet passes no
//! credential.
//!
//! Upstream (containerd 2.x): `internal/cri/server/images/image_pull.go`, `PullImage`'s
//! `credentials(host)`: `hostauth := r.GetAuth(); if hostauth == nil { config :=
//! c.config.Registry.Configs[host]; if config.Auth != nil { hostauth = toRuntimeAuthConfig(...) } }`,
//! then `ParseAuth(hostauth, host)`; the callback is asked for every host the pull contacts
//! (mirrors included), with the host's `host[:port]`, matched as an exact map key. The deprecated
//! `registry.auths."URL"` are mapped onto `configs` with the URL's scheme dropped
//! (`internal/cri/config/config.go`, `ValidateImageConfig`). Tables: `[plugins."io.containerd.cri.v1.images".registry]`
//! (config version 3, containerd 2.x) and `[plugins."io.containerd.grpc.v1.cri".registry]`
//! (version 2, containerd 1.x, which 2.x migrates). `ParseAuth` (`image_pull.go`): a username
//! gives `(username, password)`; else an `identitytoken` gives `("", token)`; else `auth` is
//! base64 of `user:password`.
//!
//! Not read: `imports` (drop-in files), config version 1 (`plugins.cri`). An `identitytoken` is
//! not modelled (containerd sends it as a refresh token): such an entry is skipped with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::SecretString;

use super::Credential;

/// The CRI tables that hold `registry`, newest first.
const CRI_TABLES: [&str; 2] = ["io.containerd.cri.v1.images", "io.containerd.grpc.v1.cri"];

/// A containerd config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CriConfigError {
    /// Unreadable or over [`super::MAX_FILE_BYTES`].
    #[error("--containerd-config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// Not TOML (position only: the parser's message could quote a password).
    #[error("--containerd-config {path}: not valid TOML{at}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// ` at line L, column C` when known.
        at: String,
    },
}

/// One host's credential from containerd's config.
#[derive(Debug, Clone)]
pub struct CriAuth {
    /// The `host[:port]` key (exact match against the host contacted).
    pub host: String,
    /// What `ParseAuth` gives.
    pub credential: Credential,
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct CriAuths {
    /// By host, as containerd's map.
    pub auths: Vec<CriAuth>,
    /// Entries skipped and why (never secret material).
    pub warnings: Vec<String>,
}

impl CriAuths {
    /// The credential containerd uses for `host` when kubelet passes none.
    pub fn for_host(&self, host: &str) -> Option<&Credential> {
        self.auths
            .iter()
            .find(|a| a.host == host)
            .map(|a| &a.credential)
    }
}

/// Reads the CRI registry credentials of containerd's `config.toml`.
///
/// Errors: [`CriConfigError`] for an unreadable file or invalid TOML.
pub fn read(path: &Path) -> Result<CriAuths, CriConfigError> {
    use std::io::Read as _;
    let read_err = |e: std::io::Error| CriConfigError::Read {
        path: path.into(),
        error: e.to_string(),
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(super::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > super::MAX_FILE_BYTES {
        return Err(CriConfigError::Read {
            path: path.into(),
            error: "larger than 4 MiB".into(),
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {col}")
            })
            .unwrap_or_default();
        CriConfigError::Toml {
            path: path.into(),
            at,
        }
    })?;
    Ok(from_table(&doc))
}

fn from_table(doc: &toml::Table) -> CriAuths {
    let mut out = CriAuths::default();
    let Some(registry) = CRI_TABLES.iter().find_map(|t| {
        doc.get("plugins")?
            .get(t)?
            .get("registry")?
            .as_table()
            .cloned()
    }) else {
        return out;
    };
    // `auths."URL"` first, then `configs` (containerd maps auths onto configs, overwriting).
    let mut entries: BTreeMap<String, toml::Table> = BTreeMap::new();
    if let Some(auths) = registry.get("auths").and_then(|v| v.as_table()) {
        for (endpoint, auth) in auths {
            let host = match url::Url::parse(endpoint) {
                Ok(u) if u.has_host() => u
                    .host_str()
                    .map(|h| match u.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                    .unwrap_or_default(),
                _ => endpoint.clone(),
            };
            if let Some(t) = auth.as_table() {
                entries.insert(host, t.clone());
            }
        }
    }
    if let Some(configs) = registry.get("configs").and_then(|v| v.as_table()) {
        for (host, config) in configs {
            if let Some(auth) = config.get("auth").and_then(|v| v.as_table()) {
                entries.insert(host.clone(), auth.clone());
            }
        }
    }
    for (host, auth) in entries {
        let s = |k: &str| {
            auth.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (username, password) = if !s("username").is_empty() {
            (s("username"), s("password"))
        } else if !s("identitytoken").is_empty() {
            out.warnings.push(format!(
                "containerd config: registry.configs.\"{host}\".auth has an identitytoken, which regprobe does not model; skipped"
            ));
            continue;
        } else if !s("auth").is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(s("auth"))
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                // `ParseAuth`: `strings.Trim(parts[1], "\x00")`.
                Some((u, p)) => (u.to_string(), p.trim_matches('\0').to_string()),
                None => {
                    out.warnings.push(format!(
                        "containerd config: registry.configs.\"{host}\".auth.auth is not base64 of user:password; containerd fails pulls from {host}, regprobe skips it"
                    ));
                    continue;
                }
            }
        } else {
            continue;
        };
        out.auths.push(CriAuth {
            host,
            credential: Credential {
                username,
                password: SecretString::from(password),
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn parse(text: &str) -> CriAuths {
        from_table(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn version_2_and_3_tables_and_the_auth_forms() {
        let v2 = parse(
            r#"version = 2
[plugins."io.containerd.grpc.v1.cri".registry.configs."r.example:5000".auth]
  username = "u"
  password = "p"
[plugins."io.containerd.grpc.v1.cri".registry.configs."b.example".auth]
  auth = "dXNlcjpwYXNz"
[plugins."io.containerd.grpc.v1.cri".registry.configs."t.example".auth]
  identitytoken = "IdT0ken-98765"
[plugins."io.containerd.grpc.v1.cri".registry.auths."https://old.example"]
  username = "o"
  password = "q"
"#,
        );
        let c = v2.for_host("r.example:5000").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose_secret()),
            ("u", "p")
        );
        let c = v2.for_host("b.example").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose_secret()),
            ("user", "pass")
        );
        assert!(v2.for_host("t.example").is_none());
        assert_eq!(v2.warnings.len(), 1, "{:?}", v2.warnings);
        assert!(!v2.warnings[0].contains("IdT0ken"));
        assert_eq!(v2.for_host("old.example").unwrap().username, "o");
        assert!(v2.for_host("r.example").is_none(), "exact host:port keys");
        let v3 = parse(
            r#"version = 3
[plugins."io.containerd.cri.v1.images".registry.configs."r.example".auth]
  username = "u3"
  password = "p3"
"#,
        );
        assert_eq!(v3.for_host("r.example").unwrap().username, "u3");
        assert!(parse("version = 3\n").auths.is_empty());
    }

    #[test]
    fn a_toml_error_says_where_without_quoting() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        std::fs::write(&p, "a = 1\npassword = \"S3cret-xyz\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("S3cret"), "{e}");
    }
}
