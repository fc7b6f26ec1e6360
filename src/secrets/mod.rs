//! Pull secrets: loading, parsing and kubelet's key normalisation.
//!
//! This module turns the credential sources regprobe is pointed at into [`Secret`]s, each a list of
//! [`AuthEntry`]s, exactly as kubelet would read them (`docs/containerd-kubelet.md` §3.2, §3.3, §5):
//!
//! * [`dockerconfig`]: `.dockerconfigjson` (`{"auths": {KEY: ENTRY}}`) and legacy `.dockercfg`
//!   (`{KEY: ENTRY}`) parsing with Go `encoding/json` semantics (kubernetes
//!   `pkg/credentialprovider/config.go`, `DockerConfigEntry.UnmarshalJSON`).
//! * [`key`]: kubelet's keyring key for an `auths` key (`pkg/credentialprovider/keyring.go`,
//!   `BasicDockerKeyring.Add`) and the `registry` metrics label derived from it.
//! * [`manifest`]: Kubernetes Secret manifests (YAML or JSON, `kind: Secret` or `kind: List`), with
//!   kubelet's type/key rules (`pkg/credentialprovider/secrets/secrets.go`).
//! * [`load`]: `--secrets-dir`, `--secret` and `--node-config` inputs, including both ways kubelet
//!   mounts secret volumes (per-secret `..data` and one projected `..data`).
//!
//! Secret material is kept out of every error, warning and `Debug` output: passwords live in
//! [`secrecy::SecretString`], decoded bytes in [`secrecy::zeroize::Zeroizing`] buffers, and parser
//! errors are reduced to their position and category (the parsers' own messages can quote input).
//! A password in a key's URL user-info (`https://user:pw@host`) is replaced by `xxxxx` wherever the
//! key is shown.

use secrecy::SecretString;
use std::path::PathBuf;

pub mod cri;
pub mod dockerconfig;
mod error;
pub mod key;
pub mod keyring;
pub mod load;
pub mod manifest;

pub use dockerconfig::{parse_dockercfg, parse_dockerconfigjson, Parsed};
pub use error::SecretError;
pub use key::{normalize_key, KeyError, NormalizedKey};
pub use keyring::{KeyMatch, KeyVerdict, Keyring};
pub use load::{load_all, load_all_with_warnings, LoadError, Loaded, SecretSources};

/// The largest file regprobe reads as a secret, node config or manifest: 4 MiB.
/// A bigger file gives [`SecretError::TooLarge`].
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A credential as kubelet hands it to the CRI: only a user name and a password.
/// (`identitytoken` and `registrytoken` are dropped, as kubelet drops them: `docs/containerd-kubelet.md` §3.2,
/// `pkg/credentialprovider/keyring.go` copies only Username/Password/Email.)
#[derive(Clone)]
pub struct Credential {
    /// User name; may be empty (kubelet accepts it; containerd then behaves anonymously).
    pub username: String,
    /// Password. Never logged, never serialised.
    pub password: SecretString,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One `auths` entry of a secret, after kubelet's decoding and key normalisation.
#[derive(Debug, Clone)]
pub struct AuthEntry {
    /// The key as written in the secret, e.g. `https://index.docker.io/v1/`. If the key carries
    /// URL user-info (`https://user:pw@host`), that part is shown as `xxxxx@` here.
    pub raw_key: String,
    /// kubelet's keyring key (`docs/containerd-kubelet.md` §3.3, `keyring.go BasicDockerKeyring.Add`): scheme dropped,
    /// a leading `/v1/` or `/v2/` cut to `/`, `host[:port]` plus the path unless it is empty or `/`.
    /// Host case, port and path are kept exactly as kubelet keeps them (`Registry.Example.com:443`
    /// stays as written). Image lookups match against this key.
    pub key: String,
    /// The `registry` metrics label: [`AuthEntry::key`], except that Docker Hub's spellings
    /// (`index.docker.io`, `registry-1.docker.io`, `docker.io`) become `docker.io` (a path is kept).
    pub registry: String,
    /// The key's host part contains a glob character (`*`, `?`, `[`, but not an IPv6 literal's
    /// brackets), e.g. `*.example.com`: it names no host to contact, so it gets no credential
    /// probe and only takes part in image lookups.
    pub wildcard: bool,
    /// The credential kubelet would pass on for this key.
    pub credential: Credential,
    /// The entry carried a non-empty `identitytoken` or `registrytoken`, which kubelet ignores.
    pub dropped_token: bool,
}

/// How a secret's content was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `{"auths": {...}}`: a `kubernetes.io/dockerconfigjson` Secret or a `config.json`.
    DockerConfigJson,
    /// Legacy `{KEY: ENTRY}`: a `kubernetes.io/dockercfg` Secret.
    DockerCfg,
    /// The node's kubelet `config.json` (`--node-config`): only its `auths` are read.
    NodeConfig,
    /// The format could not be determined (unreadable file, invalid JSON/YAML, a non-pull Secret).
    Unknown,
    /// The `auth` map of a credential-provider plugin's answer (`crate::providers`).
    Provider,
}

