"""Where an app comes from (issue 15): what a lookup costs, and whether it slows detection.

    .venv/bin/python bench/origin.py [--rounds 100] [--packages 2500]

1. ``dpkg -S PATH`` (one process per lookup, what camguard does not do) against camguard's
   own reading of dpkg's database: building the index once (this machine's database, and a
   synthetic one of ``--packages`` packages made of copies of this machine's lists), a first
   lookup of a file (owner + md5 of the file against dpkg's md5sum), a cached lookup, and
   the event path's ``cached()`` (no file read);
2. open -> "started" event p50 with and without the origin on the event path, side by side
   (rounds interleaved): a monitor whose sinks are the event log's (with and without an
   origin resolver; the resolver's cache is filled, as the history's background thread fills
   it in the tray) and a time stamp, the opener a Python a Debian package installed.

Prints a Markdown table (for docs/benchmarks.md) and writes bench/results-origin.json.
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detect import OPENER, Stamp, make_node, pct

from camguard.core.models import EventType
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.dpkg import DpkgIndex
from camguard.platform.linux.origin import LinuxOriginResolver
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.eventlog import EventLog

HERE = Path(__file__).resolve().parent
ADMIN = Path("/var/lib/dpkg")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def packaged_python() -> str:
    for name in ("python3", "python3.13", "python3.12", "python3.11"):
        path = shutil.which(name, path="/usr/bin")
        if path and subprocess.run(["dpkg-query", "-S", os.path.realpath(path)],
                                   capture_output=True, check=False).returncode == 0:
            return os.path.realpath(path)
    raise SystemExit("no Python here was installed by a Debian package")


def synthetic_admin(where: Path, packages: int) -> Path:
    """A dpkg admin dir of ``packages`` packages: this machine's lists, copied under new
    names with their paths moved (so each path has one owner, as on a real system)."""
    admin = where / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "status").touch()
    lists = sorted(ADMIN.glob("info/*.list"))
    for n in range(packages):
        src = lists[n % len(lists)]
        copy, stem = n // len(lists), src.name[:-5]
        text = src.read_bytes()
        if copy:
            text = b"".join(b"/srv/copy%d%s\n" % (copy, line)
                            for line in text.splitlines() if line)
        (admin / "info" / f"{stem}-{copy}.list").write_bytes(text)
    return admin


def bench_lookups(python: str, packages: int, tmp: Path) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    out["dpkg_S_p50_ms"] = statistics.median(timed(lambda: subprocess.run(
        ["dpkg", "-S", python], capture_output=True, check=True), 20)) * 1e3
    local = DpkgIndex(ADMIN)
    out["machine_packages"] = (local.refresh(), local.packages)[1]
    out["machine_paths"] = len(local._owners)
    out["machine_build_p50_ms"] = statistics.median(timed(
        lambda: DpkgIndex(ADMIN).refresh(), 5)) * 1e3
    admin = synthetic_admin(tmp, packages)
    big = DpkgIndex(admin)
    big.refresh()
    out["synthetic_packages"], out["synthetic_paths"] = big.packages, len(big._owners)
    out["synthetic_build_p50_ms"] = statistics.median(timed(
        lambda: DpkgIndex(admin).refresh(), 5)) * 1e3
    out["synthetic_owner_p50_us"] = statistics.median(timed(
        lambda: big.owner("/srv/copy1" + python), 2000)) * 1e6

    def first_lookup() -> object:
        r = LinuxOriginResolver()
        r.dpkg = local  # the index is built at start; the file was never looked at
        return r.origin(None, python)

    out["first_lookup_p50_ms"] = statistics.median(timed(first_lookup, 20)) * 1e3
    out["file_mb"] = round(os.path.getsize(python) / 1e6, 1)
    warm = LinuxOriginResolver()
    warm.origin(os.getpid(), sys.executable)
    warm.origin(None, python)
    out["cached_lookup_p50_us"] = statistics.median(timed(
        lambda: warm.origin(None, python), 5000)) * 1e6
    out["event_path_cached_p50_us"] = statistics.median(timed(
        lambda: warm.cached(os.getpid(), sys.executable), 5000)) * 1e6
    return out


def bench_event_path(python: str, rounds: int, devdir: Path, block: int = 10
                     ) -> dict[str, float]:
    node = devdir / "video0"
    make_node(node)
    resolver = LinuxOriginResolver()
    resolver.warm()
    logs = {"without": EventLog(SystemClock(), [], host="h", user="u"),
            "with": EventLog(SystemClock(), [], host="h", user="u", origins=resolver)}
    results: dict[str, list[float]] = {"without": [], "with": []}
    opener = subprocess.Popen([python, "-c", OPENER, str(node)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert opener.stdin is not None and opener.stdout is not None
    resolver.origin(opener.pid, python)  # as the history's background thread does
    try:
        # Blocks of ``block`` rounds, alternating, so both see the same machine load.
        for b in range(2 * max(1, rounds // block)):
            name = ("without", "with")[b % 2]
            src = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/pcmC*D*c"],
                               describer=ProcessDescriber())
            monitor = Monitor([src], SystemClock(), settle=0.002)
            stamp = Stamp()
            monitor.add_sink(logs[name].monitor_sink)
            monitor.add_sink(stamp)
            monitor.start()
            try:
                for _ in range(block):
                    opener.stdin.write("open\n")
                    opener.stdin.flush()
                    t0 = float(opener.stdout.readline())
                    results[name].append(stamp.wait(EventType.STARTED, opener.pid) - t0)
                    opener.stdin.write("close\n")
                    opener.stdin.flush()
                    opener.stdout.readline()
                    stamp.wait(EventType.STOPPED, opener.pid)
            finally:
                monitor.stop()
    finally:
        opener.kill()
        opener.wait()
    return {f"{k}_p50_ms": pct(v, 50) * 1e3 for k, v in results.items()} | \
        {f"{k}_p99_ms": pct(v, 99) * 1e3 for k, v in results.items()} | \
        {"rounds": len(results["with"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--packages", type=int, default=2500)
    ap.add_argument("--out", type=Path, default=HERE / "results-origin.json")
    args = ap.parse_args()
    python = packaged_python()
    with tempfile.TemporaryDirectory() as tmp:
        lookups = bench_lookups(python, args.packages, Path(tmp))
        devdir = Path(tmp) / "dev"
        devdir.mkdir()
        events = bench_event_path(python, args.rounds, devdir)
    doc = {"cpus": os.cpu_count(), "kernel": os.uname().release, "python_binary": python,
           "lookups": lookups, "open_to_event": events}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    return 0


def render(d: dict[str, object]) -> str:
    lk = d["lookups"]
    ev = d["open_to_event"]
    assert isinstance(lk, dict) and isinstance(ev, dict)
    return "\n".join([
        "| measure | measured |",
        "|---|---|",
        f"| `dpkg -S {d['python_binary']}` (one process per lookup) | "
        f"{lk['dpkg_S_p50_ms']:.1f} ms |",
        f"| index build, this machine ({lk['machine_packages']} packages, "
        f"{lk['machine_paths']:,} paths; once, then on dpkg changes) | "
        f"{lk['machine_build_p50_ms']:.1f} ms |",
        f"| index build, synthetic ({lk['synthetic_packages']} packages, "
        f"{lk['synthetic_paths']:,} paths) | {lk['synthetic_build_p50_ms']:.1f} ms |",
        f"| owner lookup in the synthetic index | {lk['synthetic_owner_p50_us']:.1f} µs |",
        f"| first lookup of a file (owner + md5 of its {lk['file_mb']} MB) | "
        f"{lk['first_lookup_p50_ms']:.1f} ms |",
        f"| cached lookup (stat + cache) | {lk['cached_lookup_p50_us']:.1f} µs |",
        f"| `cached()` on the event path (sandbox reads + stat) | "
        f"{lk['event_path_cached_p50_us']:.1f} µs |",
        f"| open → started event p50 / p99, without origin ({ev['rounds']} rounds) | "
        f"{ev['without_p50_ms']:.1f} / {ev['without_p99_ms']:.1f} ms |",
        f"| open → started event p50 / p99, with origin (interleaved) | "
        f"{ev['with_p50_ms']:.1f} / {ev['with_p99_ms']:.1f} ms |",
    ])


if __name__ == "__main__":
    sys.exit(main())
