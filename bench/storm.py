"""Open/close storm: camguard's camera sessions against each opener's own ground truth.

    .venv/bin/python bench/storm.py [--procs 20] [--opens 50] [--seed 1] [--mode root|user|both]

Runs as root. Each of ``--procs`` child processes opens a stand-in camera node ``--opens``
times, holding it 1-200 ms, with a pause of 0-50 ms between a close and the next open (a
quarter of them under 1 ms: a close then an immediate reopen), and logs its own ground truth
(pid, open and close times from the wall clock, taken right before open() and right after
close()). camguard's monitor runs in its own process and logs every session it reports.
Sessions are then matched exactly, per pid:

- ``missed``: a use no session stands for;
- ``merged``: a use folded into the session of the use before it (one session for two);
- ``extra``: a second session for one use (a use split in two);
- ``phantom``: a session of no child at all (e.g. "in use by a process camguard cannot see"
  while every opener is visible).

Modes: ``root`` (fanotify names every opener); ``user``: camguard and the children run as
``nobody`` (no fanotify: inotify plus /proc scans; root's processes, including this one,
are the hidden ones camguard cannot read). Prints a Markdown table for docs/benchmarks.md.
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Runs the monitor over the node; one JSON line per usage event; "settle" on stdin waits
# until nothing is in use any more, then prints "idle".
RECORDER = """
import json, sys, threading, time
sys.path[:0] = sys.argv[2:]
from camguard.core.models import UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
out = sys.stdout
lock = threading.Lock()
def sink(ev):
    if isinstance(ev, UsageEvent):
        p = ev.usage.process
        with lock:
            out.write(json.dumps({"type": ev.type.value, "pid": p.pid if p else None,
                                  "at": ev.at, "via": ev.usage.via}) + "\\n")
import logging, os
if os.environ.get("STORM_DEBUG"): logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
src = ProcfsSource([sys.argv[1]], [], describer=ProcessDescriber())
monitor = Monitor([src], SystemClock(), settle=0.002, rescan_interval=30.0)
monitor.add_sink(sink)
monitor.start()
with lock:
    out.write(json.dumps("ready") + "\\n"); out.flush()
sys.stdin.readline()
deadline = time.monotonic() + 30
while monitor.state.usages and time.monotonic() < deadline:
    time.sleep(0.05)
with lock:
    out.write(json.dumps("idle") + "\\n"); out.flush()
monitor.stop()
"""

# One opener: waits for a line on stdin, then opens/holds/closes; prints its ground truth.
CHILD = """
import json, os, random, sys, time
node, opens, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
plan = [(rng.uniform(0.001, 0.200),
         rng.uniform(0.0, 0.001) if rng.random() < 0.25 else rng.uniform(0.001, 0.050))
        for _ in range(opens)]
print("ready", flush=True)
sys.stdin.readline()
truth = []
for hold, pause in plan:
    t0 = time.time()
    fd = os.open(node, os.O_RDONLY)
    time.sleep(hold)
    os.close(fd)
    t1 = time.time()
    truth.append((t0, t1))
    time.sleep(pause)
