//! The one safe file reader for every input (secrets, the node's `config.json`, `hosts.toml`,
//! CA/certificate/key files, `--pod-spec` files, and later credential-provider configs):
//! issue 13, "One safe file reader".
//!
//! [`read_file`] (and [`read_file_within`]):
//!
//! * **regular files only**: the file is opened with `O_NONBLOCK` (opening a FIFO must not wait
//!   for a writer) and `fstat`ed through the opened descriptor; a FIFO, a character device
//!   (`/dev/zero`), a socket, a block device or a directory is [`ReadError::NotRegular`].
//!   Symlinks are followed, as kubelet's `..data` volume layout needs;
//! * **a size cap** per call: more than `limit` bytes is [`ReadError::TooLarge`], found while
//!   reading (never trusting `st_size`, which is 0 for `/proc` files and devices);
//! * **a timeout**: the open and read run on a long-lived reader thread, and a read that takes
//!   longer than the timeout (a hung NFS or FUSE mount) is [`ReadError::TimedOut`]. The caller
//!   goes on; the stuck reader is abandoned (later reads start a new one) and ends when the
//!   kernel lets it. At most [`MAX_STUCK_READS`] reads may be stuck at once: past that, reads
//!   fail at once with [`ReadError::TooManyStuck`] instead of piling up threads.
//!
//! Bytes are read into a zeroizing buffer (grown by copying, so no reallocation leaves secret
//! bytes in freed memory). Callers on the async runtime run their whole load under
//! `tokio::task::block_in_place` (the scheduler's reload), so a slow read never holds a worker
//! that `/-/healthy` or the SIGTERM handler needs.

use secrecy::zeroize::Zeroizing;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long one file may take to open and read by default: 5 s.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader threads that may be stuck (timed out, not yet returned) at once.
pub const MAX_STUCK_READS: usize = 8;
/// Cap for configuration files (`hosts.toml`): 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Cap for PEM files (CA bundles, client certificates and keys): 4 MiB.
pub const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed (`NotFound`, `PermissionDenied`, …).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not a regular file.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// More than `limit` bytes.
    #[error("larger than {limit} bytes, not read")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// Opening and reading took longer than `after`.
    #[error("no answer from the file system within {}", humantime::format_duration(*.after))]
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// [`MAX_STUCK_READS`] earlier reads are still stuck.
    #[error("not read: {MAX_STUCK_READS} earlier reads are still stuck in the file system")]
    TooManyStuck,
}

impl ReadError {
    /// Whether the file does not exist (callers skip missing default paths).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl From<ReadError> for io::Error {
    /// For callers whose errors carry an `io::Error` source: the kind says what happened
    /// (`InvalidInput` not regular, `InvalidData` too large, `TimedOut`, `ResourceBusy`).
    fn from(e: ReadError) -> io::Error {
        let kind = match &e {
            ReadError::Io(inner) => return io::Error::new(inner.kind(), e),
            ReadError::NotRegular(_) => io::ErrorKind::InvalidInput,
            ReadError::TooLarge { .. } => io::ErrorKind::InvalidData,
            ReadError::TimedOut { .. } => io::ErrorKind::TimedOut,
            ReadError::TooManyStuck => io::ErrorKind::ResourceBusy,
        };
        io::Error::new(kind, e)
    }
}

/// Reads the regular file at `path`, at most `limit` bytes, within [`READ_TIMEOUT`] (module
/// docs).
pub fn read_file(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_file_within(path, limit, READ_TIMEOUT)
}

/// [`read_file`] with another timeout.
pub fn read_file_within(
    path: &Path,
    limit: u64,
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let path: PathBuf = path.to_path_buf();
    with_timeout(timeout, move || read_blocking(&path, limit))
}

/// Runs `work` on the reader thread and waits at most `timeout` for it.
fn with_timeout<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    with_timeout_counted(&READER, &STUCK, timeout, work)
}

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The long-lived reader thread's queue (a thread per read would cost ~0.1 ms each). A reader
/// that stops answering is abandoned: the next read starts a new one.
static READER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

fn reader(slot: &Mutex<Option<mpsc::Sender<Job>>>) -> Result<mpsc::Sender<Job>, ReadError> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = slot.as_ref() {
        return Ok(tx.clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("regprobe-read".into())
        .stack_size(256 * 1024)
        // Ends when every sender is gone (abandoned and its queue done).
        .spawn(move || rx.into_iter().for_each(|job| job()))?;
    *slot = Some(tx.clone());
    Ok(tx)
}

/// [`with_timeout`] over the reader of `slot`, counting abandoned (timed-out, still running)
/// reads in `stuck`.
fn with_timeout_counted<T: Send + 'static>(
    slot: &'static Mutex<Option<mpsc::Sender<Job>>>,
    stuck: &'static AtomicUsize,
    timeout: Duration,
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    if stuck.load(Ordering::Acquire) >= MAX_STUCK_READS {
        return Err(ReadError::TooManyStuck);
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (tx, rx) = mpsc::sync_channel(1);
    let job_state = Arc::clone(&state);
    let job: Job = Box::new(move || {
        let out = work();
        if job_state
            .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Abandoned by a timed-out caller: free its slot.
            stuck.fetch_sub(1, Ordering::AcqRel);
        }
        let _ = tx.send(out);
    });
    let queue = reader(slot)?;
    if let Err(mpsc::SendError(job)) = queue.send(job) {
        // The reader is gone (it cannot be, but then start another).
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        reader(slot)?
            .send(job)
            .map_err(|_| ReadError::Io(io::Error::other("no reader thread")))?;
    }
    match rx.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            if state
                .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                stuck.fetch_add(1, Ordering::AcqRel);
                // This reader is stuck: later reads get a new one.
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(ReadError::TimedOut { after: timeout })
            } else {
                // Finished just now.
                rx.recv()
                    .unwrap_or(Err(ReadError::TimedOut { after: timeout }))
            }
        }
    }
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn read_blocking(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        return Err(ReadError::NotRegular(kind_of(t)));
    }
    read_limited_sized(file, limit, meta.len())
}

