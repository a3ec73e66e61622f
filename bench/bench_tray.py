"""Tray benchmarks for issue 3: event -> popup latency, idle CPU and memory of `camguard tray`.

    .venv/bin/python bench/bench_tray.py [--rounds 20] [--idle 60]

Runs the real tray (`python -m camguard -vv tray`) on a private Xvfb with a real tray host
(trayer) and notification daemon (dunst). A child process opens a stand-in camera node and
prints CLOCK_MONOTONIC just before its open(); the bench reads the tray's log through a pipe
and stamps the "alert shown" line (logged right after the popup's show()) on arrival; the
difference is open -> popup shown. Each popup is answered with a real click on "Allow once".
Then the tray is left idle and its CPU time (utime+stime from /proc) and RSS are read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_detect import make_node, pct, proc_cpu_rss
from tests import realenv

OPENER = r"""
import os, sys, time
for line in sys.stdin:
    if line.startswith("open"):
        t = time.monotonic(); fd = os.open(sys.argv[1], os.O_RDONLY)
    else:
        os.close(fd); t = time.monotonic()
    sys.stdout.write(f"{t!r}\n"); sys.stdout.flush()
"""


class LogWatch:
    """Reads the tray's log lines as they come and stamps each with time.monotonic()."""

    def __init__(self, stream: object) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            with self.cond:
                self.lines.append((time.monotonic(), raw.rstrip("\n")))
                self.cond.notify_all()

    def wait(self, pattern: str, timeout: float = 30.0, after: int = 0) -> tuple[float, str]:
        rx = re.compile(pattern)
        with self.cond:
            def hit() -> tuple[float, str] | None:
                for t, line in self.lines[after:]:
                    if rx.search(line):
                        return t, line
                return None
            if not self.cond.wait_for(lambda: hit() is not None, timeout):
                raise TimeoutError(pattern)
            found = hit()
            assert found is not None
            return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results-tray.json")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="camguard-bench-tray-"))
    xs = realenv.start_x(root)
    devdir = root / "dev"
    devdir.mkdir()
    make_node(devdir / "video0")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(xs.env)
    for what in ("config", "data", "state"):
        (root / what).mkdir()
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(root / what)
    (root / "config" / "settings.json").write_text(
        json.dumps({"detection": {"watch_sound_server": False}}))
    tray = subprocess.Popen([sys.executable, "-m", "camguard", "-vv", "tray", "--camera-glob",
                             f"{devdir}/video*", "--mic-glob", f"{devdir}/pcmC*D*c"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    watch = LogWatch(tray.stdout)
    latencies = []
    try:
        watch.wait("tray ready", 60)
        for _ in range(args.rounds):
            # A new process each round: "Allow once" covers a process until it exits.
            opener = subprocess.Popen([sys.executable, "-c", OPENER, str(devdir / "video0")],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert opener.stdin is not None and opener.stdout is not None
            mark = len(watch.lines)
            opener.stdin.write("open\n")
            opener.stdin.flush()
            t0 = float(opener.stdout.readline())
            shown, _ = watch.wait(rf"alert shown: pid={opener.pid}\b", 30, mark)
            latencies.append(shown - t0)
            _, buttons = watch.wait(r"alert buttons:", 10, mark)
            found = re.search(r"allowed-once=(\d+),(\d+)", buttons)
            assert found is not None
            subprocess.run(["xdotool", "mousemove", *found.groups(), "click", "1"], env=env,
                           check=True)
            opener.kill()
            opener.wait()
            watch.wait(rf"stopped.*pid={opener.pid}|pid {opener.pid}.*stopped|allowed-once", 10,
                       mark)
            time.sleep(0.3)  # let the stopped event pass before the next round
        time.sleep(3)
        cpu0, _ = proc_cpu_rss(tray.pid)
        t_idle = time.monotonic()
        time.sleep(args.idle)
        cpu1, hwm = proc_cpu_rss(tray.pid)
        idle_wall = time.monotonic() - t_idle
        with open(f"/proc/{tray.pid}/status") as fh:
            rss = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmRSS:"))
    finally:
        tray.terminate()
        tray.wait(30)
        xs.stop()
    results = {
        "rounds": args.rounds,
        "open_to_popup_p50_ms": pct(latencies, 50) * 1e3,
        "open_to_popup_p99_ms": pct(latencies, 99) * 1e3,
        "open_to_popup_max_ms": max(latencies) * 1e3,
        "open_to_popup_ms_each": [round(x * 1e3, 1) for x in latencies],
        "idle_seconds": args.idle,
        "idle_cpu_percent_of_core": 100 * (cpu1 - cpu0) / idle_wall,
        "rss_mb": rss / 1024,
        "peak_rss_mb": hwm / 1024,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
