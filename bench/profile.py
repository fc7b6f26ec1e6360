#!/usr/bin/env python3
"""Memory profile of `regprobe serve` at N credentials (issue #16): RSS, and a heap profile.

    python3 bench/profile.py --regprobe BIN --token-issuer ISSUER --ns 10,100,1000 \
        [--heaptrack] [--providers] [--out DIR]

Uses bench.py's fixtures (token registry on loopback, the tests' token issuer, N secret
volumes, hosts.toml for plain HTTP); with `--providers` the N credentials come from N kubelet
credential providers instead (real plugin executables, one cached answer each). For each N it
runs `serve` through the same sequence as a bench window (first cycle, 15 scrapes, one
reload), then reads VmRSS/VmHWM and `/proc/PID/smaps_rollup`, and the thread count; with
`--heaptrack` a second run under `heaptrack` writes `DIR/heaptrack.N.zst` (read it with
`heaptrack_print`, or `--breakdown`). Build with `CARGO_PROFILE_RELEASE_STRIP=false
CARGO_PROFILE_RELEASE_DEBUG=limited` so the profile has function names (inlined frames
included). Loopback only; every process is killed by pid; the work dir is removed.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def smaps(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def mappings(pid):
    """RSS KiB by mapping kind: the binary, shared libraries, heap/anon, stacks."""
    kinds = {}
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                name = parts[5] if len(parts) > 5 else "[anon]"
                if name.endswith("regprobe") or "/regprobe" in name:
                    cur = "binary"
                elif name.startswith("/"):
                    cur = "libs:" + os.path.basename(name)
                else:
                    cur = name
            elif parts[0] == "Rss:":
                kinds[cur] = kinds.get(cur, 0) + int(parts[1])
    return kinds


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def child_with_exe(pid, exe):
    """The process under `pid` (itself or a descendant) running `exe` (heaptrack wraps it)."""
    real = os.path.realpath(exe)
    for _ in range(200):
        todo = [pid]
        while todo:
            p = todo.pop()
            try:
                if os.path.realpath(f"/proc/{p}/exe") == real:
                    return p
                with open(f"/proc/{p}/task/{p}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"no process runs {exe} under {pid}")


def write_providers(root, registry_host, n):
    """n credential providers as kubelet's config names them, one user each: provider pNNNN's
    plugin (an executable speaking kubelet's v1 protocol, as ECR's does: `cacheKeyType:
    Registry`, a 1-hour cache) answers for `registry_host` with user uNNNN. Returns the
    `serve` flags. Each provider's one cached answer is what `serve` keeps per credential."""
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    api = "credentialprovider.kubelet.k8s.io/v1"
    entries = []
    for i in range(n):
        u, p = bench.user(i)
        name = f"p{i:04d}"
        answer = json.dumps({"kind": "CredentialProviderResponse", "apiVersion": api,
                             "cacheKeyType": "Registry", "cacheDuration": "1h",
                             "auth": {registry_host: {"username": u, "password": p}}})
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\ncat >/dev/null\ncat <<'EOF'\n{answer}\nEOF\n")
        os.chmod(path, 0o755)
        entries.append(f"  - name: {name}\n    matchImages: [\"{registry_host}\"]\n"
                       f"    defaultCacheDuration: 1h\n    apiVersion: {api}\n")
    config = os.path.join(root, "credential-provider-config.yaml")
    with open(config, "w") as f:
        f.write("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n"
                "providers:\n" + "".join(entries))
    empty = os.path.join(root, "no-secrets")
    os.makedirs(empty)
    return ["--secrets-dir", empty, "--image-credential-provider-config", config,
            "--image-credential-provider-bin-dir", bindir]


