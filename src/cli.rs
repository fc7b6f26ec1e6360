//! Command-line interface: the flags of `regprobe serve` and `regprobe check`, and `check`'s
//! output choice and exit status.
//!
//! Flags follow `docs/metrics.md` ("Inputs", "Commands"); flags added beyond the
//! contract are documented in `docs/check.md` ("What regprobe reads"). Exit status of `check`: 0 when every probe
//! succeeded, 1 when any failed, 2 on a usage or configuration error ([`ExitCode`]).
//!
//! Flags become [`Inputs`] ([`InputArgs::to_inputs`]); reading is [`crate::inputs`], planning
//! [`crate::plan`], running [`crate::run`], the verdicts [`crate::report`]. What stays here
//! besides the flags: the pod context each image diagnosis is given and the JSON object of
//! `check --output json` for images (both belong with [`crate::report`]).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::inputs::{InputPaths, Inputs, Network};
use crate::plan::pod::{follow_ups, plan_pods};
use crate::plan::{invalid_result, plan};
use crate::probe::transport::ResolveOverride;
use crate::probe::ProbeResult;
use crate::report::check::{credentials_json, diagnose_images, images_json, CheckInputs};
use crate::report::diagnosis::{diagnose_credential, Context};
use crate::report::progress::Progress;
use crate::report::text::{
    probes_summary, render_footer, render_image_diagnosis, render_image_short, render_short,
    render_walk, Style,
};
use crate::run::{log_result, spawn_images, spawn_plan};

/// Writes to standard output; a closed pipe (`regprobe check … | head -3`) ends the output
/// quietly (nothing more is written, the exit status stays the verdict's) instead of the panic
/// `print!` gives. Other write errors are reported once on standard error.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("regprobe: writing to standard output: {e}");
        }
    }
}

/// `print!` through [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => { write_stdout(format_args!($($arg)*)) };
}

