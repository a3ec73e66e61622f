"""The tray's Kill and Block as an unprivileged account with the helper installed: the
tray's own kill switch (camguard.app.tray.kill_switch, behind ui.adapters.Actions) goes
through the real pkexec, a real private polkitd with the README's rule, and the helper at
its installed path, against another account's processes holding stand-in nodes at the
helper's own paths (/dev/videoN) in a private /dev. tests/polkit_env.py keeps all of it in
a private mount namespace; the suites run without the helper in test_unprivileged_suites.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import HOLDER, need_tools
from tests.integration.test_helper_polkit import (
    HELPER_SOURCE,
    POLICY,
    POLKIT_ENV,
    POLKITD,
    as_user,
    readme_rule,
    real_pkexec,
)
from tests.service_env import SYSTEM_PYTHON, Accounts, Box

pytestmark = pytest.mark.real

# What the tray does when the user clicks Kill on one holder, then Block camera, then turns
# the camera back on: the same objects, built the same way (app/tray.py's kill_switch).
TRAY = """
import json, os, stat, sys
from camguard.app.tray import kill_switch
from camguard.core.models import DeviceKind
from camguard.core.settings import DetectionSettings
from camguard.platform.linux.helper_runner import PkexecHelper
from camguard.platform.process import ProcessDescriber
from camguard.ui.adapters import Actions

settings = DetectionSettings(camera_globs=("/dev/video*",), mic_globs=("/dev/snd/pcmC*D*c",),
                             watch_sound_server=False)
killer, blocks = kill_switch(settings)
actions = Actions(killer, blocks)
mode = lambda: stat.S_IMODE(os.stat("/dev/video0").st_mode)
out = {"euid": os.geteuid(), "helper_available": PkexecHelper.available()}
victim = ProcessDescriber().describe(int(sys.argv[1]))
kill = actions.kill(victim)
out["kill"] = [kill.outcome.value, kill.message]
block = actions.block_device(DeviceKind.CAMERA)
out["block"] = [block.outcome.value, block.message]
out["mode_blocked"] = mode()
out["blocked"] = sorted(k.value for k in actions.blocked())
unblock = actions.unblock_device(DeviceKind.CAMERA)
out["unblock"] = [unblock.outcome.value, unblock.message]
out["mode_after"] = mode()
print(json.dumps(out))
"""


def test_tray_kill_and_block_go_through_the_installed_helper(sandbox: Box,
                                                            accounts: Accounts) -> None:
    need_tools(["unshare", "mount", "dbus-daemon", "pkaction", POLKITD, "setpriv"])
    admins = accounts.group()
    admin, kid = accounts.user(groups=[admins]), accounts.user()
    pkexec = real_pkexec(sandbox.root)
    kid_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    holder = {"argv": [*as_user(kid), SYSTEM_PYTHON, "-c", HOLDER, "/dev/video0"],
              "env": kid_env, "ready": "open\n"}
    home = sandbox.root / "home" / admin.name
    calls = [{"argv": [*as_user(admin), SYSTEM_PYTHON, "-c", TRAY, "{bg0}"],
              "env": {**sandbox.user_env(admin), "PATH": f"{pkexec.parent}:/usr/bin:/bin",
                      "HOME": str(home)}}]
    for sub in ("", "config", "data", "state"):
        (home / sub).mkdir(mode=0o755, exist_ok=True)
        subprocess.run(["chown", f"{admin.uid}:{admin.gid}", str(home / sub)], check=True)
    cfg = {"policy": str(POLICY), "helper": str(HELPER_SOURCE), "rule": readme_rule(admins),
           "log": str(sandbox.root / "polkit.log"), "calls": calls, "dev": ["video0"],
           "background": [holder, holder]}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                           SYSTEM_PYTHON, "-I", str(POLKIT_ENV), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=600, check=False)
    log = (sandbox.root / "polkit.log").read_text(errors="replace")
    assert proc.returncode == 0, proc.stderr + log
    scene = json.loads(proc.stdout)
    [tray] = scene["answers"]
    assert tray["rc"] == 0, tray
    got = json.loads(tray["stdout"].splitlines()[-1])
    assert got["euid"] == admin.uid and got["helper_available"], got
    # Kill: another account's process, so through pkexec and the helper; it is gone.
    assert got["kill"][0] == "done" and "through the privileged helper" in got["kill"][1], got
    # Block: the helper took the node's permissions away and ended the other holder.
    assert got["block"][0] == "done", got
    assert got["mode_blocked"] == 0 and got["blocked"] == ["camera"], got
    assert scene["background"][0] is not None and scene["background"][1] is not None, scene
    # Turned back on: the node's mode is restored exactly.
    assert got["unblock"][0] == "done" and got["mode_after"] == 0o666, got