def one(ctx, reg, n, wrap, label, cycle_only=False):
    interval = bench.PACING[n][0]
    port = bench.free_port()
    argv = [ctx["regprobe"], "serve", "--no-default-paths", *ctx["inputs"][n],
            "--listen", f"127.0.0.1:{port}",
            "--interval", f"{int(interval * 1000)}ms", "--timeout", "10s",
            "--concurrency", str(bench.CONCURRENCY), "--registry-concurrency",
            str(bench.CONCURRENCY), "--log-level", "warn", "--reload-interval", "1h",
            "--hosts-dir", ctx["hosts"]]
    if "--web.enable-lifecycle" in bench.serve_help(ctx["regprobe"]):
        argv += ["--web.enable-lifecycle"]  # POST /-/reload (issue #13)
    proc = bench.Proc(f"regprobe {label}", wrap + argv,
                      os.path.join(ctx["work"], f"regprobe-{label}.log"), env=ctx["env"])
    try:
        # valgrind runs the program in its own process (the tool's executable).
        pid = proc.pid if wrap[:1] == ["valgrind"] else child_with_exe(proc.pid, ctx["regprobe"])
        bench.wait_http_ok(port, "/-/ready", proc, timeout=300)
        ready = bench.mem_kib(pid)[0]
        deadline = time.monotonic() + 10 * max(interval, 10)
        while time.monotonic() < deadline:
            pairs = bench.parse_regprobe(bench.http_get(port, "/metrics")[1].decode())
            if sum(1 for v in pairs.values() if v.get("regprobe_probes_total", 0) >= 1) >= n:
                break
            # Under callgrind, few scrapes: their instructions would count as the probes'.
            time.sleep(3.0 if cycle_only else 0.2)
        if cycle_only:
            # Start-up and one cycle only (callgrind: instructions per probe from two Ns).
            return {"label": label, "n": n,
                    "probes": sum(v.get("regprobe_probes_total", 0) for v in pairs.values())}
        for _ in range(15):
            bench.http_get(port, "/metrics")
        bench.http_get(port, "/-/reload", method="POST")
        time.sleep(1.0)
        # Idle: wait for a moment without probe sockets (between cycles).
        for _ in range(500):
            if bench.socket_fds(pid) <= 1:
                break
            time.sleep(0.01)
        rss, hwm = bench.mem_kib(pid)
        out = {"label": label, "n": n, "ready_rss_kib": ready, "idle_rss_kib": rss,
               "hwm_kib": hwm, "threads": threads(pid), "smaps": smaps(pid),
               "mappings": mappings(pid)}
    finally:
        # Under heaptrack SIGKILL, so that what is still allocated ("leaked" in heaptrack_print)
        # is the live heap of the idle daemon; heaptrack's interpreter still writes its file.
        try:
            os.kill(pid, signal.SIGKILL if wrap[:1] == ["heaptrack"] else signal.SIGTERM)
        except (OSError, UnboundLocalError):
            pass
        try:
            proc.p.wait(120)
        except subprocess.TimeoutExpired:
            pass
        proc.stop()
    return out


# Heap categories for `--breakdown`: the first rule whose pattern occurs in a stack (outermost
# frame first) takes its bytes. Order matters: a result recorded by the scheduler is "stored
# results", not "scheduler".
CATEGORIES = [
    ("stored results/evidence (Store::record)", ["store::Store::record"]),
    ("store keys and secrets (Store::set_inputs)", ["store::Store::set_inputs"]),
    ("credential providers (answer cache, config, plugin runs)", ["regprobe::providers::"]),
    ("TLS roots/configs (rustls, native certs)", ["rustls_native_certs", "RootCertStore",
                                                  "tls::client_config", "TlsConfigs", "rustls::"]),
    ("per-credential state (scheduler slots, plan, secrets read)", ["scheduler::Scheduler::reload",
                                                                    "regprobe::plan::",
                                                                    "regprobe::secrets::"]),
    ("probes in flight (scheduler tasks, connections)", ["launch_due", "probe_credential",
                                                         "regprobe::probe::"]),
    ("metric families / render (prometheus-client)", ["prometheus_client", "report::metrics"]),
    ("HTTP server (axum, hyper)", ["regprobe::server", "axum::", "hyper::server"]),
    ("file watcher (notify)", ["notify::", "regprobe::watch"]),
    ("resolver (hickory)", ["hickory"]),
    ("logging (tracing-subscriber)", ["tracing_subscriber", "tracing_core"]),
    ("runtime (tokio threads, timers, I/O driver)", ["tokio::runtime", "tokio::"]),
    ("std / startup (args, env, thread spawn)", ["std::", "clap", "main"]),
]


