//! Command-line interface: `regprobe serve` and `regprobe check`.
//!
//! Flags follow `shared/spec/metrics.md` ("Inputs", "Commands"); flags added beyond the
//! contract are documented in the README. Exit status of `check`: 0 when every probe
//! succeeded, 1 when any failed, 2 on a usage or configuration error ([`ExitCode`]).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plan::{plan, plan_images, ImagePlan, Plan};
use crate::probe::credential::{probe_credential, ProbeEnv};
use crate::probe::pull::{image_pullable, probe_image};
use crate::probe::tls::NodeRoots;
use crate::probe::transport::{ResolveOverride, Timeouts, Transport, TransportOptions};
use crate::probe::ProbeResult;
use crate::report::text::{render, render_image, Style};
use crate::secrets::{load_all, Secret, SecretSources};

/// Default mount point of the pull secrets in the DaemonSet.
pub const DEFAULT_SECRETS_DIR: &str = "/etc/regprobe/secrets";
/// Default node keyring (kubelet's `--root-dir`/config.json).
pub const DEFAULT_NODE_CONFIG: &str = "/var/lib/kubelet/config.json";
/// Default containerd host configuration roots (containerd's Linux `config_path` default).
pub const DEFAULT_HOSTS_DIRS: [&str; 2] = ["/etc/containerd/certs.d", "/etc/docker/certs.d"];

/// Process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every probe succeeded.
    Ok = 0,
    /// At least one probe failed.
    Failed = 1,
    /// Usage or configuration error.
    Config = 2,
}

/// regprobe: is it the pull secret or the network?
#[derive(Debug, Parser)]
#[command(
    name = "regprobe",
    version,
    about = "Checks, from the node, whether image pull secrets work against their registries, and whether the credential or the network is to blame.",
    long_about = None
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing filter such as `regprobe=debug`).
    #[arg(long, global = true, default_value = "info", env = "REGPROBE_LOG")]
    pub log_level: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: probe every credential on an interval and serve metrics.
    Serve(ServeArgs),
    /// Probe once now, print the diagnosis, exit 0 (all ok), 1 (a probe failed) or 2 (bad input).
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
}

const CHECK_EXAMPLES: &str = "Examples:
  # every secret mounted in the DaemonSet, and the node's kubelet config.json
  regprobe check
  # a secret saved from the cluster
  kubectl get secret regcred -o yaml > s.yaml; regprobe check --secret s.yaml
  # only one registry, as JSON
  regprobe check --secret s.yaml --registry registry.example.com --output json
  # a registry name that DNS does not know yet
  regprobe check --secret s.yaml --resolve registry.example.com:443:10.1.2.3";

/// Inputs and probe settings shared by `serve` and `check`.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Directory of mounted Secrets: DIR/<name>/.dockerconfigjson (repeatable).
    /// Default: /etc/regprobe/secrets if present.
    #[arg(long = "secrets-dir", value_name = "DIR")]
    pub secrets_dirs: Vec<PathBuf>,
    /// A .dockerconfigjson / .dockercfg / config.json file or a Kubernetes Secret manifest
    /// (YAML or JSON); `-` reads standard input (repeatable).
    #[arg(long = "secret", value_name = "FILE")]
    pub secrets: Vec<PathBuf>,
    /// The node's kubelet config.json (secret id `node`).
    /// Default: /var/lib/kubelet/config.json if present.
    #[arg(long = "node-config", value_name = "FILE")]
    pub node_config: Option<PathBuf>,
    /// containerd host configuration root: DIR/<host[:port]>/hosts.toml and *.crt (repeatable).
    /// Default: /etc/containerd/certs.d and /etc/docker/certs.d when present.
    #[arg(long = "hosts-dir", value_name = "DIR")]
    pub hosts_dirs: Vec<PathBuf>,
    /// Ignore the default paths; read only what is named on the command line.
    #[arg(long)]
    pub no_default_paths: bool,
    /// Budget for one probe.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub timeout: Duration,
    /// Ask this DNS server instead of /etc/resolv.conf (`ADDR` or `ADDR:PORT`).
    #[arg(long = "dns-server", value_parser = parse_dns_server, value_name = "ADDR[:PORT]")]
    pub dns_server: Option<SocketAddr>,
    /// Connect to ADDR for HOST:PORT without asking DNS, as curl's --resolve (repeatable).
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<ResolveOverride>,
    /// Probes in flight at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Ignore HTTPS_PROXY / HTTP_PROXY from the environment.
    #[arg(long)]
    pub no_proxy: bool,
    /// Canary image, as written in a pod spec: checked as kubelet and containerd would pull it
    /// (keyring lookup, then manifest HEAD on each host) (repeatable). With `check`, only the
    /// images are probed.
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<String>,
    /// Try every matching credential of an image, not only up to the first that works.
    #[arg(long)]
    pub audit_all: bool,
}

