"""Tray benchmarks for issue 3: event -> popup latency, idle CPU and memory of `camguard tray`.

    .venv/bin/python bench/bench_tray.py [--rounds 20] [--idle 60] [--background 1000]

Runs the real tray (`python -m camguard -vv tray`: -vv because the bench reads the popup's
button positions from the debug log) on a private Xvfb with a real tray host (trayer) and
notification daemon (dunst), with ``--background`` extra processes holding 10 fds each, as
whichever account runs the script. A child process opens a stand-in camera node and prints
CLOCK_MONOTONIC just before its open(). Two ends are stamped with CLOCK_MONOTONIC on arrival:

- popup mapped: the X server's MapNotify for the popup's window, as seen by an X client
  (``xev -root -event substructure``, x11-utils, which flushes each event) that selected
  SubstructureNotify on the root window before the round; the window is checked to be the
  popup by its title (``xprop``, after the timing);
- popup shown: the tray's "alert shown" log line, logged right after the popup's show().

Each popup is answered with a real click on "Allow once". Then the tray is left idle and its
CPU time (utime+stime from /proc) and RSS are read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_detect import background, make_node, pct, proc_cpu_rss
from camguard.ui.alert import WINDOW_TITLE
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
                tail = "\n".join(line for _, line in self.lines[after:][-30:])
                raise TimeoutError(f"{pattern} not logged; the tray's log since:\n{tail}")
            found = hit()
            assert found is not None
            return found


class MapWatch:
    """Every MapNotify of a top-level window on the X server, stamped on arrival."""

    # xev prints "MapNotify event, serial N, synthetic NO, window <root>," and then
    # "    event <root>, window <the mapped window>, override NO" on the next line.
    RX = re.compile(r"^\s+event 0x[0-9a-f]+, window (0x[0-9a-f]+), override")

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(["xev", "-root", "-event", "substructure"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.maps: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self._lines = 0
        threading.Thread(target=self._read, daemon=True).start()

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Started before the tray: once it reports the tray's own windows, it listens."""
        with self.cond:
            if not self.cond.wait_for(lambda: self._lines > 0, timeout):
                raise TimeoutError("xev reported nothing")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        header: float | None = None
        for raw in self.proc.stdout:
            t = time.monotonic()
            with self.cond:
                self._lines += 1
                if raw.startswith("MapNotify event"):
                    header = t  # the event's arrival; its window is on the next line
                elif header is not None:
                    found = self.RX.match(raw)
                    if found:
                        self.maps.append((header, found.group(1)))
                    header = None
                self.cond.notify_all()

    def wait(self, is_popup: Callable[[str], bool], after: int, timeout: float = 30.0
             ) -> float:
        with self.cond:
            def hit() -> float | None:
                for t, window in self.maps[after:]:
                    if is_popup(window):
                        return t
                return None
            if not self.cond.wait_for(lambda: hit() is not None, timeout):
                raise TimeoutError(f"no MapNotify for the popup: {self.maps[after:]}")
            found = hit()
            assert found is not None
            return found

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def popup_check(env: dict[str, str]) -> Callable[[str], bool]:
    """Whether an X window is camguard's popup (by its title; answers are cached)."""
    known: dict[str, bool] = {}

    def check(window: str) -> bool:
        if window not in known:
            out = subprocess.run(["xprop", "-id", window, "WM_NAME"], env=env,
                                 capture_output=True, text=True, check=False).stdout
            known[window] = f'"{WINDOW_TITLE}"' in out
        return known[window]

    return check


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--background", type=int, default=1000)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results-tray.json")
    args = ap.parse_args()
    with background(args.background) as fds:
        results = run(args)
    results.update({"background": {"processes": args.background, "their_fds": fds},
                    "euid": os.geteuid(), "tray_argv": TRAY_ARGS})
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


TRAY_ARGS = ["-vv", "tray"]


def run(args: argparse.Namespace) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="camguard-bench-tray-"))
    xs = realenv.start_x(root)
    devdir = root / "dev"
    devdir.mkdir()
    make_node(devdir / "video0")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(xs.env)
    # The tray's own monitor, not a camguard service this machine may run.
    env["CAMGUARD_SOCKET"] = str(root / "no-service.sock")
    for what in ("config", "data", "state"):
        (root / what).mkdir()
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(root / what)
    (root / "config" / "settings.json").write_text(
        json.dumps({"detection": {"watch_sound_server": False}}))
    maps = MapWatch(env)
    is_popup = popup_check(env)
    tray = subprocess.Popen([sys.executable, "-m", "camguard", *TRAY_ARGS, "--camera-glob",
                             f"{devdir}/video*", "--mic-glob", f"{devdir}/pcmC*D*c"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    watch = LogWatch(tray.stdout)
    latencies, mapped = [], []
    try:
        watch.wait("tray ready", 60)
        maps.wait_listening()
        for _ in range(args.rounds):
            # A new process each round: "Allow once" covers a process until it exits.
            opener = subprocess.Popen([sys.executable, "-c", OPENER, str(devdir / "video0")],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert opener.stdin is not None and opener.stdout is not None
            mark = len(watch.lines)
            with maps.cond:
                map_mark = len(maps.maps)
            opener.stdin.write("open\n")
            opener.stdin.flush()
            t0 = float(opener.stdout.readline())
            shown, _ = watch.wait(rf"alert shown: pid={opener.pid}\b", 30, mark)
            latencies.append(shown - t0)
            mapped.append(maps.wait(is_popup, map_mark) - t0)
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
        maps.stop()
        xs.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {
        "rounds": args.rounds,
        "open_to_popup_mapped_p50_ms": pct(mapped, 50) * 1e3,
        "open_to_popup_mapped_p99_ms": pct(mapped, 99) * 1e3,
        "open_to_popup_mapped_ms_each": [round(x * 1e3, 1) for x in mapped],
        "open_to_popup_p50_ms": pct(latencies, 50) * 1e3,
        "open_to_popup_p99_ms": pct(latencies, 99) * 1e3,
        "open_to_popup_max_ms": max(latencies) * 1e3,
        "open_to_popup_ms_each": [round(x * 1e3, 1) for x in latencies],
        "idle_seconds": args.idle,
        "idle_cpu_percent_of_core": 100 * (cpu1 - cpu0) / idle_wall,
        "rss_mb": rss / 1024,
        "peak_rss_mb": hwm / 1024,
    }


if __name__ == "__main__":
    raise SystemExit(main())