print(json.dumps({"pid": os.getpid(), "uses": truth}), flush=True)
"""


@dataclass
class Score:
    uses: int = 0
    sessions: int = 0
    missed: int = 0
    merged: int = 0
    extra: int = 0
    phantom: int = 0


def sessions_of(events: list[dict[str, Any]]) -> dict[int | None, list[tuple[float, float]]]:
    """Per pid, (start, stop) of each session camguard reported."""
    live: dict[int | None, float] = {}
    out: dict[int | None, list[tuple[float, float]]] = {}
    for ev in events:
        if ev["type"] == "started":
            live[ev["pid"]] = ev["at"]
        elif ev["pid"] in live:
            out.setdefault(ev["pid"], []).append((live.pop(ev["pid"]), ev["at"]))
    for pid, start in live.items():
        out.setdefault(pid, []).append((start, float("inf")))
    return out


# A session may be reported this long after its use ended (a loaded machine), not later.
LATE = 10.0
SKEW = 0.001  # stamps come from two processes reading the same clock, rounded


def align(uses: list[tuple[float, float]], sessions: list[tuple[float, float]]
          ) -> list[tuple[int, int]]:
    """The largest in-order matching of sessions to uses (both sorted by start): a session
    may stand for a use if it started after the use opened and within LATE of its close."""
    n, m = len(uses), len(sessions)

    def ok(j: int, k: int) -> bool:
        return uses[j][0] <= sessions[k][0] + SKEW and sessions[k][0] <= uses[j][1] + LATE

    best = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(n - 1, -1, -1):
        for k in range(m - 1, -1, -1):
            best[j][k] = max(best[j + 1][k], best[j][k + 1],
                             best[j + 1][k + 1] + 1 if ok(j, k) else 0)
    pairs, j, k = [], 0, 0
    while j < n and k < m:
        if ok(j, k) and best[j][k] == best[j + 1][k + 1] + 1:
            pairs.append((j, k))
            j, k = j + 1, k + 1
        elif best[j][k] == best[j + 1][k]:
            j += 1
        else:
            k += 1
    return pairs


def score(truth: dict[int, list[tuple[float, float]]],
          got: dict[int | None, list[tuple[float, float]]]) -> Score:
    """Uses and sessions are matched in order (:func:`align`). A use left without a session
    is merged when the session matched before it was still running at its close (one
    session for two uses), else missed; a session left without a use is an extra."""
    s = Score()
    for pid, sessions in got.items():
        if pid not in truth:
            s.phantom += len(sessions)
    for pid, unsorted in truth.items():
        uses = sorted(unsorted)
        sessions = sorted(got.get(pid, []))
        s.uses += len(uses)
        s.sessions += len(sessions)
        pairs = align(uses, sessions)
        s.extra += len(sessions) - len(pairs)
        matched = dict(pairs)
        last_stop = float("-inf")
        for j, (_t0, t1) in enumerate(uses):
            if j in matched:
                last_stop = sessions[matched[j]][1]
            elif last_stop >= t1:
                s.merged += 1
            else:
                s.missed += 1
    return s


def run(mode: str, procs: int, opens: int, seed: int, dump: Path | None = None) -> Score:
    work = Path(tempfile.mkdtemp(prefix="camguard-storm-"))
    work.chmod(0o755)
    node = work / "video0"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the null driver: opens fine
    node.chmod(0o666)
    if mode == "root":
        python, prefix, paths = sys.executable, [], [str(REPO)]
    else:
        site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
        python = "/usr/bin/python3"
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        paths = [str(REPO), str(site)]
    children = [subprocess.Popen([*prefix, python, "-c", CHILD, str(node), str(opens),
                                  str(seed * 1000 + i)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd="/")
                for i in range(procs)]
    for c in children:
        assert c.stdout is not None and c.stdout.readline() == "ready\n"
    recorder = subprocess.Popen([*prefix, python, "-c", RECORDER, str(node), *paths],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd="/")
    try:
        assert recorder.stdout is not None and recorder.stdin is not None
        assert json.loads(recorder.stdout.readline()) == "ready"
        for c in children:
            assert c.stdin is not None
            c.stdin.write("go\n")
            c.stdin.flush()
        truth: dict[int, list[tuple[float, float]]] = {}
        for c in children:
            assert c.stdout is not None
            doc = json.loads(c.stdout.readline())
            truth[doc["pid"]] = [tuple(u) for u in doc["uses"]]  # type: ignore[misc]
            c.wait()
        recorder.stdin.write("settle\n")
        recorder.stdin.flush()
        events = []
        for line in recorder.stdout:
            doc = json.loads(line)
            if doc == "idle":
                break
            events.append(doc)
        if dump is not None:
            dump.write_text(json.dumps({"truth": truth, "events": events}))
        return score(truth, sessions_of(events))
    finally:
        for p in [recorder, *children]:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--opens", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=["root", "user", "both"], default="both")
    ap.add_argument("--dump", type=Path, metavar="DIR",
                    help="write each mode's ground truth and events there (JSON)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (mknod; the user mode runs camguard as nobody via setpriv)")
    modes = ["root", "user"] if args.mode == "both" else [args.mode]
    print(f"{args.procs} processes x {args.opens} opens, holds 1-200 ms, seed {args.seed}; "
          f"kernel {os.uname().release}, {os.cpu_count()} cores\n")
    print("| camguard runs as | uses | sessions | missed | merged | extra | phantom |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        dump = None if args.dump is None else args.dump / f"storm-{mode}.json"
        s = run(mode, args.procs, args.opens, args.seed, dump)
        who = "root (fanotify)" if mode == "root" else "nobody (inotify + /proc)"
        print(f"| {who} | {s.uses} | {s.sessions} | {s.missed} | {s.merged} | {s.extra} "
              f"| {s.phantom} |", flush=True)


if __name__ == "__main__":
    main()
