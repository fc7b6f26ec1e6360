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

use crate::plan::{host_of, invalid_result, plan, plan_images, ImagePlan, Plan};
use crate::podspec::{PodSpecError, Workload};
use crate::probe::credential::{probe_credential, CredentialTarget, ProbeEnv};
use crate::probe::pull::probe_image;
use crate::probe::tls::NodeRoots;
use crate::probe::transport::{ResolveOverride, Timeouts, Transport, TransportOptions};
use crate::probe::ProbeResult;
use crate::report::diagnosis::{
    diagnose_credential, diagnose_image, Context, ImageDiagnosis, ImageFacts, ImageInput,
    SecretInfo, Walk,
};
use crate::report::status::{ImageCheckDoc, MissingSecret};
use crate::report::text::{
    probes_summary, render_footer, render_image_diagnosis, render_walk, Style,
};
use crate::secrets::{load_all, load_all_with_warnings, Keyring, LoadError, Secret, SecretSources};

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

const CHECK_EXAMPLES: &str = "Walks the steps kubelet and containerd take to pull (secret parsed, keys, keys matching \
the image, DNS, TCP, TLS, /v2/ challenge, token, authenticated /v2/, manifest HEAD), marks each \
one, and ends with a verdict: the class (credential, permission, network, registry, config) and \
what to do. Exit status: 0 all ok (every image pullable), 1 something failed, 2 bad input.

Examples:
  # a pod in ImagePullBackOff: its images, with the secrets it lists, from this node
  kubectl -n team get pod web-7d9f -o yaml > pod.yaml
  kubectl -n team get secret regcred -o yaml > regcred.yaml
  regprobe check --pod-spec pod.yaml --secret regcred.yaml
  # one image, as written in the pod spec, with a secret from the cluster on standard input
  kubectl -n team get secret regcred -o yaml | regprobe check --secret - --image registry.example.com/team/app:1.4
  # a secret you are about to create: is the password right?
  kubectl create secret docker-registry regcred --docker-server=registry.example.com \\
    --docker-username=ci-bot --docker-password=\"$PW\" --dry-run=client -o yaml | regprobe check --secret -
  # every secret mounted in the DaemonSet, and the node's kubelet config.json
  kubectl -n regprobe exec ds/regprobe -- regprobe check
  # only one registry, as JSON; every HTTP exchange (credentials redacted)
  regprobe check --secret regcred.yaml --registry registry.example.com --output json
  regprobe check --secret regcred.yaml --image registry.example.com/team/app:1.4 -v
  # a registry name that DNS does not know yet
  regprobe check --secret regcred.yaml --resolve registry.example.com:443:10.1.2.3";

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
    /// Show every HTTP exchange of every step, with what the request carried (authorization
    /// values are never printed).
    #[arg(long, short)]
    pub verbose: bool,
    /// A Pod or workload manifest (YAML or JSON: Pod, Deployment, StatefulSet, DaemonSet, Job,
    /// CronJob, a List, several documents): check each of its images with the secrets it lists
    /// in imagePullSecrets (plus the node's config.json), as kubelet does, and flag the names it
    /// lists that were not given (repeatable; `-` reads standard input).
    #[arg(long = "pod-spec", value_name = "FILE")]
    pub pod_specs: Vec<PathBuf>,
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
            tls: Arc::new(crate::probe::exchange::TlsConfigs::new(NodeRoots::load())),
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

/// `regprobe check`: one cycle, printed as a step-by-step diagnosis; returns the exit status.
///
/// With `--image` or `--pod-spec`, each image is walked as kubelet and containerd pull it
/// ([`check_images`]); otherwise each `(secret, registry)` credential is walked through the
/// `/v2/` handshake.
pub async fn check(args: CheckArgs) -> ExitCode {
    let inputs = match CheckInputs::load(&args) {
        Ok(x) => x,
        Err(e) => return config_error(e),
    };
    if !args.inputs.images.is_empty() || !args.pod_specs.is_empty() {
        return check_images(&args, &inputs).await;
    }
    check_credentials(&args, &inputs).await
}

/// What `check` reads before probing: secrets (with their shape and load time), the host
/// configuration roots, and the workloads of `--pod-spec`.
struct CheckInputs {
    secrets: Vec<Secret>,
    infos: Vec<SecretInfo>,
    warnings: Vec<String>,
    hosts_dirs: Vec<PathBuf>,
    workloads: Vec<Workload>,
}

