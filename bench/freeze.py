"""Freeze while asking (issue 16): from a child's open() of a camera node to that child
being stopped (SIGSTOP), measured on the child's own clock.

    sudo .venv/bin/python bench/freeze.py [--rounds 40] [--background 1000]

The child takes CLOCK_MONOTONIC just before its open(), then keeps writing the clock into
a shared page every 0.2 ms until it is stopped: the last value it wrote is the moment it
stopped running (an underestimate by at most one nap and its wake-up delay). The monitor
(ProcfsSource) names the opener; a sink pauses it as the tray does (core.freeze's
FreezeWhileAsking over camguard.platform.linux.freeze.JournaledFreezer: journal, watchdog);
the bench then continues it. The tray first runs its rules check (about a millisecond;
hashing a binary only when an exe rule names one), which this bench leaves out. ``root``:
camguard as root (fanotify names the opener); ``user``: camguard and the child as nobody
(inotify and a /proc search). Also repeats the kernel check that the open() itself cannot
be held on a device node (tests/integration/test_freeze.py). Prints a Markdown table;
writes bench/results-freeze.json. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534

PROBE = r"""
import mmap, os, struct, subprocess, sys, threading, time
sys.path[:0] = sys.argv[4:]
from pathlib import Path
from camguard.core.models import EventType, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.core.freeze import FreezeWhileAsking
from camguard.platform.linux.freeze import JournaledFreezer, state_of
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber

node, rounds, python = sys.argv[1], int(sys.argv[2]), sys.argv[3]
CHILD = '''
import mmap, os, struct, sys, time
page = mmap.mmap(int(sys.argv[2]), 4096)
for line in sys.stdin:
    t0 = time.monotonic()
    fd = os.open(sys.argv[1], os.O_RDONLY)
    struct.pack_into("=d", page, 0, t0)
    while page[16] == 0:
        struct.pack_into("=d", page, 8, time.monotonic())
        time.sleep(0.0002)  # a spinning child would take a core from the monitor
    page[16] = 0
    os.close(fd)
    sys.stdout.write("closed\\n"); sys.stdout.flush()
'''
work = Path(os.path.dirname(node))
page_fd = os.open(work / f"page-{os.getpid()}", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.ftruncate(page_fd, 4096)
page = mmap.mmap(page_fd, 4096)
child = subprocess.Popen([python, "-c", CHILD, node, str(page_fd)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, pass_fds=[page_fd])
freezer = JournaledFreezer(work / f"frozen-{os.getpid()}.json", eager=True)
guard = FreezeWhileAsking(freezer, own_pid=os.getpid())  # as the tray holds it
named, ended = threading.Event(), threading.Event()
def sink(ev):
    if (isinstance(ev, UsageEvent) and ev.usage.process is not None
            and ev.usage.process.pid == child.pid):
        if ev.type is EventType.STARTED:
            guard.hold("alert", ev.usage.process)
            named.set()
        else:
            ended.set()
src = ProcfsSource([node], [], describer=ProcessDescriber())
monitor = Monitor([src], SystemClock(), settle=0.002, rescan_interval=30.0)
monitor.add_sink(sink)
monitor.start()
lat = []
try:
    for _ in range(rounds):
        named.clear(); ended.clear()
        child.stdin.write("go\n"); child.stdin.flush()
        if not named.wait(30):
            raise SystemExit("the monitor never named the opener")
        deadline = time.monotonic() + 10
        while state_of(child.pid) != "T":
            if time.monotonic() > deadline:
                raise SystemExit("not stopped")
            time.sleep(0.001)
        time.sleep(0.005)  # nothing runs in it now: its last clock value is final
        t0, last = struct.unpack_from("=dd", page, 0)
        lat.append(last - t0)
        guard.release("alert", "allowed-once")
        page[16] = 1
        child.stdout.readline()
        # Unprivileged, a close and a reopen within one look are one use: wait for its end.
        if not ended.wait(30):
            raise SystemExit("the monitor never saw the close")
finally:
    freezer.close()
    child.kill(); child.wait()
    monitor.stop()
lat.sort()
pick = lambda q: lat[max(0, min(len(lat) - 1, round(q / 100 * (len(lat) - 1))))] * 1e3
print(__import__("json").dumps({"uid": os.geteuid(), "rounds": rounds,
      "stopped_p50_ms": pick(50), "stopped_p99_ms": pick(99), "max_ms": lat[-1] * 1e3}))
"""


def probe(mode: str, node: Path, rounds: int) -> dict[str, Any]:
    if mode == "root":
        python, prefix, paths = sys.executable, [], [str(REPO)]
    else:
        site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
        python = "/usr/bin/python3"
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        paths = [str(REPO), str(site)]
    res = subprocess.run([*prefix, python, "-c", PROBE, str(node), str(rounds), python,
                          *paths], capture_output=True, text=True, cwd="/", check=False,
                         timeout=900)
    if res.returncode != 0:
        return {"error": (res.stderr or res.stdout).strip()[-2000:]}
    doc: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return doc


def kernel_check(work: Path, node: Path) -> dict[str, Any]:
    """Does FAN_OPEN_PERM hold an open() of a regular file, and of the device node?"""
    sys.path.insert(0, str(REPO))
    from tests.integration.test_freeze import FAN_DENY, held_open

    regular = work / "file"
    regular.write_text("x")
    return {"regular_file": held_open(regular, FAN_DENY), "device_node": held_open(node, FAN_DENY)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--background", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results-freeze.json")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (mknod; the user mode runs as nobody via setpriv)")
    work = Path(tempfile.mkdtemp(prefix="camguard-freeze-"))
    work.chmod(0o777)
    node = work / "video0"
    os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
    node.chmod(0o666)
    sys.path.insert(0, str(REPO / "bench"))
    from scale import background

    results: dict[str, Any] = {"kernel": os.uname().release, "cpus": os.cpu_count()}
    try:
        results["open_permission_event_held"] = kernel_check(work, node)
        with background(opts.background, 10, work) as fds:
            results["background"] = {"processes": opts.background, "their_fds": fds}
            for mode in ("root", "user"):
                results[mode] = probe(mode, node, opts.rounds)
                print(f"{mode}: {json.dumps(results[mode])}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    opts.out.write_text(json.dumps(results, indent=2) + "\n")
    held = results["open_permission_event_held"]
    print(f"kernel {results['kernel']}; FAN_OPEN_PERM held a regular file's open(): "
          f"{held['regular_file']}; a device node's: {held['device_node']}\n")
    print("| camguard | open() -> stopped p50 | p99 | max | rounds |")
    print("|---|---:|---:|---:|---:|")
    for mode, who in (("root", "root (fanotify)"), ("user", "user (inotify + /proc)")):
        r = results[mode]
        if "error" in r:
            print(f"| {who} | error: {r['error'][-200:]} | | | |")
            continue
        print(f"| {who} | {r['stopped_p50_ms']:.1f} ms | {r['stopped_p99_ms']:.1f} ms | "
              f"{r['max_ms']:.1f} ms | {r['rounds']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
