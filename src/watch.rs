//! Watching the inputs: a change under a secrets directory, the node config's directory or a
//! hosts directory asks the scheduler to reload.
//!
//! kubelet updates a mounted Secret by writing a new timestamped directory and renaming a
//! `..data_tmp` symlink over `..data` (its AtomicWriter). A watch on the file itself dies at the
//! first swap (the user-visible `.dockerconfigjson` is a symlink that is deleted and recreated:
//! kubernetes/kubernetes #111947), so regprobe watches **directories**, recursively for secrets
//! and hosts (one Secret volume per `DIR/<name>` has its own `..data` one level down), and reacts
//! to any event: the kind reported for the rename differs between systems (`docs/containerd-kubelet.md` §3.8). The
//! scheduler also re-reads the inputs periodically, as a safety net for inotify queue overflows
//! and mounts that do not emit events.

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedSender;

use crate::inputs::Inputs;

/// The live watches; dropping it stops them.
pub struct InputWatcher {
    _watcher: Option<RecommendedWatcher>,
    /// Paths that could not be watched, with why (the periodic re-read still covers them).
    pub warnings: Vec<String>,
}

/// What to watch: the secrets directories and hosts directories recursively, and the
/// directory holding the node's `config.json` (not the file: it may be replaced).
#[derive(Debug, Clone, Default)]
pub struct WatchSet {
    /// Watched with every subdirectory.
    pub recursive: Vec<PathBuf>,
    /// Watched alone.
    pub flat: Vec<PathBuf>,
}

impl WatchSet {
    /// The watch set of the inputs as they resolve now ([`Inputs::sources`],
    /// [`Inputs::hosts_dirs`]; no hosts directory when a named one is missing).
    pub fn of_inputs(inputs: &Inputs) -> WatchSet {
        let sources = inputs.sources();
        let hosts_dirs = inputs.hosts_dirs().unwrap_or_default();
        let mut files: Vec<_> = sources.secret_files.clone();
        files.extend(sources.node_config.clone());
        WatchSet::of(&sources.secrets_dirs, &files, &hosts_dirs)
    }

    /// The watch set of the given inputs: `--secrets-dir` and `--hosts-dir` recursively, the
    /// parent of `--node-config` and of each `--secret` file flat.
    pub fn of(secrets_dirs: &[PathBuf], files: &[PathBuf], hosts_dirs: &[PathBuf]) -> WatchSet {
        let mut set = WatchSet {
            recursive: secrets_dirs.iter().chain(hosts_dirs).cloned().collect(),
            flat: Vec::new(),
        };
        for f in files {
            if f.as_os_str() == "-" {
                continue;
            }
            let parent = f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !set.flat.iter().any(|p| p == parent) {
                set.flat.push(parent.to_path_buf());
            }
        }
        set
    }
}

/// Whether an event kind can mean the inputs changed. Opening and reading a file (regprobe's own
/// re-read does both) are not changes: reacting to them made every reload trigger the next one.
/// A file closed after writing is.
pub fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        _ => true,
    }
}

/// Starts watching `set`; every event sends `()` on `tx` (the scheduler debounces). A path that
/// cannot be watched is reported in [`InputWatcher::warnings`], never an error: the periodic
/// re-read still covers it.
pub fn watch(set: &WatchSet, tx: UnboundedSender<()>) -> InputWatcher {
    let mut warnings = Vec::new();
    let handler = move |res: notify::Result<notify::Event>| {
        // Errors (queue overflow, a removed root) also mean "look again".
        if res.as_ref().is_ok_and(|e| !is_change(&e.kind)) {
            return;
        }
        let _ = tx.send(());
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            warnings.push(format!(
                "file watching is unavailable ({e}); relying on the periodic re-read"
            ));
            return InputWatcher {
                _watcher: None,
                warnings,
            };
        }
    };
    let modes = set
        .recursive
        .iter()
        .map(|p| (p, RecursiveMode::Recursive))
        .chain(set.flat.iter().map(|p| (p, RecursiveMode::NonRecursive)));
    for (path, mode) in modes {
        if let Err(e) = watcher.watch(path, mode) {
            warnings.push(format!("cannot watch {}: {e}", path.display()));
        }
    }
    InputWatcher {
        _watcher: Some(watcher),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn watch_set_of_inputs() {
        let set = WatchSet::of(
            &["/etc/regprobe/secrets".into()],
            &[
                "/var/lib/kubelet/config.json".into(),
                "-".into(),
                "s.yaml".into(),
            ],
            &["/etc/containerd/certs.d".into()],
        );
        assert_eq!(
            set.recursive,
            vec![
                PathBuf::from("/etc/regprobe/secrets"),
                PathBuf::from("/etc/containerd/certs.d")
            ]
        );
        assert_eq!(
            set.flat,
            vec![PathBuf::from("/var/lib/kubelet"), PathBuf::from(".")]
        );
    }

    /// kubelet's AtomicWriter swap, twice: each swap is seen (a file watch would miss the
    /// second).
    #[tokio::test]
    async fn every_atomic_swap_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("regcred");
        std::fs::create_dir(&root).unwrap();
        let publish = |gen: u32| {
            let ts = root.join(format!("..2026_11_21_10_00_0{gen}.000000001"));
            std::fs::create_dir(&ts).unwrap();
            std::fs::write(
                ts.join(".dockerconfigjson"),
                format!("{{\"auths\":{{}},\"g\":{gen}}}"),
            )
            .unwrap();
            let tmp = root.join("..data_tmp");
            std::os::unix::fs::symlink(ts.file_name().unwrap(), &tmp).unwrap();
            std::fs::rename(&tmp, root.join("..data")).unwrap();
            let link = root.join(".dockerconfigjson");
            if !link.exists() {
                std::os::unix::fs::symlink("..data/.dockerconfigjson", &link).unwrap();
            }
        };
        publish(1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let w = watch(&WatchSet::of(&[dir.path().to_path_buf()], &[], &[]), tx);
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
        for gen in 2..=3 {
            while rx.try_recv().is_ok() {}
            publish(gen);
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            assert!(matches!(got, Ok(Some(()))), "swap {gen} not seen");
        }
    }

    /// Reading the inputs (what every reload does) must not trigger another reload.
    #[tokio::test]
    async fn reading_the_inputs_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s").join(".dockerconfigjson");
        std::fs::create_dir(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "{}").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _w = watch(&WatchSet::of(&[dir.path().to_path_buf()], &[], &[]), tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        for _ in 0..5 {
            let _ = std::fs::read_to_string(&f).unwrap();
            let _ = std::fs::read_dir(dir.path()).unwrap().count();
        }
        let got = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(got.is_err(), "reads were reported as changes");
        std::fs::write(&f, "{\"auths\":{}}").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Some(()))), "a write was not seen");
    }

    #[test]
    fn a_missing_path_is_a_warning() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let w = watch(
            &WatchSet {
                recursive: vec!["/nonexistent/regprobe-watch".into()],
                flat: vec![],
            },
            tx,
        );
        assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    }
}