impl CheckInputs {
    fn load(args: &CheckArgs) -> Result<CheckInputs, String> {
        let sources = args.inputs.sources();
        let stdin_readers = sources
            .secret_files
            .iter()
            .chain(&args.pod_specs)
            .filter(|p| p.as_os_str() == "-")
            .count();
        if stdin_readers > 1 {
            return Err("--secret - / --pod-spec -: standard input can be read only once".into());
        }
        let TimedSecrets {
            secrets,
            seconds: times,
            mut warnings,
        } = load_secrets_timed(&sources).map_err(|e| e.to_string())?;
        let hosts_dirs = args.inputs.hosts_dirs().map_err(|e| e.to_string())?;
        let mut workloads = Vec::new();
        for path in &args.pod_specs {
            let specs = crate::podspec::load(path).map_err(|e: PodSpecError| e.to_string())?;
            warnings.extend(specs.warnings);
            workloads.extend(specs.workloads);
        }
        let infos = secrets
            .iter()
            .zip(&times)
            .map(|(s, t)| SecretInfo::new(s, *t))
            .collect();
        Ok(CheckInputs {
            secrets,
            infos,
            warnings,
            hosts_dirs,
            workloads,
        })
    }

    fn info(&self, id: Option<&str>) -> Option<&SecretInfo> {
        id.and_then(|id| self.infos.iter().find(|i| i.id == id))
    }
}

/// Secrets with the time each took to read and parse, and the input warnings.
struct TimedSecrets {
    secrets: Vec<Secret>,
    seconds: Vec<f64>,
    warnings: Vec<String>,
}

/// Loads every secret source one at a time, to time each: the secrets come in the order of
/// [`load_all`]; a directory's time is shared by its secrets.
fn load_secrets_timed(sources: &SecretSources) -> Result<TimedSecrets, LoadError> {
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
    Ok(TimedSecrets {
        secrets,
        seconds: times,
        warnings,
    })
}

fn style_of(args: &CheckArgs) -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        verbose: args.verbose,
    }
}

fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into())
    );
}

/// `check` without images: each `(secret, registry)` credential walked through the handshake.
async fn check_credentials(args: &CheckArgs, inputs: &CheckInputs) -> ExitCode {
    let plan = match plan(&inputs.secrets, &inputs.hosts_dirs, &args.registries) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    if plan.targets.is_empty() && plan.invalid.is_empty() {
        eprintln!(
            "regprobe: nothing to check: no credential found{} (give --secret FILE, --secrets-dir DIR, --image REF or --pod-spec FILE)",
            if args.registries.is_empty() { "" } else { " for the --registry given" }
        );
        for s in &plan.skipped {
            eprintln!("  skipped {} in secret {}: {}", s.registry, s.secret, s.why);
        }
        return ExitCode::Config;
    }
    let env = match args.inputs.probe_env() {
        Ok(e) => e,
        Err(e) => return config_error(e),
    };
    let started = Instant::now();
    let results = run_plan(&env, &plan, args.inputs.concurrency as usize).await;
    tracing::debug!(elapsed = ?started.elapsed(), probes = results.len(), "check finished");
    for r in &results {
        log_result(r);
    }
    let ctx = Context::default();
    let walks: Vec<_> = results
        .iter()
        .map(|r| diagnose_credential(inputs.info(r.secret.as_deref()), r, &ctx))
        .collect();
    let failed = results.iter().any(|r| !r.success);
    match args.output {
        Output::Json => {
            for w in &inputs.warnings {
                tracing::warn!("{w}");
            }
            print_json(&crate::report::status::with_diagnoses(&results, walks));
        }
        Output::Text => {
            let style = style_of(args);
            for (r, w) in results.iter().zip(&walks) {
                println!("{}", render_walk(r, w, style));
            }
            let mut warnings = inputs.warnings.clone();
            warnings.extend(plan.warnings.iter().cloned());
            print!(
                "{}",
                render_footer(
                    &plan.skipped,
                    &warnings,
                    &probes_summary(&results),
                    failed,
                    style
                )
            );
        }
    }
    if failed {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    }
}

