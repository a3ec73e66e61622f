"""Several full runs of the detection and tray benchmarks, as root and unprivileged.

    .venv/bin/python bench/run_all.py [--runs 3] [--mode both|root|unprivileged]

Every run's JSON is kept (bench/results/<mode>/run-<n>-detect.json, -tray.json) and every
run's figure is printed next to the median of all of them: nothing is picked. The
unprivileged mode runs the same scripts as ``nobody`` (setpriv; the system python with this
checkout and the venv's packages on PYTHONPATH, since the venv's python lives under /root):
no fanotify, and root's processes are ones camguard cannot read, as on a desktop.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534

Pick = Callable[[dict[str, Any], dict[str, Any]], Any]


def run_one(mode: str, n: int) -> None:
    """One full run (detect, then tray) in ``mode``; the JSON lands in bench/results."""
    out = RESULTS / mode
    out.mkdir(parents=True, exist_ok=True)
    if mode == "root" or os.geteuid() != 0:  # not root: this account is the unprivileged one
        for script in ("detect", "tray"):
            subprocess.run([sys.executable, str(HERE / f"bench_{script}.py"), "--out",
                            str(out / f"run-{n}-{script}.json")], check=True)
        return
    work = Path(tempfile.mkdtemp(prefix="camguard-bench-nobody-"))
    try:
        os.chown(work, NOBODY, NOBODY)  # nobody's HOME and results, private to it
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work),
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": f"{REPO}:{site.getsitepackages()[0]}"}
        for script in ("detect", "tray"):
            subprocess.run(["setpriv", "--pdeathsig", "KILL", f"--reuid={NOBODY}",
                            f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON,
                            str(HERE / f"bench_{script}.py"), "--out",
                            str(work / f"{script}.json")], env=env, cwd=REPO, check=True)
            shutil.copy(work / f"{script}.json", out / f"run-{n}-{script}.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(modes: list[str], runs: int) -> None:
    """``runs`` full runs per mode, interleaved (root 1, nobody 1, root 2, ...) so a change
    in the machine's load hits both modes alike; earlier results of these modes go."""
    for mode in modes:
        shutil.rmtree(RESULTS / mode, ignore_errors=True)
    for n in range(1, runs + 1):
        for mode in modes:
            before = os.getloadavg()
            run_one(mode, n)
            # The machine's load around the run (other work on it shows in every figure).
            (RESULTS / mode / f"run-{n}-load.json").write_text(json.dumps(
                {"loadavg_1_5_15_before": before, "loadavg_1_5_15_after": os.getloadavg()}))


