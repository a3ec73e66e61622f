"""Turning on camguard's system service from the parental page (platform/linux/
systemd_service.py), with the real systemctl: the unit is installed in a private mount
namespace (a tmpfs over /etc/systemd/system, root 0755: nothing of the machine's changes),
and an ordinary account uses the page there. This container does not run systemd, so what
is proven is the offer and the plain refusal with nothing enabled; the start itself needs
a booted systemd (not available here: /run/systemd/system is absent, PID 1 is not systemd)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from camguard.platform.linux.systemd_service import UNIT, SystemdService
from tests.conftest import need_tools
from tests.service_env import ROOT, SITE

pytestmark = pytest.mark.real

SCENE = ROOT / "tests" / "gui" / "service_button_scene.py"
# Run as root inside the namespace: install the unit, run the page as nobody, list what
# systemctl left in the folder.
INSIDE = """
import json, os, subprocess, sys
cfg = json.loads(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/etc/systemd/system"],
               check=True)
with open("/etc/systemd/system/camguard.service", "w") as f:
    f.write("[Unit]\\nDescription=camguard\\n[Service]\\nExecStart=/bin/true\\n"
            "[Install]\\nWantedBy=multi-user.target\\n")
page = subprocess.run(cfg["argv"], env=cfg["env"], cwd="/", capture_output=True, text=True,
                      timeout=240, check=False)
print(json.dumps({"rc": page.returncode, "stdout": page.stdout, "stderr": page.stderr,
                  "left": sorted(os.listdir("/etc/systemd/system"))}))
"""


def test_installed_means_the_unit_file_is_in_a_unit_folder(tmp_path: Path) -> None:
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    (full / UNIT).write_text("[Unit]\n")
    assert not SystemdService([str(empty)]).installed()
    assert SystemdService([str(empty), str(full)]).installed()
    (full / UNIT).unlink()
    (full / UNIT).mkdir()  # not a file
    assert not SystemdService([str(full)]).installed()


def test_an_account_is_offered_the_service_and_told_plainly_why_not(tmp_path: Path) -> None:
    need_tools(["unshare", "mount", "setpriv", "systemctl"])
    if os.geteuid() != 0:
        pytest.skip("needs root for the private mount namespace")
    # nobody's folder: reachable by it (pytest's tmp folders are not), removed at the end.
    folder = Path(tempfile.mkdtemp(prefix="camguard-svcpage-", dir="/tmp"))
    os.chmod(folder, 0o777)  # noqa: S103 - nobody writes its lock file and picture there
    try:
        scene(folder, tmp_path)
    finally:
        shutil.rmtree(folder)


def scene(folder: Path, tmp_path: Path) -> None:
    shot = folder / "parental-service.png"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8",
           "PYTHONPATH": f"{ROOT}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1",
           "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(folder)}
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
            str(SCENE), str(folder), str(shot)]
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                           sys.executable, "-I", "-c", INSIDE,
                           json.dumps({"argv": argv, "env": env})],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    outer = json.loads(proc.stdout)
    assert outer["rc"] == 0, outer["stderr"]
    page = json.loads(outer["stdout"].splitlines()[-1])
    assert page["offered"] and "installed but off" in page["state"]
    assert page["said"] == ("Not turned on: this computer does not run systemd, which starts "
                            "the service. Nothing was changed.")
    assert outer["left"] == [UNIT]  # nothing enabled: no .wants link was made
    assert not (Path("/etc/systemd/system") / UNIT).exists()  # the machine never saw it
    shots = ROOT / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path
    shutil.copy(shot, shots / "settings-parental-service.png")
