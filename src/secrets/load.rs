//! Reading secrets from `--secrets-dir`, `--secret` and `--node-config` (`docs/metrics.md`).
//!
//! An explicitly named path that does not exist or cannot be read is a configuration error
//! ([`LoadError`], the CLI exits 2). A file that exists but does not parse is not: it becomes a
//! [`Secret`] with `entries: Err(..)` so that the other secrets keep probing.
//!
//! `--secrets-dir DIR` accepts both ways kubelet mounts secrets (kubelet's `AtomicWriter`,
//! `pkg/volume/util/atomic_writer.go`: files live in a timestamped `..<ts>` directory, `..data`
//! is a symlink to it, and each user-visible name is a symlink through `..data`):
//!
//! * one Secret volume per `DIR/<name>`: `DIR/<name>/..data -> ..<ts>`,
//!   `DIR/<name>/.dockerconfigjson -> ..data/.dockerconfigjson`;
//! * one projected volume at `DIR`: `DIR/..data -> ..<ts>`, `DIR/<name> -> ..data/<name>`, items at
//!   `DIR/<name>/.dockerconfigjson` (or `.dockercfg`).
//!
//! Names starting with `.` at the top of `DIR` (`..data`, `..<ts>`, `..data_tmp`) are skipped, and
//! every path is read through its symlinks on each load, so a kubelet update (new `..<ts>`, atomic
//! rename of `..data`) is picked up by the next load.

use super::dockerconfig::{
    dockercfg_from, dockerconfigjson_from, has_auths_key, parse_dockercfg, parse_dockerconfigjson,
    parse_json, JVal, Parsed,
};
use super::manifest::{secrets_from_manifest, ManifestSyntax};
use super::{Secret, SecretError, SecretKind, MAX_FILE_BYTES};
use secrecy::zeroize::Zeroizing;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The credential sources regprobe is pointed at (the CLI's flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSources {
    /// `--secrets-dir DIR` (repeatable): each `DIR/<name>` holding `.dockerconfigjson` or
    /// `.dockercfg` is one secret with id `<name>`.
    pub secrets_dirs: Vec<PathBuf>,
    /// `--secret FILE` (repeatable; `-` is standard input): a dockerconfigjson / dockercfg /
    /// `config.json` file or a Kubernetes Secret manifest (YAML or JSON, `Secret` or `List`).
    pub secret_files: Vec<PathBuf>,
    /// `--node-config FILE`: kubelet's node `config.json`; id `node`.
    pub node_config: Option<PathBuf>,
}

/// Secrets plus the warnings about inputs that gave no secret (skipped directories, empty
/// manifests, duplicate ids). Warnings never contain secret material.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `--secrets-dir` secrets (per directory, sorted by id), then `--secret` files in the given
    /// order, then the node config.
    pub secrets: Vec<Secret>,
    /// Input-level warnings; per-secret warnings are in [`Secret::warnings`].
    pub warnings: Vec<String>,
}

/// A configuration error: an explicitly named input is missing or unreadable (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The path does not exist.
    #[error("{flag} {}: no such file or directory", .path.display())]
    NotFound {
        /// The flag that named it: `--secrets-dir`, `--secret` or `--node-config`.
        flag: &'static str,
        /// The path as given.
        path: PathBuf,
    },
    /// The path exists but cannot be read (permissions, I/O error).
    #[error("{flag} {}: cannot be read: {source}", .path.display())]
    Unreadable {
        /// The flag that named it.
        flag: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `--secrets-dir` names something that is not a directory.
    #[error("{flag} {}: not a directory", .path.display())]
    NotADirectory {
        /// The flag that named it.
        flag: &'static str,
        /// The path as given.
        path: PathBuf,
    },
    /// `--secret` / `--node-config` names a directory.
    #[error("{flag} {}: is a directory, expected a file", .path.display())]
    NotAFile {
        /// The flag that named it.
        flag: &'static str,
        /// The path as given.
        path: PathBuf,
    },
    /// `--secret -` was given more than once.
    #[error("--secret -: standard input can be read only once")]
    StdinTwice,
    /// `--secret` names a manifest (or a `List` item) of another kind, such as a ConfigMap: a
    /// wrong file, not a pull secret kubelet would reject.
    #[error(
        "{flag} {}: manifest kind {} is not a Secret (give the pull secret: `kubectl get secret NAME -o yaml`)",
        .path.display(),
        if .kind.is_empty() { "(missing)".to_string() } else { format!("\"{}\"", .kind) }
    )]
    NotASecret {
        /// The flag that named it.
        flag: &'static str,
        /// The path as given (`-` for standard input).
        path: PathBuf,
        /// The manifest's `kind`, empty if missing.
        kind: String,
    },
}