/// One image to walk: from `--image` (with every secret given) or from a `--pod-spec` workload
/// (with the secrets it lists, plus the node's `config.json`).
struct ImageJob {
    image: String,
    workload: Option<usize>,
    containers: Vec<String>,
    /// Indices into the secrets kubelet uses: pod secrets in `imagePullSecrets` order, then the
    /// node's.
    used: Vec<usize>,
    /// Indices of secrets given but not listed by the pod.
    unreferenced: Vec<usize>,
    /// Names the pod lists that were not given.
    missing: Vec<String>,
}

fn image_jobs(args: &CheckArgs, inputs: &CheckInputs) -> Vec<ImageJob> {
    let is_node = |s: &Secret| s.id == crate::secrets::keyring::NODE_SECRET_ID;
    let mut jobs: Vec<ImageJob> = args
        .inputs
        .images
        .iter()
        .map(|image| ImageJob {
            image: image.clone(),
            workload: None,
            containers: Vec::new(),
            used: (0..inputs.secrets.len()).collect(),
            unreferenced: Vec::new(),
            missing: Vec::new(),
        })
        .collect();
    for (wi, w) in inputs.workloads.iter().enumerate() {
        let mut used = Vec::new();
        let mut missing = Vec::new();
        for name in &w.pull_secrets {
            let found: Vec<usize> = inputs
                .secrets
                .iter()
                .enumerate()
                .filter(|(_, s)| &s.id == name && !is_node(s))
                .map(|(i, _)| i)
                .collect();
            if found.is_empty() {
                missing.push(name.clone());
            }
            used.extend(found);
        }
        used.extend(
            inputs
                .secrets
                .iter()
                .enumerate()
                .filter(|(_, s)| is_node(s))
                .map(|(i, _)| i),
        );
        let unreferenced: Vec<usize> = (0..inputs.secrets.len())
            .filter(|i| !used.contains(i))
            .collect();
        for img in &w.images {
            jobs.push(ImageJob {
                image: img.image.clone(),
                workload: Some(wi),
                containers: img.containers.clone(),
                used: used.clone(),
                unreferenced: unreferenced.clone(),
                missing: missing.clone(),
            });
        }
    }
    jobs
}

/// Whether an image's registry passes `check --registry`.
fn image_selected(only: &[String], domain: &str) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| o == domain || host_of(o) == domain || host_of(o) == host_of(domain))
}

/// A planned image: its job, the kubelet plan and the facts the verdict needs.
struct PlannedImage {
    job: ImageJob,
    plan: ImagePlan,
    facts: ImageFacts,
    verdicts: Vec<crate::secrets::KeyVerdict>,
    unreferenced_matches: Vec<(String, String)>,
    /// The first pod secret that does not parse: kubelet fails the pull before any request.
    invalid: Option<ProbeResult>,
}

fn plan_image_jobs(args: &CheckArgs, inputs: &CheckInputs) -> Result<Vec<PlannedImage>, String> {
    let mut out = Vec::new();
    for job in image_jobs(args, inputs) {
        let r = crate::reference::parse(&job.image).map_err(|error| {
            let at = match job.workload.map(|w| &inputs.workloads[w]) {
                Some(w) => format!(
                    "--pod-spec {}: {} ({}): image",
                    w.source.display(),
                    w.title(),
                    job.containers.join(", ")
                ),
                None => "--image".to_string(),
            };
            format!("{at} {:?}: {error}", job.image)
        })?;
        if !image_selected(&args.registries, r.namespace()) {
            continue;
        }
        let used: Vec<Secret> = job
            .used
            .iter()
            .map(|&i| inputs.secrets[i].clone())
            .collect();
        let unreferenced: Vec<Secret> = job
            .unreferenced
            .iter()
            .map(|&i| inputs.secrets[i].clone())
            .collect();
        let plan = plan_images(std::slice::from_ref(&job.image), &used, &inputs.hosts_dirs)
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| format!("{}: nothing planned", job.image))?;
        let repo = r.repo_to_pull();
        let verdicts = Keyring::new(&used).explain(&repo);
        let mut unreferenced_matches: Vec<(String, String)> = Vec::new();
        for m in Keyring::new(&unreferenced).lookup(&repo) {
            if !unreferenced_matches.iter().any(|(s, _)| *s == m.secret) {
                unreferenced_matches.push((m.secret, m.key));
            }
        }
        let invalid = used
            .iter()
            .filter(|s| s.id != crate::secrets::keyring::NODE_SECRET_ID)
            .find_map(|s| {
                s.entries
                    .as_ref()
                    .err()
                    .map(|e| invalid_result(&s.id, &e.to_string()))
            });
        out.push(PlannedImage {
            facts: ImageFacts {
                image: job.image.clone(),
                domain: r.namespace().to_string(),
                repository: r.path().to_string(),
                reference: r.reference().to_string(),
                mismatches: Vec::new(),
                mismatch_user: None,
                mismatch_secret: None,
            },
            job,
            plan,
            verdicts,
            unreferenced_matches,
            invalid,
        });
    }
    Ok(out)
}