def breakdown(path, cost="leaked"):
    """Bytes per category of a heaptrack file (`leaked`: live when the process was killed;
    `peak`: at the heap's peak), from heaptrack_print's flame-graph stacks."""
    out = subprocess.run(["heaptrack_print", "-f", path, "--flamegraph-cost-type", cost,
                          "-F", "/dev/stdout"], capture_output=True, text=True, check=True).stdout
    # Rust's v0 symbol mangling (`_RNv…`) is left mangled by heaptrack: binutils' c++filt
    # demangles it; the crates' disambiguators (`regprobe[0123abcd…]::`) and the brackets of
    # `<regprobe::report::store::Store>::record` are dropped so the patterns read as paths.
    out = subprocess.run(["c++filt"], input=out, capture_output=True, text=True,
                         check=True).stdout
    out = re.sub(r"\[[0-9a-f]{16}\]|[<>]", "", out)
    totals, total = {}, 0
    for line in out.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        cat = next((name for name, pats in CATEGORIES if any(p in stack for p in pats)), "other")
        totals[cat] = totals.get(cat, 0) + n
    return total, sorted(totals.items(), key=lambda kv: -kv[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--breakdown", nargs="+", metavar="HEAPTRACK_FILE",
                    help="only print the heap of these heaptrack files by category, and exit")
    ap.add_argument("--regprobe")
    ap.add_argument("--token-issuer")
    ap.add_argument("--ns", default="10,100,1000")
    ap.add_argument("--heaptrack", action="store_true")
    ap.add_argument("--callgrind", action="store_true", help="only start-up + one cycle per N "
                    "under `valgrind --tool=callgrind` (DIR/callgrind.TAG.N; `callgrind_annotate`)")
    ap.add_argument("--perf", action="store_true", help="also a run under `perf record -g` "
                    "(DIR/perf.TAG.N.data; read it with `perf report`)")
    ap.add_argument("--out", default="target/profile")
    ap.add_argument("--tag", default="run", help="names DIR/profile-TAG.json")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for regprobe")
    ap.add_argument("--providers", action="store_true", help="credentials from N credential "
                    "providers (one cached answer each) instead of N secret volumes")
    args = ap.parse_args()
    if args.breakdown:
        for path in args.breakdown:
            for cost in ("leaked", "peak"):
                total, cats = breakdown(path, cost)
                print(f"{path} ({cost}): {total / 1024:.0f} KiB")
                for name, n in cats:
                    print(f"  {n / 1024:8.0f} KiB  {name}")
        return
    ns = [int(x) for x in args.ns.split(",")]
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ)  # regprobe's environment only (not the registry's or issuer's)
    for kv in args.env:
        k, v = kv.split("=", 1)
        env[k] = v
    work = tempfile.mkdtemp(prefix="regprobe-profile-")
    res = []
    issuer = None
    try:
        issuer = bench.Proc("token issuer", [args.token_issuer, str(max(ns)),
                                             bench.PASSWORD_PREFIX],
                            os.path.join(work, "issuer.log"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
        tok = json.loads(issuer.p.stdout.readline().decode())
        reg = bench.start_registry(
            work, "token",
            "auth: {token: {" + ", ".join(f"{k}: {json.dumps(tok[k])}" for k in
                                          ("realm", "service", "issuer", "rootcertbundle")) + "}}\n")
        ctx = {"work": work, "regprobe": args.regprobe, "hosts": os.path.join(work, "hosts"),
               "inputs": {}, "env": env}
        bench.write_hosts(ctx["hosts"], [reg["port"]])
        for n in ns:
            host = f"127.0.0.1:{reg['port']}"
            if args.providers:
                ctx["inputs"][n] = write_providers(os.path.join(work, f"providers-{n}"), host, n)
            else:
                d = os.path.join(work, "secrets", f"token-{n}")
                bench.write_secrets(d, host, n)
                ctx["inputs"][n] = ["--secrets-dir", d]
        for n in ns:
            if args.callgrind:
                path = os.path.abspath(os.path.join(args.out, f"callgrind.{args.tag}.{n}"))
                bench.PACING[n] = (600.0, bench.PACING[n][1])  # one cycle in the run
                r = one(ctx, reg, n, ["valgrind", "--tool=callgrind", "--quiet",
                                      f"--callgrind-out-file={path}"], f"callgrind-{n}",
                        cycle_only=True)
                print(json.dumps(r), flush=True)
                continue
            r = one(ctx, reg, n, [], f"rss-{n}")
            res.append(r)
            print(json.dumps({"env": args.env, **{k: r[k] for k in (
                "n", "ready_rss_kib", "idle_rss_kib", "hwm_kib", "threads")}}), flush=True)
            if args.heaptrack:
                path = os.path.abspath(os.path.join(args.out, f"heaptrack.{args.tag}.{n}"))
                one(ctx, reg, n, ["heaptrack", "-o", path], f"heaptrack-{n}")
            if args.perf:
                path = os.path.abspath(os.path.join(args.out, f"perf.{args.tag}.{n}.data"))
                one(ctx, reg, n, ["perf", "record", "-q", "-F", "2000", "-g", "-o", path, "--"],
                    f"perf-{n}")
        with open(os.path.join(args.out, f"profile-{args.tag}.json"), "w") as f:
            json.dump(res, f, indent=1)
    finally:
        if issuer is not None and issuer.alive():
            issuer.p.stdin.close()
            try:
                issuer.p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        bench.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
