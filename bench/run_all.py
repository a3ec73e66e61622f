"""Run every benchmark and render the tables for docs/benchmarks.md.

    .venv/bin/python bench/run_all.py            # 3 full runs as root and 3 as nobody
    .venv/bin/python bench/run_all.py --render   # only re-render from the saved JSON

Each run's JSON stays in bench/results/<mode>/ (bench/runs.py); the Markdown (the median
and every run's figure) goes to stdout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", action="store_true", help="only render saved results")
    ap.add_argument("--runs", type=int, default=3, help="full runs per mode (default 3)")
    ap.add_argument("--mode", choices=("both", "root", "unprivileged"), default="both",
                    help="both (root only: root, then nobody), root, or unprivileged")
    args = ap.parse_args()
    modes = runs.modes_for(args.mode)
    if not args.render:
        runs.run_all(modes, args.runs)
        # Where an app comes from: its own table in docs/benchmarks.md.
        subprocess.run([sys.executable, str(Path(__file__).with_name("origin.py"))],
                       check=True)
    print("\n\n".join(runs.render_mode(m) for m in modes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
