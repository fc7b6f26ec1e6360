//! Resolved inputs: what `check` and `serve` read and how their probes reach registries, in
//! plain types (no clap). [`crate::cli`] turns its flags into an [`Inputs`] and does nothing
//! else with them; `check` ([`Inputs::read`]) and the daemon ([`crate::scheduler`],
//! [`crate::watch`]) use only this.
//!
//! Default paths are looked up each time the inputs are read, not once: a default directory
//! that appears later is picked up by the daemon's next reload. Explicitly named paths must
//! exist ([`ConfigError`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::podspec::Workload;
use crate::probe::credential::ProbeEnv;
use crate::probe::tls::NodeRoots;
use crate::probe::transport::{ResolveOverride, Timeouts, Transport, TransportOptions};
use crate::secrets::{load_all_with_warnings, LoadError, Secret, SecretSources};

/// Default mount point of the pull secrets in the DaemonSet.
pub const DEFAULT_SECRETS_DIR: &str = "/etc/regprobe/secrets";
/// Default node keyring (kubelet's `--root-dir`/config.json).
pub const DEFAULT_NODE_CONFIG: &str = "/var/lib/kubelet/config.json";
/// Default containerd host configuration roots (containerd's Linux `config_path` default).
pub const DEFAULT_HOSTS_DIRS: [&str; 2] = ["/etc/containerd/certs.d", "/etc/docker/certs.d"];

/// Inputs and probe settings shared by `serve` and `check`.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Where secrets and host configuration are read from.
    pub paths: InputPaths,
    /// How probes reach registries.
    pub network: Network,
    /// Probes in flight at most (0 counts as 1).
    pub concurrency: usize,
    /// Canary images, as written in a pod spec.
    pub images: Vec<String>,
    /// Try every matching credential of an image, not only up to the first that works.
    pub audit_all: bool,
    /// Caps on secrets, entries per secret and probes per cycle.
    pub caps: crate::plan::caps::Caps,
}

/// The paths named on the command line, before defaults are added.
#[derive(Debug, Clone, Default)]
pub struct InputPaths {
    /// Directories of mounted Secrets: `DIR/<name>/.dockerconfigjson`.
    pub secrets_dirs: Vec<PathBuf>,
    /// Secret files or manifests; `-` is standard input.
    pub secret_files: Vec<PathBuf>,
    /// The node's kubelet `config.json`.
    pub node_config: Option<PathBuf>,
    /// containerd host configuration roots: `DIR/<host[:port]>/hosts.toml`.
    pub hosts_dirs: Vec<PathBuf>,
    /// Add the default paths that exist where none is named (false: `--no-default-paths`).
    pub default_paths: bool,
}

/// Transport settings of every probe.
#[derive(Debug, Clone)]
pub struct Network {
    /// Budget for one probe.
    pub timeout: Duration,
    /// DNS server asked instead of `/etc/resolv.conf`.
    pub dns_server: Option<SocketAddr>,
    /// `HOST:PORT` → address overrides, as curl's `--resolve`.
    pub resolve: Vec<ResolveOverride>,
    /// Ignore `HTTPS_PROXY` / `HTTP_PROXY` from the environment.
    pub no_proxy: bool,
}

