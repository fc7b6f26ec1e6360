#!/usr/bin/env bash
# regprobe vs prometheus-blackbox-exporter, one command (Debian, as root):
#
#   bash bench/run.sh            # full run, N = 10, 100, 1000 (about 10 minutes)
#   bash bench/run.sh --quick    # smoke test: N = 10, 100, short windows (about 2 minutes)
#
# Installs what is missing (docker-registry, apache2-utils, prometheus-blackbox-exporter; no
# service is started), builds regprobe (`cargo build --release`) and the token issuer helper
# (bench/token-issuer, the integration tests' issuer), then runs bench/bench.py. Everything
# listens on 127.0.0.1; processes and temp dirs are removed on exit. Results: the table on
# standard output, and target/bench/results.{md,json}. BENCHMARKS.md explains the figures.
# Options after the command go to bench/bench.py (--quick, --ns 10,100).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

declare -A want=(
  [docker-registry]=/usr/bin/docker-registry
  [apache2-utils]=/usr/bin/htpasswd
  [prometheus-blackbox-exporter]=/usr/bin/prometheus-blackbox-exporter
)
missing=()
for pkg in "${!want[@]}"; do
  [[ -x ${want[$pkg]} ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The packages ship services; policy-rc.d (exit 101) keeps them from starting. Only a
  # policy-rc.d created here is removed again.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $(trap -p EXIT) ]]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi

tgt=${CARGO_TARGET_DIR:-$root/target}
variants=()

# Before: main's regprobe, in the same run (the before/after table). REGPROBE_BEFORE_BIN=path
# measures that binary; otherwise BEFORE_REF (default `main`) is exported with `git archive`
# into a temp dir and built there with the same target dir (dependencies are shared, only
# regprobe itself is rebuilt). BEFORE_REF=none skips it.
if [[ -z ${REGPROBE_BEFORE_BIN:-} && ${BEFORE_REF:-main} != none ]]; then
  ref=${BEFORE_REF:-main}
  src=$(mktemp -d /tmp/regprobe-before.XXXXXX)
  echo "bench: building regprobe at $ref ($(git rev-parse --short "$ref")) for the before column"
  git archive "$ref" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR=$tgt cargo build --release --quiet --bin regprobe)
  mkdir -p "$tgt/bench-before"
  cp "$tgt/release/regprobe" "$tgt/bench-before/regprobe"
  rm -rf "$src"
  REGPROBE_BEFORE_BIN=$tgt/bench-before/regprobe
fi
[[ -n ${REGPROBE_BEFORE_BIN:-} ]] && variants+=(--variant "before=$REGPROBE_BEFORE_BIN")

# REGPROBE_BIN=/path/to/regprobe measures that binary instead of building this tree (e.g. a
# build of another commit, for a before/after).
if [[ -z ${REGPROBE_BIN:-} ]]; then
  echo "bench: building regprobe (cargo build --release)"
  cargo build --release --quiet --bin regprobe
  REGPROBE_BIN=$tgt/release/regprobe
fi

# The static glibc build (`+crt-static`, as a distroless image could ship it) beside the
# default one. REGPROBE_STATIC_BIN=path measures that binary; REGPROBE_STATIC=0 skips it.
if [[ -z ${REGPROBE_STATIC_BIN:-} && ${REGPROBE_STATIC:-1} != 0 ]]; then
  echo "bench: building the static regprobe (+crt-static, x86_64-unknown-linux-gnu)"
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --quiet --bin regprobe --target x86_64-unknown-linux-gnu
  REGPROBE_STATIC_BIN=$tgt/x86_64-unknown-linux-gnu/release/regprobe
fi
[[ -n ${REGPROBE_STATIC_BIN:-} ]] && variants+=(--variant "static=$REGPROBE_STATIC_BIN")

echo "bench: building the token issuer helper (bench/token-issuer)"
CARGO_TARGET_DIR="$tgt/bench-token-issuer" \
  cargo build --release --quiet --manifest-path bench/token-issuer/Cargo.toml

exec python3 bench/bench.py \
  --regprobe "$REGPROBE_BIN" \
  --token-issuer "$tgt/bench-token-issuer/release/regprobe-bench-token-issuer" \
  --out "$tgt/bench" "${variants[@]}" "$@"
