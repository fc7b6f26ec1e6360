#!/usr/bin/env python3
"""regprobe `serve` against Debian's prometheus-blackbox-exporter, side by side, on loopback.

Started by `bench/run.sh` (which installs and builds what this needs); see BENCHMARKS.md for
what is measured and how to read it. Standard library only.

Everything listens on 127.0.0.1 and every request goes there. Every loop is bounded in count
and time. Every process started here is killed (by its pid) and the work dir removed on exit,
also on Ctrl-C; children also get SIGKILL if this script dies (PR_SET_PDEATHSIG).
"""

import argparse
import base64
import ctypes
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONCURRENCY = 8  # regprobe --concurrency, and the blackbox scraper's parallel requests
PASSWORD_PREFIX = "bench-pw-"
REGISTRY_BIN = "/usr/bin/docker-registry"
BLACKBOX_BIN = "/usr/bin/prometheus-blackbox-exporter"

# Pacing per N: (interval seconds, measurement window seconds). The window holds enough probes
# for /proc's 10 ms CPU ticks to resolve a sub-millisecond cost per probe (>= 600 probes).
PACING = {10: (0.5, 30.0), 100: (3.0, 30.0), 1000: (15.0, 30.0)}


# ---------------------------------------------------------------------------------------------
# processes


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Proc:
    """A child process, its output in a log file; killed by pid on stop()."""

    live = []

    def __init__(self, name, argv, log_path, env=None, stdin=None, stdout=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else self.log,
            stderr=self.log,
            env=env,
            preexec_fn=_die_with_parent,
        )
        self.pid = self.p.pid
        Proc.live.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=5.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()
        if self in Proc.live:
            Proc.live.remove(self)

    def tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


