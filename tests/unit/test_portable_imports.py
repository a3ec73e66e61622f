"""The command line imports where ``grp``, ``pwd`` and ``fcntl`` do not exist (Windows):
they are hidden from a real interpreter, and only the Linux backend may need them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import camguard

ROOT = Path(camguard.__file__).resolve().parents[1]
HIDE = "import sys; sys.modules.update(grp=None, pwd=None, fcntl=None); "
# Only the Linux backend may import the Unix modules at module level.
UNIX_ONLY = ("camguard.platform.linux.",)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_import_camguard_cli_without_grp_pwd_fcntl() -> None:
    res = python(HIDE + "import camguard.cli")
    assert res.returncode == 0, res.stderr


def test_version_without_grp_pwd_fcntl() -> None:
    res = python(HIDE + "import runpy; sys.argv = ['camguard', '--version']; "
                 "runpy.run_module('camguard', run_name='__main__')")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"camguard {camguard.__version__}\n"


WALK = HIDE + """
import importlib, json, pkgutil, camguard
failed = []
for m in pkgutil.walk_packages(camguard.__path__, "camguard."):
    if m.name == "camguard.__main__":
        continue  # runs the command
    try:
        importlib.import_module(m.name)
    except ImportError as exc:
        failed.append([m.name, str(exc)])
print(json.dumps(failed))
"""


def test_only_the_linux_backend_needs_them() -> None:
    res = python(WALK)
    assert res.returncode == 0, res.stderr
    failed = json.loads(res.stdout)
    assert [f for f in failed if not f[0].startswith(UNIX_ONLY)] == []
