#!/usr/bin/env bash
# regprobe soak test, one command (Debian, as root):
#
#   bash bench/soak.sh                # 5 minutes
#   bash bench/soak.sh --minutes 3    # at least 3
#   bash bench/soak.sh --keep         # keep the temp dir (secrets, logs, state) for a look after
#
# `regprobe serve` (release build) probes 500 mounted secrets against three real registries
# (Debian's docker-registry, CNCF distribution, htpasswd Basic auth; bcrypt entries made with
# `htpasswd -B -C 4`, the lowest cost, so the registries' CPU goes to the probes) while, in each
# chaos round of about 80 s:
#
#   restart  registry A: SIGTERM, wait for it to exit, start it again on the same port
#   pause    registry B: SIGSTOP for 10 s, then SIGCONT (probes must end in `timeout`)
#   cut      registry C: SIGKILL, 30 s down (probes must end in `connect_refused`), start again
#   rotate   secrets the way kubelet updates a Secret volume (new `..<timestamp>` dir, then the
#            `..data` symlink renamed over): 5 good → wrong password, 5 wrong → right one,
#            2 half-written (truncated JSON) then completed 6 s later, 1 removed, 1 added
#
# The roles move to the next registry every round. Rounds run from 30 s in until 70 s before the
# end, so every back-off (at most 2 × 20 s + 10 %) has run out and the final state can be
# checked. The 500 secrets (DIR/<name>/.dockerconfigjson, kubelet's per-Secret layout): 400 good,
# 80 wrong password, 20 malformed (five ways, each carrying a password), spread over the three
# registries; every password is distinctive (`soak-PW-<n>-zq`).
#
# Sampled: /metrics and /-/healthy every 2 s, /status every 20 s, VmRSS/VmHWM/fds from /proc at
# the start, every minute and at the end. Reported (target/soak/soak.{md,json}, the daemon's log
# in target/soak/serve.log): probes done, failures by reason, panics, RSS, secrets leaked (every
# password, every `auth` value, base64 of the password marker and `eyJ`, searched in the log,
# /metrics and every /status), what each chaos event did to the probes, how soon rotations were
# picked up, pairs not probed in time, pairs not in their expected state at the end, and a clean
# exit on SIGTERM. Exit status 1 when any of that is wrong (a panic, a leak, the daemon died, ...).
# Everything listens on 127.0.0.1; processes and the temp dir are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

