#!/usr/bin/env python3
"""Helper of bench/soak.sh (standard library only): writes and rotates the 500 mounted secrets
in kubelet's layout, samples the daemon while the soak runs, and writes the final report.

  soak.py gen     --work W --ports P0,P1,P2 [--n 500]
  soak.py rotate  --work W --round R --phase break|restore
  soak.py sample  --work W --url URL --pid PID
  soak.py report  --work W --url URL --pid PID --interval S --timeout S --out DIR

Everything it knows about the secrets is in W/state.json; the events soak.sh injected are in
W/events.log ("<unix time> <what> <registry index>" per line).
"""

import argparse
import base64
import json
import os
import re
import shutil
import sys
import time
import urllib.request

MARKER = "soak-PW-"  # every password the soak writes contains it


# ---------------------------------------------------------------- secrets in kubelet's layout


def atomic_write(secret_dir, content):
    """kubelet's AtomicWriter: DIR/..<timestamp>/ holds the files, DIR/..data links to it,
    DIR/.dockerconfigjson links to ..data/.dockerconfigjson; an update writes a new timestamped
    dir, points ..data_tmp at it and renames ..data_tmp over ..data (one atomic swap), then
    removes the old timestamped dir."""
    os.makedirs(secret_dir, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + "%09d" % time.time_ns()
    ts_dir = os.path.join(secret_dir, stamp)
    os.mkdir(ts_dir)
    with open(os.path.join(ts_dir, ".dockerconfigjson"), "w") as f:
        f.write(content)
    data = os.path.join(secret_dir, "..data")
    old = os.readlink(data) if os.path.islink(data) else None
    tmp = os.path.join(secret_dir, "..data_tmp")
    os.symlink(stamp, tmp)
    os.rename(tmp, data)
    user_file = os.path.join(secret_dir, ".dockerconfigjson")
    if not os.path.islink(user_file):
        os.symlink("..data/.dockerconfigjson", user_file)
    if old:
        shutil.rmtree(os.path.join(secret_dir, old), ignore_errors=True)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def good_pw(n):
    return f"{MARKER}{n}-zq"


def dockerconfig(reg, user, password):
    return json.dumps({"auths": {reg: {"auth": b64(f"{user}:{password}")}}}) + "\n"


def malformed(kind, reg, user, password):
    """Five ways a secret does not parse, each carrying a password that must never be echoed."""
    auth = b64(f"{user}:{password}")
    return [
        '{"auths":{"%s":{"auth":"%s"' % (reg, auth),  # truncated (half-written)
        '{"auths":{"%s":{"auth":"%s:%s"}}}' % (reg, user, password),  # auth not base64
        '{"auths":{"%s":{"auth":"%s"}}}' % (reg, b64(password)),  # decodes without ':'
        '{"auths":{"%s":{"username":"%s","password":"%s",}}}' % (reg, user, password),  # bad JSON
        '{"auths":{"%s":{"username":"%s","password":"%s"}}' % (reg, user, password),  # unclosed
    ][kind % 5]


def load_state(work):
    with open(os.path.join(work, "state.json")) as f:
        return json.load(f)


def save_state(work, st):
    tmp = os.path.join(work, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.rename(tmp, os.path.join(work, "state.json"))


def remember(st, user, password):
    st["passwords"].append(password)
    st["auths"].append(b64(f"{user}:{password}"))


def write_secret(st, name):
    s = st["secrets"][name]
    reg = st["registries"][s["reg"]]
    if s["kind"] == "malformed":
        content = malformed(s["variant"], reg, s["user"], s["password"])
    else:
        content = dockerconfig(reg, s["user"], s["password"])
    remember(st, s["user"], s["password"])
    atomic_write(os.path.join(st["dir"], name), content)


def cmd_gen(a):
    ports = a.ports.split(",")
    st = {
        "dir": os.path.join(a.work, "secrets"),
        "registries": [f"127.0.0.1:{p}" for p in ports],
        "secrets": {},
        "passwords": [],
        "auths": [],
        "spare": a.n,  # next spare htpasswd user (for secrets added during the run)
    }
    users = [[] for _ in ports]  # htpasswd lines to create, per registry
    for n in range(a.n):
        name = f"soak-{n:03d}"
        reg = n % len(ports)
        user = f"u{n}"
        if n % 25 == 0:
            kind, password = "malformed", good_pw(n)
        elif n % 25 <= 4:
            kind, password = "wrong", f"{MARKER}{n}-old-zq"
        else:
            kind, password = "good", good_pw(n)
        st["secrets"][name] = {"reg": reg, "user": user, "kind": kind, "password": password,
                               "variant": n // 25}
        if kind != "malformed":
            users[reg].append((user, good_pw(n)))
    for n in range(a.n, a.n + 20):  # spare users for secrets added by rotations
        users[n % len(ports)].append((f"u{n}", good_pw(n)))
        remember(st, f"u{n}", good_pw(n))
    for i, lines in enumerate(users):
        with open(os.path.join(a.work, f"users-{i}.txt"), "w") as f:
            for u, p in lines:
                f.write(f"{u} {p}\n")
    for name in st["secrets"]:
        write_secret(st, name)
    save_state(a.work, st)
    kinds = {}
    for s in st["secrets"].values():
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    print(" ".join(f"{k}={v}" for k, v in sorted(kinds.items())))


def cmd_rotate(a):
    """Round R, phase break: 5 good secrets get a new wrong password, 5 wrong ones get the right
    one, 2 good ones are half-written (truncated JSON), one is removed, one is added.
    Phase restore: the half-written ones are completed again (same credential)."""
    st = load_state(a.work)
    r = a.round
    names = sorted(st["secrets"])
    changed = []
    if a.phase == "break":
        # Pick from different parts of the list each round so rounds do not repeat.
        good = [n for n in names if st["secrets"][n]["kind"] == "good"]
        wrong = [n for n in names if st["secrets"][n]["kind"] == "wrong"]
        off = (r * 37) % max(1, len(good) - 20)
        to_break, halves, removed = good[off:off + 5], good[off + 5:off + 7], good[off + 7]
        to_fix = wrong[(r * 7) % max(1, len(wrong) - 5):][:5]
        for n in to_break:
            s = st["secrets"][n]
            s["kind"], s["password"] = "wrong", f"{MARKER}{s['user'][1:]}-r{r}-zq"
            write_secret(st, n)
        for n in to_fix:
            s = st["secrets"][n]
            s["kind"], s["password"] = "good", good_pw(int(s["user"][1:]))
            write_secret(st, n)
        for n in halves:
            s = st["secrets"][n]
            s["kind"], s["variant"], s["halfwritten"] = "malformed", 0, r
            write_secret(st, n)
        shutil.rmtree(os.path.join(st["dir"], removed))
        del st["secrets"][removed]
        spare = st["spare"]
        st["spare"] += 1
        added = f"soak-new-r{r}"
        st["secrets"][added] = {"reg": spare % len(st["registries"]), "user": f"u{spare}",
                                "kind": "good", "password": good_pw(spare), "variant": 0}
        write_secret(st, added)
        changed = {"broken": to_break, "fixed": to_fix, "halfwritten": halves,
                   "removed": [removed], "added": [added]}
    else:
        restored = []
        for n in names:
            s = st["secrets"][n]
            if s.get("halfwritten") == r:
                del s["halfwritten"]
                s["kind"] = "good"
                write_secret(st, n)
                restored.append(n)
        changed = {"restored": restored}
    st.setdefault("rotations", []).append({"t": time.time(), "round": r, "phase": a.phase,
                                           **changed})
    save_state(a.work, st)
    print(" ".join(f"{k}={len(v)}" for k, v in changed.items()))


# ---------------------------------------------------------------- sampling


def http_get(url, timeout=10):
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = r.read().decode("utf-8", "replace")
        return r.status, body, time.monotonic() - t0


LINE = re.compile(r'^([a-z_]+)\{([^}]*)\} (\S+)')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {labels}, value)] of the labelled samples."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2))), float(m.group(3))))
    return out


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return None
    return out


def rss_sample(work, pid, label):
    s = proc_status(pid)
    if s is None:
        return None
    s.update(t=time.time(), label=label)
    with open(os.path.join(work, "rss.jsonl"), "a") as f:
        f.write(json.dumps(s) + "\n")
    return s


def counters(samples):
    """probes per registry, failures per (registry, reason)."""
    probes, fails = {}, {}
    for name, lab, v in samples:
        if name == "regprobe_probes_total":
            probes[lab.get("registry", "")] = probes.get(lab.get("registry", ""), 0) + v
        elif name == "regprobe_probe_failures_total":
            k = lab.get("registry", "") + "|" + lab.get("reason", "")
            fails[k] = fails.get(k, 0) + v
    return probes, fails


def cmd_sample(a):
    """Every 2 s: /metrics (counters per registry, scrape time) and /-/healthy; every 60 s: RSS;
    every 20 s: a copy of /status (scanned for leaks at the end)."""
    start = time.time()
    rss_sample(a.work, a.pid, "start")
    next_rss, next_status, k = start + 60, start, 0
    snaps = os.path.join(a.work, "snapshots")
    os.makedirs(snaps, exist_ok=True)
    with open(os.path.join(a.work, "samples.jsonl"), "a") as out:
        while proc_status(a.pid) is not None:
            t = time.time()
            rec = {"t": t}
            try:
                _, body, dt = http_get(a.url + "/metrics")
                rec["scrape_s"] = round(dt, 4)
                rec["probes"], rec["fails"] = counters(parse_metrics(body))
                rec["healthy"] = http_get(a.url + "/-/healthy")[0]
            except Exception as e:  # noqa: BLE001 - recorded, the report counts them
                rec["error"] = str(e)
            if t >= next_status:
                try:
                    _, body, _ = http_get(a.url + "/status")
                    with open(os.path.join(snaps, f"status-{k:03d}.json"), "w") as f:
                        f.write(body)
                    k += 1
                except Exception:  # noqa: BLE001
                    pass
                next_status += 20
            out.write(json.dumps(rec) + "\n")
            out.flush()
            if t >= next_rss:
                rss_sample(a.work, a.pid, "minute")
                next_rss += 60
            time.sleep(max(0.0, 2 - (time.time() - t)))


# ---------------------------------------------------------------- report


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def events(work):
    out = []
    with open(os.path.join(work, "events.log")) as f:
        for line in f:
            p = line.split()
            out.append((float(p[0]), p[1], int(p[2]) if len(p) > 2 else -1))
    return out


def b64_needles():
    """8-character base64 runs that appear in any base64 text containing MARKER, at each of
    the three byte alignments (standard and URL-safe alphabets)."""
    out = set()
    for k in range(3):
        raw = b"\x00" * k + MARKER.encode()
        for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            first = (k + 2) // 3  # first 3-byte group entirely inside the marker
            last = (k + len(MARKER)) // 3  # groups [first, last) are inside
            out.add(enc[first * 4:last * 4].decode())
    return sorted(out)


def leaks(st, paths):
    """Every occurrence of a password, an `auth` value, base64 of the password marker, or `eyJ`."""
    needles = {"password marker " + MARKER: [MARKER], "eyJ": ["eyJ"]}
    needles["base64 of a password"] = b64_needles()
    auths = set(st["auths"])
    passwords = set(st["passwords"])
    token = re.compile(r"[A-Za-z0-9+/=_-]{12,}")
    found = []
    for p in paths:
        with open(p, errors="replace") as f:
            text = f.read()
        for what, ns in needles.items():
            c = sum(text.count(n) for n in ns)
            if c:
                found.append((p, what, c))
        exact_auth = sum(1 for t in token.findall(text) if t.rstrip("=") in
                         {x.rstrip("=") for x in auths})
        exact_pw = sum(text.count(pw) for pw in passwords) if MARKER in text else 0
        if exact_auth:
            found.append((p, "auth value", exact_auth))
        if exact_pw:
            found.append((p, "password", exact_pw))
    return found


def fails_between(samples, t0, t1, reg):
    ok = [s for s in samples if "fails" in s]
    a = min(ok, key=lambda s: abs(s["t"] - t0), default=None)
    b = min(ok, key=lambda s: abs(s["t"] - t1), default=None)
    if not a or not b:
        return {}
    out = {}
    for k, v in b["fails"].items():
        r, reason = k.split("|")
        if r == reg:
            d = v - a["fails"].get(k, 0)
            if d:
                out[reason] = int(d)
    return out


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def cmd_report(a):
    st = load_state(a.work)
    regs = st["registries"]
    ev = events(a.work)
    problems, notes, warnings = [], [], []
    elapsed = (ev[-1][0] - ev[0][0]) if ev else 0

    alive = proc_status(a.pid) is not None
    end = rss_sample(a.work, a.pid, "end") if alive else None
    healthy = None
    try:
        healthy = http_get(a.url + "/-/healthy")[0]
        _, metrics_text, _ = http_get(a.url + "/metrics")
        _, status_text, _ = http_get(a.url + "/status")
    except Exception as e:  # noqa: BLE001
        metrics_text = status_text = ""
        notes.append(f"final scrape failed: {e}")
    final_dir = os.path.join(a.work, "final")
    os.makedirs(final_dir, exist_ok=True)
    for name, text in (("metrics.txt", metrics_text), ("status.json", status_text)):
        with open(os.path.join(final_dir, name), "w") as f:
            f.write(text)
    if not alive or healthy != 200:
        problems.append(f"daemon dead or unhealthy (alive={alive}, /-/healthy={healthy})")

    samples = parse_metrics(metrics_text)
    now = time.time()
    probes_total = sum(v for n, _, v in samples if n == "regprobe_probes_total")
    by_reason = {}
    for n, lab, v in samples:
        if n == "regprobe_probe_failures_total":
            by_reason[lab["reason"]] = by_reason.get(lab["reason"], 0) + int(v)

    # The log: panics, errors, probes finished, the longest probe.
    log_path = os.path.join(a.work, "serve.log")
    panics, errors, finished, unparsed, longest = 0, 0, 0, 0, 0.0
    finished_by = {}  # secret -> [(t, success, reason)]
    finished_by_pair = {}  # (registry, secret) -> [(t, success)]
    disk_reloads = 0
    with open(log_path, errors="replace") as f:
        for line in f:
            if "panicked" in line:
                panics += 1
            try:
                rec = json.loads(line)
            except ValueError:
                unparsed += 1
                continue
            if rec.get("level") == "ERROR":
                errors += 1
            fields = rec.get("fields", {})
            if fields.get("message") == "inputs changed on disk; reloading":
                disk_reloads += 1
            if fields.get("message") == "probe finished":
                finished += 1
                longest = max(longest, float(fields.get("duration") or 0))
                ts = rec.get("timestamp", "")
                finished_by.setdefault(fields.get("secret", ""), []).append(
                    (ts, fields.get("success"), fields.get("reason")))
                finished_by_pair.setdefault((fields.get("registry"), fields.get("secret")),
                                            []).append((iso_to_unix(ts), fields.get("success")))
    if panics:
        problems.append(f"{panics} panic line(s) in the log")
    if longest > a.timeout + 1:
        problems.append(f"a probe took {longest:.1f} s, over the {a.timeout:.0f} s budget")

    # Final state of every pair against what the secrets say now.
    success, reason_now, last_probe, valid = {}, {}, {}, {}
    for n, lab, v in samples:
        key = (lab.get("registry"), lab.get("secret"))
        if n == "regprobe_success":
            success[key] = v
        elif n == "regprobe_failure_reason":
            reason_now[key] = lab.get("reason")
        elif n == "regprobe_last_probe_timestamp_seconds":
            last_probe[key] = v
        elif n == "regprobe_secret_valid":
            valid[lab.get("secret")] = v
    wrong_state = []
    expect_count = {"good": 0, "wrong": 0, "malformed": 0}
    for name, s in sorted(st["secrets"].items()):
        key = (regs[s["reg"]], name)
        expect_count[s["kind"]] += 1
        if s["kind"] == "good":
            ok = success.get(key) == 1
        elif s["kind"] == "wrong":
            ok = success.get(key) == 0 and reason_now.get(key) == "unauthorized"
        else:
            ok = valid.get(name) == 0 and reason_now.get(("", name)) == "secret_invalid"
        if not ok:
            wrong_state.append(f"{name} ({s['kind']}): success={success.get(key)} "
                               f"reason={reason_now.get(key) or reason_now.get(('', name))}")
    stale_series = sorted({sec for (_, sec) in list(success) + list(reason_now)}
                          - set(st["secrets"]))
    if wrong_state:
        problems.append(f"{len(wrong_state)} secret(s) not in their expected state at the end: "
                        + "; ".join(wrong_state[:5]))
    if stale_series:
        problems.append(f"series left for removed secrets: {stale_series[:5]}")
    # Stuck: a pair not probed for longer than the longest back-off (2 × interval + 10 %) plus
    # the probe budget and some slack.
    limit = 2.2 * a.interval + a.timeout + 10
    ages = {k: now - t for k, t in last_probe.items()}
    stuck = sorted((k for k, age in ages.items() if age > limit), key=lambda k: -ages[k])
    if stuck:
        problems.append(f"{len(stuck)} pair(s) not probed for over {limit:.0f} s: "
                        + ", ".join(f"{k[1]}@{k[0]} {ages[k]:.0f}s" for k in stuck[:5]))
    pairs_expected = sum(1 for s in st["secrets"].values() if s["kind"] != "malformed")
    if len(last_probe) < pairs_expected:
        problems.append(f"only {len(last_probe)} of {pairs_expected} pairs have been probed")

    # Leaks.
    scan = [log_path, os.path.join(final_dir, "metrics.txt"), os.path.join(final_dir,
                                                                          "status.json")]
    snaps = os.path.join(a.work, "snapshots")
    scan += sorted(os.path.join(snaps, f) for f in os.listdir(snaps)) if os.path.isdir(snaps) \
        else []
    leaked = leaks(st, scan)
    n_leaks = sum(c for _, _, c in leaked)
    if n_leaks:
        problems.append("secrets leaked: " + "; ".join(
            f"{os.path.basename(p)}: {c}× {w}" for p, w, c in leaked[:6]))

    # RSS.
    rss = read_jsonl(os.path.join(a.work, "rss.jsonl"))
    start = next((r for r in rss if r["label"] == "start"), None)
    minute = [r for r in rss if r["label"] == "minute"]
    peak_hwm = max((r.get("VmHWM", 0) for r in rss), default=0)

    # Chaos windows: what each one did to the probes.
    smp = read_jsonl(os.path.join(a.work, "samples.jsonl"))
    scrape_errors = sum(1 for s in smp if "error" in s)
    scrape_max = max((s.get("scrape_s", 0) for s in smp), default=0)
    unhealthy = sum(1 for s in smp if s.get("healthy", 200) != 200)
    if scrape_errors or unhealthy:
        problems.append(f"{scrape_errors} failed scrape(s), {unhealthy} unhealthy answer(s)")
    # Spacing of consecutive probes of pairs that always succeeded: at most the interval + 10 %
    # (jitter) plus a second; a longer gap is a delayed probe.
    late_after = 1.1 * a.interval + 1
    gaps = []  # (registry, end of the gap, gap)
    for (reg, _), runs in finished_by_pair.items():
        if all(ok for _, ok in runs):
            gaps += [(reg, t2, t2 - t1) for (t1, _), (t2, _) in zip(runs, runs[1:])
                     if t2 - t1 > late_after]
    chaos, opened, explained = [], {}, set()
    for t, what, reg in ev:
        if what in ("restart-begin", "pause-begin", "cut-begin"):
            opened[(what[:-6], reg)] = t
        elif what in ("restart-end", "pause-end", "cut-end"):
            kind = what[:-4]
            t0 = opened.pop((kind, reg), t)
            name = regs[reg]
            f = fails_between(smp, t0, t + a.timeout + 4, name)
            hit = [g for g in gaps if g[0] != name and t0 <= g[1] <= t + a.timeout + 2]
            explained.update(g for g in gaps if t0 <= g[1] <= t + a.timeout + 2
                             and (g[0] == name or g in hit))
            chaos.append({"kind": kind, "registry": name, "t0": t0, "t1": t, "failures": f,
                          "others_delayed": len(hit),
                          "others_max_gap_s": round(max((g[2] for g in hit), default=0), 1)})
            if kind == "pause" and not f.get("timeout"):
                problems.append(f"pause of {name}: no probe ended in `timeout` ({f})")
            if kind == "cut" and not f.get("connect_refused"):
                problems.append(f"cut-off of {name}: no `connect_refused` ({f})")
            if hit:
                warnings.append(
                    f"{kind} of {name} delayed {len(hit)} probe(s) of the other registries "
                    f"(gap between two probes of a healthy pair up to "
                    f"{max(g[2] for g in hit):.1f} s, interval {a.interval:.0f} s)")
    other_late = [g for g in gaps if g not in explained]
    if other_late:
        warnings.append(f"{len(other_late)} probe(s) of healthy pairs delayed outside the chaos "
                        f"windows (up to {max(g[2] for g in other_late):.1f} s apart)")
    # Reloads: expected are the rotations (a few per round) and one per --reload-interval.
    rounds = sum(1 for _, w, _ in ev if w == "rotate")
    if disk_reloads > 4 * rounds + 5:
        warnings.append(f"{disk_reloads} reloads for changes on disk, with {rounds} rotation "
                        f"round(s) of 2 writes each: the daemon keeps reloading unchanged "
                        f"inputs ({disk_reloads / max(1, elapsed):.1f} a second)")

    # Rotations: how soon the changed secrets were probed with their new content.
    pickup = []
    for rot in st.get("rotations", []):
        for name in rot.get("broken", []) + rot.get("fixed", []) + rot.get("added", []):
            after = [x for x in finished_by.get(name, []) if iso_to_unix(x[0]) >= rot["t"]]
            want_ok = name in rot.get("fixed", []) or name in rot.get("added", [])
            hit = next((iso_to_unix(x[0]) for x in after if bool(x[1]) == want_ok), None)
            pickup.append(hit - rot["t"] if hit else None)
    slow_pickup = [p for p in pickup if p is None]
    if slow_pickup:
        problems.append(f"{len(slow_pickup)} rotated secret(s) never probed with their new "
                        "content")

    res = {
        "minutes": a.minutes,
        "elapsed_s": round(elapsed),
        "secrets": len(st["secrets"]), "expect": expect_count, "registries": regs,
        "probes_metrics": int(probes_total), "probes_log": finished,
        "reloads_on_disk_change": disk_reloads,
        "failures_by_reason": dict(sorted(by_reason.items())),
        "panics": panics, "error_lines": errors, "unparsed_log_lines": unparsed,
        "alive": alive, "healthy": healthy,
        "rss_start_kib": start and start["VmRSS"], "rss_end_kib": end and end["VmRSS"],
        "rss_minutes_kib": [r["VmRSS"] for r in minute], "hwm_kib": peak_hwm,
        "fds_start": start and start.get("fds"), "fds_end": end and end.get("fds"),
        "threads_end": end and end.get("Threads"),
        "cpu_s": end and end.get("cpu_s"),
        "leaks": n_leaks, "leak_detail": leaked, "scanned_files": len(scan),
        "longest_probe_s": longest, "stuck_pairs": len(stuck),
        "max_pair_age_s": round(max(ages.values(), default=0)),
        "wrong_final_state": wrong_state,
        "scrapes": len(smp), "scrape_errors": scrape_errors, "scrape_max_s": scrape_max,
        "chaos": chaos,
        "rotation_pickup_s": [round(p, 2) for p in pickup if p is not None],
        "problems": problems, "warnings": warnings, "notes": notes,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "soak.json"), "w") as f:
        json.dump(res, f, indent=1)
    text = render(res)
    with open(os.path.join(a.out, "soak.md"), "w") as f:
        f.write(text)
    print(text)
    sys.exit(1 if problems else 0)


