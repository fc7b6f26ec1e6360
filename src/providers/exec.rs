//! Running one credential-provider plugin as kubelet runs it.
//!
//! Upstream: kubernetes `pkg/credentialprovider/plugin/plugin.go`, `execPlugin.ExecPlugin`:
//! the executable is `BIN_DIR/<name>` (nothing else is looked up), run with the config's `args`,
//! with kubelet's own environment plus the config's `env` (`mergeEnvVars`: the config's values
//! win), a `CredentialProviderRequest` (`{"kind","apiVersion","image"}`) in JSON on stdin, and a
//! catch-all timeout of one minute. The answer on stdout must carry the request's `apiVersion`
//! (`json.DefaultMetaFactory.Interpret`), decode strictly as a `CredentialProviderResponse`
//! (`decodeResponse`; kubelet does not quote the decoder's error, "since it may contain
//! credentials"), and name a `cacheKeyType` of `Image`, `Registry` or `Global` (`provide`).
//! Request and response types: `staging/src/k8s.io/kubelet/pkg/apis/credentialprovider/v1/types.go`
//! (v1beta1 and v1alpha1 have the same fields but the service-account ones).
//!
//! What regprobe adds, since it runs next to kubelet and must not harm the node: stdout is kept
//! up to [`MAX_STDOUT_BYTES`] and stderr up to [`MAX_STDERR_BYTES`] (the rest is read and
//! dropped, so a chatty plugin neither blocks nor fills memory), the plugin runs in its own
//! process group and the whole group is killed at the timeout (also when the plugin exited but
//! something it started still holds its stdout or stderr then). Nothing of stdout reaches an
//! error; stderr reaches one only as a short excerpt with every string of stdout removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Deserialize;
use std::io::{Read, Write};

use super::config::{parse_go_duration, GoDuration, Provider};
use crate::secrets::Credential;

/// kubelet's exec timeout (`ExecPlugin`: `context.WithTimeout(ctx, 1*time.Minute)`).
pub const KUBELET_TIMEOUT: Duration = Duration::from_secs(60);
/// Most stdout kept: 1 MiB.
pub const MAX_STDOUT_BYTES: usize = 1024 * 1024;
/// Most stderr kept: 64 KiB.
pub const MAX_STDERR_BYTES: usize = 64 * 1024;

/// How long the answer is cached under which key (`CredentialProviderResponse.cacheKeyType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKeyType {
    /// Per image (the request's `image`).
    Image,
    /// Per registry: the image up to its first `/` (`parseRegistry`).
    Registry,
    /// One answer for every image.
    Global,
}

impl CacheKeyType {
    /// `Image`, `Registry`, `Global`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKeyType::Image => "Image",
            CacheKeyType::Registry => "Registry",
            CacheKeyType::Global => "Global",
        }
    }
}

/// A plugin's valid answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// `cacheKeyType`.
    pub cache_key_type: CacheKeyType,
    /// `cacheDuration`: `None` (the provider's `defaultCacheDuration` applies), zero (not
    /// cached) or a duration.
    pub cache_duration: Option<Duration>,
    /// `auth`: keyring key (a `matchImages`-style glob) → credential.
    pub auth: Auth,
}

/// An answer's `auth` map: `(keyring key, credential)` pairs in key order, each key once (the
/// JSON object's keys, as kubelet's `map[string]AuthConfig` holds them). One allocation, shared
/// by the cache entry and every [`super::Answer`] made from it: a `BTreeMap` leaf holds room
/// for 11 pairs, about 0.7 KB for the one or two keys a plugin answers with.
pub type Auth = Arc<[(String, Credential)]>;

/// How one run went, whatever its outcome.
#[derive(Debug, Clone)]
pub struct Run {
    /// Wall time of the run.
    pub duration: Duration,
    /// The exit status as a sentence (`exit status 1`, `signal 9`), `None` when it did not exit
    /// by itself (not started, killed at the timeout).
    pub exit: Option<String>,
}

