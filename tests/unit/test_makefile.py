"""Each packaging target installs its own build dependencies (issue 17: `make deb` failed on
a fresh machine because only `make packaging-test` installed libwayland-egl1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["bundle", "deb", "msi"])
def test_packaging_targets_install_their_build_deps_first(target: str) -> None:
    need(shutil.which("make") is not None, "make")
    plan = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True).stdout.splitlines()
    deps = [i for i, line in enumerate(plan) if "scripts/system-deps.sh packaging" in line]
    build = [i for i, line in enumerate(plan) if "pyinstaller" in line]
    assert deps and build and deps[0] < build[0], plan