const SECRETS_DIR: &str = "--secrets-dir";
const SECRET: &str = "--secret";
const NODE_CONFIG: &str = "--node-config";

/// Loads every source; input-level warnings are logged with `tracing::warn!`.
///
/// Returns `--secrets-dir` secrets (per directory, sorted by id), then `--secret` secrets (a file
/// may hold several: a manifest `List`), then the node config. Errors: see [`LoadError`].
pub fn load_all(sources: &SecretSources) -> Result<Vec<Secret>, LoadError> {
    let loaded = load_all_with_warnings(sources)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded.secrets)
}

/// Like [`load_all`], but returns the input-level warnings instead of logging them.
pub fn load_all_with_warnings(sources: &SecretSources) -> Result<Loaded, LoadError> {
    let mut secrets = Vec::new();
    let mut warnings = Vec::new();
    for dir in &sources.secrets_dirs {
        secrets.extend(load_secrets_dir(dir, &mut warnings)?);
    }
    let mut stdin_used = false;
    for file in &sources.secret_files {
        let found = if file.as_os_str() == "-" {
            if stdin_used {
                return Err(LoadError::StdinTwice);
            }
            stdin_used = true;
            let bytes = read_limited(io::stdin().lock(), 0);
            match bytes {
                Ok(bytes) => parse_secret_content(&bytes, "stdin", file),
                Err(ReadFail::TooLarge) => vec![failed(
                    "stdin",
                    file,
                    SecretError::TooLarge {
                        limit: MAX_FILE_BYTES,
                    },
                )],
                Err(ReadFail::Io(source)) => {
                    return Err(LoadError::Unreadable {
                        flag: SECRET,
                        path: file.clone(),
                        source,
                    })
                }
            }
        } else {
            load_secret_file(file)?
        };
        if let Some(kind) = found.iter().find_map(|s| match &s.entries {
            Err(SecretError::ManifestNotASecret { kind }) => Some(kind.clone()),
            _ => None,
        }) {
            return Err(LoadError::NotASecret {
                flag: SECRET,
                path: file.clone(),
                kind,
            });
        }
        if found.is_empty() {
            warnings.push(format!(
                "{SECRET} {}: the manifest holds no Secrets",
                file.display()
            ));
        }
        secrets.extend(found);
    }
    if let Some(path) = &sources.node_config {
        secrets.push(load_node_config(path)?);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &secrets {
        *counts.entry(s.id.as_str()).or_default() += 1;
    }
    for (id, n) in counts.into_iter().filter(|(_, n)| *n > 1) {
        warnings.push(format!(
            "secret id \"{id}\" is used by {n} inputs; their metrics share the same secret label"
        ));
    }
    Ok(Loaded { secrets, warnings })
}

/// Loads the secrets of one `--secrets-dir` (either kubelet layout), sorted by id.
///
/// A subdirectory with neither `.dockerconfigjson` nor `.dockercfg`, a non-directory entry and a
/// dangling entry are skipped with a warning. If both files exist, `.dockerconfigjson` is used (a
/// warning on the secret). A secret file that cannot be read gives `entries:
/// Err(SecretError::Io)`. Errors: `dir` missing, unreadable or not a directory.
pub fn load_secrets_dir(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<Secret>, LoadError> {
    let unreadable = |source| LoadError::Unreadable {
        flag: SECRETS_DIR,
        path: dir.to_path_buf(),
        source,
    };
    let meta = fs::metadata(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LoadError::NotFound {
            flag: SECRETS_DIR,
            path: dir.to_path_buf(),
        },
        _ => unreadable(e),
    })?;
    if !meta.is_dir() {
        return Err(LoadError::NotADirectory {
            flag: SECRETS_DIR,
            path: dir.to_path_buf(),
        });
    }
    let mut secrets = Vec::new();
    let mut single_volume = false;
    let mut entries = 0usize;
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            warnings.push(format!(
                "{SECRETS_DIR} {}: skipped, name is not UTF-8",
                path.display()
            ));
            continue;
        };
        if name.starts_with('.') {
            single_volume |= name == ".dockerconfigjson" || name == ".dockercfg";
            continue;
        }
        entries += 1;
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) if is_manifest_name(&name) => {
                // `kubectl get secret NAME -o yaml > DIR/NAME.yaml`: read as `--secret` reads it.
                let found = match read_file(&path) {
                    Ok(bytes) => parse_secret_content(&bytes, &file_id(&path), &path),
                    Err(fail) => vec![failed(
                        &file_id(&path),
                        &path,
                        fail.into_secret_error(&path),
                    )],
                };
                warnings.push(format!(
                    "{SECRETS_DIR} {}: a file, read as `{SECRET} {}` would read it ({}); the layout \
                     expected is {}/<name>/.dockerconfigjson, one directory per Secret as kubelet mounts them",
                    path.display(),
                    path.display(),
                    found_ids(&found),
                    dir.display()
                ));
                secrets.extend(found);
                continue;
            }
            Ok(_) => {
                warnings.push(format!(
                    "{SECRETS_DIR} {}: skipped, not a directory (expected {}/<name>/.dockerconfigjson)",
                    path.display(),
                    dir.display()
                ));
                continue;
            }
            Err(e) => {
                warnings.push(format!("{SECRETS_DIR} {}: skipped, {e}", path.display()));
                continue;
            }
        }
        let json = path.join(".dockerconfigjson");
        let cfg = path.join(".dockercfg");
        let exists = |p: &Path| fs::symlink_metadata(p).is_ok();
        let (has_json, has_cfg) = (exists(&json), exists(&cfg));
        let (file, kind) = match (has_json, has_cfg) {
            (true, _) => (json, SecretKind::DockerConfigJson),
            (false, true) => (cfg, SecretKind::DockerCfg),
            (false, false) => {
                warnings.push(format!(
                    "{SECRETS_DIR} {}: skipped, has neither .dockerconfigjson nor .dockercfg",
                    path.display()
                ));
                continue;
            }
        };
        let mut secret = match read_file(&file) {
            Ok(bytes) => {
                let parsed = match kind {
                    SecretKind::DockerCfg => parse_dockercfg(&bytes),
                    _ => parse_dockerconfigjson(&bytes),
                };
                from_parsed(name, file, kind, parsed)
            }
            Err(fail) => {
                let error = fail.into_secret_error(&file);
                Secret {
                    id: name,
                    path: file,
                    kind,
                    entries: Err(error),
                    warnings: Vec::new(),
                }
            }
        };
        if has_json && has_cfg {
            secret
                .warnings
                .push(".dockercfg is ignored: .dockerconfigjson is present".to_string());
        }
        secrets.push(secret);
    }
    if single_volume && entries == 0 {
        // One Secret volume's mount point given as the root: unambiguous, read it as that secret.
        for (file, kind) in [
            (dir.join(".dockerconfigjson"), SecretKind::DockerConfigJson),
            (dir.join(".dockercfg"), SecretKind::DockerCfg),
        ] {
            if fs::symlink_metadata(&file).is_err() {
                continue;
            }
            let id = file_id(&file);
            warnings.push(format!(
                "{SECRETS_DIR} {}: holds {} itself, read as the one secret \"{id}\" (the mount point \
                 of a single Secret); the layout expected is {}/<name>/.dockerconfigjson",
                dir.display(),
                file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                dir.display()
            ));
            secrets.push(match read_file(&file) {
                Ok(bytes) => {
                    let parsed = match kind {
                        SecretKind::DockerCfg => parse_dockercfg(&bytes),
                        _ => parse_dockerconfigjson(&bytes),
                    };
                    from_parsed(id, file, kind, parsed)
                }
                Err(fail) => {
                    let error = fail.into_secret_error(&file);
                    failed(&id, &file, error)
                }
            });
            break;
        }
    } else if single_volume {
        warnings.push(format!(
            "{SECRETS_DIR} {}: holds a .dockerconfigjson/.dockercfg itself, which is ignored; it looks \
             like a single secret volume: mount secrets at {}/<name>, or use {SECRET} on the file",
            dir.display(),
            dir.display()
        ));
    }
    if entries == 0 && !single_volume {
        warnings.push(format!(
            "{SECRETS_DIR} {}: is empty; the layout expected is {}/<name>/.dockerconfigjson, one \
             directory per Secret as kubelet mounts them",
            dir.display(),
            dir.display()
        ));
    }
    secrets.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.path.cmp(&b.path)));
    Ok(secrets)
}