/// Why a run gave no credentials. [`ExecError::is_missing`] tells `provider_missing` (the node's
/// configuration) from `provider_failed` (everything else).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    /// `BIN_DIR/<name>` does not exist.
    #[error("plugin binary executable {0} did not exist")]
    Missing(PathBuf),
    /// It exists but is not an executable file.
    #[error("plugin binary {0} is not an executable file")]
    NotExecutable(PathBuf),
    /// It could not be started.
    #[error("error execing credential provider plugin {path}: {error}")]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// The OS error.
        error: String,
    },
    /// It ran past the timeout and was killed.
    #[error("credential provider plugin did not answer within {}s and was killed{}", .timeout.as_secs_f64(), stderr_suffix(.stderr))]
    Timeout {
        /// The limit.
        timeout: Duration,
        /// Excerpt of its stderr.
        stderr: String,
    },
    /// It exited non-zero (or was killed by a signal).
    #[error("credential provider plugin failed: {status}{}", stderr_suffix(.stderr))]
    Exit {
        /// `exit status N` or `signal N`.
        status: String,
        /// Excerpt of its stderr.
        stderr: String,
    },
    /// Its stdout passed [`MAX_STDOUT_BYTES`].
    #[error("credential provider plugin wrote more than {} KiB to stdout", MAX_STDOUT_BYTES / 1024)]
    TooLarge,
    /// stdout has no readable `apiVersion`/`kind` (not JSON).
    #[error("error reading GVK from credential provider plugin response: not a JSON object")]
    NotJson,
    /// The answer's `apiVersion` is not the request's.
    #[error("apiVersion from credential plugin response did not match expected apiVersion:{expected}, actual apiVersion:{actual}")]
    ApiVersion {
        /// The provider's `apiVersion`.
        expected: String,
        /// The answer's.
        actual: String,
    },
    /// The answer does not decode strictly as a `CredentialProviderResponse` (its text is not
    /// quoted: it may hold credentials).
    #[error("error decoding credential provider plugin response from stdout")]
    Decode,
    /// `cacheKeyType` missing or unknown.
    #[error("credential provider plugin did not return a valid cacheKeyType: {0:?}")]
    CacheKeyType(String),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl ExecError {
    /// The plugin is absent or not executable: `provider_missing` (class `config`).
    pub fn is_missing(&self) -> bool {
        matches!(self, ExecError::Missing(_) | ExecError::NotExecutable(_))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResponse {
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    api_version: String,
    #[serde(default)]
    cache_key_type: String,
    cache_duration: Option<String>,
    #[serde(default)]
    auth: Option<BTreeMap<String, RawAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// The request kubelet writes on stdin (`CredentialProviderRequest`, no service-account token).
pub fn request_json(api_version: &str, image: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "CredentialProviderRequest",
        "apiVersion": api_version,
        "image": image,
    }))
    .unwrap_or_default()
}

/// Checks and decodes a plugin's stdout as `ExecPlugin` and `provide` do.
///
/// Errors: [`ExecError::NotJson`], [`ExecError::ApiVersion`], [`ExecError::Decode`],
/// [`ExecError::CacheKeyType`].
pub fn decode_response(api_version: &str, stdout: &[u8]) -> Result<Response, ExecError> {
    let meta: TypeMeta = serde_json::from_slice(stdout).map_err(|_| ExecError::NotJson)?;
    if meta.api_version != api_version {
        return Err(ExecError::ApiVersion {
            expected: api_version.to_string(),
            actual: meta.api_version,
        });
    }
    if meta.kind != "CredentialProviderResponse" {
        return Err(ExecError::Decode);
    }
    let raw: RawResponse = serde_json::from_slice(stdout).map_err(|_| ExecError::Decode)?;
    let cache_duration = match raw.cache_duration.as_deref() {
        None => None,
        Some(d) => match parse_go_duration(d) {
            Ok(GoDuration::NonNegative(d)) => Some(d),
            // A negative duration: kubelet's expiry is then in the past; the answer is used once.
            Ok(GoDuration::Negative) => Some(Duration::ZERO),
            Err(_) => return Err(ExecError::Decode),
        },
    };
    let cache_key_type = match raw.cache_key_type.as_str() {
        "Image" => CacheKeyType::Image,
        "Registry" => CacheKeyType::Registry,
        "Global" => CacheKeyType::Global,
        other => return Err(ExecError::CacheKeyType(other.to_string())),
    };
    let auth = raw
        .auth
        .unwrap_or_default()
        .into_iter()
        .map(|(k, a)| {
            (
                k,
                Credential {
                    username: a.username,
                    password: SecretString::from(a.password),
                },
            )
        })
        .collect();
    Ok(Response {
        cache_key_type,
        cache_duration,
        auth,
    })
}

