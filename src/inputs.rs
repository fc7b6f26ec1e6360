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
    /// kubelet's `--image-credential-provider-config` (a file or a directory).
    pub provider_config: Option<PathBuf>,
    /// kubelet's `--image-credential-provider-bin-dir`.
    pub provider_bin_dir: Option<PathBuf>,
    /// Kill a credential-provider run after this long; `None`: kubelet's one minute.
    pub provider_timeout: Option<Duration>,
    /// containerd's `config.toml`: its CRI `registry.configs."HOST".auth` credentials.
    pub containerd_config: Option<PathBuf>,
    /// The containerd image-pull path imitated (`--containerd-pull`).
    pub pull_path: PullPath,
}

/// The containerd image-pull path whose host-configuration lookup is imitated, where they
/// differ (`--containerd-pull`).
///
/// containerd's CRI plugin pulls through the transfer service by default since 2.1
/// (`internal/cri/server/images/image_pull.go` `pullImageWithTransferService`), unless
/// `use_local_image_pull = true` or an option the transfer service does not support forces the
/// local path (`internal/cri/config/config.go` `CheckLocalImagePullConfigs`: e.g.
/// `discard_unpacked_layers`, `registry.mirrors`). The two read `config_path` differently:
///
/// * **local** (containerd 1.x and 2.0; 2.1+ on the local path): `registryHosts` splits
///   `config_path` with `filepath.SplitList` and searches each root in order
///   (`hostDirFromRoots`);
/// * **transfer** (2.1+ default): `registry.WithHostDir(config_path)` hands the whole string to
///   `config.HostDirFromRoot` as **one** directory (`core/transfer/registry/registry.go`
///   `NewOCIRegistry`). With several roots, such as the Linux default
///   `/etc/containerd/certs.d:/etc/docker/certs.d` (`plugins/cri/images/plugin.go`), no
///   `hosts.toml` is ever found and every registry gets the default host (containerd issues
///   #12415, #12808; fixes proposed, not merged in the source read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPath {
    /// The local pull path: each root searched in order.
    #[default]
    Local,
    /// The transfer service: the `:`-joined roots taken as one directory.
    Transfer,
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
    /// kubelet's credential-provider configuration (`--image-credential-provider-*`).
    #[error(transparent)]
    Providers(#[from] crate::providers::ProviderConfigError),
    /// containerd's config (`--containerd-config`).
    #[error(transparent)]
    ContainerdConfig(#[from] crate::secrets::cri::CriConfigError),
}

/// The roots the pull path searches: unchanged for [`PullPath::Local`]; for
/// [`PullPath::Transfer`], two or more roots become the one directory named by their
/// `:`-joined paths, as `HostDirFromRoot(config_path)` takes them.
fn transfer_lookup(path: PullPath, dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    if path == PullPath::Local || dirs.len() < 2 {
        return dirs;
    }
    let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    vec![PathBuf::from(joined.join(":"))]
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
            return Ok(transfer_lookup(p.pull_path, p.hosts_dirs.clone()));
        }
        if p.pull_path == PullPath::Transfer {
            // containerd's `config_path` holds both defaults whether or not they exist.
            return Ok(transfer_lookup(
                p.pull_path,
                DEFAULT_HOSTS_DIRS.iter().map(PathBuf::from).collect(),
            ));
        }
        Ok(DEFAULT_HOSTS_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect())
    }

    /// kubelet's credential-provider plugins, when both `--image-credential-provider-config`
    /// and `--image-credential-provider-bin-dir` are given: the process-wide
    /// [`crate::providers::Providers`] of these settings, its config (re-)read.
    ///
    /// Errors: one flag without the other, a missing bin dir, a config kubelet refuses
    /// ([`crate::providers::ProviderConfigError`]); the last good config stays loaded.
    pub fn providers(&self) -> Result<Option<Arc<crate::providers::Providers>>, ConfigError> {
        use crate::providers::{ProviderConfigError, ProviderSettings};
        let p = &self.paths;
        let (config, bin_dir) = match (&p.provider_config, &p.provider_bin_dir) {
            (None, None) => return Ok(None),
            (Some(c), Some(b)) => (c.clone(), b.clone()),
            _ => return Err(ProviderConfigError::FlagPair.into()),
        };
        let providers = crate::providers::shared(&ProviderSettings {
            config,
            bin_dir,
            timeout: p
                .provider_timeout
                .unwrap_or(crate::providers::exec::KUBELET_TIMEOUT),
        });
        providers.load()?;
        Ok(Some(providers))
    }

    /// containerd's own registry credentials (`--containerd-config`), empty without the flag.
    ///
    /// Errors: an unreadable file or invalid TOML.
    pub fn cri_auths(&self) -> Result<crate::secrets::cri::CriAuths, ConfigError> {
        match &self.paths.containerd_config {
            Some(p) => Ok(crate::secrets::cri::read(p)?),
            None => Ok(Default::default()),
        }
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
        loaded.cri_auths = self.cri_auths()?;
        loaded
            .warnings
            .extend(loaded.cri_auths.warnings.iter().cloned());
        if let Some(providers) = self.providers()? {
            let mut images = self.images.clone();
            for w in &loaded.workloads {
                images.extend(w.images.iter().map(|i| i.image.clone()));
            }
            // `check --image`/`--pod-spec` walks images only: the hosts are not probed.
            let targets = self.images.is_empty() && pod_specs.is_empty();
            resolve_providers(&providers, &images, targets, &mut loaded);
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
    /// Credential-provider answers for the concrete `matchImages` hosts (their credentials are
    /// in `secrets` as `provider:NAME`, keyed by the host).
    pub provider_targets: Vec<crate::providers::Answer>,
    /// Credential-provider answers for each image (kubelet's `repoToPull`), looked up after
    /// the node's `config.json` for that image only.
    pub provider_images: Vec<crate::providers::Answer>,
    /// `(index into secrets, index into provider_targets)` of each target's secret.
    pub provider_target_secrets: Vec<(usize, usize)>,
    /// containerd's own registry credentials (`--containerd-config`).
    pub cri_auths: crate::secrets::cri::CriAuths,
}

/// Asks kubelet's credential providers for what `check` and `serve` probe: each concrete
/// `matchImages` host when `targets` (as a credential target, secret `provider:NAME` keyed by
/// the host) and
/// each image (kubelet's `repoToPull`; an image that does not parse is left to the planner's
/// error). A provider with only wildcard patterns and no image it serves gets a warning.
pub fn resolve_providers(
    providers: &crate::providers::Providers,
    images: &[String],
    targets: bool,
    loaded: &mut Loaded,
) {
    use crate::providers::{target_secret, AnswerSource};
    let targets: Vec<(String, Option<String>)> = providers
        .concrete_targets()
        .into_iter()
        .filter(|_| targets)
        .map(|(name, host)| (host, Some(name)))
        .collect();
    let mut repos: Vec<(String, Option<String>)> = Vec::new();
    for image in images {
        if let Ok(r) = crate::reference::parse(image) {
            let repo = r.repo_to_pull();
            if !repos.iter().any(|(x, _)| *x == repo) {
                repos.push((repo, None));
            }
        }
    }
    loaded.provider_targets = providers.resolve(&targets);
    loaded.provider_images = providers.resolve(&repos);
    for (ai, a) in loaded.provider_targets.iter().enumerate() {
        if let Some(s) = target_secret(a) {
            loaded
                .provider_target_secrets
                .push((loaded.secrets.len(), ai));
            loaded.warnings.extend(s.warnings.iter().cloned());
            let seconds = match &a.source {
                AnswerSource::Ran(run) => run.duration.as_secs_f64(),
                AnswerSource::Cached => 0.0,
            };
            loaded.seconds.push(seconds);
            loaded.secrets.push(s);
        }
    }
    for p in providers.providers().iter() {
        let asked = loaded.provider_images.iter().any(|a| a.provider == p.name);
        if !asked && p.match_images.iter().all(|m| m.contains(['*', '?', '['])) {
            loaded.warnings.push(format!(
                "credential provider {} matches only wildcard patterns ({}): it names no host to probe; give an image it serves with --image (a canary in serve) to probe its credentials",
                p.name,
                p.match_images.join(", ")
            ));
        }
    }
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
    #[test]
    fn the_transfer_pull_path_takes_several_roots_as_one_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(transfer_lookup(PullPath::Local, dirs.clone()), dirs);
        let joined = transfer_lookup(PullPath::Transfer, dirs.clone());
        assert_eq!(
            joined,
            vec![PathBuf::from(format!(
                "{}:{}",
                a.path().display(),
                b.path().display()
            ))]
        );
        // One root: both paths agree.
        assert_eq!(
            transfer_lookup(PullPath::Transfer, dirs[..1].to_vec()),
            dirs[..1].to_vec()
        );
        // The joined root names no directory: a hosts.toml in the first root is not found.
        let d = a.path().join("reg.example");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            "server = \"https://mirror.example\"\n",
        )
        .unwrap();
        let local = crate::hosts::hosts_for(&dirs, "reg.example").unwrap();
        assert_eq!(local.hosts.last().unwrap().host, "mirror.example");
        let transfer = crate::hosts::hosts_for(&joined, "reg.example").unwrap();
        assert_eq!(transfer.hosts.last().unwrap().host, "reg.example");
        // The defaults, on the transfer path: the joined Linux default.
        let i = inputs(InputPaths {
            default_paths: true,
            pull_path: PullPath::Transfer,
            ..InputPaths::default()
        });
        assert_eq!(
            i.hosts_dirs().unwrap(),
            vec![PathBuf::from("/etc/containerd/certs.d:/etc/docker/certs.d")]
        );
    }

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
    fn provider_flags_go_together() {
        let i = inputs(InputPaths {
            provider_config: Some("/nonexistent/c.yaml".into()),
            ..InputPaths::default()
        });
        let e = i.read(&[]).unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
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
