"""Soak: the tray and the root service for a long run, against ground truth (issue 16, item 4).

    sudo .venv/bin/python bench/soak.py [--minutes 30] [--period 0.2] [--hold 0.1]
                                        [--churn 200] [--sample 10] [--warmup 60]

Runs, as on a desktop with the service installed: the root service (``python -m camguard
service``, as tests/service_env.py starts it, in a private folder with a stand-in camera
node and its own socket, history and event log) and the tray as its client (``python -m
camguard -v tray`` with CAMGUARD_SOCKET naming that socket, on a private Xvfb with a tray
host, a notification daemon and a session bus: tests/realenv.py). For ``--minutes``:

- one opener process opens the stand-in camera node every ``--period`` seconds, holds it
  ``--hold`` seconds and closes it, logging its own ground truth (wall clock right before
  ``open()`` and right after ``close()``);
- a churner starts ``--churn`` short processes a second (``/bin/true``), so that pids come
  and go around the opener as on a busy machine;
- every ``--sample`` seconds, RSS, fd count and CPU time (utime + stime) of the tray and of
  the service are read from /proc.

At the end the service's history database is read and its camera sessions are matched with
the opener's uses, in order: a use with no session that overlaps it is *missed*; a session
that overlaps no use (or is of another process) is a *phantom*. RSS growth and fd growth are
counted from the first sample after ``--warmup`` seconds (caches, the database, the alert
popup and Qt's windows are made once) to the last sample. Goals: RSS growth <= 5 MB, fd
count flat, 0 missed, 0 phantom. Prints the figures and writes bench/results-soak.json.
This is a benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camguard.platform.clock import SystemClock  # noqa: E402
from camguard.store.history import (  # noqa: E402
    PROBE_REASON,
    PROBE_STORM_REASON,
    HistoryStore,
)
from tests import realenv  # noqa: E402
from tests.service_env import Box, Service, box  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
RSS_GOAL_MB = 5.0
# A session stands for a use when it starts no earlier than SLACK before the use's open and
# no later than LATE after its close: the service stamps a session with the time it handled
# the event, after the opener's own clock, and on a loaded machine that can be a while.
SLACK = 0.05
LATE = 1.0

# Opens/holds/closes every period until stdin closes; one JSON line [open, close] per use,
# written after the close (wall clock, so that it compares with the history's times).
OPENER = r"""
import json, os, sys, threading, time
node, period, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
out = open(sys.argv[4], "w", buffering=1)
nxt = time.monotonic()
while not stop.is_set():
    t0 = time.time(); fd = os.open(node, os.O_RDONLY)
    time.sleep(hold)
    os.close(fd); t1 = time.time()
    out.write(json.dumps([t0, t1]) + "\n")
    nxt += period
    stop.wait(max(0.0, nxt - time.monotonic()))