def load(mode: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    runs = []
    n = 1
    while all((RESULTS / mode / f"run-{n}-{s}.json").exists() for s in ("detect", "tray")):
        runs.append((json.loads((RESULTS / mode / f"run-{n}-detect.json").read_text()),
                     json.loads((RESULTS / mode / f"run-{n}-tray.json").read_text())))
        n += 1
    return runs


def _mic(server: str, key: str) -> Pick:
    def pick(d: dict[str, Any], _t: dict[str, Any]) -> Any:
        mic = d[f"mic_{server}"]
        return mic if isinstance(mic, str) else mic[key]
    return pick


def _ratio(tool: str) -> Pick:
    def pick(d: dict[str, Any], _t: dict[str, Any]) -> Any:
        return d["scan"].get(f"ratio_vs_{tool}", d["scan"].get(f"{tool}_ms"))
    return pick


# (measure, unit, how to read it from one run, target, whether the target is met)
MEASURES: list[tuple[str, str, Pick, str, Callable[[float], bool] | None]] = [
    ("fds open on the machine during the detection run (background included)", "fds",
     lambda d, t: d["background"]["system_fds"], "", None),
    ("camera: open() -> started event, p50", "ms",
     lambda d, t: d["camera"]["start_p50_ms"], "<= 60 ms", lambda v: v <= 60),
    ("camera: open() -> started event, p99", "ms",
     lambda d, t: d["camera"]["start_p99_ms"], "<= 200 ms", lambda v: v <= 200),
    ("camera: close() -> stopped event, p50", "ms",
     lambda d, t: d["camera"]["stop_p50_ms"], "", None),
    ("microphone (pulseaudio): parecord start -> started event, p50", "ms",
     _mic("pulseaudio", "start_p50_ms"), "<= 25 ms", lambda v: v <= 25),
    ("microphone (pulseaudio): parecord start -> started event, p99", "ms",
     _mic("pulseaudio", "start_p99_ms"), "<= 100 ms", lambda v: v <= 100),
    ("microphone (pipewire): parecord start -> started event, p50", "ms",
     _mic("pipewire", "start_p50_ms"), "<= 25 ms", lambda v: v <= 25),
    ("microphone (pipewire): parecord start -> started event, p99", "ms",
     _mic("pipewire", "start_p99_ms"), "<= 100 ms", lambda v: v <= 100),
    ("full attribution look (ProcfsSource.snapshot: /proc scan + naming), median of 15",
     "ms", lambda d, t: d["scan"]["camguard_snapshot_ms"], "", None),
    ("fd scan alone (scan_holders), median of 15", "ms",
     lambda d, t: d["scan"]["camguard_scan_ms"], "", None),
    ("`fuser` on the same device set, median of 15", "ms",
     lambda d, t: d["scan"].get("fuser_ms"), "", None),
    ("full look / `fuser`", "x", _ratio("fuser"), "<= 0.5x", lambda v: v <= 0.5),
    ("`lsof` on the same device set, median of 15", "ms",
     lambda d, t: d["scan"].get("lsof_ms"), "", None),
    ("full look / `lsof`", "x", _ratio("lsof"), "<= 0.15x", lambda v: v <= 0.15),
    ("`camguard watch` idle 60 s: CPU of one core", "%",
     lambda d, t: d["idle_watch"]["cpu_percent_of_core"], "<= 0.2 %", lambda v: v <= 0.2),
    ("`camguard watch`: peak RSS", "MB", lambda d, t: d["idle_watch"]["peak_rss_mb"],
     "<= 45 MB", lambda v: v <= 45),
    ("tray: open() -> popup mapped (X server MapNotify), p50", "ms",
     lambda d, t: t["open_to_popup_mapped_p50_ms"], "<= 100 ms", lambda v: v <= 100),
    ("tray: open() -> popup mapped (X server MapNotify), p99", "ms",
     lambda d, t: t["open_to_popup_mapped_p99_ms"], "<= 100 ms", lambda v: v <= 100),
    ("tray: open() -> \"alert shown\" log line, p50", "ms",
     lambda d, t: t["open_to_popup_p50_ms"], "", None),
    ("tray idle 60 s: CPU of one core", "%", lambda d, t: t["idle_cpu_percent_of_core"],
     "<= 0.5 %", lambda v: v <= 0.5),
    ("tray: RSS after the alerts", "MB", lambda d, t: t["rss_mb"], "<= 110 MB",
     lambda v: v <= 110),
    ("tray: peak RSS", "MB", lambda d, t: t["peak_rss_mb"], "<= 110 MB", lambda v: v <= 110),
]


def _fmt(v: Any, unit: str) -> str:
    if not isinstance(v, (int, float)):
        return str(v)
    if unit == "fds":
        return f"{v:.0f}"
    return f"{v:.2f}x" if unit == "x" else f"{v:.1f}"


def render_mode(mode: str) -> str:
    runs = load(mode)
    if not runs:
        return f"({mode}: no runs saved)"
    d0, t0 = runs[0]
    bg = d0["background"]
    who = "root (fanotify)" if mode == "root" else "nobody (inotify + /proc, no fanotify)"
    lines = [
        f"**{who}**, {len(runs)} full runs; {d0['cpus']} cores, kernel {d0['kernel']}; "
        f"background: {bg['processes']} extra processes holding {bg['their_fds']} fds; "
        "the tray with "
        f"`{' '.join(t0['tray_argv'])}` and {t0['background']['processes']} background "
        "processes.",
        "",
        f"| measure | median of {len(runs)} | each run | target | |",
        "|---|---|---|---|---|",
    ]
    loads = [RESULTS / mode / f"run-{n}-load.json" for n in range(1, len(runs) + 1)]
    if all(p.exists() for p in loads):
        avg = [json.loads(p.read_text()) for p in loads]
        lines.insert(1, "Load average (1 min) before and after each run: " + ", ".join(
            f"{a['loadavg_1_5_15_before'][0]:.1f}-{a['loadavg_1_5_15_after'][0]:.1f}"
            for a in avg) + ".")
        lines.insert(1, "")
    for what, unit, pick, target, ok in MEASURES:
        values = [pick(d, t) for d, t in runs]
        numbers = [v for v in values if isinstance(v, (int, float))]
        each = ", ".join(_fmt(v, unit) for v in values)
        if len(numbers) != len(values) or not numbers:
            lines.append(f"| {what} | {each} | | {target} | |")
            continue
        med = statistics.median(numbers)
        verdict = "" if ok is None else "met" if ok(med) else "NOT met"
        shown = _fmt(med, unit) + ("" if unit == "x" else f" {unit}")
        # Ratios: the median of each run's own ratio (not a ratio of medians).
        lines.append(f"| {what} | {shown} | {each} | {target} | {verdict} |")
    return "\n".join(lines)


def modes_for(choice: str) -> list[str]:
    if choice == "both":
        return ["root", "unprivileged"] if os.geteuid() == 0 else ["unprivileged"]
    if choice == "root" and os.geteuid() != 0:
        raise SystemExit("the root mode needs root")
    return [choice]