/// Runs `provider`'s plugin from `bin_dir` for `image` (kubelet's `repoToPull`, e.g.
/// `123.dkr.ecr.us-east-1.amazonaws.com/team/app`), killing its process group after `timeout`.
/// Blocking: the plugin is waited for on this thread (readers and the waiter on their own
/// threads); async callers go through [`super::Providers::resolve`], which steps off the runtime.
///
/// Errors: [`ExecError`]; the [`Run`] comes back either way.
pub fn exec(
    bin_dir: &Path,
    provider: &Provider,
    image: &str,
    timeout: Duration,
) -> (Run, Result<Response, ExecError>) {
    let started = Instant::now();
    let (exit, result) = exec_inner(bin_dir, provider, image, timeout);
    (
        Run {
            duration: started.elapsed(),
            exit,
        },
        result,
    )
}

fn exec_inner(
    bin_dir: &Path,
    provider: &Provider,
    image: &str,
    timeout: Duration,
) -> (Option<String>, Result<Response, ExecError>) {
    use std::os::unix::process::CommandExt as _;
    let path = bin_dir.join(&provider.name);
    match std::fs::metadata(&path) {
        Err(_) => return (None, Err(ExecError::Missing(path))),
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt as _;
            if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
                return (None, Err(ExecError::NotExecutable(path)));
            }
        }
    }
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&provider.args)
        .envs(provider.env.iter().map(|e| (&e.name, &e.value)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let err = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ExecError::NotExecutable(path)
            } else {
                ExecError::Spawn {
                    path,
                    error: e.to_string(),
                }
            };
            return (None, Err(err));
        }
    };
    let pid = child.id();
    let request = request_json(&provider.api_version, image);
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            // A plugin that does not read stdin closes the pipe: not an error.
            let _ = stdin.write_all(&request);
        });
    }
    let deadline = Instant::now() + timeout;
    let reader = |r: Option<Box<dyn Read + Send>>, cap: usize| {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(r) = r {
            std::thread::spawn(move || {
                let _ = tx.send(read_capped(r, cap));
            });
        } else {
            let _ = tx.send((Vec::new(), false));
        }
        rx
    };
    let out_rx = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        MAX_STDOUT_BYTES,
    );
    let err_rx = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        MAX_STDERR_BYTES,
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    // The group is killed only while one of its processes is known to live (the unreaped
    // leader, or a member holding a pipe open), so its id cannot have been reused.
    let status = match rx.recv_timeout(timeout) {
        Ok(s) => s,
        Err(_) => {
            kill_group(Some(pid));
            // What it said before it was killed; a process that left the group and holds the
            // pipe is not waited for longer than a second.
            let (err, _) = err_rx
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            return (
                None,
                Err(ExecError::Timeout {
                    timeout,
                    stderr: stderr_excerpt(&err, b""),
                }),
            );
        }
    };
    // The leader exited; something it started may still hold the pipes (kubelet's exec waits
    // for them too): wait until the deadline, then kill the group.
    let mut killed = false;
    let mut collect = |rx: &std::sync::mpsc::Receiver<(Vec<u8>, bool)>| match rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        Ok(v) => Some(v),
        Err(_) => {
            if !killed {
                kill_group(Some(pid));
                killed = true;
            }
            rx.recv_timeout(Duration::from_secs(1)).ok()
        }
    };
    let out = collect(&out_rx);
    let err = collect(&err_rx);
    let (Some((out, out_over)), Some((err, _))) = (out, err) else {
        return (
            None,
            Err(ExecError::Timeout {
                timeout,
                stderr: String::new(),
            }),
        );
    };
    if killed {
        return (
            None,
            Err(ExecError::Timeout {
                timeout,
                stderr: stderr_excerpt(&err, &out),
            }),
        );
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return (
                None,
                Err(ExecError::Spawn {
                    path,
                    error: e.to_string(),
                }),
            )
        }
    };
    let exit = describe_status(status);
    if !status.success() {
        return (
            Some(exit.clone()),
            Err(ExecError::Exit {
                status: exit,
                stderr: stderr_excerpt(&err, &out),
            }),
        );
    }
    if out_over {
        return (Some(exit), Err(ExecError::TooLarge));
    }
    (Some(exit), decode_response(&provider.api_version, &out))
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown exit".to_string(),
    }
}