/// A top-level file of a `--secrets-dir` read as a manifest (`kubectl get secret -o yaml|json`).
fn is_manifest_name(name: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// `secret "a", secret "b"` or `no secret`, for a warning.
fn found_ids(found: &[Secret]) -> String {
    if found.is_empty() {
        return "no secret".to_string();
    }
    found
        .iter()
        .map(|s| format!("secret \"{}\"", s.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads one `--secret FILE` (not `-`): see [`parse_secret_content`]. A file over 4 MiB gives a
/// secret with [`SecretError::TooLarge`]. Errors: missing, unreadable, or a directory.
pub fn load_secret_file(path: &Path) -> Result<Vec<Secret>, LoadError> {
    let id = file_id(path);
    match read_explicit(path, SECRET)? {
        Some(bytes) => Ok(parse_secret_content(&bytes, &id, path)),
        None => Ok(vec![failed(
            &id,
            path,
            SecretError::TooLarge {
                limit: MAX_FILE_BYTES,
            },
        )]),
    }
}

/// Loads kubelet's node `config.json` (`--node-config`), id `node`, kind
/// [`SecretKind::NodeConfig`]. Read as `{"auths": ...}` (only `auths`; `credsStore`/`credHelpers`
/// are ignored, as by kubelet), or as legacy dockercfg if the file is named `.dockercfg` (kubelet
/// falls back to that file). Source: kubernetes `pkg/credentialprovider/config.go`
/// `ReadDockerConfigFile`. Errors: missing, unreadable, or a directory.
pub fn load_node_config(path: &Path) -> Result<Secret, LoadError> {
    let legacy = path.file_name().is_some_and(|n| n == ".dockercfg");
    Ok(match read_explicit(path, NODE_CONFIG)? {
        Some(bytes) => {
            let parsed = if legacy {
                parse_dockercfg(&bytes)
            } else {
                parse_dockerconfigjson(&bytes)
            };
            from_parsed(
                "node".to_string(),
                path.to_path_buf(),
                SecretKind::NodeConfig,
                parsed,
            )
        }
        None => Secret {
            id: "node".to_string(),
            path: path.to_path_buf(),
            kind: SecretKind::NodeConfig,
            entries: Err(SecretError::TooLarge {
                limit: MAX_FILE_BYTES,
            }),
            warnings: Vec::new(),
        },
    })
}

/// Parses the content of a `--secret` file, detecting its format by content:
///
/// * a JSON object with `auths` (matched as Go matches it): a `.dockerconfigjson` / `config.json`;
/// * a JSON object with `kind` `Secret`, `List` or `SecretList`: a Kubernetes manifest;
/// * another JSON object: a legacy `.dockercfg`;
/// * not JSON, with a line starting `kind:`, `apiVersion:` or `---`: a YAML manifest (several
///   documents allowed);
/// * anything else: the JSON error.
///
/// `fallback_id` names a secret whose manifest has no `metadata.name` (and every non-manifest
/// secret); `path` is recorded. Returns several secrets for a `List`, none for an empty one.
pub fn parse_secret_content(bytes: &[u8], fallback_id: &str, path: &Path) -> Vec<Secret> {
    let root = match parse_json(bytes) {
        Ok(root) => root,
        Err(json_error) => {
            if matches!(json_error, SecretError::Json { .. }) && looks_like_yaml_manifest(bytes) {
                return manifest_or_failed(bytes, ManifestSyntax::Yaml, fallback_id, path);
            }
            return vec![failed(fallback_id, path, json_error)];
        }
    };
    let id = fallback_id.to_string();
    let path_buf = path.to_path_buf();
    if has_auths_key(&root) {
        let parsed = dockerconfigjson_from(root);
        return vec![from_parsed(
            id,
            path_buf,
            SecretKind::DockerConfigJson,
            parsed,
        )];
    }
    if matches!(
        root.member_str("kind"),
        Some("Secret" | "List" | "SecretList")
    ) {
        return manifest_or_failed(bytes, ManifestSyntax::Json, fallback_id, path);
    }
    match root {
        JVal::Object(_) => {
            let parsed = dockercfg_from(root);
            vec![from_parsed(id, path_buf, SecretKind::DockerCfg, parsed)]
        }
        other => vec![failed(
            fallback_id,
            path,
            SecretError::NotAnObject {
                found: other.type_name(),
            },
        )],
    }
}

/// The id of a `--secret` file: its name without extension; for a dot-file such as
/// `.dockerconfigjson`, the nearest parent directory whose name does not start with `.` (so
/// `regcred/..data/.dockerconfigjson` is `regcred`), else the name without its dot.
pub fn file_id(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(bare) = name.strip_prefix('.').filter(|b| !b.contains('.')) {
        let parent = path
            .ancestors()
            .skip(1)
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .find(|n| !n.starts_with('.'));
        return match parent {
            Some(parent) => parent,
            None if bare.is_empty() => "secret".to_string(),
            None => bare.to_string(),
        };
    }
    match Path::new(&name).file_stem() {
        Some(stem) if !stem.is_empty() => stem.to_string_lossy().into_owned(),
        _ => "secret".to_string(),
    }
}

fn manifest_or_failed(
    bytes: &[u8],
    syntax: ManifestSyntax,
    fallback_id: &str,
    path: &Path,
) -> Vec<Secret> {
    secrets_from_manifest(bytes, syntax, fallback_id, path)
        .unwrap_or_else(|e| vec![failed(fallback_id, path, e)])
}

fn looks_like_yaml_manifest(bytes: &[u8]) -> bool {
    bytes.split(|b| *b == b'\n').any(|line| {
        line.starts_with(b"kind:") || line.starts_with(b"apiVersion:") || line.starts_with(b"---")
    })
}

fn from_parsed(id: String, path: PathBuf, kind: SecretKind, parsed: Parsed) -> Secret {
    Secret {
        id,
        path,
        kind,
        entries: parsed.entries,
        warnings: parsed.warnings,
    }
}

fn failed(id: &str, path: &Path, error: SecretError) -> Secret {
    Secret {
        id: id.to_string(),
        path: path.to_path_buf(),
        kind: SecretKind::Unknown,
        entries: Err(error),
        warnings: Vec::new(),
    }
}

enum ReadFail {
    Io(io::Error),
    TooLarge,
}

impl ReadFail {
    fn into_secret_error(self, path: &Path) -> SecretError {
        match self {
            ReadFail::Io(source) => SecretError::Io {
                path: path.to_path_buf(),
                source: Arc::new(source),
            },
            ReadFail::TooLarge => SecretError::TooLarge {
                limit: MAX_FILE_BYTES,
            },
        }
    }
}

/// Reads an explicitly named file: missing/unreadable/directory are [`LoadError`]s; `Ok(None)`
/// when it is over the size limit.
fn read_explicit(path: &Path, flag: &'static str) -> Result<Option<Zeroizing<Vec<u8>>>, LoadError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LoadError::NotFound {
            flag,
            path: path.to_path_buf(),
        },
        _ => LoadError::Unreadable {
            flag,
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Err(LoadError::NotAFile {
            flag,
            path: path.to_path_buf(),
        });
    }
    match read_file(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadFail::TooLarge) => Ok(None),
        Err(ReadFail::Io(source)) => Err(LoadError::Unreadable {
            flag,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// [`crate::fsread::read_file`] under [`MAX_FILE_BYTES`]: regular files only (a FIFO named
/// `.dockerconfigjson` is an error, not a hang), read with a timeout.
fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, ReadFail> {
    crate::fsread::read_file(path, MAX_FILE_BYTES).map_err(ReadFail::from)
}

/// Standard input, at most [`MAX_FILE_BYTES`].
fn read_limited(reader: impl Read, _size_hint: usize) -> Result<Zeroizing<Vec<u8>>, ReadFail> {
    crate::fsread::read_limited(reader, MAX_FILE_BYTES).map_err(ReadFail::from)
}

impl From<crate::fsread::ReadError> for ReadFail {
    fn from(e: crate::fsread::ReadError) -> Self {
        match e {
            crate::fsread::ReadError::TooLarge { .. } => ReadFail::TooLarge,
            other => ReadFail::Io(other.into()),
        }
    }
}

#[cfg(test)]
mod tests;
