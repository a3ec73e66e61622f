"""Packaging tests: build the bundle, the .deb and the MSI, install the .deb on THIS machine,
use it, purge it. Slow (minutes) and system-changing (root, apt), so they are skipped unless
CAMGUARD_PACKAGING=1, which `make packaging-test` sets (CI runs it after `make test`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need_root, need_tools

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENABLED = os.environ.get("CAMGUARD_PACKAGING") == "1"
BUILD_TOOLS = ["make", "dpkg-deb", "objdump", "strip", "wixl", "wixl-heat", "msibuild",
               "msiinfo", "msiextract"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="builds and installs the package system-wide: run `make "
                                   "packaging-test` (CAMGUARD_PACKAGING=1)")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(skip)


def version() -> str:
    for line in (REPO / "camguard" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise AssertionError("no __version__ in camguard/__init__.py")


@dataclass(frozen=True)
class Artifacts:
    version: str
    bundle: Path  # dist/camguard (the onedir bundle)
    deb: Path
    msi: Path
    msi_payload: Path  # what build_msi.sh packed (the stand-in payload)


def make(*targets: str) -> None:
    proc = subprocess.run(["make", "--no-print-directory", *targets], cwd=REPO,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, (f"make {' '.join(targets)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    """`make bundle deb msi` (make rebuilds only what changed since the last build)."""
    need_root()
    need_tools(BUILD_TOOLS)
    make("bundle", "deb", "msi")
    v = version()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    art = Artifacts(v, REPO / "dist" / "camguard", REPO / "dist" / f"camguard_{v}_{arch}.deb",
                    REPO / "dist" / f"camguard-{v}-x64.msi", REPO / "build" / "msi" / "payload")
    for path in (art.bundle / "camguard", art.deb, art.msi, art.msi_payload):
        assert path.exists(), f"the build did not produce {path}"
    return art