impl SecretKind {
    /// A short lowercase name: `dockerconfigjson`, `dockercfg`, `node-config`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::DockerConfigJson => "dockerconfigjson",
            SecretKind::DockerCfg => "dockercfg",
            SecretKind::NodeConfig => "node-config",
            SecretKind::Unknown => "unknown",
            SecretKind::Provider => "credential-provider",
        }
    }
}

impl std::fmt::Display for SecretKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded secret.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The secret id (the `secret` metrics label): `<name>` for `DIR/<name>`, the manifest's
    /// `metadata.name` or the file name without extension for `--secret`, `node` for
    /// `--node-config`.
    pub id: String,
    /// Where it was read from (`-` for standard input).
    pub path: PathBuf,
    /// The format its content was read as.
    pub kind: SecretKind,
    /// Entries sorted by `registry`, then `raw_key`; or why kubelet would reject the whole secret
    /// (a `secret_invalid` probe). `Ok(vec![])` is a valid secret that gives no credentials.
    pub entries: Result<Vec<AuthEntry>, SecretError>,
    /// Things an SRE should know that do not make the secret invalid: keys kubelet skips, ignored
    /// `credsStore`/`credHelpers`, duplicate keys. Never contains secret material.
    pub warnings: Vec<String>,
}

impl Secret {
    /// Whether the secret parsed (kubelet would accept it).
    pub fn is_valid(&self) -> bool {
        self.entries.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::load::parse_secret_content;
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine as _;
    use secrecy::ExposeSecret;
    use std::path::Path;

    const PASSWORD: &str = "S3cr3t-Pa55";

    fn needles() -> Vec<String> {
        vec![
            PASSWORD.to_string(),
            STANDARD_NO_PAD.encode(format!("u:{PASSWORD}")),
            STANDARD_NO_PAD.encode(PASSWORD),
            // The password's base64 at other alignments (inside a larger base64 blob).
            STANDARD_NO_PAD.encode(format!("x{PASSWORD}"))[4..].to_string(),
            STANDARD_NO_PAD.encode(format!("xy{PASSWORD}"))[4..].to_string(),
        ]
    }

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn malformed_inputs() -> Vec<String> {
        let auth = b64(&format!("u:{PASSWORD}"));
        let bad_config = format!(r#"{{"auths":{{"r.io":{{"password":["{PASSWORD}"]}}}}}}"#);
        vec![
            format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}","password":5}}}}}}"#),
            format!(r#"{{"auths":{{"r.io":{{"password":"{PASSWORD}""#),
            format!(r#"{{"auths":{{"r.io":{{"password":"{PASSWORD}" x}}}}}}"#),
            format!(r#"{{"auths":{{"r.io":{{"password":"{PASSWORD}",}}}}}}"#),
            format!(r#"{{"auths":{{"r.io":"{auth}"}}}}"#),
            format!(r#"{{"auths":{{"r.io":{{"auth":"{PASSWORD}"}}}}}}"#),
            format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64(PASSWORD)),
            format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}x"}}}}}}"#),
            format!(r#"{{"auths":"{auth}"}}"#),
            format!(r#"{{"auths":{{}},"HttpHeaders":{{"Authorization":["{PASSWORD}"]}}}}"#),
            format!(r#"{{"auths":{{"r.io":{{"auth":"{auth}"}}}},"auths":5}}"#),
            format!(r#"["{PASSWORD}"]"#),
            format!(r#""{PASSWORD}""#),
            format!(r#"{{"r.io":["{PASSWORD}"]}}"#),
            format!(r#"{{"r.io":{{"auth":"{auth}","email":{{"x":"{PASSWORD}"}}}}}}"#),
            format!(r#"{{"auths":{{"https://u:{PASSWORD}@r.io":{{"auth":"!!"}}}}}}"#),
            format!(r#"{{"auths":{{"{PASSWORD}@r.io":{{"auth":"{auth}"}}}}}}"#),
            format!(r#"{{"auths":{{"https://u:{PASSWORD}@r.io:bad":{{}}}}}}"#),
            format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64(&format!("\u{ff}:{PASSWORD}")).replace('=', "")),
            format!("kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {PASSWORD}\n"),
            format!("kind: Secret\ndata:\n  .dockerconfigjson: [{PASSWORD}]\n"),
            format!("kind: Secret\nstringData:\n  .dockerconfigjson: \"{PASSWORD}\n"),
            format!("kind: Secret\nstringData: {PASSWORD}\n"),
            format!("kind: Secret\nmetadata: {{name: [{PASSWORD}]}}\n"),
            format!(
                "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{}'\n",
                format!(r#"{{"auths":{{"r.io":{{"password":"{PASSWORD}",}}}}}}"#)
            ),
            format!(
                "kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
                b64(&bad_config)
            ),
            format!(r#"{{"kind":"Secret","data":{{".dockerconfigjson":5,"x":"{PASSWORD}"}}}}"#),
            format!(r#"{{"kind":"Secret","data":{{".dockerconfigjson":["{PASSWORD}"]}}}}"#),
            format!(
                r#"{{"kind":"Secret","type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{}"}}}}"#,
                b64(&bad_config)
            ),
            format!(
                r#"{{"kind":"List","items":[{{"kind":"Secret","type":"kubernetes.io/dockercfg","stringData":{{".dockercfg":"{{\"r.io\":{{\"auth\":\"{PASSWORD}\"}}}}"}}}}]}}"#
            ),
            format!(r#"{{"kind":"Secret","type":"Opaque","data":{{"password":"{}"}}}}"#, b64(PASSWORD)),
        ]
    }

    fn assert_no_leak(context: &str, text: &str) {
        for needle in needles() {
            assert!(
                !text.contains(&needle),
                "{context} leaks {needle:?}: {text}"
            );
        }
    }

    #[test]
    fn no_secret_in_errors_warnings_or_debug() {
        let mut errors = 0;
        for input in malformed_inputs() {
            let secrets = parse_secret_content(input.as_bytes(), "id", Path::new("-"));
            assert!(!secrets.is_empty(), "{input}");
            for secret in &secrets {
                assert_no_leak(&input, &format!("{secret:?}"));
                for warning in &secret.warnings {
                    assert_no_leak(&input, warning);
                }
                match &secret.entries {
                    Err(e) => {
                        errors += 1;
                        assert_no_leak(&input, &e.to_string());
                        assert_no_leak(&input, &format!("{e:?}"));
                    }
                    Ok(entries) => {
                        for entry in entries {
                            assert_no_leak(&input, &format!("{entry:?}"));
                            assert_no_leak(&input, &format!("{:?}", entry.credential));
                        }
                    }
                }
            }
        }
        // Most inputs are invalid; a few are valid with a redacted key or a skipped entry.
        assert!(errors >= 25, "only {errors} errors");
    }

    #[test]
    fn valid_secret_debug_is_redacted() {
        let input = format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}},"quay.io":{{"username":"u","password":"{PASSWORD}"}}}}}}"#,
            b64(&format!("u:{PASSWORD}"))
        );
        let secrets = parse_secret_content(input.as_bytes(), "id", Path::new("-"));
        let entries = secrets[0].entries.as_ref().unwrap();
        assert_eq!(entries.len(), 2);
        for entry in entries {
            assert_eq!(entry.credential.password.expose_secret(), PASSWORD);
        }
        let debug = format!("{secrets:?}");
        assert!(debug.contains("<redacted>"));
        assert_no_leak("valid secret", &debug);
    }

    #[test]
    fn kinds_display() {
        assert_eq!(SecretKind::DockerConfigJson.to_string(), "dockerconfigjson");
        assert_eq!(SecretKind::DockerCfg.as_str(), "dockercfg");
        assert_eq!(SecretKind::NodeConfig.as_str(), "node-config");
        assert_eq!(SecretKind::Unknown.as_str(), "unknown");
    }
}
