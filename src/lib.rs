//! regprobe: a node-side prober for Kubernetes image pull secrets.
//!
//! When a pod sits in `ImagePullBackOff`, regprobe tells whether the pull secret is to blame
//! (a wrong, expired or missing credential, no pull permission, a malformed secret) or the node's
//! path to the registry (DNS, TCP, proxy, TLS). It runs, from the node, the same registry v2 auth
//! handshake that containerd runs, with each credential kubelet would hand it.
//!
//! Data flows one way:
//!
//! ```text
//! cli (flags) -> inputs (resolved paths and settings)
//! secrets (load, parse, keyring) + hosts (hosts.toml, certs.d) + podspec (pod manifests)
//!     -> plan (credential targets, image attempts)
//!     -> probe (transport, challenge, token, credential handshake, classify)
//!     -> report (metrics, status JSON, CLI text)
//!     -> server (HTTP endpoints) / cli (check)
//! ```
//!
//! * [`secrets`] reads `.dockerconfigjson`, `.dockercfg`, Kubernetes Secret manifests and the
//!   node's `config.json`, exactly as kubelet parses them.
//! * [`hosts`] reads containerd's `hosts.toml` and Docker-style `certs.d` folders.
//! * [`probe`] talks to registries; [`probe::classify`] is the one place a failure becomes a
//!   [`probe::Reason`].
//! * [`report`] turns results into Prometheus metrics, JSON and terminal text;
//!   [`report::advice`] is the one place each reason is worded.
//! * [`inputs`] resolves what is read and how probes connect (from [`cli`]'s flags);
//!   [`plan`] turns what was read into probes ([`plan::pod`]: images and pods).
//! * [`scheduler`] runs probes on an interval, [`server`] serves them; [`run`] runs `check`'s
//!   once; [`cli`] parses flags and picks the output.
//!
//! `docs/architecture.md` maps the modules and the typed facts between them.
//!
//! The protocol behaviour follows `docs/containerd-kubelet.md` (containerd 2.x, kubelet); names of
//! reasons, classes, metrics and flags follow `docs/metrics.md`.

/// The source revision this binary was built from (label `revision` of `regprobe_build_info`):
/// the `REGPROBE_REVISION` environment variable at compile time (`.ci/image` and
/// `deploy/Containerfile` set the git commit), else `"unknown"`. No build script and no git at
/// build time: a build from a source archive works the same.
pub const REVISION: &str = match option_env!("REGPROBE_REVISION") {
    Some(r) if !r.is_empty() => r,
    _ => "unknown",
};

pub mod cli;
pub mod clock;
pub mod failclosed;
pub mod footprint;
pub mod fsread;
mod golang;
pub mod hosts;
pub mod httpd;
pub mod inputs;
pub mod plan;
pub mod podspec;
pub mod probe;
pub mod providers;
pub mod reference;
pub mod report;
pub mod run;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod watch;
pub mod webconfig;
