"""Render docs/coverage.md from a combined coverage data file (`make coverage`).

Branch coverage per package, subprocesses included (pyproject's [tool.coverage.run] patches
subprocess, so the root service, the CLI children and the keeper the tests start are
measured too). Prints the Markdown on stdout.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

PACKAGES = ("camguard/service", "camguard/platform/linux", "camguard/platform",
            "camguard/app", "camguard/core", "camguard/store", "camguard/cli", "camguard/ui",
            "camguard/selftest")
GOAL = {"camguard/service": 90.0, "camguard/platform/linux": 90.0}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)],
                       check=True)
        data = json.loads(out.read_text())
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for name, f in data["files"].items():
        s = f["summary"]
        for pkg in PACKAGES:
            if name.startswith(pkg + "/"):
                t = totals[pkg]
                t[0] += s["num_branches"]
                t[1] += s["covered_branches"]
                t[2] += s["num_statements"]
                t[3] += s["covered_lines"]
    s = data["totals"]
    lines = [
        "# Test coverage",
        "",
        "Reproduce: `make coverage` (as root, about twice as long as `make test`): the whole "
        "suite under coverage.py with `patch = subprocess`, so the Python subprocesses the "
        "tests start (the root service, CLI commands, the keeper, the tray) are measured "
        "too, then `scripts/coverage_doc.py` writes this page.",
        "",
        "Processes of the test accounts (the system python: the venv is under /root) are "
        "measured too: `make coverage` installs `scripts/coverage_hook.pth` into the system "
        "python's site folder (it starts coverage.py when `COVERAGE_PROCESS_CONFIG` is set "
        "and the data folder is writable) and makes `.coverage-data` world-writable (1777); "
        "the tests pass that variable to the accounts' processes, and the service to its "
        "per-account microphone child (`user_mic.py`).",
        "",
        "Not measured: the privileged helper run through pkexec (which clears the "
        "environment; `python3 -I`), and processes ended with SIGKILL.",
        "",
        f"Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "",
        "| package | branches | covered | branch coverage | goal | line coverage |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for pkg in PACKAGES:
        nb, cb, ns, cl = totals[pkg]
        if not nb and not ns:
            continue
        goal = GOAL.get(pkg)
        pct = 100.0 * cb / nb if nb else 100.0
        verdict = "" if goal is None else (f"{goal:.0f}% " + ("met" if pct >= goal else
                                                             "NOT met"))
        lines.append(f"| `{pkg}` | {nb} | {cb} | {pct:.1f}% | {verdict} | "
                     f"{100.0 * cl / ns if ns else 100.0:.1f}% |")
    lines.append(f"| **all of camguard** | {s['num_branches']} | {s['covered_branches']} | "
                 f"{100.0 * s['covered_branches'] / max(1, s['num_branches']):.1f}% |  | "
                 f"{s['percent_covered']:.1f}% (lines and branches) |")
    lines.append("")
    lines.append("`camguard/platform` includes `camguard/platform/linux`.")
    lines += ["", "## `camguard/platform/linux` by file", "",
              "Most uncovered branches first; files with every branch covered are left out.",
              "", "| file | branches | covered | branch coverage | missed branches |",
              "|---|---:|---:|---:|---:|"]
    files = [(f["summary"]["num_branches"] - f["summary"]["covered_branches"], name,
              f["summary"]) for name, f in data["files"].items()
             if name.startswith("camguard/platform/linux/")]
    for missed, name, fs in sorted(files, key=lambda r: (-r[0], r[1])):
        if missed:
            nb, cb = fs["num_branches"], fs["covered_branches"]
            lines.append(f"| `{Path(name).name}` | {nb} | {cb} | {100.0 * cb / nb:.1f}% | "
                         f"{missed} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