/// `println!` through [`write_stdout`].
macro_rules! outln {
    ($($arg:tt)*) => { write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

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
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`), or comma-separated
    /// `TARGET=LEVEL` directives such as `info,regprobe=debug`.
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

const CHECK_EXAMPLES: &str =
    "Walks the steps kubelet and containerd take to pull (secret parsed, keys, keys matching \
the image, DNS, TCP, TLS, /v2/ challenge, token, authenticated /v2/, manifest HEAD), marks each \
one, and ends with a verdict: the class (credential, permission, network, registry, config) and \
what to do. Exit status: 0 all ok (every image pullable), 1 something failed, 2 bad input.

Examples:
  # a pod in ImagePullBackOff: its images, with the secrets it lists, from this node
  kubectl -n team get pod web-7d9f -o yaml > pod.yaml
  kubectl -n team get secret regcred -o yaml > regcred.yaml
  regprobe check --pod-spec pod.yaml --secret regcred.yaml
  # one image, as written in the pod spec, with a secret from the cluster on standard input
  kubectl -n team get secret regcred -o yaml \\
    | regprobe check --secret - --image registry.example.com/team/app:1.4
  # a secret you are about to create: is the password right?
  kubectl create secret docker-registry regcred --docker-server=registry.example.com \\
    --docker-username=ci-bot --docker-password=\"$PW\" --dry-run=client -o yaml \\
    | regprobe check --secret -
  # every secret mounted in the DaemonSet, and the node's kubelet config.json
  kubectl -n regprobe exec ds/regprobe -- regprobe check
  # only one registry, as JSON; every HTTP exchange (credentials redacted)
  regprobe check --secret regcred.yaml --registry registry.example.com --output json
  regprobe check --secret regcred.yaml --image registry.example.com/team/app:1.4 -v
  # many secrets: one line each
  regprobe check --secrets-dir /etc/regprobe/secrets --output short
  # a registry name that DNS does not know yet
  regprobe check --secret regcred.yaml --resolve registry.example.com:443:10.1.2.3";

/// Inputs and probe settings shared by `serve` and `check`.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Caps on secrets, entries per secret and probes per cycle.
    #[command(flatten)]
    pub caps: crate::plan::caps::Caps,
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
    /// kubelet's CredentialProviderConfig (a file, or a directory of *.yaml/*.yml/*.json):
    /// run its exec credential-provider plugins as kubelet does (secret ids `provider:NAME`).
    /// Needs --image-credential-provider-bin-dir.
    #[arg(long = "image-credential-provider-config", value_name = "FILE")]
    pub image_credential_provider_config: Option<PathBuf>,
    /// kubelet's directory of credential-provider plugin executables.
    #[arg(long = "image-credential-provider-bin-dir", value_name = "DIR")]
    pub image_credential_provider_bin_dir: Option<PathBuf>,
    /// Kill a credential-provider plugin run after this long (kubelet: 1m).
    #[arg(long, default_value = "1m", value_parser = parse_timeout, value_name = "DUR")]
    pub image_credential_provider_timeout: Duration,
    /// containerd's config.toml: its CRI registry.configs."HOST".auth credentials, which
    /// containerd uses for a host when kubelet passes none.
    #[arg(long = "containerd-config", value_name = "FILE")]
    pub containerd_config: Option<PathBuf>,
    /// The containerd pull path imitated where they differ: `local` (containerd 1.x/2.0, or
    /// 2.1+ with use_local_image_pull) searches each --hosts-dir in order; `transfer`
    /// (containerd 2.1+ default) takes several roots as one `:`-joined directory, as its
    /// transfer service does, so their hosts.toml files are not used.
    #[arg(
        long = "containerd-pull",
        value_enum,
        default_value = "local",
        value_name = "PATH"
    )]
    pub containerd_pull: crate::inputs::PullPath,
    /// Budget for one probe.
    #[arg(long, default_value = "10s", value_parser = parse_timeout, value_name = "DUR")]
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
    #[arg(long, default_value = "5m", value_parser = parse_period, value_name = "DUR")]
    pub interval: Duration,
    /// HTTP listen address for /metrics, /status, /-/healthy, /-/ready, /-/reload.
    #[arg(long, default_value = "0.0.0.0:9787", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Spread the first probes over a random delay up to this (at most the interval), so a
    /// DaemonSet rolled out at once does not hit a registry from every node together.
    #[arg(long, default_value = "0s", value_parser = parse_period, value_name = "DUR")]
    pub startup_spread: Duration,
    /// Probes in flight per registry host at most.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub registry_concurrency: u16,
    /// Re-read the inputs this often even without a reload signal.
    #[arg(long, default_value = "60s", value_parser = parse_period, value_name = "DUR")]
    pub reload_interval: Duration,
    /// HTTP server limits (`--web.*`).
    #[command(flatten)]
    pub web: crate::httpd::WebArgs,
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
    /// One line per credential (or image): the mark, what was probed and the verdict, cut
    /// to the terminal width; for many secrets.
    Short,
}

/// Longest `--timeout` accepted: one hour (a probe that needs longer is a hung peer).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

/// Longest `--interval`, `--startup-spread` or `--reload-interval` accepted: seven days.
pub const MAX_PERIOD: Duration = Duration::from_secs(7 * 86_400);

/// A duration (`humantime`: `10s`, `1m30s`) of at most `max`: larger values are usage errors
/// rather than deadlines that overflow the clock.
fn parse_bounded(s: &str, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > max {
        return Err(format!(
            "{s:?} is longer than the {} allowed",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_bounded(s, MAX_TIMEOUT)
}

fn parse_period(s: &str) -> Result<Duration, String> {
    parse_bounded(s, MAX_PERIOD)
}

/// `IP:PORT`, `[IPv6]:PORT`, or a bare IPv6 address and port (`fd00::1:9787`, what the
/// DaemonSet's `$(HOST_IP):9787` gives on an IPv6 node): the last `:` starts the port.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.rsplit_once(':')
        .and_then(|(ip, port)| Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?)))
        .ok_or_else(|| format!("{s:?} is not IP:PORT"))
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

impl InputArgs {
    /// The resolved inputs of these flags ([`Inputs`]); default paths are added when read.
    pub fn to_inputs(&self) -> Inputs {
        Inputs {
            paths: InputPaths {
                secrets_dirs: self.secrets_dirs.clone(),
                secret_files: self.secrets.clone(),
                node_config: self.node_config.clone(),
                hosts_dirs: self.hosts_dirs.clone(),
                default_paths: !self.no_default_paths,
                provider_config: self.image_credential_provider_config.clone(),
                provider_bin_dir: self.image_credential_provider_bin_dir.clone(),
                provider_timeout: Some(self.image_credential_provider_timeout),
                containerd_config: self.containerd_config.clone(),
                pull_path: self.containerd_pull,
            },
            network: Network {
                timeout: self.timeout,
                dns_server: self.dns_server,
                resolve: self.resolve.clone(),
                no_proxy: self.no_proxy,
            },
            concurrency: self.concurrency as usize,
            images: self.images.clone(),
            audit_all: self.audit_all,
            caps: self.caps,
        }
    }
}

/// `regprobe check`: one cycle, printed as a step-by-step diagnosis; returns the exit status.
///
/// With `--image` or `--pod-spec`, each image is walked as kubelet and containerd pull it
/// (`check_images`); otherwise each `(secret, registry)` credential is walked through the
/// `/v2/` handshake.
pub async fn check(args: CheckArgs) -> ExitCode {
    let resolved = args.inputs.to_inputs();
    let inputs = match resolved.read(&args.pod_specs) {
        Ok(x) => CheckInputs::new(x),
        Err(e) => return config_error(e),
    };
    if !resolved.images.is_empty() || !args.pod_specs.is_empty() {
        return check_images(&args, &resolved, &inputs).await;
    }
    check_credentials(&args, &resolved, &inputs).await
}

fn style_of(args: &CheckArgs) -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        verbose: args.verbose,
        width: crate::report::width::columns(),
    }
}

/// `check` without images: each `(secret, registry)` credential walked through the handshake.
async fn check_credentials(args: &CheckArgs, resolved: &Inputs, inputs: &CheckInputs) -> ExitCode {
    let loaded = &inputs.loaded;
    let mut plan = match plan(&loaded.secrets, &loaded.hosts_dirs, &args.registries) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    plan.invalid
        .extend(provider_failures(&loaded.provider_targets));
    crate::plan::caps::limit_probes(&mut plan.targets, &resolved.caps);
    if plan.targets.is_empty() && plan.invalid.is_empty() {
        eprintln!(
            "regprobe: nothing to check: no credential found{} (give --secret FILE, --secrets-dir DIR, --image REF or --pod-spec FILE)",
            if args.registries.is_empty() { "" } else { " for the --registry given" }
        );
        for s in &plan.skipped {
            eprintln!("  skipped {} in secret {}: {}", s.registry, s.secret, s.why);
        }
        for w in &loaded.warnings {
            eprintln!("  {w}");
        }
        return ExitCode::Config;
    }
    let env = match resolved.probe_env() {
        Ok(e) => e,
        Err(e) => return config_error(e),
    };
    let started = Instant::now();
    let style = style_of(args);
    let print = (args.output != Output::Json).then_some((style, args.output));
    let (results, walks) =
        stream_credentials(&env, &plan, inputs, resolved.concurrency, print).await;
    tracing::debug!(
        elapsed_seconds = started.elapsed().as_secs_f64(),
        probes = results.len(),
        "check finished"
    );
    let failed = results.iter().any(|r| !r.success);
    match args.output {
        Output::Json => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            outln!("{}", credentials_json(&results, walks));
        }
        Output::Text | Output::Short => {
            let mut warnings = loaded.warnings.clone();
            warnings.extend(plan.warnings.iter().cloned());
            out!(
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

/// Runs `plan`'s credential probes and, with `print` (text output), prints each walk as soon
/// as it is known *and* every probe listed before it is done: the order is the plan's
/// (secrets that do not parse, then `--secrets-dir` secrets by id, `--secret` files as given,
/// the node's config.json; within a secret its registry keys in order), so the output is the
/// same from run to run, and a slow registry holds back only the results listed after it. On a
/// terminal the progress line ([`Progress`]) names what is still running meanwhile. Returns
/// the results and walks in that order.
async fn stream_credentials(
    env: &crate::probe::credential::ProbeEnv,
    plan: &crate::plan::Plan,
    inputs: &CheckInputs,
    concurrency: usize,
    print: Option<(Style, Output)>,
) -> (Vec<ProbeResult>, Vec<crate::report::diagnosis::Walk>) {
    use crate::run::Event;
    let n = plan.invalid.len() + plan.targets.len();
    let label = |i: usize| match i.checked_sub(plan.invalid.len()) {
        Some(j) => format!(
            "{} secret={}",
            plan.targets[j].registry, plan.targets[j].secret
        ),
        None => format!(
            "(secret) secret={}",
            plan.invalid[i].secret.as_deref().unwrap_or("")
        ),
    };
    let ctx = Context::default();
    let mut progress = Progress::for_terminal(crate::report::width::columns());
    let mut events = spawn_plan(env, plan, concurrency);
    let mut done: Vec<Option<ProbeResult>> = vec![None; n];
    let mut running: std::collections::BTreeMap<usize, Instant> = Default::default();
    let mut next = 0;
    let (mut results, mut walks) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut tick = tokio::time::interval(crate::report::progress::TICK);
    let mut emit = |r: ProbeResult, progress: &mut Progress| {
        log_result(&r);
        let w = diagnose_credential(inputs.info(r.secret.as_deref()), &r, &ctx);
        if let Some((style, output)) = print {
            progress.clear();
            if output == Output::Short {
                outln!("{}", render_short(&r, &w, style));
            } else {
                outln!("{}", render_walk(&r, &w, style));
            }
        }
        results.push(r);
        walks.push(w);
    };
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(Event::Started(i)) => {
                    running.insert(i, Instant::now());
                }
                Some(Event::Finished(i, r)) => {
                    running.remove(&i);
                    done[i] = Some(*r);
                    while next < n {
                        let Some(r) = done[next].take() else { break };
                        emit(r, &mut progress);
                        next += 1;
                    }
                }
            },
            _ = tick.tick(), if progress.enabled() => {
                let now = Instant::now();
                let shown: Vec<(String, std::time::Duration)> =
                    running.iter().map(|(i, t)| (label(*i), now - *t)).collect();
                progress.draw(&shown);
            }
        }
    }
    // A probe task that failed left a gap: what follows it is printed now.
    for r in done.into_iter().skip(next).flatten() {
        emit(r, &mut progress);
    }
    progress.clear();
    (results, walks)
}

/// Waits for every probe of `events` (`n` of them), showing on a terminal the progress line of
/// those still running (`label(i)` names probe `i`). Returns the results by index (`None` for
/// a probe whose task failed).
async fn collect_with_progress<T>(
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::run::Event<T>>,
    n: usize,
    label: impl Fn(usize) -> String,
) -> Vec<Option<T>> {
    use crate::run::Event;
    let mut progress = Progress::for_terminal(crate::report::width::columns());
    let mut done: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut running: std::collections::BTreeMap<usize, Instant> = Default::default();
    let mut tick = tokio::time::interval(crate::report::progress::TICK);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(Event::Started(i)) => {
                    running.insert(i, Instant::now());
                }
                Some(Event::Finished(i, r)) => {
                    running.remove(&i);
                    if let Some(slot) = done.get_mut(i) {
                        *slot = Some(*r);
                    }
                }
            },
            _ = tick.tick(), if progress.enabled() => {
                let now = Instant::now();
                let shown: Vec<(String, std::time::Duration)> =
                    running.iter().map(|(i, t)| (label(*i), now - *t)).collect();
                progress.draw(&shown);
            }
        }
    }
    progress.clear();
    done
}

/// Runs kubelet's pull loop for every image a pod secret does not block, then, image by image in
/// `planned` order, the `/v2/` handshake of the credentials whose pull it tells more about
/// ([`follow_ups`], each credential once across images) and the diagnosis. With `print` (text
/// output), each image is printed as soon as it and every image listed before it are known, so
/// a stuck registry holds back only the images after it; on a terminal the progress line names
/// what is still running. Returns each image's pull results and its diagnosis, in order.
async fn stream_images(
    env: &crate::probe::credential::ProbeEnv,
    planned: &[crate::plan::pod::PlannedImage],
    inputs: &CheckInputs,
    audit_all: bool,
    concurrency: usize,
    print: Option<(Style, Output)>,
) -> (
    Vec<Vec<ProbeResult>>,
    Vec<crate::report::diagnosis::ImageDiagnosis>,
) {
    use crate::run::Event;
    let n = planned.len();
    let runnable: Vec<usize> = (0..n).filter(|&i| planned[i].invalid.is_none()).collect();
    let plans: Vec<_> = runnable.iter().map(|&i| planned[i].plan.clone()).collect();
    let mut events = spawn_images(env, &plans, audit_all, concurrency);
    // Blocked images have no pull: known at once.
    let mut pulls: Vec<Option<Vec<ProbeResult>>> = planned
        .iter()
        .map(|p| p.invalid.as_ref().map(|_| Vec::new()))
        .collect();
    let mut creds: Vec<ProbeResult> = Vec::new();
    let mut diagnoses = Vec::with_capacity(n);
    let mut progress = Progress::for_terminal(crate::report::width::columns());
    let mut running: std::collections::BTreeMap<usize, Instant> = Default::default();
    let mut tick = tokio::time::interval(crate::report::progress::TICK);
    let mut next = 0;
    let mut open = true;
    while next < n {
        // Diagnose and print every image whose pull (and those before it) is known.
        while next < n && pulls[next].is_some() {
            let done: Vec<Vec<ProbeResult>> = pulls[..=next]
                .iter()
                .map(|p| p.clone().unwrap_or_default())
                .collect();
            // The follow-ups of a prefix of the images are a prefix of the follow-ups of more of
            // them (`follow_ups` goes in order, each credential once): run only the new ones.
            let follow = follow_ups(&planned[..=next], &done);
            if follow.plan.targets.len() > creds.len() {
                let fresh = crate::plan::Plan {
                    targets: follow.plan.targets[creds.len()..].to_vec(),
                    ..Default::default()
                };
                progress.clear();
                let got = collect_with_progress(
                    spawn_plan(env, &fresh, concurrency),
                    fresh.targets.len(),
                    |j| {
                        format!(
                            "{} secret={}",
                            fresh.targets[j].registry, fresh.targets[j].secret
                        )
                    },
                )
                .await;
                // (A probe task always reports, failing closed; a gap is filled the same way.)
                creds.extend(got.into_iter().zip(&fresh.targets).map(|(r, t)| {
                    r.unwrap_or_else(|| {
                        crate::failclosed::internal_error(&t.registry, Some(&t.secret))
                    })
                }));
            }
            let one = crate::plan::pod::FollowUps {
                plan: follow.plan,
                index: vec![follow.index[next].clone()],
            };
            let d = diagnose_images(
                inputs,
                &planned[next..=next],
                &done[next..=next],
                &one,
                &creds,
            )
            .remove(0);
            if let Some((style, output)) = print {
                progress.clear();
                if output == Output::Short {
                    outln!("{}", render_image_short(&d, style));
                } else {
                    let refs: Vec<&ProbeResult> = done[next].iter().collect();
                    outln!("{}", render_image_diagnosis(&d, &refs, style));
                }
            }
            diagnoses.push(d);
            next += 1;
        }
        if next == n {
            break;
        }
        if !open {
            // A pull task that never reported (cannot happen: they fail closed): no results.
            for p in pulls.iter_mut().filter(|p| p.is_none()) {
                *p = Some(Vec::new());
            }
            continue;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                None => open = false,
                Some(Event::Started(k)) => {
                    running.insert(runnable[k], Instant::now());
                }
                Some(Event::Finished(k, rs)) => {
                    running.remove(&runnable[k]);
                    pulls[runnable[k]] = Some(*rs);
                }
            },
            _ = tick.tick(), if progress.enabled() => {
                let now = Instant::now();
                let shown: Vec<(String, std::time::Duration)> = running
                    .iter()
                    .map(|(i, t)| (format!("image {}", planned[*i].job.image), now - *t))
                    .collect();
                progress.draw(&shown);
            }
        }
    }
    progress.clear();
    (
        pulls.into_iter().map(Option::unwrap_or_default).collect(),
        diagnoses,
    )
}

/// `check --image` / `check --pod-spec`: kubelet's pull loop per image, each attempt walked
/// from DNS to the manifest `HEAD` (the credential's `/v2/` handshake, then containerd's
/// manifest request). Exit 0 when every image would pull and every secret given parses.
async fn check_images(args: &CheckArgs, resolved: &Inputs, inputs: &CheckInputs) -> ExitCode {
    let loaded = &inputs.loaded;
    let planned = match plan_pods(&resolved.images, loaded, &args.registries) {
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
    let env = match resolved.probe_env() {
        Ok(e) => e,
        Err(e) => return config_error(e),
    };
    let concurrency = resolved.concurrency;
    // kubelet's pull loop per image, the follow-up credential handshakes, the diagnosis: each
    // image printed (text) as soon as it and the images before it are known.
    let print = match args.output {
        Output::Json => None,
        Output::Text | Output::Short => Some((style_of(args), args.output)),
    };
    let (pulls, diagnoses) = stream_images(
        &env,
        &planned,
        inputs,
        resolved.audit_all,
        concurrency,
        print,
    )
    .await;
    // Every secret given that does not parse is a failed probe (contract), used or not.
    let invalid: Vec<ProbeResult> = loaded
        .secrets
        .iter()
        .filter_map(|s| s.entries.as_ref().err().map(|e| invalid_result(&s.id, e)))
        .chain(provider_failures(&loaded.provider_images))
        .collect();
    let all_ok = invalid.is_empty() && diagnoses.iter().all(|d| d.pullable);
    for r in invalid.iter().chain(pulls.iter().flatten()) {
        log_result(r);
    }
    match args.output {
        Output::Json => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            outln!(
                "{}",
                images_json(inputs, &planned, &pulls, &diagnoses, &invalid)
            );
        }
        Output::Text | Output::Short => {
            let style = style_of(args);
            let pullable = diagnoses.iter().filter(|d| d.pullable).count();
            let mut summary = format!(
                "{} image{}, {pullable} pullable, {} not pullable",
                diagnoses.len(),
                if diagnoses.len() == 1 { "" } else { "s" },
                diagnoses.len() - pullable
            );
            let unparsed = invalid
                .iter()
                .filter(|r| r.reason == Some(crate::probe::Reason::SecretInvalid))
                .count();
            if unparsed > 0 {
                summary.push_str(&format!(
                    "; {} secret{} {} not parse",
                    unparsed,
                    if unparsed == 1 { "" } else { "s" },
                    if unparsed == 1 { "does" } else { "do" }
                ));
            }
            let providers = invalid.len() - unparsed;
            if providers > 0 {
                summary.push_str(&format!(
                    "; {providers} credential provider run{} failed",
                    if providers == 1 { "" } else { "s" }
                ));
            }
            out!(
                "{}",
                render_footer(&[], &loaded.warnings, &summary, !all_ok, style)
            );
        }
    }
    if all_ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    }
}

/// The failed probes of credential-provider answers (`provider_missing`, `provider_failed`),
/// each answer's account logged at debug level.
fn provider_failures(answers: &[crate::providers::Answer]) -> Vec<ProbeResult> {
    for a in answers {
        tracing::debug!("{}", crate::providers::describe(a));
    }
    answers
        .iter()
        .filter_map(crate::providers::failure_result)
        .collect()
}

/// Prints a configuration error and gives the exit status for it (2).
pub fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("regprobe: {e}");
    ExitCode::Config
}
