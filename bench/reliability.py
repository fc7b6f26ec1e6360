#!/usr/bin/env python3
"""Quick figures for RELIABILITY.md (issue 13): each scenario starts its own `regprobe serve` on
127.0.0.1, measures, and stops it. Everything is loopback; every loop is bounded.

    python3 bench/reliability.py [PATH/TO/regprobe]     # default: target/release/regprobe

Scenarios:
  slowloris   1,000 connections from one address (then from 16) that never finish their request head (each sent
              a 12 KiB partial header); counts how many the server keeps, whether /-/healthy
              and /metrics from 127.0.0.2 answer meanwhile, peak RSS, and how long until every
              held connection was closed.
  storm       1,000 POST /-/reload against 10,000 secrets; CPU seconds the daemon used from
              the storm's start until the pending reload ran, reloads done.
  largest     one 4 MiB secret with 75,000 entries; `check` peak RSS and time, with the default
              caps (1,000 entries per secret).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import base64

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/regprobe"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def get(port, path, source="127.0.0.2", method="GET", timeout=5):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]) if data else 0


def serve(secrets_dir, *extra, stderr=subprocess.DEVNULL):
    port = free_port()
    p = subprocess.Popen(
        [BIN, "serve", "--no-default-paths", "--secrets-dir", secrets_dir, "--interval", "7d",
         "--reload-interval", "7d", "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.DEVNULL, stderr=stderr)
    for _ in range(400):
        try:
            if get(port, "/-/ready", source="127.0.0.1") == 200:
                return p, port
        except OSError:
            pass
        time.sleep(0.05)
    p.kill()
    raise SystemExit("serve never became ready")


def slowloris(tmp, sources=1):
    os.makedirs(f"{tmp}/empty", exist_ok=True)
    p, port = serve(f"{tmp}/empty")
    base = rss_kib(p.pid)
    held = []
    pad = b"X-Pad: " + b"a" * 12 * 1024
    for i in range(1000):
        s = socket.socket()
        s.settimeout(2)
        try:
            # Attack sources 127.0.1.x (the legitimate peer is 127.0.0.2).
            s.bind((f"127.0.1.{i % sources + 1}", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + pad)
        except OSError:
            pass
        held.append(s)
    time.sleep(0.5)
    t0 = time.time()
    healthy = get(port, "/-/healthy")
    metrics = get(port, "/metrics")
    answer_ms = (time.time() - t0) * 1000
    peak = hwm_kib(p.pid)
    # How many the server still holds: a read that times out means open.
    open_now = 0
    for s in held:
        s.settimeout(0.001)
        try:
            if s.recv(1) != b"":
                open_now += 1
        except socket.timeout:
            open_now += 1
        except OSError:
            pass
    start = time.time()
    closed_all = None
    while time.time() - start < 30:
        still = 0
        for s in held:
            s.settimeout(0.001)
            try:
                if s.recv(4096) != b"":
                    still += 1
            except socket.timeout:
                still += 1
            except OSError:
                pass
        if still == 0:
            closed_all = time.time() - start + 0.5
            break
        time.sleep(0.2)
    for s in held:
        s.close()
    p.terminate()
    p.wait(10)
    return {
        "attack_connections": 1000,
        "attack_sources": sources,
        "held_by_server_after_0.5s": open_now,
        "healthy_status": healthy,
        "metrics_status": metrics,
        "healthy_and_metrics_ms": round(answer_ms, 1),
        "rss_before_kib": base,
        "peak_rss_kib": peak,
        "all_closed_after_s": None if closed_all is None else round(closed_all, 1),
    }


def write_secrets(root, n):
    auth = base64.b64encode(b"u:p4ssword").decode()
    for i in range(n):
        d = f"{root}/s{i}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/.dockerconfigjson", "w") as f:
            json.dump({"auths": {f"127.0.0.1:{1 + i % 50}": {"auth": auth}}}, f)


def storm(tmp):
    root = f"{tmp}/many"
    write_secrets(root, 10_000)
    log = open(f"{tmp}/storm.log", "w")
    # --startup-spread 7d: the 10,000 first probes are spread over a week, out of the window.
    t_start = time.time()
    p, port = serve(root, "--web.enable-lifecycle", "--startup-spread", "7d", stderr=log)
    first_load_s = time.time() - t_start
    time.sleep(1)
    c0 = cpu_s(p.pid)
    t0 = time.time()
    codes = {}
    for _ in range(1000):
        c = get(port, "/-/reload", source="127.0.0.1", method="POST")
        codes[c] = codes.get(c, 0) + 1
    storm_s = time.time() - t0
    # The pending reload runs once the gap (at least 4x the last reload's time) has passed.
    time.sleep(max(2.0, 5 * first_load_s))
    used = cpu_s(p.pid) - c0
    wall = time.time() - t0
    p.terminate()
    p.wait(10)
    log.close()
    reloads = open(f"{tmp}/storm.log").read().count("reloading")
    return {
        "secrets": 10_000,
        "first_load_s": round(first_load_s, 2),
        "posts": 1000,
        "answers": codes,
        "storm_s": round(storm_s, 2),
        "cpu_s": round(used, 2),
        "wall_s": round(wall, 2),
        "cpu_share_of_a_core": round(used / wall, 2),
        "reloads": reloads,
    }


def largest(tmp):
    d = f"{tmp}/big/huge"
    os.makedirs(d, exist_ok=True)
    auth = base64.b64encode(b"u:p4ssword").decode()
    # Distinct loopback hosts on port 1 (closed): each probe fails at once, no DNS.
    auths = {f"127.0.{i // 250}.{i % 250 + 1}:1": {"auth": auth} for i in range(75_000)}
    text = json.dumps({"auths": auths})
    with open(f"{d}/.dockerconfigjson", "w") as f:
        f.write(text)
    t0 = time.time()
    p = subprocess.Popen([BIN, "check", "--no-default-paths", "--secrets-dir", f"{tmp}/big",
                          "--output", "json", "--timeout", "1s"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None and time.time() - t0 < 120:
        try:
            peak = max(peak, hwm_kib(p.pid))
        except OSError:
            break
        time.sleep(0.02)
    if p.poll() is None:
        p.kill()
    p.wait()
    return {"file_bytes": len(text), "entries": 75_000, "probed": 1000,
            "check_peak_rss_kib": peak, "check_s": round(time.time() - t0, 1)}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = {"slowloris": slowloris(tmp), "slowloris_16_sources": slowloris(tmp, 16),
           "storm": storm(tmp), "largest": largest(tmp)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
