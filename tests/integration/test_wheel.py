"""The wheel a user gets from `pip install camguard` carries the icons and declares Qt.

Issue 17: a pip-installed camguard showed coloured discs (no resources in the wheel) and
`camguard` alone failed because PySide6 was an optional extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    [built] = out.glob("camguard-*.whl")
    return built


def test_the_wheel_ships_every_icon_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for svg in (ROOT / "resources" / "icons").glob("*.svg"):
        assert f"camguard/resources/icons/{svg.name}" in names


def test_the_wheel_requires_qt(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        [meta] = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line for line in z.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    # A normal dependency, not behind `extra == "gui"`.
    assert any(r.startswith("requires-dist: pyside6-essentials") and "extra" not in r
               for r in (line.lower() for line in requires)), requires


def test_an_installed_wheel_finds_its_icons(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("CAMGUARD_RESOURCES", None)
    probe = ("import camguard, camguard.ui.assets as a; "
             "print(camguard.__file__); print(a.icon_path('camera'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert out[0].startswith(str(target))  # the installed copy, not this checkout
    assert out[1] == str(target / "camguard" / "resources" / "icons" / "camera.svg")
