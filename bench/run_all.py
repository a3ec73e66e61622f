"""Run every benchmark and render the tables for docs/benchmarks.md.

    .venv/bin/python bench/run_all.py            # both benchmarks, then the tables
    .venv/bin/python bench/run_all.py --render   # only re-render from the saved JSON

The JSON results stay in bench/results-*.json; the Markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> None:
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)


def row(what: str, value: float, target: str, ok: bool | None, unit: str = "ms") -> str:
    verdict = "" if ok is None else "met" if ok else "NOT met"
    return f"| {what} | {value:.1f} {unit} | {target} | {verdict} |"


def render() -> str:
    d = json.loads((HERE / "results-detect.json").read_text())
    t = json.loads((HERE / "results-tray.json").read_text())
    bg = d["background"]
    cam, scan, idle = d["camera"], d["scan"], d["idle_watch"]
    lines = [
        f"Machine: {d['cpus']} cores, kernel {d['kernel']}; background load: "
        f"{bg['processes']} extra processes holding {bg['their_fds']} fds "
        f"({bg['system_fds']} fds on the machine).",
        "",
        "| measure | measured | target | |",
        "|---|---|---|---|",
        row("camera: open() -> started event, p50", cam["start_p50_ms"], "<= 60 ms",
            cam["start_p50_ms"] <= 60),
        row("camera: open() -> started event, p99", cam["start_p99_ms"], "<= 200 ms",
            cam["start_p99_ms"] <= 200),
        row("camera: close() -> stopped event, p50", cam["stop_p50_ms"], "", None),
    ]
    for server in ("pulseaudio", "pipewire"):
        mic = d[f"mic_{server}"]
        if isinstance(mic, str):
            lines.append(f"| microphone ({server}) | {mic} | | |")
            continue
        lines.append(row(f"microphone ({server}): parecord start -> started event, p50",
                         mic["start_p50_ms"], "<= 25 ms", mic["start_p50_ms"] <= 25))
        lines.append(row(f"microphone ({server}): parecord start -> started event, p99",
                         mic["start_p99_ms"], "<= 100 ms", mic["start_p99_ms"] <= 100))
    lines += [
        row("one attribution scan (camguard, full /proc scan + naming)",
            scan["camguard_snapshot_ms"], "", None),
    ]
    for tool, target in (("fuser", 0.5), ("lsof", 0.15)):
        value = scan.get(f"{tool}_ms")
        if isinstance(value, float):
            ratio = scan[f"ratio_vs_{tool}"]
            lines.append(row(f"`{tool}` on the same device set", value, "", None))
            lines.append(f"| camguard / `{tool}` | {ratio:.2f}x | <= {target}x | "
                         f"{'met' if ratio <= target else 'NOT met'} |")
    lines += [
        row(f"`camguard watch` idle {idle['seconds']:.0f} s: CPU of one core",
            idle["cpu_percent_of_core"], "<= 0.2 %", idle["cpu_percent_of_core"] <= 0.2, "%"),
        row("`camguard watch`: peak RSS", idle["peak_rss_mb"], "<= 45 MB",
            idle["peak_rss_mb"] <= 45, "MB"),
        row("tray: open() -> popup shown, p50", t["open_to_popup_p50_ms"], "<= 100 ms",
            t["open_to_popup_p50_ms"] <= 100),
        row("tray: open() -> popup shown, p99", t["open_to_popup_p99_ms"], "<= 100 ms",
            t["open_to_popup_p99_ms"] <= 100),
        row(f"tray idle {t['idle_seconds']:.0f} s: CPU of one core",
            t["idle_cpu_percent_of_core"], "<= 0.5 %", t["idle_cpu_percent_of_core"] <= 0.5,
            "%"),
        row("tray: RSS after the alerts", t["rss_mb"], "<= 110 MB", t["rss_mb"] <= 110, "MB"),
        row("tray: peak RSS", t["peak_rss_mb"], "<= 110 MB", t["peak_rss_mb"] <= 110, "MB"),
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", action="store_true", help="only render saved results")
    args = ap.parse_args()
    if not args.render:
        run("bench_detect.py")
        run("bench_tray.py")
        run("origin.py")  # its own table: docs/benchmarks.md, "Where an app comes from"
    print(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
