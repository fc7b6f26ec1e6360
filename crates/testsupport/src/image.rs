//! Pushes a tiny test image (one config blob, one small gzip layer, one manifest) into a
//! registry with `skopeo copy` from an OCI layout written to a temp dir. skopeo is the
//! reference client here.
//!
//! ```ignore
//! let img = push_image(&reg, "team/app:1", Some(("alice", "pw")));
//! // img.reference == "127.0.0.1:PORT/team/app:1", img.digest == "sha256:…"
//! ```
//!
//! The image content is fixed (one file `/hello.txt`), so its digests are the same every run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::registry::Registry;

/// The skopeo binary (Debian's `skopeo` package).
pub const SKOPEO_BIN: &str = "/usr/bin/skopeo";

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of a Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Manifest format in the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest (as written in the layout).
    #[default]
    Oci,
    /// Docker schema 2 (skopeo converts on push).
    Docker,
}

/// Options for [`push_image_with`].
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// `(user, password)` for the registry (`--dest-creds`); `None` = anonymous.
    pub creds: Option<(String, String)>,
    /// Verify TLS with the CA certificates in this dir (`--dest-cert-dir`); `None` = do not
    /// verify (`--dest-tls-verify=false`: HTTPS without checks, falling back to plain HTTP).
    pub cert_dir: Option<PathBuf>,
    /// Manifest format the registry stores.
    pub format: ManifestFormat,
    /// Push this OCI image layout's tag `latest` (e.g. the one `.ci/image` builds) instead of
    /// the tiny test image.
    pub layout: Option<PathBuf>,
}

/// What was pushed.
#[derive(Clone, Debug)]
pub struct PushedImage {
    /// `HOST/REPO:TAG`, e.g. `127.0.0.1:5000/team/app:1`.
    pub reference: String,
    /// The repository (`team/app`).
    pub repository: String,
    /// The tag (`1`).
    pub tag: String,
    /// Manifest digest in the registry (`sha256:…`).
    pub digest: String,
    /// Media type of that manifest ([`OCI_MANIFEST`] or [`DOCKER_MANIFEST`]).
    pub media_type: &'static str,
}

/// sha256 digest string (`sha256:<hex>`) of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Pushes the test image to `registry` as `repo_tag` (`"team/app:1"`), with `creds` if given.
/// Panics with skopeo's output on failure.
pub fn push_image(registry: &Registry, repo_tag: &str, creds: Option<(&str, &str)>) -> PushedImage {
    push_image_with(
        &registry.host(),
        repo_tag,
        &PushOptions {
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            ..Default::default()
        },
    )
}

/// Pushes the test image to `host` (`127.0.0.1:PORT`) as `repo_tag`.
pub fn push_image_with(host: &str, repo_tag: &str, opts: &PushOptions) -> PushedImage {
    assert!(
        host.starts_with("127.") || host.starts_with("localhost:"),
        "test images go to loopback registries only, not {host}"
    );
    let (repository, tag) = repo_tag
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .unwrap_or((repo_tag, "latest"));
    let work = tempfile::Builder::new()
        .prefix("regprobe-image-")
        .tempdir()
        .unwrap();
    let layout = match &opts.layout {
        Some(dir) => dir.clone(),
        None => {
            let layout = work.path().join("layout");
            write_oci_layout(&layout);
            layout
        }
    };
    let digest_file = work.path().join("digest");
    let reference = format!("{host}/{repository}:{tag}");

    let mut cmd = skopeo(work.path());
    // As root, `skopeo copy` keeps a blob-info cache in /var/lib/containers/cache (a file left
    // behind on the machine). containers/image takes the "rootless" path, and so the cache dir
    // `$XDG_DATA_HOME/containers/cache` (our scratch dir), when this variable names a non-zero
    // uid (containers/image `internal/rootless.GetRootlessEUID`).
    cmd.env("_CONTAINERS_ROOTLESS_UID", "65534");
    cmd.args(["copy", "--quiet", "--insecure-policy", "--retry-times", "0"]);
    cmd.arg("--digestfile").arg(&digest_file);
    match &opts.creds {
        Some((u, p)) => {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        None => {
            cmd.arg("--dest-no-creds");
        }
    }
    match &opts.cert_dir {
        Some(dir) => {
            cmd.arg("--dest-cert-dir").arg(dir);
        }
        None => {
            cmd.arg("--dest-tls-verify=false");
        }
    }
    if opts.format == ManifestFormat::Docker {
        cmd.args(["--format", "v2s2"]);
    }
    cmd.arg(format!("oci:{}:latest", layout.display()));
    cmd.arg(format!("docker://{reference}"));
    let out = run(cmd);
    assert!(
        out.status.success(),
        "skopeo copy to {reference} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = std::fs::read_to_string(&digest_file)
        .expect("skopeo wrote no digest file")
        .trim()
        .to_string();
    PushedImage {
        reference,
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest,
        media_type: match opts.format {
            ManifestFormat::Oci => OCI_MANIFEST,
            ManifestFormat::Docker => DOCKER_MANIFEST,
        },
    }
}

/// A `skopeo` command isolated from the caller's environment: no proxy variables, its own
/// `HOME`/`XDG_*` dirs and auth file under `scratch`, so no user credentials are read.
pub fn skopeo(scratch: &Path) -> Command {
    assert!(
        Path::new(SKOPEO_BIN).exists(),
        "{SKOPEO_BIN} is missing: run .ci/install-deps"
    );
    let home = scratch.join("home");
    let _ = std::fs::create_dir_all(home.join("run"));
    let mut cmd = Command::new(SKOPEO_BIN);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"));
    cmd
}

/// Runs a command with stdin closed and collects its output.
pub fn run(mut cmd: Command) -> Output {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Writes the test image as an OCI image layout (tag `latest`) into `dir`; returns the
/// manifest digest.
pub fn write_oci_layout(dir: &Path) -> String {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let digest = sha256_digest(data);
        std::fs::write(blobs.join(&digest["sha256:".len()..]), data).unwrap();
        (digest, data.len())
    };
    let tar = tar_with_file("hello.txt", b"hello from regprobe tests\n");
    let diff_id = sha256_digest(&tar);
    let (layer_digest, layer_size) = put(&gzip_stored(&tar));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["/hello.txt"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [ { "created_by": "regprobe tests" } ]
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size
        },
        "layers": [ {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size
        } ]
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [ {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { "org.opencontainers.image.ref.name": "latest" }
        } ]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_digest
}

/// A ustar archive holding one regular file.
fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], off: usize, s: &[u8]| h[off..off + s.len()].copy_from_slice(s);
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000644\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{:011o}\0", content.len()).as_bytes());
    put(&mut h, 136, b"00000000000\0");
    put(&mut h, 148, b"        ");
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// gzip of `data` with stored (uncompressed) deflate blocks: valid gzip without a compressor.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
