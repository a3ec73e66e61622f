"""Detection benchmarks for issue 2, measured side by side in one run.

    .venv/bin/python bench/bench_detect.py [--background 1000] [--rounds 100] [--idle 60]

With ``--background`` extra processes holding ~10 fds each (13 with stdio), it measures:

1. camera: a child's open() of a device node -> the monitor's "started" event naming it
   (p50/p99), and close() -> "stopped"; both clocks are CLOCK_MONOTONIC (system-wide);
2. microphone: ``parecord`` start -> "started" event, against real PulseAudio and PipeWire;
3. one attribution scan vs ``fuser`` and ``lsof`` over the same device set;
4. ``camguard watch`` left idle: CPU share of one core and peak RSS.

Prints a Markdown table (paste it into docs/benchmarks.md) and writes JSON next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camguard.core.models import EventType, MonitorEvent, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.fdscan import scan_holders
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber

CLK_TCK = os.sysconf("SC_CLK_TCK")

OPENER = r"""
import os, sys, time
path = sys.argv[1]
for line in sys.stdin:
    if line.startswith("open"):
        t = time.monotonic(); fd = os.open(path, os.O_RDONLY)
    else:
        t = time.monotonic(); os.close(fd)
    sys.stdout.write(f"{t!r}\n"); sys.stdout.flush()
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@contextmanager
def background(n: int, fds_each: int = 10) -> Iterator[int]:
    """``n`` sleeping processes, each holding ``fds_each`` extra descriptors."""
    files = [os.open("/dev/null", os.O_RDONLY) for _ in range(fds_each // 2)]
    tmp = tempfile.NamedTemporaryFile()  # noqa: SIM115 (held for the whole run)
    files += [os.open(tmp.name, os.O_RDONLY) for _ in range(fds_each - len(files))]
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(["sleep", "3600"], pass_fds=files,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        yield sum(len(os.listdir(f"/proc/{p.pid}/fd")) for p in procs)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        for fd in files:
            os.close(fd)
        tmp.close()


class Stamp:
    """A monitor sink that records the monotonic time of each usage event."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: list[tuple[float, UsageEvent]] = []

    def __call__(self, ev: MonitorEvent) -> None:
        t = time.monotonic()
        if isinstance(ev, UsageEvent):
            with self.cond:
                self.events.append((t, ev))
                self.cond.notify_all()

    def wait(self, kind: EventType, pid: int, timeout: float = 10.0) -> float:
        def find() -> float | None:
            for t, ev in self.events:
                p = ev.usage.process
                if ev.type is kind and p is not None and p.pid == pid:
                    return t
            return None

        with self.cond:
            if not self.cond.wait_for(lambda: find() is not None, timeout):
                raise TimeoutError(f"no {kind.value} event for pid {pid}")
            t = find()
            assert t is not None
            self.events.clear()
            return t


def make_node(path: Path) -> None:
    if os.geteuid() == 0:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))
    else:
        path.write_bytes(b"")


def bench_camera(devdir: Path, rounds: int) -> dict[str, float]:
    node = devdir / "video0"
    src = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/pcmC*D*c"],
                       describer=ProcessDescriber())
    monitor = Monitor([src], SystemClock(), settle=0.002)
    stamp = Stamp()
    monitor.add_sink(stamp)
    monitor.start()
    opener = subprocess.Popen([sys.executable, "-c", OPENER, str(node)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert opener.stdin is not None and opener.stdout is not None
    start_lat, stop_lat = [], []
    try:
        for _ in range(rounds):
            opener.stdin.write("open\n")
            opener.stdin.flush()
            t0 = float(opener.stdout.readline())
            start_lat.append(stamp.wait(EventType.STARTED, opener.pid) - t0)
            opener.stdin.write("close\n")
            opener.stdin.flush()
            t1 = float(opener.stdout.readline())
            stop_lat.append(stamp.wait(EventType.STOPPED, opener.pid) - t1)
    finally:
        opener.kill()
        opener.wait()
        monitor.stop()
    return {"start_p50_ms": pct(start_lat, 50) * 1e3, "start_p99_ms": pct(start_lat, 99) * 1e3,
            "stop_p50_ms": pct(stop_lat, 50) * 1e3, "stop_p99_ms": pct(stop_lat, 99) * 1e3,
            "rounds": rounds}


def bench_mic(kind: str, rounds: int) -> dict[str, float] | str:
    try:
        from camguard.platform.linux.pulse import PulseSource
        from tests import realenv
    except ImportError as exc:
        return f"not measured: {exc}"
    tools = realenv.PA_TOOLS if kind == "pulseaudio" else realenv.PW_TOOLS
    if realenv.missing(tools):
        return f"not measured: missing {realenv.missing(tools)}"
    root = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    srv = realenv.start_pulseaudio(root) if kind == "pulseaudio" else realenv.start_pipewire(root)
    old = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = srv.server
    try:
        src = PulseSource(describer=ProcessDescriber(), server=srv.server)
        monitor = Monitor([src], SystemClock(), settle=0.002)
        stamp = Stamp()
        monitor.add_sink(stamp)
        monitor.start()
        lat = []
        try:
            for _ in range(rounds):
                t0 = time.monotonic()
                rec = subprocess.Popen(["parecord", "--device=sinemic", "/dev/null"],
                                       env={**os.environ, **srv.env})
                lat.append(stamp.wait(EventType.STARTED, rec.pid) - t0)
                rec.terminate()
                rec.wait()
                stamp.wait(EventType.STOPPED, rec.pid)
        finally:
            monitor.stop()
        return {"start_p50_ms": pct(lat, 50) * 1e3, "start_p99_ms": pct(lat, 99) * 1e3,
                "rounds": rounds}
    finally:
        if old is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = old
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e3


def bench_scan(devdir: Path, repeat: int) -> dict[str, float | str]:
    paths = [str(devdir / "video0"), str(devdir / "pcmC0D0c")]
    holder = subprocess.Popen(["sleep", "3600"], stdin=open(paths[0]))  # noqa: SIM115
    src = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/pcmC*D*c"],
                       describer=ProcessDescriber())
    out: dict[str, float | str] = {}
    try:
        out["camguard_scan_ms"] = timed(lambda: scan_holders(paths), repeat)
        out["camguard_snapshot_ms"] = timed(src.snapshot, repeat)
        for tool, argv in (("fuser", ["fuser", *paths]),
                           ("lsof", ["lsof", "-n", "-P", "-w", *paths])):
            if shutil.which(tool) is None:
                out[f"{tool}_ms"] = "not installed"
                continue
            out[f"{tool}_ms"] = timed(lambda a=argv: subprocess.run(  # type: ignore[misc]
                a, capture_output=True, check=False), repeat)
    finally:
        holder.kill()
        holder.wait()
    for tool in ("fuser", "lsof"):
        value = out.get(f"{tool}_ms")
        if isinstance(value, float):
            out[f"ratio_vs_{tool}"] = float(out["camguard_snapshot_ms"]) / value
    return out


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def bench_idle(devdir: Path, seconds: float) -> dict[str, float]:
    """``camguard watch`` as a user leaves it running: cameras watched and a live sound
    server subscribed (a real PulseAudio), nothing happening."""
    # Its own monitor, not a camguard service this machine may run.
    env = {**os.environ, "CAMGUARD_CONFIG_DIR": str(devdir / "cfg"),
           "CAMGUARD_DATA_DIR": str(devdir / "data"), "CAMGUARD_STATE_DIR": str(devdir / "state"),
           "CAMGUARD_SOCKET": str(devdir / "no-service.sock")}
    srv = None
    try:
        from tests import realenv

        if not realenv.missing(realenv.PA_TOOLS):
            srv = realenv.start_pulseaudio(devdir / "pa")
            env.update(srv.env)
    except ImportError:
        pass
    try:
        return _idle(env, devdir, seconds)
    finally:
        if srv is not None:
            srv.stop()


def _idle(env: dict[str, str], devdir: Path, seconds: float) -> dict[str, float]:
    watch = subprocess.Popen([sys.executable, "-m", "camguard", "watch", "--json",
                              "--camera-glob", f"{devdir}/video*", "--mic-glob",
                              f"{devdir}/pcmC*D*c"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(3)  # start-up is not idle; measure after it
        cpu0, _ = proc_cpu_rss(watch.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1, hwm = proc_cpu_rss(watch.pid)
        wall = time.monotonic() - t0
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(20)
    return {"cpu_percent_of_core": 100 * (cpu1 - cpu0) / wall, "peak_rss_mb": hwm / 1024,
            "seconds": seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--background", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--mic-rounds", type=int, default=40)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results-detect.json")
    args = ap.parse_args()
    devdir = Path(tempfile.mkdtemp(prefix="camguard-bench-"))
    for name in ("video0", "pcmC0D0c"):
        make_node(devdir / name)
    results: dict[str, object] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    with background(args.background) as fds:
        results["background"] = {"processes": args.background, "their_fds": fds,
                                 "system_fds": sum(1 for _ in Path("/proc").glob("[0-9]*/fd/*"))}
        results["scan"] = bench_scan(devdir, 15)
        results["camera"] = bench_camera(devdir, args.rounds)
        results["mic_pulseaudio"] = bench_mic("pulseaudio", args.mic_rounds)
        results["mic_pipewire"] = bench_mic("pipewire", args.mic_rounds)
        results["idle_watch"] = bench_idle(devdir, args.idle)
    shutil.rmtree(devdir, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