out.close()
"""

# Starts RATE short processes a second until stdin closes; prints how many it started.
CHURNER = r"""
import os, sys, threading, time
rate = float(sys.argv[1])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
started, t_start = 0, time.monotonic()
while not stop.is_set():
    due = int((time.monotonic() - t_start) * rate)
    while started < due:
        os.posix_spawn("/bin/true", ["true"], {})
        started += 1
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    stop.wait(0.01)
print(started, time.monotonic() - t_start, flush=True)
"""


def sample(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    rss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {"cpu_s": (int(fields[11]) + int(fields[12])) / CLK_TCK, "rss_kb": rss,
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def match(uses: list[tuple[float, float]], sessions: list[tuple[int | None, float, float]],
          opener: int) -> dict[str, Any]:
    """Uses against the service's sessions (pid, start, end), both in time order, one to
    one: a session that starts before the current use (less SLACK) stood for no use (a
    phantom); a use with no session starting by its close + LATE is missed (a session that
    spans two uses leaves the second one missed)."""
    mine = sorted((s, e) for pid, s, e in sessions if pid == opener)
    others = [s for s in sessions if s[0] != opener]
    missed: list[tuple[float, float]] = []
    phantoms: list[tuple[float, float]] = []
    late: list[float] = []
    after_close = 0
    i = 0
    ordered = sorted(uses)
    for j, (t0, t1) in enumerate(ordered):
        while i < len(mine) and mine[i][0] < t0 - SLACK:
            phantoms.append(mine[i])
            i += 1
        # Late, but not as late as the next use: this use's (else the next one's).
        before_next = j + 1 == len(ordered) or mine[i][0] < ordered[j + 1][0] - SLACK \
            if i < len(mine) else False
        if i < len(mine) and mine[i][0] <= t1 + LATE and before_next:
            late.append(mine[i][0] - t0)
            after_close += mine[i][0] > t1
            i += 1
        else:
            missed.append((t0, t1))
    phantoms += mine[i:]
    late.sort()
    return {"uses": len(uses), "sessions": len(sessions), "matched": len(late),
            "missed": len(missed), "phantom": len(phantoms) + len(others),
            "phantom_of_other_processes": len(others),
            "session_start_after_open_ms": {
                "p50": 1e3 * late[len(late) // 2] if late else None,
                "p99": 1e3 * late[int(len(late) * 0.99)] if late else None,
                "max": 1e3 * late[-1] if late else None,
                "after_the_close": after_close},
            "missed_first": [list(m) for m in missed[:10]],
            "phantom_first": [list(p) for p in phantoms[:10]],
            "other_sessions_first": [list(o) for o in others[:10]]}


def service_sessions(b: Box, since: float) -> list[tuple[int | None, float, float]]:
    """The service's sessions (pid, start, end); a probe storm's entry is an alert kept in
    history (core/probes.py), not a session: counted by :func:`storm_entries`."""
    store = HistoryStore(b.data / "history.sqlite3", SystemClock(), hash_exes=False)
    try:
        rows = store.sessions(since=since, limit=10_000_000)
        return [(r.pid, r.start, r.end if r.end is not None else float("inf")) for r in rows
                if r.end_reason != PROBE_STORM_REASON]
    finally:
        store.close()


def storm_entries(b: Box, since: float) -> dict[str, int]:
    """How many probe storms the service surfaced, and how many sessions it kept as probes
    (docs/probes.md: the opener's 100 ms uses, five a second, are one storm)."""
    store = HistoryStore(b.data / "history.sqlite3", SystemClock(), hash_exes=False)
    try:
        rows = store.sessions(since=since, limit=10_000_000)
        return {"probe_storms": sum(r.end_reason == PROBE_STORM_REASON for r in rows),
                "probe_sessions": sum(r.end_reason == PROBE_REASON for r in rows)}
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--period", type=float, default=0.2)
    ap.add_argument("--hold", type=float, default=0.1)
    ap.add_argument("--churn", type=float, default=200.0, help="short processes a second")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results-soak.json")
    ap.add_argument("--logs", type=Path, default=Path("/tmp/camguard-soak-logs"),
                    help="where the tray's and the service's logs are copied at the end")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("soak.py runs the root service: run it as root", file=sys.stderr)
        return 2
    with box() as b:
        results = run(b, opts)
    opts.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "samples"}, indent=2))
    return 0


