//! `regprobe`: thin wiring of the library's commands. See the crate docs and the README.

use clap::{CommandFactory, FromArgMatches};
use regprobe::cli::{self, Cli, Command, ExitCode, LogFormat};
use regprobe::report::Store;
use regprobe::scheduler::{self, Schedule};
use regprobe::server::{self, AppState};
use std::io::IsTerminal;
use std::sync::Arc;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter of `--log-level`: comma-separated `LEVEL` or `TARGET=LEVEL` directives
/// (tracing-subscriber's [`Targets`], the `RUST_LOG` syntax without span or field filters,
/// which need the regex engine: issue #16, ~1 MB less code). The file watcher's library
/// (`notify`) is at `warn` unless the filter names it: at `info` it reports every watch it loses
/// when a secret directory goes away, which regprobe handles (and logs) itself. A filter that
/// does not parse falls back to `info,notify=warn`.
fn log_filter(level: &str) -> Targets {
    let spec = if level.contains("notify") {
        level.to_string()
    } else {
        format!("{level},notify=warn")
    };
    spec.parse()
        .unwrap_or_else(|_| "info,notify=warn".parse().expect("a valid filter"))
}

fn init_logging(cli: &Cli) {
    let filter = log_filter(&cli.log_level);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match cli.log_format {
        LogFormat::Json => registry.with(layer.json()).init(),
        LogFormat::Text => registry.with(layer).init(),
    }
}

fn main() {
    regprobe::footprint::tune_allocator();
    // `--help` wraps to the width `check` uses (COLUMNS, the terminal, else 100 columns).
    let width = regprobe::report::width::columns();
    let matches = Cli::command().term_width(width).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    init_logging(&cli);
    let runtime = match regprobe::footprint::runtime_builder().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("regprobe: cannot start the runtime: {e}");
            std::process::exit(ExitCode::Config as i32);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Check(args) => cli::check(args).await,
            Command::Serve(args) => serve(args).await,
        }
    });
    std::process::exit(code as i32);
}

async fn serve(args: cli::ServeArgs) -> ExitCode {
    let inputs = args.inputs.to_inputs();
    // Explicitly named inputs must exist at start (exit 2); later reloads keep the last good state.
    if let Err(e) = regprobe::plan::load(&inputs, &[]) {
        return cli::config_error(e);
    }
    let env = match inputs.probe_env() {
        Ok(e) => e,
        Err(e) => return cli::config_error(e),
    };
    let web = match args.web.config_file.as_deref() {
        None => None,
        Some(path) => match regprobe::webconfig::WebConfigFile::open(path) {
            Ok(w) => Some(Arc::new(w)),
            Err(e) => {
                eprintln!("regprobe: {e}");
                return ExitCode::Config;
            }
        },
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("regprobe: cannot listen on {}: {e}", args.listen);
            return ExitCode::Config;
        }
    };
    let store = Arc::new(Store::new(env!("CARGO_PKG_VERSION")));
    let state = Arc::new(AppState::new(Arc::clone(&store)));
    use std::sync::atomic::Ordering;
    state
        .lifecycle
        .store(args.web.enable_lifecycle, Ordering::Release);
    state.status_loopback_only.store(
        args.web.status_access == regprobe::httpd::StatusAccess::Loopback,
        Ordering::Release,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let schedule = Schedule {
        interval: args.interval,
        reload_interval: args.reload_interval,
        concurrency: inputs.concurrency,
        registry_concurrency: args.registry_concurrency as usize,
        startup_spread: args.startup_spread,
    };
    tracing::info!(
        listen = %args.listen,
        interval = %humantime::format_duration(args.interval),
        timeout = %humantime::format_duration(inputs.network.timeout),
        node = std::env::var("NODE_NAME").unwrap_or_default(),
        "regprobe serving"
    );
    let mut sched = tokio::spawn(scheduler::run(
        inputs,
        env,
        schedule,
        Arc::clone(&state),
        stop_rx.clone(),
    ));
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(server::serve_with(
        listener,
        Arc::clone(&state),
        args.web.clone(),
        web,
        async move {
            let _ = http_stop.changed().await;
        },
    ));
    // Fail closed: a scheduler that stops unasked (a panic) makes /-/healthy fail and the
    // process exit non-zero, so kubelet restarts it instead of it serving stale results.
    tokio::select! {
        _ = wait_for_termination() => {}
        _ = &mut sched => {
            state.alive.store(false, std::sync::atomic::Ordering::Release);
            tracing::error!("the scheduler stopped unexpectedly; exiting");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), http).await;
            return ExitCode::Failed;
        }
    }
    tracing::info!("termination signal received");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), sched).await;
    match tokio::time::timeout(std::time::Duration::from_secs(5), http).await {
        Ok(Ok(Ok(()))) | Err(_) => ExitCode::Ok,
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "HTTP server failed");
            ExitCode::Failed
        }
        Ok(Err(_)) => ExitCode::Failed,
    }
}

async fn wait_for_termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn log_filter_takes_levels_and_target_directives() {
        let f = log_filter("info,regprobe=debug");
        assert!(f.would_enable("regprobe::probe", &Level::DEBUG));
        assert!(f.would_enable("hyper", &Level::INFO));
        assert!(!f.would_enable("hyper", &Level::DEBUG));
        // The file watcher's library is at warn unless named.
        assert!(!f.would_enable("notify", &Level::INFO));
        assert!(f.would_enable("notify", &Level::WARN));
        assert!(log_filter("notify=debug").would_enable("notify", &Level::DEBUG));
        // A level that does not parse: info, notify at warn.
        let f = log_filter("info,regprobe=verbose");
        assert!(f.would_enable("regprobe", &Level::INFO));
        assert!(!f.would_enable("regprobe", &Level::DEBUG));
        assert!(!f.would_enable("notify", &Level::INFO));
    }
}