def stop_all():
    for p in list(reversed(Proc.live)):
        try:
            p.stop()
        except Exception as e:  # keep cleaning up
            print(f"bench: stopping {p.name} ({p.pid}): {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# /proc


def cpu_ticks(pid):
    """utime + stime of the whole process (every thread, live or exited), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_sched_ns(pid):
    """Sum of the live threads' on-CPU time (ns), /proc/PID/task/*/schedstat: a finer cross-check."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def mem_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def socket_fds(pid):
    n = 0
    base = f"/proc/{pid}/fd"
    for fd in os.listdir(base):
        try:
            if os.readlink(f"{base}/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


class Sampler(threading.Thread):
    """Samples RSS and open sockets of one process every 10 ms until stopped."""

    def __init__(self, pid, period=0.01):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples = []  # (monotonic t, rss KiB, sockets)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                rss, _ = mem_kib(self.pid)
                self.samples.append((time.monotonic(), rss, socket_fds(self.pid)))
            except OSError:
                return
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join(2)


# ---------------------------------------------------------------------------------------------
# network helpers (127.0.0.1 only)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{proc.name} did not listen on 127.0.0.1:{port}: {proc.tail()}")


def http_get(port, path, method="GET", timeout=30.0):
    """(status, body bytes, seconds from request to last body byte) over a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        t = time.perf_counter()
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.perf_counter() - t
    finally:
        c.close()


def wait_http_ok(port, path, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
        try:
            if http_get(port, path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{proc.name}: {path} never answered 200: {proc.tail()}")


# ---------------------------------------------------------------------------------------------
# fixtures: registries, token issuer, secrets, hosts.toml, blackbox modules


def user(i):
    return f"u{i:04d}", f"{PASSWORD_PREFIX}{i:04d}"


def start_registry(work, kind, auth_yaml):
    d = os.path.join(work, f"registry-{kind}")
    os.makedirs(os.path.join(d, "storage"))
    port = free_port()
    cfg = os.path.join(d, "config.yml")
    with open(cfg, "w") as f:
        f.write(
            "version: 0.1\n"
            "log: {level: error, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {json.dumps(d + '/storage')}}}}}\n"
            "health: {storagedriver: {enabled: false}}\n"
            f"http: {{addr: 127.0.0.1:{port}, secret: regprobe-bench-secret}}\n" + auth_yaml
        )
    proc = Proc(
        f"docker-registry ({kind})",
        [REGISTRY_BIN, "serve", cfg],
        os.path.join(d, "registry.log"),
        env={"PATH": "/usr/bin:/bin"},
    )
    wait_tcp(port, proc)
    return {"kind": kind, "port": port, "proc": proc}


def htpasswd_file(path, n):
    # bcrypt cost 4 (`-C 4`, the minimum): the registry checks the hash on every Basic request,
    # and at the default cost 5..10 that check, not the probers, would dominate the round trip.
    def line(i):
        u, p = user(i)
        out = subprocess.run(
            ["htpasswd", "-Bbn", "-C", "4", u, p], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    with ThreadPoolExecutor(4) as ex:
        lines = list(ex.map(line, range(n)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_secrets(root, registry_host, n):
    """n Secret volumes as kubelet mounts them: ROOT/s0000/.dockerconfigjson, one user each."""
    for i in range(n):
        u, p = user(i)
        d = os.path.join(root, f"s{i:04d}")
        os.makedirs(d)
        auth = base64.b64encode(f"{u}:{p}".encode()).decode()
        with open(os.path.join(d, ".dockerconfigjson"), "w") as f:
            json.dump({"auths": {registry_host: {"auth": auth}}}, f)


def write_hosts(root, ports):
    """containerd hosts.toml declaring plain HTTP, so regprobe skips the HTTPS attempt."""
    for port in ports:
        d = os.path.join(root, f"127.0.0.1:{port}")
        os.makedirs(d)
        with open(os.path.join(d, "hosts.toml"), "w") as f:
            f.write(f'server = "http://127.0.0.1:{port}"\n')


def blackbox_config(path, n, with_auth, valid_status):
    # blackbox_exporter takes credentials from its module, not from the target, so N
    # credentials are N modules: the nearest thing it has to N secrets.
    with open(path, "w") as f:
        f.write("modules:\n")
        for i in range(n):
            u, p = user(i)
            f.write(
                f"  m{i:04d}:\n    prober: http\n    timeout: 10s\n    http:\n"
                f"      method: GET\n      valid_status_codes: [{valid_status}]\n"
                "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
            )
            if with_auth:
                f.write(f"      basic_auth: {{username: {u}, password: {p}}}\n")


# ---------------------------------------------------------------------------------------------
# measurements


SAMPLE_RE = re.compile(r'^(regprobe_[a-z_]+)\{registry="([^"]*)",secret="([^"]*)"\} (\S+)')


def parse_regprobe(text):
    """{(registry, secret): {metric: value}} for the per-pair gauges and counters."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE_RE.match(line)
        if m:
            out.setdefault((m[2], m[3]), {})[m[1]] = float(m[4])
    return out


def series_count(text):
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def max_overlap(intervals, slack=1e-3):
    """Most intervals open at once. Each end is pulled in by `slack`: regprobe exports a probe's
    start as wall-clock time read just *after* the monotonic clock that times its duration, so
    start + duration overshoots the real end by however long the thread was preempted between
    the two reads (microseconds, on a loaded 2-core machine tens of them). A probe that starts on
    the permit the previous one just released can thus seem to overlap it by that much; a probe
    really running beyond the semaphore would overlap by a whole probe (milliseconds)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e - slack, -1) for _, e in intervals],
                    key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def time_above(intervals, limit):
    """Seconds during which more than `limit` intervals were open (no slack)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda x: (x[0], x[1]))
    cur, above, since = 0, 0.0, None
    for t, d in events:
        cur += d
        if cur > limit and since is None:
            since = t
        elif cur <= limit and since is not None:
            above += t - since
            since = None
    return above


def memory_figures(sampler, hwm_kib, t_from, busy):
    """peak (VmHWM), steady (median RSS from t_from on), idle (median RSS from t_from on while
    `busy(t, sockets)` is false), all MiB."""
    tail = [(t, rss, s) for t, rss, s in sampler.samples if t >= t_from]
    steady = statistics.median(r for _, r, _ in tail) if tail else float("nan")
    idle_s = [r for t, r, s in tail if not busy(t, s)]
    idle = statistics.median(idle_s) if idle_s else steady
    return {
        "peak_rss_mib": hwm_kib / 1024,
        "steady_rss_mib": steady / 1024,
        "idle_rss_mib": idle / 1024,
        "idle_samples": len(idle_s),
    }


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def serve_help(binary):
    return subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout


def run_regprobe(ctx, label, reg, n, hosts=True, window=None, registry_concurrency=None,
                 binary=None):
    interval, default_window = PACING[n]
    window = window or default_window
    port = free_port()
    sdir = ctx["secrets"][(reg["kind"], n)]
    binary = binary or ctx["regprobe"]
    argv = [binary, "serve", "--no-default-paths", "--secrets-dir", sdir,
            "--listen", f"127.0.0.1:{port}", "--interval", f"{int(interval * 1000)}ms",
            "--timeout", "10s", "--concurrency", str(CONCURRENCY), "--log-level", "warn",
            "--reload-interval", "1h"]
    if hosts:
        argv += ["--hosts-dir", ctx["hosts"]]
    # Builds with a per-registry limit (default 2) get it raised to the global one, so that
    # `--concurrency` probes run against the one registry, as the blackbox scraper runs 8
    # /probe requests; `registry_concurrency` in a run's options overrides that.
    helps = ctx.setdefault("serve_help", {})
    if binary not in helps:
        helps[binary] = serve_help(binary)
    if "--registry-concurrency" in helps[binary]:
        argv += ["--registry-concurrency", str(registry_concurrency or CONCURRENCY)]
        limit = min(CONCURRENCY, registry_concurrency or CONCURRENCY)
    else:
        limit = CONCURRENCY
    # Since issue #13, POST /-/reload needs --web.enable-lifecycle (403 without it, and the
    # window's reload would silently not happen).
    if "--web.enable-lifecycle" in helps[binary]:
        argv += ["--web.enable-lifecycle"]
    t_spawn = time.time()
    proc = Proc(f"regprobe {label}", argv, os.path.join(ctx["work"], f"regprobe-{label}.log"))
    sampler = Sampler(proc.pid)
    sampler.start()
    try:
        wait_http_ok(port, "/-/ready", proc)
        rss_at = {"ready": mem_kib(proc.pid)[0]}
        # Window start: CPU and probe counter now; startup (reading N secrets) is before it.
        t0 = time.monotonic()
        cpu0, sched0 = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
        p0 = sum(v.get("regprobe_probes_total", 0)
                 for v in parse_regprobe(http_get(port, "/metrics")[1].decode()).values())
        excluded_ticks = excluded_ns = 0  # our own scrapes and reload inside the window

        # First cycle: every probe's start (timestamp) and end (+ duration) from /metrics.
        sleep_until(t0 + 0.8 * interval)
        rss_at["after_cycle1"] = mem_kib(proc.pid)[0]  # before our first full scrape
        deadline = t0 + 0.8 * interval + 3 * max(interval, 10)
        while True:
            a, a_ns = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
            text = http_get(port, "/metrics")[1].decode()
            excluded_ticks += cpu_ticks(proc.pid) - a
            excluded_ns += cpu_sched_ns(proc.pid) - a_ns
            pairs = parse_regprobe(text)
            done = [v for v in pairs.values() if v.get("regprobe_probes_total", 0) >= 1]
            if len(done) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        first = [v for v in done if v.get("regprobe_probes_total") == 1]
        spans = [(v["regprobe_last_probe_timestamp_seconds"],
                  v["regprobe_last_probe_timestamp_seconds"] + v["regprobe_duration_seconds"])
                 for v in first]
        cycle = {
            "probed": len(done),
            "first_cycle_only": len(first),
            "cycle_s": (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else None,
            "spawn_to_first_probe_s": (min(s for s, _ in spans) - t_spawn) if spans else None,
            "max_in_flight_from_metrics": max_overlap(spans),
            "max_in_flight_zero_slack": max_overlap(spans, 0.0),
            "ms_above_concurrency_zero_slack": 1000 * time_above(spans, limit),
            "mean_probe_wall_ms": 1000 * statistics.mean(e - s for s, e in spans) if spans else None,
            "success": sum(1 for v in pairs.values() if v.get("regprobe_success") == 1),
            "failed": sum(1 for v in pairs.values() if v.get("regprobe_success") == 0),
        }
        # Probe sockets: sockets above the idle floor (the listener). A probe holds one
        # connection to the registry, plus one to the token realm during a token handshake.
        t_cycle_end = t0 + (cycle["cycle_s"] or 0) + 0.05
        rss_at["after_first_scrape"] = mem_kib(proc.pid)[0]

        # /metrics render: 15 scrapes, each on a new connection, in the gap after the cycle.
        # CPU from schedstat (ns): 15 renders are too few 10 ms ticks.
        a, a_ns = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
        times, size, nseries = [], 0, 0
        for _ in range(15):
            status, body, dt = http_get(port, "/metrics")
            times.append(dt)
            size, nseries = len(body), series_count(body.decode())
        render_ticks, render_ns = cpu_ticks(proc.pid) - a, cpu_sched_ns(proc.pid) - a_ns
        excluded_ticks += render_ticks
        excluded_ns += render_ns
        rss_at["after_15_scrapes"] = mem_kib(proc.pid)[0]
        render = {
            "series": nseries,
            "bytes": size,
            "wall_ms_median": 1000 * statistics.median(times),
            "wall_ms_max": 1000 * max(times),
            "cpu_ms_per_scrape": render_ns / 1e6 / 15,
            "cpu_ms_per_scrape_ticks": 1000 * render_ticks / CLK_TCK / 15,
        }

        # A reload (SIGHUP / POST /-/reload / every --reload-interval): re-reads N secrets.
        reload_cpu_ms = None
        if interval >= 3:
            a, a_ns = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
            status = http_get(port, "/-/reload", method="POST")[0]
            assert status == 200, f"POST /-/reload answered {status}"
            time.sleep(min(1.0, 0.1 * interval))
            excluded_ticks += cpu_ticks(proc.pid) - a
            reload_cpu_ms = (cpu_sched_ns(proc.pid) - a_ns) / 1e6
            excluded_ns += cpu_sched_ns(proc.pid) - a_ns
            rss_at["after_reload"] = mem_kib(proc.pid)[0]

        sleep_until(t0 + window)
        cpu1, sched1 = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
        t1 = time.monotonic()
        p1 = sum(v.get("regprobe_probes_total", 0)
                 for v in parse_regprobe(http_get(port, "/metrics")[1].decode()).values())
        rss_at["end"], hwm = mem_kib(proc.pid)
        nthreads = len(os.listdir(f"/proc/{proc.pid}/task"))
        final_pairs = parse_regprobe(http_get(port, "/metrics")[1].decode())
    finally:
        sampler.stop()
        proc.stop()

    floor = min(s for _, _, s in sampler.samples)
    in_cycle1 = [s - floor for t, _, s in sampler.samples if t <= t_cycle_end]
    probes = int(p1 - p0)
    ticks = cpu1 - cpu0 - excluded_ticks
    mem = memory_figures(sampler, hwm, t_cycle_end, lambda t, s: s > floor)
    return {
        "tool": "regprobe", "label": label, "registry": reg["kind"], "n": n, "hosts_toml": hosts,
        "argv": argv[1:], "in_flight_limit": limit,
        "interval_s": interval, "window_s": t1 - t0, "probes": probes,
        "cpu_ms_per_probe": 1000 * ticks / CLK_TCK / probes if probes else None,
        "cpu_ms_per_probe_schedstat": (sched1 - sched0 - excluded_ns)
        / 1e6 / probes if probes else None,
        "cpu_ticks": ticks,
        "cycle": cycle,
        "max_probe_sockets_cycle1": max(in_cycle1) if in_cycle1 else None,
        "render": render,
        "reload_cpu_ms": reload_cpu_ms,
        "threads": nthreads,
        "rss_kib_at": rss_at,
        "final_success": sum(1 for v in final_pairs.values() if v.get("regprobe_success") == 1),
        "final_pairs": len(final_pairs),
        **mem,
    }


def run_blackbox(ctx, label, reg, n, auth=True, valid_status=200, window=None):
    interval, default_window = PACING[n]
    window = window or default_window
    port = free_port()
    cfg = os.path.join(ctx["work"], f"blackbox-{label}.yml")
    blackbox_config(cfg, n, auth, valid_status)
    argv = [BLACKBOX_BIN, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn"]
    proc = Proc(f"blackbox {label}", argv, os.path.join(ctx["work"], f"blackbox-{label}.log"))
    sampler = Sampler(proc.pid)
    sampler.start()
    target = f"http://127.0.0.1:{reg['port']}/v2/"
    rounds = []  # (start, end) monotonic
    local = threading.local()
    results = {"ok": 0, "failed": 0, "bytes": 0, "series": 0}
    lock = threading.Lock()

    def probe(i):
        # A keep-alive connection per scraper thread, as Prometheus keeps one per target pool.
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", f"/probe?module=m{i:04d}&target={target}")
        body = c.getresponse().read().decode()
        ok = "\nprobe_success 1" in "\n" + body
        with lock:
            results["ok" if ok else "failed"] += 1
            results["bytes"], results["series"] = len(body), series_count(body)

    try:
        wait_http_ok(port, "/-/healthy", proc)
        t0 = time.monotonic()
        cpu0, sched0 = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
        with ThreadPoolExecutor(CONCURRENCY) as ex:
            k = 0
            while t0 + k * interval < t0 + window - 0.5 * interval and k < 1000:
                sleep_until(t0 + k * interval)
                s = time.monotonic()
                list(ex.map(probe, range(n)))
                rounds.append((s, time.monotonic()))
                k += 1
            ex.map(lambda _: getattr(local, "conn", None) and local.conn.close(),
                   range(CONCURRENCY))
        sleep_until(t0 + window)
        cpu1, sched1 = cpu_ticks(proc.pid), cpu_sched_ns(proc.pid)
        t1 = time.monotonic()
        _, hwm = mem_kib(proc.pid)
    finally:
        sampler.stop()
        proc.stop()

    probes = results["ok"] + results["failed"]
    ticks = cpu1 - cpu0

    def busy(t, _s):
        return any(s - 0.01 <= t <= e + 0.01 for s, e in rounds)

    mem = memory_figures(sampler, hwm, rounds[0][1], busy)
    return {
        "tool": "blackbox", "label": label, "registry": reg["kind"], "n": n,
        "interval_s": interval, "window_s": t1 - t0, "probes": probes,
        "cpu_ms_per_probe": 1000 * ticks / CLK_TCK / probes if probes else None,
        "cpu_ms_per_probe_schedstat": (sched1 - sched0) / 1e6 / probes if probes else None,
        "cpu_ticks": ticks,
        "cycle": {"cycle_s": rounds[0][1] - rounds[0][0], "rounds": len(rounds),
                  "max_in_flight": CONCURRENCY, "success": results["ok"],
                  "failed": results["failed"]},
        "probe_response": {"bytes": results["bytes"], "series": results["series"]},
        "final_success": results["ok"], "valid_status": valid_status,
        **mem,
    }


# ---------------------------------------------------------------------------------------------
# report


def machine():
    def sh(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    osr = dict(line.rstrip().split("=", 1) for line in open("/etc/os-release") if "=" in line)
    return {
        "cpu": f"{model}, {os.cpu_count()} vCPU ({sh('systemd-detect-virt') or 'virtualised?'})",
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "os": osr.get("PRETTY_NAME", "?").strip('"'),
        "rustc": sh("rustc", "--version"),
        "blackbox": sh(BLACKBOX_BIN, "--version").splitlines()[0] if sh(BLACKBOX_BIN, "--version") else "?",
        "registry": sh(REGISTRY_BIN, "--version"),
        "python": platform.python_version(),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def fmt(x, digits=2):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def ratio(a, b):
    return a / b if a is not None and b else None


def report(res, meta):
    L = []
    m = meta["machine"]
    L.append(f"- Machine: {m['cpu']}, {m['memory_gib']} GiB, {m['os']}, Linux {m['kernel']}; "
             f"load average at start {' '.join(meta['loadavg_start'])}, at end {' '.join(m['loadavg'])}")
    L.append(f"- Versions: regprobe {meta['regprobe_version']} ({m['rustc']}), {m['blackbox']}, "
             f"{m['registry']}")
    L.append(f"- Binary size: regprobe {meta['bin_regprobe'] / 2**20:.1f} MiB, blackbox_exporter "
             f"{meta['bin_blackbox'] / 2**20:.1f} MiB (ratio {meta['bin_regprobe'] / meta['bin_blackbox']:.2f})")
    L.append(f"- Run: {meta['started']} .. {meta['finished']} ({meta['elapsed_s']:.0f} s); "
             f"concurrency {CONCURRENCY}; /v2/ over plain HTTP via hosts.toml unless noted")
    L.append("")
    L.append("| run | N | probes | CPU ms/probe (utime+stime) | schedstat | cycle of N, s | in flight max/limit | "
             "idle RSS MiB | steady RSS MiB | peak RSS MiB | ok/total |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res:
        c = r["cycle"]
        if r["tool"] == "regprobe":
            inflight = (f"{c['max_in_flight_from_metrics']}/{r['in_flight_limit']} "
                        f"({r['max_probe_sockets_cycle1']} sockets)")
            ok = f"{r['final_success']}/{r['final_pairs']}"
        else:
            inflight = f"{c['max_in_flight']}/{CONCURRENCY} (scraper)"
            ok = f"{c['success']}/{c['success'] + c['failed']}"
        L.append(f"| {r['label']} | {r['n']} | {r['probes']} | {fmt(r['cpu_ms_per_probe'], 3)} | "
                 f"{fmt(r['cpu_ms_per_probe_schedstat'], 3)} | {fmt(c['cycle_s'], 3)} | {inflight} | "
                 f"{fmt(r['idle_rss_mib'], 1)} | {fmt(r['steady_rss_mib'], 1)} | "
                 f"{fmt(r['peak_rss_mib'], 1)} | {ok} |")
    L.append("")

    by = {(r["label"], r["n"]): r for r in res}
    ns = sorted({r["n"] for r in res if r["label"] == "regprobe-token"})
    L.append("Ratios regprobe/blackbox (regprobe full token handshake vs blackbox Basic /v2/; "
             "and like for like, both Basic):")
    L.append("")
    L.append("| N | CPU/probe token÷bb | CPU/probe basic÷bb | idle RSS token÷bb | peak RSS token÷bb | cycle token÷bb |")
    L.append("|---:|---:|---:|---:|---:|---:|")
    for n in ns:
        t, b, rb = by.get(("regprobe-token", n)), by.get(("blackbox-basic", n)), by.get(("regprobe-basic", n))
        if not (t and b):
            continue
        L.append(f"| {n} | {fmt(ratio(t['cpu_ms_per_probe'], b['cpu_ms_per_probe']))} | "
                 f"{fmt(ratio(rb['cpu_ms_per_probe'], b['cpu_ms_per_probe'])) if rb else '–'} | "
                 f"{fmt(ratio(t['idle_rss_mib'], b['idle_rss_mib']))} | "
                 f"{fmt(ratio(t['peak_rss_mib'], b['peak_rss_mib']))} | "
                 f"{fmt(ratio(t['cycle']['cycle_s'], b['cycle']['cycle_s']))} |")
    L.append("")

    builds = [("this build", "regprobe-token", meta["bin_regprobe"])] + [
        (name, f"regprobe-token@{name}", v["bytes"]) for name, v in meta.get("variants", {}).items()]
    if len(builds) > 1:
        L.append("Before/after: the full token handshake, each build in this same run, beside "
                 "blackbox_exporter's Basic probe of the same N (CPU in ms per probe, RSS in MiB):")
        L.append("")
        L.append("| build | binary MiB | N | CPU ms/probe | CPU ÷ blackbox | idle RSS | peak RSS | "
                 "idle RSS ÷ blackbox | threads |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, label, size in builds:
            for n in ns:
                t, b = by.get((label, n)), by.get(("blackbox-basic", n))
                if not t:
                    continue
                L.append(f"| {name} | {size / 2**20:.1f} | {n} | {fmt(t['cpu_ms_per_probe'], 3)} | "
                         f"{fmt(ratio(t['cpu_ms_per_probe'], b and b['cpu_ms_per_probe']))} | "
                         f"{fmt(t['idle_rss_mib'], 1)} | {fmt(t['peak_rss_mib'], 1)} | "
                         f"{fmt(ratio(t['idle_rss_mib'], b and b['idle_rss_mib']))} | "
                         f"{t.get('threads', '–')} |")
        L.append("")

    L.append("Growth from N = 10 to N = 1,000 (value at 1,000 ÷ value at 10; RSS also per extra credential):")
    L.append("")
    L.append("| run | CPU/probe ×| cycle × | idle RSS × | idle RSS KiB per extra credential | peak RSS KiB per extra credential |")
    L.append("|---|---:|---:|---:|---:|---:|")
    growth = {}
    for label in sorted({r["label"] for r in res}):
        a, z = by.get((label, 10)), by.get((label, 1000))
        if not (a and z):
            continue
        g = {
            "cpu": ratio(z["cpu_ms_per_probe"], a["cpu_ms_per_probe"]),
            "cycle": ratio(z["cycle"]["cycle_s"], a["cycle"]["cycle_s"]),
            "idle": ratio(z["idle_rss_mib"], a["idle_rss_mib"]),
            "kib_per_cred": (z["idle_rss_mib"] - a["idle_rss_mib"]) * 1024 / 990,
            "peak_kib_per_cred": (z["peak_rss_mib"] - a["peak_rss_mib"]) * 1024 / 990,
        }
        growth[label] = g
        L.append(f"| {label} | {fmt(g['cpu'])} | {fmt(g['cycle'], 1)} | {fmt(g['idle'])} | "
                 f"{fmt(g['kib_per_cred'], 2)} | {fmt(g['peak_kib_per_cred'], 2)} |")
    L.append("")

    L.append("/metrics (regprobe; scraped 15 times on new connections after the first cycle):")
    L.append("")
    L.append("| run | N | series | bytes | wall ms median | wall ms max | CPU ms/scrape | reload CPU ms |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in res:
        if r["tool"] == "regprobe":
            x = r["render"]
            L.append(f"| {r['label']} | {r['n']} | {x['series']} | {x['bytes']} | "
                     f"{fmt(x['wall_ms_median'])} | {fmt(x['wall_ms_max'])} | "
                     f"{fmt(x['cpu_ms_per_scrape'])} | {fmt(r['reload_cpu_ms'], 0)} |")
    bb = [r for r in res if r["tool"] == "blackbox"]
    if bb:
        L.append("")
        L.append("blackbox_exporter keeps no state to render: each /probe answers "
                 f"{bb[0]['probe_response']['series']} series ({bb[0]['probe_response']['bytes']} bytes) "
                 "for one target, so 10,000 series are ~"
                 f"{10000 // max(1, bb[0]['probe_response']['series'])} probe scrapes.")
    L.append("")

    # Targets
    T = []

    def target(name, ok, detail):
        T.append({"target": name, "met": ok, "detail": detail})
        L.append(f"- [{'met' if ok else 'MISSED'}] {name}: {detail}")

    L.append("Targets:")
    L.append("")
    t100, b100 = by.get(("regprobe-token", 100)), by.get(("blackbox-basic", 100))
    if t100 and b100:
        target("idle RSS at 100 credentials <= 8 MiB", t100["idle_rss_mib"] <= 8,
               f"{t100['idle_rss_mib']:.1f} MiB (blackbox_exporter {b100['idle_rss_mib']:.1f} MiB, "
               f"ratio {t100['idle_rss_mib'] / b100['idle_rss_mib']:.2f})")
    for n in ns:
        t, b = by.get(("regprobe-token", n)), by.get(("blackbox-basic", n))
        if t and b and n >= 100:
            target(f"CPU/probe (token handshake) <= 0.5x blackbox (Basic /v2/) at N={n}",
                   t["cpu_ms_per_probe"] <= 0.5 * b["cpu_ms_per_probe"],
                   f"{t['cpu_ms_per_probe']:.3f} vs {b['cpu_ms_per_probe']:.3f} ms "
                   f"(ratio {t['cpu_ms_per_probe'] / b['cpu_ms_per_probe']:.2f})")
    g = growth.get("regprobe-token")
    if g:
        target("memory growth per extra credential <= 4 KiB (N 10 -> 1,000)", g["kib_per_cred"] <= 4,
               f"{g['kib_per_cred']:.2f} KiB idle RSS, {g['peak_kib_per_cred']:.2f} KiB peak")
    t1k = by.get(("regprobe-token", 1000))
    if t1k:
        target("peak RSS at 1,000 credentials < 16 MiB", t1k["peak_rss_mib"] < 16,
               f"{t1k['peak_rss_mib']:.1f} MiB")
        x = t1k["render"]
        per10k = x["wall_ms_median"] * 10000 / x["series"] if x["series"] else None
        target("/metrics for 10,000 series < 20 ms", x["wall_ms_median"] < 20 and (per10k or 0) < 20,
               f"{x['series']} series: {x['wall_ms_median']:.2f} ms median wall ({x['cpu_ms_per_scrape']:.2f} ms CPU), {x['bytes']} bytes")
        c = t1k["cycle"]
        target("1,000 credentials: full cycle within one interval, <= concurrency in flight",
               c["cycle_s"] is not None and c["cycle_s"] < t1k["interval_s"] and c["probed"] >= 1000
               and c["max_in_flight_from_metrics"] <= t1k["in_flight_limit"],
               f"cycle {fmt(c['cycle_s'], 2)} s (bench interval {t1k['interval_s']:.0f} s, default 5m); "
               f"max in flight {c['max_in_flight_from_metrics']} of {t1k['in_flight_limit']} (from probe start/end times), "
               f"{t1k['max_probe_sockets_cycle1']} probe sockets max (registry + realm per probe)")
    return "\n".join(L) + "\n", T


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regprobe", required=True)
    ap.add_argument("--token-issuer", required=True)
    ap.add_argument("--out", required=True, help="directory for results.json and results.md")
    ap.add_argument("--ns", default="10,100,1000")
    ap.add_argument("--quick", action="store_true", help="N=10,100 only, short windows (smoke test)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=BIN",
                    help="another regprobe build (e.g. before=main's binary, static=crt-static); "
                         "its token rows run beside the others at each N (before/after table)")
    args = ap.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant]
    ns = [int(x) for x in args.ns.split(",")]
    if args.quick:
        ns = [n for n in ns if n <= 100]
        for n in ns:
            PACING[n] = (PACING[n][0], 8.0)
    nmax = max(ns)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    work = tempfile.mkdtemp(prefix="regprobe-bench-")
    started, t_start = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic()
    loadavg_start = open("/proc/loadavg").read().split()[:3]
    res = []
    issuer = None
    try:
        print(f"bench: work dir {work}", flush=True)
        # Registries: open, htpasswd (Basic), token (Bearer, realm = the tests' token issuer).
        htpasswd_file(os.path.join(work, "htpasswd"), nmax)
        regs = {
            "open": start_registry(work, "open", ""),
            "basic": start_registry(
                work, "basic",
                f"auth: {{htpasswd: {{realm: regprobe-bench, path: {json.dumps(work + '/htpasswd')}}}}}\n"),
        }
        issuer = Proc("token issuer", [args.token_issuer, str(nmax), PASSWORD_PREFIX],
                      os.path.join(work, "issuer.log"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = issuer.p.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"token issuer did not start: {issuer.tail()}")
        tok = json.loads(line)
        regs["token"] = start_registry(
            work, "token",
            "auth: {token: {" + ", ".join(f"{k}: {json.dumps(tok[k])}" for k in
                                          ("realm", "service", "issuer", "rootcertbundle")) + "}}\n")
        ctx = {"work": work, "regprobe": args.regprobe, "hosts": os.path.join(work, "hosts"),
               "secrets": {}}
        write_hosts(ctx["hosts"], [r["port"] for r in regs.values()])
        for kind, reg in regs.items():
            for n in ns:
                d = os.path.join(work, "secrets", f"{kind}-{n}")
                write_secrets(d, f"127.0.0.1:{reg['port']}", n)
                ctx["secrets"][(kind, n)] = d
        print(f"bench: registries open :{regs['open']['port']}, basic :{regs['basic']['port']}, "
              f"token :{regs['token']['port']} (realm {tok['realm']})", flush=True)

        # Main matrix, the two tools back to back for each N so that drift hits both alike.
        plan = []
        for n in ns:
            plan += [
                (run_regprobe, "regprobe-token", regs["token"], n, {}),
                (run_blackbox, "blackbox-basic", regs["basic"], n, {}),
                (run_regprobe, "regprobe-basic", regs["basic"], n, {}),
            ]
            plan += [(run_regprobe, f"regprobe-token@{name}", regs["token"], n, {"binary": path})
                     for name, path in variants]
        # Context at N = 100: the same /v2/ on an open registry, blackbox against the token
        # registry (it cannot get a token: 401 is the best it can assert), and regprobe without
        # hosts.toml (HTTPS tried first on loopback, then plain HTTP, as containerd does).
        if 1000 in ns:
            # regprobe's own defaults: --registry-concurrency 2 probes in flight per registry.
            plan += [(run_regprobe, "regprobe-token-registry-concurrency-2", regs["token"], 1000,
                      {"registry_concurrency": 2})]
        if 100 in ns:
            w = 8.0 if args.quick else 20.0
            plan += [
                (run_regprobe, "regprobe-open", regs["open"], 100, {"window": w}),
                (run_blackbox, "blackbox-open", regs["open"], 100, {"auth": False, "window": w}),
                (run_blackbox, "blackbox-token(401)", regs["token"], 100, {"valid_status": 401, "window": w}),
                (run_regprobe, "regprobe-token-no-hosts.toml", regs["token"], 100, {"hosts": False, "window": w}),
            ]
        for fn, label, reg, n, kw in plan:
            print(f"bench: {label} N={n} ...", end="", flush=True)
            r = fn(ctx, label, reg, n, **kw)
            res.append(r)
            print(f" {r['probes']} probes, {fmt(r['cpu_ms_per_probe'], 3)} ms CPU/probe, "
                  f"idle RSS {r['idle_rss_mib']:.1f} MiB, cycle {fmt(r['cycle']['cycle_s'], 3)} s, "
                  f"ok {r['final_success']}", flush=True)

        meta = {
            "machine": machine(),
            "regprobe_version": subprocess.run([args.regprobe, "--version"], capture_output=True,
                                               text=True).stdout.strip(),
            "bin_regprobe": os.path.getsize(args.regprobe),
            "variants": {name: {"path": path, "bytes": os.path.getsize(path)}
                         for name, path in variants},
            "bin_blackbox": os.path.getsize(BLACKBOX_BIN),
            "started": started,
            "loadavg_start": loadavg_start,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "elapsed_s": time.monotonic() - t_start,
            "concurrency": CONCURRENCY,
            "pacing": {str(k): v for k, v in PACING.items()},
        }
        text, targets = report(res, meta)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"meta": meta, "results": res, "targets": targets}, f, indent=1)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(text)
        print()
        print(text)
        print(f"bench: results in {args.out}/results.md and results.json")
    finally:
        if issuer is not None and issuer.alive():
            issuer.p.stdin.close()  # the issuer stops when its stdin closes
            try:
                issuer.p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