/// `regprobe serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Inputs and probe settings.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Probe period per credential (each probe is jittered by ±10%).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub interval: Duration,
    /// HTTP listen address for /metrics, /status, /-/healthy, /-/ready, /-/reload.
    #[arg(long, default_value = "0.0.0.0:9787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Spread the first probes over a random delay up to this (at most the interval), so a
    /// DaemonSet rolled out at once does not hit a registry from every node together.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub startup_spread: Duration,
    /// Probes in flight per registry host at most.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub registry_concurrency: u16,
    /// Re-read the inputs this often even without a reload signal.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub reload_interval: Duration,
}

/// `regprobe check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Inputs and probe settings.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Only probe this registry (a key such as `quay.io/myorg`, or a host) (repeatable).
    #[arg(long = "registry", value_name = "HOST")]
    pub registries: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Show every HTTP exchange (authorization values are never printed).
    #[arg(long, short)]
    pub verbose: bool,
}

/// `check` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for a terminal.
    Text,
    /// The contract's JSON object `{"probes": [...]}`.
    Json,
}

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not an IP address or ADDR:PORT"))
}

/// A configuration error: explicit inputs missing or unreadable, or a bad setting.
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
    /// A `--image` is not a valid reference.
    #[error(transparent)]
    Image(#[from] crate::plan::ImagePlanError),
}

impl InputArgs {
    /// The secret sources: explicit ones, plus the defaults that exist (unless disabled).
    pub fn sources(&self) -> SecretSources {
        let mut secrets_dirs = self.secrets_dirs.clone();
        if secrets_dirs.is_empty()
            && !self.no_default_paths
            && Path::new(DEFAULT_SECRETS_DIR).is_dir()
        {
            secrets_dirs.push(DEFAULT_SECRETS_DIR.into());
        }
        let node_config = self.node_config.clone().or_else(|| {
            (!self.no_default_paths && Path::new(DEFAULT_NODE_CONFIG).is_file())
                .then(|| DEFAULT_NODE_CONFIG.into())
        });
        SecretSources {
            secrets_dirs,
            secret_files: self.secrets.clone(),
            node_config,
        }
    }

    /// The host configuration roots: explicit ones (which must exist), or the defaults that exist.
    pub fn hosts_dirs(&self) -> Result<Vec<PathBuf>, ConfigError> {
        for d in &self.hosts_dirs {
            if !d.is_dir() {
                return Err(ConfigError::HostsDirMissing(d.clone()));
            }
        }
        if !self.hosts_dirs.is_empty() || self.no_default_paths {
            return Ok(self.hosts_dirs.clone());
        }
        Ok(DEFAULT_HOSTS_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect())
    }

    /// Builds what every probe shares.
    pub fn probe_env(&self) -> Result<ProbeEnv, ConfigError> {
        let transport = Transport::new(TransportOptions {
            dns_server: self.dns_server,
            overrides: self.resolve.clone(),
            timeouts: Timeouts::default(),
            no_proxy: self.no_proxy,
            user_agent: String::new(),
        })?;
        Ok(ProbeEnv {
            transport: Arc::new(transport),
            roots: Arc::new(NodeRoots::load()),
            timeout: self.timeout,
        })
    }

    /// Loads secrets and plans the probes: credential probes, and image probes for `--image`.
    pub fn load(&self, only: &[String]) -> Result<(Plan, Vec<ImagePlan>), ConfigError> {
        let secrets: Vec<Secret> = load_all(&self.sources())?;
        let dirs = self.hosts_dirs()?;
        let p = plan(&secrets, &dirs, only)?;
        let images = plan_images(&self.images, &secrets, &dirs)?;
        Ok((p, images))
    }
}

