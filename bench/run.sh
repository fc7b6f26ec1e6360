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

# REGPROBE_BIN=/path/to/regprobe measures that binary instead of building this tree (e.g. a
# build of another commit, for a before/after).
if [[ -z ${REGPROBE_BIN:-} ]]; then
  echo "bench: building regprobe (cargo build --release)"
  cargo build --release --quiet --bin regprobe
  REGPROBE_BIN=$root/target/release/regprobe
fi
echo "bench: building the token issuer helper (bench/token-issuer)"
CARGO_TARGET_DIR="$root/target/bench-token-issuer" \
  cargo build --release --quiet --manifest-path bench/token-issuer/Cargo.toml

exec python3 bench/bench.py \
  --regprobe "$REGPROBE_BIN" \
  --token-issuer "$root/target/bench-token-issuer/release/regprobe-bench-token-issuer" \
  --out "$root/target/bench" "$@"
