//! Mounted-secret layouts as kubelet writes them, for regprobe's `--secrets-dir`.
//!
//! ```ignore
//! let dir = tempfile::tempdir().unwrap();
//! // plain files: DIR/pull/.dockerconfigjson
//! write_dockerconfigjson(dir.path(), "pull", &[(&reg.host(), "alice", "pw")]);
//! // one Secret volume per secret: DIR/<name>/{..data -> ..TS, .dockerconfigjson -> ..data/.dockerconfigjson}
//! let mut vol = write_secret_volume(dir.path(), "pull", &[(&reg.host(), "alice", "pw")]);
//! vol.publish(&[(".dockerconfigjson", dockerconfigjson(&[(&reg.host(), "alice", "new")]).as_bytes())]);
//! // one projected volume: DIR/{..data -> ..TS, a -> ..data/a, b -> ..data/b}, items a/.dockerconfigjson
//! let vol = write_projected_volume(dir.path(), &[("a", &[(&reg.host(), "alice", "pw")])]);
//! ```

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use base64::Engine;

/// The `.dockerconfigjson` text for `(registry key, user, password)` entries, as
/// `kubectl create secret docker-registry` writes it: `username`, `password` and `auth`
/// (base64 of `user:password`) for each key.
pub fn dockerconfigjson<K, U, P>(entries: &[(K, U, P)]) -> String
where
    K: AsRef<str>,
    U: AsRef<str>,
    P: AsRef<str>,
{
    let mut auths = serde_json::Map::new();
    for (key, user, pass) in entries {
        let (key, user, pass) = (key.as_ref(), user.as_ref(), pass.as_ref());
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        auths.insert(
            key.to_string(),
            serde_json::json!({ "username": user, "password": pass, "auth": auth }),
        );
    }
    serde_json::to_string(&serde_json::json!({ "auths": auths })).unwrap()
}

/// Writes `DIR/<name>/.dockerconfigjson` as plain files (no symlinks); returns the file path.
pub fn write_dockerconfigjson<K, U, P>(dir: &Path, name: &str, entries: &[(K, U, P)]) -> PathBuf
where
    K: AsRef<str>,
    U: AsRef<str>,
    P: AsRef<str>,
{
    let secret_dir = dir.join(name);
    std::fs::create_dir_all(&secret_dir).unwrap();
    let file = secret_dir.join(".dockerconfigjson");
    std::fs::write(&file, dockerconfigjson(entries)).unwrap();
    file
}

/// A volume directory that kubelet's AtomicWriter maintains:
///
/// ```text
/// ROOT/..2026_11_21_09_00_01.000000001/<files>   (the data, one timestamped dir per version)
/// ROOT/..data -> ..2026_11_21_09_00_01.000000001
/// ROOT/<first path component> -> ..data/<first path component>   (user-visible symlinks)
/// ```
///
/// Each [`AtomicVolume::publish`] writes a new timestamped dir, points `..data_tmp` at it,
/// renames `..data_tmp` over `..data` (the one atomic step, the event to watch), fixes the
/// user-visible symlinks and removes the old timestamped dir, in kubelet's order.
pub struct AtomicVolume {
    root: PathBuf,
    generation: u32,
}

impl AtomicVolume {
    /// A volume rooted at `root` (created if missing), with nothing published yet.
    pub fn new(root: &Path) -> AtomicVolume {
        std::fs::create_dir_all(root).unwrap();
        AtomicVolume {
            root: root.to_path_buf(),
            generation: 0,
        }
    }

    /// The current target of `..data` (the timestamped dir name), if published.
    pub fn current(&self) -> Option<String> {
        std::fs::read_link(self.root.join("..data"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Publishes a new version with exactly these files (relative paths, e.g.
    /// `".dockerconfigjson"` or `"a/.dockerconfigjson"`).
    pub fn publish(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let (y, mo, d, h, mi, s) = crate::utc_fields(crate::unix_now());
        let ts = format!(
            "..{y:04}_{mo:02}_{d:02}_{h:02}_{mi:02}_{s:02}.{:09}",
            self.generation
        );
        let ts_dir = self.root.join(&ts);
        std::fs::create_dir(&ts_dir).unwrap();
        let mut tops: Vec<String> = Vec::new();
        for (rel, data) in files {
            let path = ts_dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, data).unwrap();
            let top = rel.split('/').next().unwrap().to_string();
            if !tops.contains(&top) {
                tops.push(top);
            }
        }
        let old = self.current();
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        for top in &tops {
            let link = self.root.join(top);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{top}"), &link).unwrap();
            }
        }
        // Remove user-visible symlinks whose target is gone (keys removed from the secret).
        for entry in std::fs::read_dir(&self.root).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") || tops.contains(&name) {
                continue;
            }
            if entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Some(old) = old {
            if old != ts {
                let _ = std::fs::remove_dir_all(self.root.join(old));
            }
        }
    }
}

/// One Secret volume per secret, mounted at `DIR/<name>`: its own `..data` with
/// `.dockerconfigjson` in it. Returns the volume for later [`AtomicVolume::publish`] calls.
pub fn write_secret_volume<K, U, P>(dir: &Path, name: &str, entries: &[(K, U, P)]) -> AtomicVolume
where
    K: AsRef<str>,
    U: AsRef<str>,
    P: AsRef<str>,
{
    let mut vol = AtomicVolume::new(&dir.join(name));
    vol.publish(&[(".dockerconfigjson", dockerconfigjson(entries).as_bytes())]);
    vol
}

/// `(secret name, [(registry key, user, password)])` for [`write_projected_volume`].
pub type ProjectedSecret<'a, K, U, P> = (&'a str, &'a [(K, U, P)]);

/// One projected volume at `DIR` holding several secrets: one `..data` at `DIR`, items at
/// `<name>/.dockerconfigjson`, user-visible `DIR/<name> -> ..data/<name>`.
pub fn write_projected_volume<K, U, P>(
    dir: &Path,
    secrets: &[ProjectedSecret<'_, K, U, P>],
) -> AtomicVolume
where
    K: AsRef<str>,
    U: AsRef<str>,
    P: AsRef<str>,
{
    let mut vol = AtomicVolume::new(dir);
    let files: Vec<(String, String)> = secrets
        .iter()
        .map(|(name, entries)| {
            (
                format!("{name}/.dockerconfigjson"),
                dockerconfigjson(entries),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_bytes()))
        .collect();
    vol.publish(&refs);
    vol
}