def start_tray(b: Box, xs: realenv.XSession) -> tuple[subprocess.Popen[str], Path]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(xs.env)
    tray_root = b.root / "tray"
    for what in ("config", "data", "state"):
        (tray_root / what).mkdir(parents=True)
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(tray_root / what)
    env["CAMGUARD_SOCKET"] = str(b.sock)
    (tray_root / "config" / "settings.json").write_text(
        json.dumps({"detection": {"watch_sound_server": False}}))
    log = b.root / "tray.log"
    with log.open("w") as out:
        tray = subprocess.Popen(
            realenv.bound_to_tests([sys.executable, "-m", "camguard", "-v", "tray",
                                    "--camera-glob", str(b.dev / "video*"), "--mic-glob",
                                    str(b.dev / "snd" / "pcmC*D*c")]),
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    b.procs.append(tray)
    realenv.wait_until(lambda: "tray ready" in log.read_text(errors="replace"), 90,
                       "the tray")
    return tray, log


def run(b: Box, opts: argparse.Namespace) -> dict[str, Any]:
    node = b.node("video0")
    svc = Service(b, heartbeat=30.0).start()
    assert svc.proc is not None
    xs = realenv.start_x(b.root / "xsession")
    try:
        tray, tray_log = start_tray(b, xs)
        truth = b.root / "uses.jsonl"
        t_begin = time.time()
        opener = subprocess.Popen(
            realenv.bound_to_tests([sys.executable, "-c", OPENER, str(node), str(opts.period),
                                    str(opts.hold), str(truth)]),
            stdin=subprocess.PIPE, text=True)
        churner = subprocess.Popen(
            realenv.bound_to_tests([sys.executable, "-c", CHURNER, str(opts.churn)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        b.procs += [opener, churner]
        samples: list[dict[str, Any]] = []
        t0 = time.monotonic()
        end = t0 + opts.minutes * 60
        while True:
            now = time.monotonic()
            samples.append({"t": round(now - t0, 1), "tray": sample(tray.pid),
                            "service": sample(svc.proc.pid),
                            "load1": os.getloadavg()[0]})
            for who, p in (("tray", tray), ("service", svc.proc), ("opener", opener),
                           ("churner", churner)):
                if p.poll() is not None:
                    raise RuntimeError(f"the {who} exited ({p.returncode}) at "
                                       f"{now - t0:.0f} s")
            if now >= end:
                break
            time.sleep(min(opts.sample, max(0.0, end - now)))
        assert opener.stdin is not None and churner.stdin is not None
        opener.stdin.close()
        opener.wait(30)
        churner.stdin.close()
        assert churner.stdout is not None
        churn_out = churner.stdout.read()
        churner.wait(30)
        churned, churn_wall = churn_out.split()
        # Every session closed (the last close reaches the service in milliseconds; the
        # safety rescan closes anything missed within its 30 s interval).
        realenv.wait_until(
            lambda: all(e != float("inf") for _, _, e in service_sessions(b, t_begin)), 90,
            "the service to close every session")
        tray_alive = tray.poll() is None
        svc_alive = svc.alive()
    finally:
        for p in b.procs[1:]:
            if p.poll() is None:
                p.terminate()
        for p in b.procs[1:]:  # the tray quits before its session bus goes
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        xs.stop()
    uses = [tuple(json.loads(line)) for line in truth.read_text().splitlines() if line]
    opts.logs.mkdir(parents=True, exist_ok=True)
    for name in ("history.sqlite3", "history.sqlite3-wal"):
        if (b.data / name).exists():
            shutil.copy(b.data / name, opts.logs / name)
    shutil.copy(truth, opts.logs / "uses.jsonl")
    tally = match(uses, service_sessions(b, t_begin), opener.pid)  # type: ignore[arg-type]
    tally.update(storm_entries(b, t_begin))
    return report(opts, samples, tally, churned=int(churned), churn_wall=float(churn_wall),
                  tray_alive=tray_alive, svc_alive=svc_alive, tray_log=tray_log,
                  svc_log=svc.log)


def report(opts: argparse.Namespace, samples: list[dict[str, Any]], tally: dict[str, Any], *,
           churned: int, churn_wall: float, tray_alive: bool, svc_alive: bool,
           tray_log: Path, svc_log: Path) -> dict[str, Any]:
    base = next((s for s in samples if s["t"] >= opts.warmup), samples[0])
    last = samples[-1]
    wall = last["t"] - samples[0]["t"]
    out: dict[str, Any] = {
        "minutes": opts.minutes, "period_s": opts.period, "hold_s": opts.hold,
        "churn_per_s_asked": opts.churn, "churn_per_s_done": churned / churn_wall,
        "cores": os.cpu_count(), "load1_median": statistics.median(s["load1"] for s in samples),
        "tray_alive_at_end": tray_alive, "service_alive_at_end": svc_alive,
        **tally, "goals": {"rss_growth_mb": RSS_GOAL_MB, "fd_growth": 0, "missed": 0,
                           "phantom": 0}}
    for who in ("tray", "service"):
        rss = [s[who]["rss_kb"] for s in samples]
        fds = [s[who]["fds"] for s in samples]
        out[who] = {
            "rss_mb_after_warmup": base[who]["rss_kb"] / 1024,
            "rss_mb_end": last[who]["rss_kb"] / 1024,
            "rss_growth_mb": (last[who]["rss_kb"] - base[who]["rss_kb"]) / 1024,
            "rss_mb_max": max(rss) / 1024,
            "fds_after_warmup": base[who]["fds"], "fds_end": last[who]["fds"],
            "fds_min": min(fds), "fds_max": max(fds),
            "cpu_percent_of_core": 100 * (last[who]["cpu_s"] - samples[0][who]["cpu_s"])
            / wall if wall > 0 else 0.0,
        }
    opts.logs.mkdir(parents=True, exist_ok=True)
    for name, log in (("tray", tray_log), ("service", svc_log)):
        shutil.copy(log, opts.logs / f"{name}.log")
        text = log.read_text(errors="replace")
        out[f"{name}_log_tracebacks"] = text.count("Traceback")
        out[f"{name}_log_errors"] = text.count(": ERROR: ")
        at = text.find("Traceback")
        out[f"{name}_log_first_traceback"] = text[max(0, at - 300):at + 3000] if at >= 0 else ""
    # Popups the tray raised (ui/alert.py logs each): one opener, one app, so the goal is
    # the first use's alert and the storm's, not one per use.
    out["tray_alerts_shown"] = tray_log.read_text(errors="replace").count("alert shown: ")
    out["samples"] = samples
    return out


if __name__ == "__main__":
    raise SystemExit(main())
