//! Process settings that size the daemon for a prober (issue #16; the figures behind every value
//! are in `BENCHMARKS.md`, "Footprint"): the tokio runtime's threads and stacks, and glibc
//! malloc's arenas and thresholds.
//!
//! regprobe is I/O-bound: at most `--concurrency` probes (8 by default) wait on sockets, and a
//! probe costs well under a millisecond of CPU. So the runtime needs few threads, and every
//! thread costs memory: its stack's touched pages, and, with glibc, a malloc arena of its own
//! whose freed chunks stay resident (fragmentation that outlives the probes that made it).

use std::time::Duration;

/// Tokio worker threads: 2, so that a `/metrics` render (a few ms at 1,000 credentials, under the
/// store's read lock) never stalls the probes' timers, and no more (probes wait on sockets).
pub const WORKER_THREADS: usize = 2;

/// Most threads tokio's blocking pool may start: 4. The pool runs `tokio::fs` calls, the
/// `--web.config.file` bcrypt checks (`spawn_blocking`, so at most this many run at once however
/// many clients send passwords), and the worker handed off while a reload or a credential
/// provider run blocks (`block_in_place`, `crate::scheduler`, `crate::providers`). 4 keeps a
/// reload and the worker it hands off from waiting on two slow password checks, without letting a
/// burst start the default 512 (each with a stack and, under glibc, an arena); idle threads exit
/// after [`BLOCKING_KEEP_ALIVE`].
pub const MAX_BLOCKING_THREADS: usize = 4;

/// Stack size of the runtime's threads, bytes (tokio's default: 2 MiB). Probe futures live on
/// the heap (`tokio::spawn`); the deepest stack use is a rustls handshake and `serde_json`
/// rendering `/status`, far below this. 1 MiB keeps the debug build's deeper frames safe too.
pub const THREAD_STACK_SIZE: usize = 1024 * 1024;

/// How long an idle blocking-pool thread lives (tokio's default: 10 s).
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The runtime builder `regprobe` runs on: multi-threaded with [`WORKER_THREADS`] workers,
/// [`MAX_BLOCKING_THREADS`], [`THREAD_STACK_SIZE`], [`BLOCKING_KEEP_ALIVE`], all drivers enabled.
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_stack_size(THREAD_STACK_SIZE)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all();
    builder
}

/// glibc malloc settings, applied by [`tune_allocator`] (each `mallopt` parameter as glibc's
/// `malloc.h` names it). An explicit threshold also turns off glibc's dynamic adjustment, which
/// after the first 1 MB `/metrics` buffer is freed would serve every later one from the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// One arena for every thread: the workers, the blocking pool, the file watcher and the
    /// main thread allocate and free the same kinds of objects, and per-thread arenas keep
    /// each one's freed chunks resident.
    pub const ARENA_MAX: libc::c_int = 1;
    /// Allocations from this size (bytes) get their own mapping, unmapped when freed (the
    /// `/metrics` and `/status` buffers at scale, the secret files read at a reload).
    pub const MMAP_THRESHOLD: libc::c_int = 64 * 1024;
    /// Free memory at the top of the heap beyond this (bytes) is returned to the system.
    pub const TRIM_THRESHOLD: libc::c_int = 128 * 1024;
}

/// Sets glibc malloc's arena count and thresholds (see the constants of this module's `glibc`
/// part). Call once, first thing in `main`, before any thread starts. A no-op on other C
/// libraries (musl's allocator has no arenas). `MALLOC_ARENA_MAX` and `GLIBC_TUNABLES` given in
/// the environment still win: this only runs when neither is set.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("GLIBC_TUNABLES").is_some()
            || std::env::var_os("MALLOC_ARENA_MAX").is_some()
        {
            return;
        }
        // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, glibc::ARENA_MAX);
            libc::mallopt(libc::M_MMAP_THRESHOLD, glibc::MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, glibc::TRIM_THRESHOLD);
        }
    }
}

/// Returns the allocator's free pages to the system (glibc `malloc_trim(0)`, which also releases
/// free pages inside the heap, not only at its top). Cheap (tens of microseconds for regprobe's
/// heap); call it when a burst of work is over (a probe cycle, a reload). A no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only returns free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_builds_and_runs_blocking_work() {
        tune_allocator();
        let rt = runtime_builder().build().unwrap();
        let n = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|i| tokio::task::spawn_blocking(move || i * 2))
                .collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        });
        assert_eq!(n, 56);
        release_free_memory();
    }
}
