#!/usr/bin/env bash
# Derive a copy of rules.yaml for tests that run regprobe with fast probing.
#
#   deploy/prometheus/fast-rules.sh [FOR] [INTERVAL_SECONDS] < rules.yaml > rules-fast.yaml
#
# FOR (default 0s) replaces every `for:` duration; INTERVAL_SECONDS (default 5, for
# `regprobe serve --interval 5s`) replaces the 300 in RegprobeProbeStale's `3 * 300`.
# Nothing else changes: the expressions, labels and annotations under test are the real ones.
# .ci/check-deploy runs this and checks the result with promtool.
set -euo pipefail
for_duration=${1:-0s}
interval_seconds=${2:-5}
[[ $for_duration =~ ^[0-9]+(ms|s|m|h)$ ]] || { echo "fast-rules.sh: bad duration: $for_duration" >&2; exit 2; }
[[ $interval_seconds =~ ^[0-9]+$ ]] || { echo "fast-rules.sh: bad interval: $interval_seconds" >&2; exit 2; }
sed -E \
  -e "s/^([[:space:]]+)for: [0-9]+[smhdwy]+[[:space:]]*\$/\\1for: ${for_duration}/" \
  -e "s/> 3 \\* 300\$/> 3 * ${interval_seconds}/"