/// A configuration error: explicit inputs missing or unreadable, or a bad setting. `check`
/// and `serve` exit 2 on it; the daemon's reloads keep their last good state.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A secret input.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::LoadError),
    /// The host configuration.
    #[error(transparent)]
    Hosts(#[from] crate::hosts::HostsError),
    /// A directory named with `--hosts-dir` does not exist.
    #[error("--hosts-dir {0}: no such directory")]
    HostsDirMissing(PathBuf),
    /// The transport could not be built.
    #[error(transparent)]
    Transport(#[from] crate::probe::transport::TransportInitError),
    /// A `--image` is not a valid reference (as containerd and kubelet parse it).
    #[error("--image {image:?}: {error}")]
    Image {
        /// The value given.
        image: String,
        /// Why.
        error: crate::reference::ReferenceError,
    },
    /// A `--pod-spec` that cannot be read or parsed.
    #[error(transparent)]
    PodSpec(#[from] crate::podspec::PodSpecError),
    /// Standard input named more than once (`--secret -` and `--pod-spec -`).
    #[error("--secret - / --pod-spec -: standard input can be read only once")]
    StdinTwice,
}

impl Inputs {
    /// The secret sources: explicit ones, plus the defaults that exist (unless disabled).
    pub fn sources(&self) -> SecretSources {
        let p = &self.paths;
        let mut secrets_dirs = p.secrets_dirs.clone();
        if secrets_dirs.is_empty() && p.default_paths && Path::new(DEFAULT_SECRETS_DIR).is_dir() {
            secrets_dirs.push(DEFAULT_SECRETS_DIR.into());
        }
        let node_config = p.node_config.clone().or_else(|| {
            (p.default_paths && Path::new(DEFAULT_NODE_CONFIG).is_file())
                .then(|| DEFAULT_NODE_CONFIG.into())
        });
        SecretSources {
            secrets_dirs,
            secret_files: p.secret_files.clone(),
            node_config,
        }
    }

    /// The host configuration roots: explicit ones, or the defaults that exist.
    ///
    /// Errors: [`ConfigError::HostsDirMissing`] for a named directory that does not exist.
    pub fn hosts_dirs(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let p = &self.paths;
        for d in &p.hosts_dirs {
            if !d.is_dir() {
                return Err(ConfigError::HostsDirMissing(d.clone()));
            }
        }
        if !p.hosts_dirs.is_empty() || !p.default_paths {
            return Ok(p.hosts_dirs.clone());
        }
        Ok(DEFAULT_HOSTS_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect())
    }

    /// Builds what every probe shares: the transport and the node's CA bundle.
    ///
    /// Errors: [`ConfigError::Transport`].
    pub fn probe_env(&self) -> Result<ProbeEnv, ConfigError> {
        let n = &self.network;
        let transport = Transport::new(TransportOptions {
            dns_server: n.dns_server,
            overrides: n.resolve.clone(),
            timeouts: Timeouts::default(),
            no_proxy: n.no_proxy,
            user_agent: String::new(),
        })?;
        Ok(ProbeEnv {
            transport: Arc::new(transport),
            tls: Arc::new(crate::probe::exchange::TlsConfigs::new(NodeRoots::load())),
            timeout: n.timeout,
        })
    }

    /// Reads what `check` needs before probing: every secret (timed), the host configuration
    /// roots and the workloads of `pod_specs`.
    ///
    /// Errors: standard input named twice, an unreadable secret source, a missing
    /// `--hosts-dir`, a pod spec that cannot be read or parsed.
    pub fn read(&self, pod_specs: &[PathBuf]) -> Result<Loaded, ConfigError> {
        let sources = self.sources();
        let stdin_readers = sources
            .secret_files
            .iter()
            .chain(pod_specs)
            .filter(|p| p.as_os_str() == "-")
            .count();
        if stdin_readers > 1 {
            return Err(ConfigError::StdinTwice);
        }
        let mut loaded = load_secrets_timed(&sources)?;
        crate::plan::caps::limit_secrets(&mut loaded.secrets, &self.caps);
        loaded.seconds.truncate(loaded.secrets.len());
        loaded.hosts_dirs = self.hosts_dirs()?;
        for path in pod_specs {
            let specs = crate::podspec::load(path)?;
            loaded.warnings.extend(specs.warnings);
            loaded.workloads.extend(specs.workloads);
        }
        Ok(loaded)
    }
}

/// What `check` read: secrets in the order of [`crate::secrets::load_all`], each with its load time, the
/// input warnings, the host configuration roots and the `--pod-spec` workloads.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The secrets, valid or not.
    pub secrets: Vec<Secret>,
    /// Seconds each secret took to read and parse (a directory's time shared by its secrets);
    /// one per secret.
    pub seconds: Vec<f64>,
    /// Input warnings (duplicate secret ids, skipped documents of a pod spec, ...).
    pub warnings: Vec<String>,
    /// The host configuration roots.
    pub hosts_dirs: Vec<PathBuf>,
    /// The workloads of every `--pod-spec`, in order.
    pub workloads: Vec<Workload>,
}

/// Loads every secret source one at a time, to time each: the secrets come in the order of
/// [`load_all`]; a directory's time is shared by its secrets.
fn load_secrets_timed(sources: &SecretSources) -> Result<Loaded, LoadError> {
    let mut secrets = Vec::new();
    let mut times = Vec::new();
    let mut warnings = Vec::new();
    let mut one = |src: SecretSources| -> Result<(), LoadError> {
        let started = Instant::now();
        let loaded = load_all_with_warnings(&src)?;
        let each = started.elapsed().as_secs_f64() / loaded.secrets.len().max(1) as f64;
        times.extend(std::iter::repeat_n(each, loaded.secrets.len()));
        secrets.extend(loaded.secrets);
        warnings.extend(loaded.warnings);
        Ok(())
    };
    for d in &sources.secrets_dirs {
        one(SecretSources {
            secrets_dirs: vec![d.clone()],
            ..SecretSources::default()
        })?;
    }
    for f in &sources.secret_files {
        one(SecretSources {
            secret_files: vec![f.clone()],
            ..SecretSources::default()
        })?;
    }
    if let Some(n) = &sources.node_config {
        one(SecretSources {
            node_config: Some(n.clone()),
            ..SecretSources::default()
        })?;
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &secrets {
        *counts.entry(s.id.as_str()).or_default() += 1;
    }
    for (id, n) in counts.into_iter().filter(|(_, n)| *n > 1) {
        warnings.push(format!(
            "secret id \"{id}\" is used by {n} inputs; their metrics share the same secret label"
        ));
    }
    Ok(Loaded {
        secrets,
        seconds: times,
        warnings,
        ..Loaded::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(paths: InputPaths) -> Inputs {
        Inputs {
            paths,
            network: Network {
                timeout: Duration::from_secs(1),
                dns_server: None,
                resolve: Vec::new(),
                no_proxy: true,
            },
            concurrency: 1,
            images: Vec::new(),
            audit_all: false,
            caps: Default::default(),
        }
    }

    #[test]
    fn without_default_paths_only_what_is_named_is_read() {
        let i = inputs(InputPaths::default());
        assert_eq!(i.sources(), SecretSources::default());
        assert!(i.hosts_dirs().unwrap().is_empty());
    }

    #[test]
    fn a_named_hosts_dir_must_exist() {
        let i = inputs(InputPaths {
            hosts_dirs: vec!["/nonexistent/regprobe-hosts".into()],
            ..InputPaths::default()
        });
        let e = i.hosts_dirs().unwrap_err();
        assert_eq!(
            e.to_string(),
            "--hosts-dir /nonexistent/regprobe-hosts: no such directory"
        );
    }

    #[test]
    fn standard_input_is_read_only_once() {
        let i = inputs(InputPaths {
            secret_files: vec!["-".into()],
            ..InputPaths::default()
        });
        let e = i.read(&["-".into()]).unwrap_err();
        assert!(matches!(e, ConfigError::StdinTwice), "{e:?}");
    }

    #[test]
    fn each_secret_is_timed_and_shared_ids_are_warned_about() {
        let root = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for d in ["a", "b"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
            let f = root.path().join(d).join("regcred.json");
            std::fs::write(&f, r#"{"auths":{"r.example":{"auth":"dTpw"}}}"#).unwrap();
            files.push(f);
        }
        let i = inputs(InputPaths {
            secret_files: files,
            ..InputPaths::default()
        });
        let loaded = i.read(&[]).unwrap();
        assert_eq!(loaded.secrets.len(), 2);
        assert_eq!(loaded.seconds.len(), 2);
        assert!(loaded.workloads.is_empty());
        assert_eq!(
            loaded.warnings,
            vec![
                "secret id \"regcred\" is used by 2 inputs; their metrics share the same secret label"
                    .to_string()
            ]
        );
    }
}