minutes=5 keep=0
while (($#)); do
  case $1 in
    --minutes) minutes=${2:?--minutes N}; shift 2 ;;
    --minutes=*) minutes=${1#*=}; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $minutes =~ ^[0-9]+$ ]] && ((minutes >= 3)) || { echo "soak: --minutes must be a whole number ≥ 3" >&2; exit 2; }

interval=20 timeout=3 settle=70 cycle=80
bash .ci/install-deps >/dev/null
echo "soak: building regprobe (cargo build --release)"
cargo build --release --quiet --bin regprobe
bin=$root/target/release/regprobe
out=$root/target/soak
mkdir -p "$out"

work=$(mktemp -d /tmp/regprobe-soak.XXXXXX)
declare -a reg_pid=() reg_port=()
serve_pid='' sampler_pid=''
cleanup() {
  set +e
  [[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null && wait "$sampler_pid" 2>/dev/null
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  for p in "${reg_pid[@]}"; do
    [[ -n $p ]] || continue
    kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  if ((keep)); then echo "soak: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

py() { python3 "$root/bench/soak.py" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "soak: port $1 never opened" >&2; return 1; }
event() { echo "$(date +%s.%N) $1 ${2:--1}" >>"$work/events.log"; }
log() { printf 'soak: [%3ds] %s\n' "$(($(date +%s) - t_start))" "$*"; }

# --- registries ------------------------------------------------------------------------------
nreg=3
for ((i = 0; i < nreg; i++)); do reg_port[i]=$(free_port); done
t_start=$(date +%s)
py gen --work "$work" --ports "$(IFS=,; echo "${reg_port[*]}")" --n 500 | sed 's/^/soak: secrets: /'

start_registry() { # index
  local i=$1
  docker-registry serve "$work/registry-$i.yml" >>"$work/registry-$i.log" 2>&1 &
  reg_pid[i]=$!
  wait_port "${reg_port[i]}"
}
for ((i = 0; i < nreg; i++)); do
  n=0
  while read -r user pw; do
    if ((n++ == 0)); then flag=-cbB; else flag=-bB; fi
    htpasswd "$flag" -C 4 "$work/htpasswd-$i" "$user" "$pw" 2>/dev/null
  done <"$work/users-$i.txt"
  cat >"$work/registry-$i.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data-$i}}
http: {addr: 127.0.0.1:${reg_port[i]}, secret: soak-http-secret-$i}
auth: {htpasswd: {realm: regprobe-soak, path: $work/htpasswd-$i}}
YML
  start_registry "$i"
  echo "soak: registry $i on 127.0.0.1:${reg_port[i]} ($n htpasswd users, bcrypt cost 4)"
done

# --- regprobe serve --------------------------------------------------------------------------
mport=$(free_port)
url=http://127.0.0.1:$mport
"$bin" serve --no-default-paths --secrets-dir "$work/secrets" --listen "127.0.0.1:$mport" \
  --interval "${interval}s" --timeout "${timeout}s" --concurrency 16 \
  --log-level debug --log-format json 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('$url/-/ready', timeout=1)" 2>/dev/null && break
  sleep 0.1
done
t_start=$(date +%s)
event soak-begin
log "regprobe serve (pid $serve_pid) ready on $url: --interval ${interval}s --timeout ${timeout}s --concurrency 16"
py sample --work "$work" --url "$url" --pid "$serve_pid" &
sampler_pid=$!

t_end=$((t_start + minutes * 60))
sleep_until() { local d=$(($1 - $(date +%s))); ((d > 0)) && sleep "$d"; return 0; }

restart() { # index
  local i=$1
  event restart-begin "$i"
  kill "${reg_pid[i]}"; wait "${reg_pid[i]}" 2>/dev/null || true
  sleep 1
  start_registry "$i"
  event restart-end "$i"
  log "restarted registry $i (127.0.0.1:${reg_port[i]})"
}
pause() { # index
  local i=$1
  event pause-begin "$i"
  kill -STOP "${reg_pid[i]}"
  sleep 10
  kill -CONT "${reg_pid[i]}"
  event pause-end "$i"
  log "paused registry $i for 10 s (SIGSTOP/SIGCONT)"
}
cut() { # index
  local i=$1
  event cut-begin "$i"
  kill -KILL "${reg_pid[i]}"; wait "${reg_pid[i]}" 2>/dev/null || true
  sleep 30
  start_registry "$i"
  event cut-end "$i"
  log "cut off registry $i for 30 s (SIGKILL, then started again)"
}

sleep_until $((t_start + 30))
round=0
while ((round == 0 || $(date +%s) + cycle <= t_end - settle)); do
  round=$((round + 1))
  a=$(((round - 1) % nreg)) b=$((round % nreg)) c=$(((round + 1) % nreg))
  restart "$a"; sleep 8
  pause "$b"; sleep 8
  cut "$c"; sleep 5
  event rotate
  log "rotated secrets (kubelet ..data swap): $(py rotate --work "$work" --round "$round" --phase break)"
  sleep 6
  log "completed the half-written secrets: $(py rotate --work "$work" --round "$round" --phase restore)"
  sleep 8
done
log "chaos over after $round round(s); settling until the end"
sleep_until "$t_end"
event soak-end

# --- report ----------------------------------------------------------------------------------
kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null || true
sampler_pid=''
echo
rc=0
py report --work "$work" --url "$url" --pid "$serve_pid" --interval "$interval" \
  --timeout "$timeout" --minutes "$minutes" --out "$out" || rc=$?

# A clean exit on SIGTERM, and no panic while shutting down either.
t0=$(date +%s.%N)
kill "$serve_pid"
code=0
for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$serve_pid" 2>/dev/null; then
  shutdown="did not exit within 10 s of SIGTERM"; rc=1
  kill -KILL "$serve_pid"
fi
wait "$serve_pid" || code=$?
serve_pid=''
dt=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
shutdown=${shutdown:-"exit status $code, ${dt} s after SIGTERM"}
((code == 0)) || rc=1
panics=$(grep -c panicked "$work/serve.log" || true)
((panics == 0)) || rc=1
echo "shutdown             $shutdown; panics in the whole log: $panics" | tee -a "$out/soak.md"
cp "$work/serve.log" "$work/samples.jsonl" "$work/rss.jsonl" "$work/events.log" "$out/" 2>/dev/null || true
echo "soak: machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); report in target/soak/"
exit "$rc"
