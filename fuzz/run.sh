#!/usr/bin/env bash
# Runs every cargo-fuzz target of regprobe for a bounded time; exits non-zero if any crashed.
#
#   fuzz/run.sh [SECONDS]     each target SECONDS (default 60), corpus kept in a scratch dir
#   fuzz/run.sh --smoke       build, then each target for 10 s: a quick check for CI
#   fuzz/run.sh --merge [S]   like [SECONDS], then merge what was found into fuzz/corpus/<target>
#                             (libFuzzer -merge=1: only inputs that add coverage are kept)
#   fuzz/run.sh --cmin        minimise fuzz/corpus/<target>: the named seeds, plus the hash-named
#                             inputs that add coverage edges to them
#   FUZZ_TARGETS="challenge token_body" fuzz/run.sh 30   a subset
#   FUZZ_SANITIZER=none fuzz/run.sh                      no AddressSanitizer (faster build)
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags that
# cargo-fuzz passes (-Zsanitizer=address); the ASan runtime ships with stable's rust-std.
# With FUZZ_SANITIZER=none no -Z flag is passed and RUSTC_BOOTSTRAP is not needed.
# A crash leaves its input in fuzz/artifacts/<target>/; replay it (from fuzz/) with
#   target/x86_64-unknown-linux-gnu/release/<target> artifacts/<target>/crash-…
# or RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/crash-…
set -euo pipefail
cd "$(dirname "$0")"

seconds=60
merge=0
cmin=0
case "${1:-}" in
  --smoke) seconds=10 ;;
  --cmin) cmin=1 ;;
  --merge) merge=1; seconds="${2:-60}" ;;
  -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
  "") ;;
  *) seconds="$1" ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
  echo "run.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi

targets=(${FUZZ_TARGETS:-secret_content secret_planted challenge token_body hosts_toml registry_error reference})
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build (sanitizer: $sanitizer)"
start=$(date +%s)
cargo fuzz build --sanitizer "$sanitizer"
echo "== built in $(( $(date +%s) - start ))s"
# The built binaries are run directly (`cargo fuzz run` would rebuild before each target, and
# pick up half-finished edits of the main crate).
bindir="target/$(rustc -vV | sed -n 's/^host: //p')/release"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/regprobe-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# hosts_toml writes each input to a file: on tmpfs when there is one.
if [[ -d /dev/shm && -w /dev/shm ]]; then
  export REGPROBE_FUZZ_SCRATCH="$(mktemp -d /dev/shm/regprobe-fuzz.XXXXXX)"
else
  export REGPROBE_FUZZ_SCRATCH="$scratch"
fi
trap 'rm -rf "$scratch" "$REGPROBE_FUZZ_SCRATCH"' EXIT

if [[ "$cmin" -eq 1 ]]; then
  for t in "${targets[@]}"; do
    mkdir -p "$scratch/cmin/$t" "$scratch/rest/$t" "corpus/$t"
    find "corpus/$t" -type f -regextype egrep ! -regex '.*/[0-9a-f]{40}' -exec cp {} "$scratch/cmin/$t/" \;
    find "corpus/$t" -type f -regextype egrep -regex '.*/[0-9a-f]{40}' -exec mv {} "$scratch/rest/$t/" \;
    # Edges only (no hit-count buckets): about a third of the files for the same edges.
    "$bindir/$t" -merge=1 -use_counters=0 -max_len=16384 "$scratch/cmin/$t" "$scratch/rest/$t" \
      2>"$scratch/$t.log"
    find "corpus/$t" -type f -delete
    find "$scratch/cmin/$t" -type f -exec cp {} "corpus/$t/" \;
    echo "   corpus/$t: $(find "corpus/$t" -type f | wc -l) files, $(du -sk "corpus/$t" | cut -f1) KiB"
  done
  exit 0
fi

failed=()
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s"
  mkdir -p "$scratch/$t" "corpus/$t" "artifacts/$t"
  # The scratch dir comes first: libFuzzer writes new inputs there, the kept corpus is read only.
  if ! "$bindir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 "$scratch/$t" "corpus/$t" \
      2>"$scratch/$t.log"; then
    failed+=("$t")
    grep -E -A12 "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$scratch/$t.log" | head -n 40 >&2
    grep -E "Test unit written to" "$scratch/$t.log" >&2 || true
    continue
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$scratch/$t.log" | tr '\n' ' '
  echo
  if [[ "$merge" -eq 1 ]]; then
    "$bindir/$t" -merge=1 -max_len=16384 "corpus/$t" "$scratch/$t" 2>>"$scratch/$t.log"
    echo "   corpus/$t: $(find "corpus/$t" -type f | wc -l) files"
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash"