/// Reads at most `limit` bytes of `reader` into a zeroizing buffer; more is
/// [`ReadError::TooLarge`]. Also for standard input (`-`), which is not a file.
pub fn read_limited(reader: impl Read, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_limited_sized(reader, limit, 0)
}

/// The first buffer's capacity for a read of at most `limit` bytes whose size is thought to be
/// `size_hint` (`st_size`; 0 when unknown, as for `/proc` files and pipes): the hint and one
/// byte (so that end of file is seen without growing), else 4 KiB, never above 64 KiB or the
/// cap. Sized to the file because the whole capacity is zeroized on drop: a fixed 64 KiB for a
/// 200-byte secret was a fresh mapping, 16 page faults and 64 KiB of zeroing per file, most of
/// a 1,000-secret reload's CPU (issue #16).
fn initial_capacity(limit: usize, size_hint: u64) -> usize {
    let want = match usize::try_from(size_hint) {
        Ok(0) => 4096,
        Ok(hint) => hint.saturating_add(1),
        Err(_) => usize::MAX,
    };
    want.min(limit.saturating_add(1)).min(64 * 1024)
}

/// [`read_limited`] with the expected size (`size_hint`, bytes; only sizes the first buffer).
fn read_limited_sized(
    mut reader: impl Read,
    limit: u64,
    size_hint: u64,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // Read straight into the zeroizing buffer (no bounce chunk: a zeroized 8 KiB one cost about
    // 33 k instructions per secret loaded, callgrind, issue 16); `len` bytes are data.
    let mut buf = Zeroizing::new(vec![0u8; initial_capacity(limit, size_hint)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            // Full: a bigger buffer, at most the cap and one byte, so larger than `len` (at most
            // `limit` here); the old one is zeroized as it drops.
            let size = (buf.len() * 2).max(4096).min(limit.saturating_add(1));
            let mut bigger = Zeroizing::new(vec![0u8; size]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        }
        if len > limit {
            return Err(ReadError::TooLarge {
                limit: limit as u64,
            });
        }
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_buffer_is_sized_to_the_file() {
        assert_eq!(initial_capacity(1 << 20, 200), 201);
        assert_eq!(initial_capacity(1 << 20, 0), 4096);
        assert_eq!(initial_capacity(100, 0), 101);
        assert_eq!(initial_capacity(1 << 20, 10 << 20), 64 * 1024);
        // A file whose st_size lies (grows while read) still reads whole, up to the cap.
        let data = vec![7u8; 10_000];
        let got = read_limited_sized(&data[..], 20_000, 10).unwrap();
        assert_eq!(&got[..], &data[..]);
        assert!(matches!(
            read_limited_sized(&data[..], 9_999, 10),
            Err(ReadError::TooLarge { limit: 9_999 })
        ));
    }

    #[test]
    fn regular_files_are_read_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(&read_file(&f, 10).unwrap()[..], b"0123456789");
        assert!(matches!(
            read_file(&f, 9),
            Err(ReadError::TooLarge { limit: 9 })
        ));
        // Symlinks are followed (kubelet's ..data layout).
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(read_file(&l, 10).unwrap().len(), 10);
        assert!(read_file(&dir.path().join("missing"), 10)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".dockerconfigjson");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let e = read_file(&fifo, 1024).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("a FIFO")), "{e}");
        assert!(started.elapsed() < READ_TIMEOUT, "the FIFO was waited on");
        let e = read_file(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
        assert!(matches!(
            read_file(dir.path(), 1024),
            Err(ReadError::NotRegular("a directory"))
        ));
    }

    #[test]
    fn a_hung_read_times_out_and_stuck_reads_are_bounded() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        static SLOT: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let mut outcomes = Vec::new();
        for _ in 0..MAX_STUCK_READS + 2 {
            let hold = Arc::clone(&hold);
            outcomes.push(with_timeout_counted(
                &SLOT,
                &COUNT,
                Duration::from_millis(20),
                move || {
                    let _ = hold.lock().unwrap().recv();
                    Ok(())
                },
            ));
        }
        let timed_out = outcomes
            .iter()
            .filter(|o| matches!(o, Err(ReadError::TimedOut { .. })))
            .count();
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(ReadError::TooManyStuck)))
            .count();
        assert_eq!(timed_out, MAX_STUCK_READS);
        assert_eq!(refused, 2);
        drop(release);
        // Released threads free their slots.
        let started = std::time::Instant::now();
        while COUNT.load(Ordering::Acquire) > 0 {
            assert!(started.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(with_timeout_counted(&SLOT, &COUNT, Duration::from_secs(5), || Ok(())).is_ok());
    }
}