def iso_to_unix(ts):
    # tracing-subscriber's JSON timestamp: 2025-11-21T10:52:03.123456Z
    from datetime import datetime
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def render(r):
    L = []
    w = L.append
    e = r["expect"]
    w(f"soak: {r['minutes']} min ({r['elapsed_s']} s), {r['secrets']} secrets at the end "
      f"({e['good']} good, {e['wrong']} wrong password, {e['malformed']} malformed) on "
      f"{len(r['registries'])} registries")
    inv = r["failures_by_reason"].get("secret_invalid", 0)
    w(f"probes done          {r['probes_metrics']} (sum of regprobe_probes_total; of these "
      f"{inv} are secret_invalid counted at each reload); {r['probes_log']} handshakes "
      "('probe finished' in the log, incl. removed secrets)")
    w(f"reloads              {r['reloads_on_disk_change']} for changes on disk")
    w("failures by reason   " + ", ".join(f"{k} {v}" for k, v in
                                          r["failures_by_reason"].items()))
    w(f"panics               {r['panics']}   (ERROR lines {r['error_lines']}; alive "
      f"{r['alive']}, /-/healthy {r['healthy']})")
    rs = r["rss_start_kib"] or 0
    re_ = r["rss_end_kib"] or 0
    w(f"RSS                  start {mib(rs)}, end {mib(re_)}, peak (VmHWM) {mib(r['hwm_kib'])}"
      f"; each minute: " + ", ".join(mib(x) for x in r["rss_minutes_kib"]))
    w(f"fds / threads        {r['fds_start']} → {r['fds_end']} fds, {r['threads_end']} "
      f"threads; CPU {r['cpu_s']} s")
    w(f"secrets leaked       {r['leaks']}   ({r['scanned_files']} files scanned: log, "
      "/metrics, /status and its snapshots)")
    w(f"longest probe        {r['longest_probe_s']:.2f} s; pairs not probed in time "
      f"{r['stuck_pairs']} (oldest {r['max_pair_age_s']} s); wrong final state "
      f"{len(r['wrong_final_state'])}")
    w(f"/metrics scrapes     {r['scrapes']}, failed {r['scrape_errors']}, slowest "
      f"{r['scrape_max_s'] * 1000:.0f} ms")
    for c in r["chaos"]:
        w(f"  {c['kind']:<8} {c['registry']:<16} {c['t1'] - c['t0']:5.1f} s  failures "
          + (", ".join(f"{k} {v}" for k, v in c["failures"].items()) or "none")
          + f"; probes of other registries delayed {c['others_delayed']}"
          + (f" (up to {c['others_max_gap_s']} s apart)" if c["others_delayed"] else ""))
    p = r["rotation_pickup_s"]
    if p:
        w(f"rotations            {len(p)} changed secrets probed with their new content "
          f"after {min(p):.1f}–{max(p):.1f} s")
    for n in r["warnings"]:
        w(f"WARN: {n}")
    for n in r["notes"]:
        w(f"note: {n}")
    w("result: " + ("FAIL\n  - " + "\n  - ".join(r["problems"]) if r["problems"] else "PASS"))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--work", required=True)
    g.add_argument("--ports", required=True)
    g.add_argument("--n", type=int, default=500)
    r = sub.add_parser("rotate")
    r.add_argument("--work", required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--phase", choices=["break", "restore"], required=True)
    s = sub.add_parser("sample")
    s.add_argument("--work", required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--pid", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    {"gen": cmd_gen, "rotate": cmd_rotate, "sample": cmd_sample, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