/// Sends SIGKILL to the plugin's process group (it is its leader: `process_group(0)`).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Reads to EOF, keeping the first `cap` bytes; `true` when more came.
fn read_capped<R: Read>(mut r: R, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut over = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                over |= n > room;
            }
        }
    }
    (kept, over)
}

/// A one-line excerpt of stderr with every JSON string of stdout longer than three characters
/// removed (a failing plugin may have printed credentials on stdout and echo them on stderr).
pub fn stderr_excerpt(stderr: &[u8], stdout: &[u8]) -> String {
    let mut strings = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(stdout) {
        collect_strings(&v, &mut strings);
    }
    let text = String::from_utf8_lossy(stderr);
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    let clean = crate::probe::evidence::redact(&text, &refs);
    crate::probe::transport::excerpt(clean.as_bytes())
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    const V1: &str = "credentialprovider.kubelet.k8s.io/v1";

    #[test]
    fn a_valid_answer_decodes() {
        let r = decode_response(V1, br#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","cacheDuration":"6h","auth":{"*.dkr.ecr.*.amazonaws.com":{"username":"AWS","password":"pw"}}}"#).unwrap();
        assert_eq!(r.cache_key_type, CacheKeyType::Registry);
        assert_eq!(r.cache_duration, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(r.auth.len(), 1);
        let (key, c) = &r.auth[0];
        assert_eq!(key, "*.dkr.ecr.*.amazonaws.com");
        assert_eq!(c.username, "AWS");
        assert_eq!(c.password.expose_secret(), "pw");
    }

    #[test]
    fn kubelets_response_checks() {
        let base = r#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Image","auth":{"r":{"username":"u","password":"SECRET-PW"}}}"#;
        let cases: Vec<(String, ExecError)> = vec![
            ("garbage".into(), ExecError::NotJson),
            (
                base.replace("/v1\"", "/v1alpha1\""),
                ExecError::ApiVersion {
                    expected: V1.into(),
                    actual: "credentialprovider.kubelet.k8s.io/v1alpha1".into(),
                },
            ),
            (base.replace("Response", "Request"), ExecError::Decode),
            (
                base.replace("\"auth\"", "\"extra\":1,\"auth\""),
                ExecError::Decode,
            ),
            (
                base.replace("\"Image\"", "\"Node\""),
                ExecError::CacheKeyType("Node".into()),
            ),
            (
                base.replace("\"cacheKeyType\":\"Image\",", ""),
                ExecError::CacheKeyType(String::new()),
            ),
            (
                base.replace("\"password\":\"SECRET-PW\"", "\"password\":5"),
                ExecError::Decode,
            ),
        ];
        for (text, want) in cases {
            let e = decode_response(V1, text.as_bytes()).unwrap_err();
            assert_eq!(e, want, "{text}");
            assert!(!e.to_string().contains("SECRET-PW"));
        }
    }

    #[test]
    fn stderr_loses_what_stdout_said() {
        let out = br#"{"auth":{"r":{"password":"hunter22-secret"}}}"#;
        let e = stderr_excerpt(b"oops: hunter22-secret\n\x1b[31mred", out);
        assert!(!e.contains("hunter22"), "{e}");
        assert!(e.starts_with("oops: <redacted>"), "{e}");
    }
}
