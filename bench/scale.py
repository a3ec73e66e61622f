"""Cost against scale (issue 16): camguard with 1,000, 5,000 and 10,000 background processes.

    sudo .venv/bin/python bench/scale.py [--scales 1000,5000,10000] [--fds 10] [--rounds 40]
                                         [--idle 31] [--held 62]

For each scale, ``N`` background ``sleep`` processes of an ordinary account (nobody) each
hold ``--fds`` extra descriptors (plus stdio: 13 each, 130,000 at 10,000). Then, side by
side in one run and for both of camguard's paths:

- ``root``: camguard as root, where fanotify names the opener;
- ``user``: camguard as that same ordinary account (setpriv), where only inotify says that a
  node was opened and a /proc search says who (the background is the user's own, as on a
  desktop: a browser, an IDE, containers);

it measures a child's ``open()`` of a stand-in camera node to the monitor's "started" event
naming that pid (both clocks CLOCK_MONOTONIC; p50/p99 over ``--rounds``), ``close()`` to
"stopped", one full attribution scan (camguard's ``scan_holders``, median of 5), the CPU
the monitor process uses idle (nothing held: the safety rescan is skipped) and while the
camera is held (the 30 s safety rescan runs), and its peak RSS. ``fuser`` and ``lsof`` on
the same node are timed alongside (median of 5). Prints a Markdown table; writes
bench/results-scale.json. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534

# Runs as root or as nobody: the monitor over the node, an opener child of the same
# account, and the measurements. Prints one JSON document.
PROBE = r"""
import json, os, resource, statistics, subprocess, sys, threading, time
sys.path[:0] = sys.argv[6:]
from camguard.core.models import EventType, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.fdscan import scan_holders
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber

node, rounds, idle_s, held_s, python = (sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
                                        float(sys.argv[4]), sys.argv[5])
OPENER = '''
import os, sys, time
for line in sys.stdin:
    if line.startswith("open"):
        t = time.monotonic(); fd = os.open(sys.argv[1], os.O_RDONLY)
    else:
        t = time.monotonic(); os.close(fd)
    sys.stdout.write(repr(t) + "\\n"); sys.stdout.flush()
'''
cond = threading.Condition()
events = []
def sink(ev):
    t = time.monotonic()
    if isinstance(ev, UsageEvent) and ev.usage.process is not None:
        with cond:
            events.append((t, ev.type, ev.usage.process.pid))
            cond.notify_all()
def wait(kind, pid, timeout=30.0):
    def find():
        return next((t for t, k, p in events if k is kind and p == pid), None)
    with cond:
        if not cond.wait_for(lambda: find() is not None, timeout):
            raise TimeoutError(f"no {kind.value} event for pid {pid}")
        t = find()
        events.clear()
        return t
def pct(values, q):
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

out = {"uid": os.geteuid()}
scans = []
for _ in range(5):
    t = time.perf_counter(); scan_holders([node]); scans.append(time.perf_counter() - t)
out["full_scan_ms"] = statistics.median(scans) * 1e3
src = ProcfsSource([node], [], describer=ProcessDescriber())
monitor = Monitor([src], SystemClock(), settle=0.002, rescan_interval=30.0)
monitor.add_sink(sink)
monitor.start()
out["fanotify"] = bool(src._watcher and src._watcher.fanotify_active)
opener = subprocess.Popen([python, "-c", OPENER, node], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
start, stop = [], []
try:
    def ask(word):
        opener.stdin.write(word + "\n"); opener.stdin.flush()
        return float(opener.stdout.readline())
    for _ in range(rounds):
        t0 = ask("open"); start.append(wait(EventType.STARTED, opener.pid) - t0)
        t1 = ask("close"); stop.append(wait(EventType.STOPPED, opener.pid) - t1)
    out.update(start_p50_ms=pct(start, 50) * 1e3, start_p99_ms=pct(start, 99) * 1e3,
               stop_p50_ms=pct(stop, 50) * 1e3, stop_p99_ms=pct(stop, 99) * 1e3,
               rounds=rounds)
    c0, w0 = cpu(), time.monotonic()
    time.sleep(idle_s)
    out["idle_cpu_percent"] = 100 * (cpu() - c0) / (time.monotonic() - w0)
    ask("open"); wait(EventType.STARTED, opener.pid)
    c0, w0 = cpu(), time.monotonic()
    time.sleep(held_s)
    out["held_cpu_percent"] = 100 * (cpu() - c0) / (time.monotonic() - w0)
    out["held_seconds"] = held_s
    ask("close"); wait(EventType.STOPPED, opener.pid)
finally:
    opener.kill(); opener.wait()
    monitor.stop()
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out), flush=True)
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