/// `check --image` / `check --pod-spec`: kubelet's pull loop per image, each attempt walked
/// from DNS to the manifest `HEAD` (the credential's `/v2/` handshake, then containerd's
/// manifest request). Exit 0 when every image would pull and every secret given parses.
async fn check_images(args: &CheckArgs, inputs: &CheckInputs) -> ExitCode {
    let planned = match plan_image_jobs(args, inputs) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    if planned.is_empty() {
        eprintln!(
            "regprobe: nothing to check: no image{}",
            if args.registries.is_empty() {
                " in the --pod-spec given"
            } else {
                " on the --registry given"
            }
        );
        return ExitCode::Config;
    }
    let env = match args.inputs.probe_env() {
        Ok(e) => e,
        Err(e) => return config_error(e),
    };
    let concurrency = args.inputs.concurrency as usize;
    // 1. kubelet's pull loop (containerd's manifest HEAD) for every image a pod secret does not
    //    block.
    let runnable: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].invalid.is_none())
        .collect();
    let plans: Vec<ImagePlan> = runnable.iter().map(|&i| planned[i].plan.clone()).collect();
    let pulled = run_images(&env, &plans, args.inputs.audit_all, concurrency).await;
    let mut pulls: Vec<Vec<ProbeResult>> = vec![Vec::new(); planned.len()];
    for (i, rs) in runnable.into_iter().zip(pulled) {
        pulls[i] = rs;
    }
    // 2. the `/v2/` handshake of each credential an attempt used, once per (secret, key, host),
    //    when it tells more than the pull: the pull worked, or it was refused for permission
    //    (does the credential itself work?). After a refused login, a network failure or a
    //    broken registry the pull's own requests show where it broke; repeating the login would
    //    add failed logins (lockout policies), waits (timeouts) and load (429).
    let mut cred_plan = Plan::default();
    let mut cred_index: Vec<Vec<Option<usize>>> = Vec::new();
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for (p, rs) in planned.iter().zip(&pulls) {
        let mut row = Vec::new();
        for (attempt, pull) in p.plan.attempts.iter().zip(rs) {
            if !(pull.success || pull.class == Some(crate::probe::Class::Permission)) {
                row.push(None);
                continue;
            }
            let (Some(secret), Some(cred), Some(host)) = (
                attempt.secret.as_ref(),
                attempt.credential.as_ref(),
                attempt.hosts.last(),
            ) else {
                row.push(None);
                continue;
            };
            if cred.username.is_empty() {
                row.push(None);
                continue;
            }
            let id = (
                secret.clone(),
                attempt.key.clone().unwrap_or_default(),
                attempt.namespace.clone(),
            );
            let at = match seen.iter().position(|s| *s == id) {
                Some(at) => at,
                None => {
                    seen.push(id);
                    cred_plan.targets.push(CredentialTarget {
                        secret: secret.clone(),
                        registry: attempt.namespace.clone(),
                        host: host.clone(),
                        credential: cred.clone(),
                    });
                    seen.len() - 1
                }
            };
            row.push(Some(at));
        }
        cred_index.push(row);
    }
    let creds = run_plan(&env, &cred_plan, concurrency).await;
    // 3. the diagnosis of each image.
    let diagnoses: Vec<ImageDiagnosis> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let workload = p.job.workload.map(|w| &inputs.workloads[w]);
            let ctx = Context {
                namespace: workload.and_then(|w| w.namespace.clone()),
                roll: workload.map(Workload::roll_command),
                missing: p.job.missing.clone(),
                unreferenced_matches: p.unreferenced_matches.clone(),
                service_account: workload.filter(|w| w.is_template()).map(|w| {
                    w.service_account
                        .clone()
                        .unwrap_or_else(|| "default".to_string())
                }),
            };
            let attempts = pulls[i]
                .iter()
                .enumerate()
                .map(|(j, pull)| {
                    let key = p.plan.attempts.get(j).and_then(|a| a.key.clone());
                    let cred = cred_index[i]
                        .get(j)
                        .copied()
                        .flatten()
                        .and_then(|c| creds.get(c));
                    (key, cred, pull)
                })
                .collect();
            diagnose_image(&ImageInput {
                facts: p.facts.clone(),
                workload: workload.map(Workload::title),
                containers: p.job.containers.clone(),
                secrets: p.job.used.iter().map(|&s| &inputs.infos[s]).collect(),
                unreferenced: p
                    .job
                    .unreferenced
                    .iter()
                    .map(|&s| &inputs.infos[s])
                    .collect(),
                verdicts: p.verdicts.clone(),
                invalid: p.invalid.as_ref(),
                attempts,
                ctx,
            })
        })
        .collect();
    // Every secret given that does not parse is a failed probe (contract), used or not.
    let invalid: Vec<ProbeResult> = inputs
        .secrets
        .iter()
        .filter_map(|s| {
            s.entries
                .as_ref()
                .err()
                .map(|e| invalid_result(&s.id, &e.to_string()))
        })
        .collect();
    let all_ok = invalid.is_empty() && diagnoses.iter().all(|d| d.pullable);
    for r in invalid.iter().chain(pulls.iter().flatten()) {
        log_result(r);
    }
    match args.output {
        Output::Json => {
            for w in &inputs.warnings {
                tracing::warn!("{w}");
            }
            let mut results: Vec<ProbeResult> = invalid.clone();
            let mut walks: Vec<Walk> = invalid
                .iter()
                .map(|r| {
                    diagnose_credential(inputs.info(r.secret.as_deref()), r, &Context::default())
                })
                .collect();
            for (d, rs) in diagnoses.iter().zip(&pulls) {
                for (a, r) in d.attempts.iter().zip(rs) {
                    results.push(r.clone());
                    let mut steps = d.steps.clone();
                    steps.extend(a.steps.iter().cloned());
                    walks.push(Walk {
                        steps,
                        verdict: a.verdict.clone(),
                    });
                }
            }
            let mut missing = Vec::new();
            for p in &planned {
                if let Some(w) = p.job.workload.map(|w| &inputs.workloads[w]) {
                    for m in &p.job.missing {
                        let entry = MissingSecret {
                            secret: m.clone(),
                            workload: w.title(),
                            namespace: w.namespace.clone(),
                        };
                        if !missing.contains(&entry) {
                            missing.push(entry);
                        }
                    }
                }
            }
            print_json(&ImageCheckDoc {
                status: crate::report::status::with_diagnoses(&results, walks),
                images: &diagnoses,
                missing_secrets: missing,
            });
        }
        Output::Text => {
            let style = style_of(args);
            for (d, rs) in diagnoses.iter().zip(&pulls) {
                let refs: Vec<&ProbeResult> = rs.iter().collect();
                println!("{}", render_image_diagnosis(d, &refs, style));
            }
            let pullable = diagnoses.iter().filter(|d| d.pullable).count();
            let mut summary = format!(
                "{} image{}, {pullable} pullable, {} not pullable",
                diagnoses.len(),
                if diagnoses.len() == 1 { "" } else { "s" },
                diagnoses.len() - pullable
            );
            if !invalid.is_empty() {
                summary.push_str(&format!(
                    "; {} secret{} {} not parse",
                    invalid.len(),
                    if invalid.len() == 1 { "" } else { "s" },
                    if invalid.len() == 1 { "does" } else { "do" }
                ));
            }
            print!(
                "{}",
                render_footer(&[], &inputs.warnings, &summary, !all_ok, style)
            );
        }
    }
    if all_ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}

/// Prints a configuration error and gives the exit status for it (2).
pub fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("regprobe: {e}");
    ExitCode::Config
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