/// Runs every credential probe of `plan` with at most `concurrency` in flight, returning the
/// results in plan order, invalid secrets first.
pub async fn run_plan(env: &ProbeEnv, plan: &Plan, concurrency: usize) -> Vec<ProbeResult> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::new();
    for t in &plan.targets {
        let env = env.clone();
        let t = t.clone();
        let sem = Arc::clone(&sem);
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            probe_credential(&env, &t).await
        }));
    }
    let mut results = plan.invalid.clone();
    for h in handles {
        match h.await {
            Ok(r) => results.push(r),
            Err(e) => tracing::error!(error = %e, "a probe task failed"),
        }
    }
    results
}

/// Runs kubelet's pull loop for every image plan, at most `concurrency` images at once.
/// Returns the results of each image, in plan order.
pub async fn run_images(
    env: &ProbeEnv,
    images: &[ImagePlan],
    audit_all: bool,
    concurrency: usize,
) -> Vec<Vec<ProbeResult>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::new();
    for p in images {
        let (env, p, sem) = (env.clone(), p.clone(), Arc::clone(&sem));
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            probe_image(&env, &p.attempts, &p.key_verdicts, audit_all).await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        match h.await {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!(error = %e, "an image probe task failed"),
        }
    }
    out
}

/// `regprobe check`: one cycle, printed; returns the exit status.
pub async fn check(args: CheckArgs) -> ExitCode {
    let (plan, images) = match args.inputs.load(&args.registries) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("regprobe: {e}");
            return ExitCode::Config;
        }
    };
    if !images.is_empty() {
        return check_images(&args, &plan, &images).await;
    }
    if plan.targets.is_empty() && plan.invalid.is_empty() {
        eprintln!(
            "regprobe: nothing to check: no credential found{} (give --secret FILE or --secrets-dir DIR)",
            if args.registries.is_empty() { "" } else { " for the --registry given" }
        );
        for s in &plan.skipped {
            eprintln!("  skipped {} in secret {}: {}", s.registry, s.secret, s.why);
        }
        return ExitCode::Config;
    }
    let env = match args.inputs.probe_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("regprobe: {e}");
            return ExitCode::Config;
        }
    };
    let started = Instant::now();
    let results = run_plan(&env, &plan, args.inputs.concurrency as usize).await;
    tracing::debug!(elapsed = ?started.elapsed(), probes = results.len(), "check finished");
    for r in &results {
        log_result(r);
    }
    match args.output {
        Output::Json => {
            let v = crate::report::status_json(&results);
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into())
            );
        }
        Output::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!(
                "{}",
                render(
                    &results,
                    &plan.skipped,
                    &plan.warnings,
                    Style {
                        color,
                        verbose: args.verbose
                    }
                )
            );
        }
    }
    if results.iter().all(|r| r.success) {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}

/// `check --image`: kubelet's pull loop per image; exit 0 when every image would pull.
async fn check_images(args: &CheckArgs, plan: &Plan, images: &[ImagePlan]) -> ExitCode {
    let env = match args.inputs.probe_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("regprobe: {e}");
            return ExitCode::Config;
        }
    };
    let per_image = run_images(
        &env,
        images,
        args.inputs.audit_all,
        args.inputs.concurrency as usize,
    )
    .await;
    // A secret that does not parse makes kubelet fail every pull of the pod (spec §3.2).
    let mut results: Vec<ProbeResult> = plan.invalid.clone();
    let mut all_ok = plan.invalid.is_empty();
    for rs in &per_image {
        all_ok &= image_pullable(rs);
        results.extend(rs.iter().cloned());
    }
    for r in &results {
        log_result(r);
    }
    match args.output {
        Output::Json => {
            let v = crate::report::status_json(&results);
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into())
            );
        }
        Output::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let style = Style {
                color,
                verbose: args.verbose,
            };
            print!("{}", render(&plan.invalid, &[], &plan.warnings, style));
            for (p, rs) in images.iter().zip(&per_image) {
                print!("{}", render_image(&p.image, rs, style));
            }
        }
    }
    if all_ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}

/// Logs one result at debug level (the per-probe detail; never a secret).
pub fn log_result(r: &ProbeResult) {
    tracing::debug!(
        registry = %r.registry,
        secret = r.secret.as_deref().unwrap_or(""),
        success = r.success,
        reason = r.reason.map(|x| x.as_str()).unwrap_or(""),
        duration = r.duration_seconds,
        detail = %r.detail,
        "probe finished"
    );
}