@contextmanager
def background(n: int, fds_each: int, work: Path) -> Iterator[int]:
    """``n`` sleeping processes of the nobody account, each holding ``fds_each`` extra
    descriptors; yields how many descriptors they hold in all."""
    scratch = work / "held"
    scratch.write_bytes(b"")
    files = [os.open("/dev/null", os.O_RDONLY) for _ in range(fds_each // 2)]
    files += [os.open(scratch, os.O_RDONLY) for _ in range(fds_each - len(files))]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(["sleep", "7200"], pass_fds=files, cwd="/",
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          user=NOBODY, group=NOBODY, extra_groups=[]))
        yield sum(len(os.listdir(f"/proc/{p.pid}/fd")) for p in procs)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        for fd in files:
            os.close(fd)


def timed_tool(argv: list[str], repeat: int = 5) -> float | str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e3


def probe(mode: str, node: Path, opts: argparse.Namespace) -> dict[str, Any]:
    if mode == "root":
        python, prefix, paths = sys.executable, [], [str(REPO)]
    else:
        site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
        python = "/usr/bin/python3"
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        paths = [str(REPO), str(site)]
    res = subprocess.run([*prefix, python, "-c", PROBE, str(node), str(opts.rounds),
                          str(opts.idle), str(opts.held), python, *paths],
                         capture_output=True, text=True, cwd="/", check=False,
                         timeout=600 + opts.idle + opts.held)
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-2000:]}
    doc: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return doc


def row(label: str, per_scale: list[dict[str, Any]], key: str, fmt: str = "{:.1f}") -> str:
    cells = []
    for r in per_scale:
        value = r.get(key)
        cells.append(fmt.format(value) if isinstance(value, float | int) else str(value))
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1000,5000,10000")
    ap.add_argument("--fds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--idle", type=float, default=31.0)
    ap.add_argument("--held", type=float, default=62.0)
    ap.add_argument("--modes", default="root,user")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results-scale.json")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (mknod, background processes as nobody, the user mode via setpriv)")
    work = Path(tempfile.mkdtemp(prefix="camguard-scale-"))
    work.chmod(0o755)
    node = work / "video0"
    os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))  # the null driver: opens fine
    node.chmod(0o666)
    modes = opts.modes.split(",")
    results: list[dict[str, Any]] = []
    try:
        for n in (int(s) for s in opts.scales.split(",")):
            t = time.monotonic()
            with background(n, opts.fds, work) as fds:
                entry: dict[str, Any] = {
                    "processes": n, "their_fds": fds, "spawn_s": time.monotonic() - t,
                    "system_fds": sum(len(os.listdir(f"/proc/{p}/fd"))
                                      for p in os.listdir("/proc") if p.isdigit()
                                      and os.path.isdir(f"/proc/{p}/fd")),
                    "load": os.getloadavg()[0]}
                holder = subprocess.Popen(["sleep", "600"], stdin=open(node))  # noqa: SIM115
                try:
                    entry["fuser_ms"] = timed_tool(["fuser", str(node)])
                    entry["lsof_ms"] = timed_tool(["lsof", "-n", "-P", "-w", str(node)])
                finally:
                    holder.kill()
                    holder.wait()
                for mode in modes:
                    entry[mode] = probe(mode, node, opts)
                    print(f"{n} {mode}: {json.dumps(entry[mode])}", file=sys.stderr, flush=True)
            results.append(entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    opts.out.write_text(json.dumps({"cpus": os.cpu_count(), "kernel": os.uname().release,
                                    "results": results}, indent=2) + "\n")
    print(f"kernel {os.uname().release}, {os.cpu_count()} cores\n")
    print("| measure | " + " | ".join(f"{r['processes']:,} procs" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    print(row("fds held by the background", results, "their_fds", "{:,}"))
    print(row("load average (1 min) at the start", results, "load", "{:.2f}"))
    for mode in modes:
        per = [r[mode] for r in results]
        who = "root, fanotify" if mode == "root" else "user, inotify + /proc"
        print(row(f"{who}: open -> started p50 ms", per, "start_p50_ms"))
        print(row(f"{who}: open -> started p99 ms", per, "start_p99_ms"))
        print(row(f"{who}: close -> stopped p50 ms", per, "stop_p50_ms"))
        print(row(f"{who}: one full scan ms", per, "full_scan_ms"))
        print(row(f"{who}: idle CPU % of a core", per, "idle_cpu_percent", "{:.2f}"))
        print(row(f"{who}: CPU % while a camera is held", per, "held_cpu_percent", "{:.2f}"))
        print(row(f"{who}: peak RSS MB", per, "peak_rss_mb"))
    print(row("`fuser` on the node ms", results, "fuser_ms"))
    print(row("`lsof` on the node ms", results, "lsof_ms"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
