"""Installing the privileged helper from the package (the first-run window's button) through
the real pkexec and a real, private polkitd (tests/polkit_env.py: tmpfs over the system
folders in a private mount namespace, so nothing is installed on this machine and the other
tests still find no helper here).

An account polkit refuses gets a clear sentence and nothing is written; an administrator's
account installs it (root:root, 0755 and 0644, byte for byte the package's files), polkit
then knows camguard's action and the installed helper answers through pkexec; root runs
the installer again over the installed files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from camguard.platform.linux import helper_install
from tests.conftest import need_tools
from tests.integration.test_helper_polkit import (
    HELPER_SOURCE,
    POLICY,
    POLKIT_ENV,
    POLKITD,
    as_user,
    readme_rule,
    real_pkexec,
)
from tests.service_env import ROOT, SYSTEM_PYTHON, Accounts, Box

pytestmark = pytest.mark.real

# What the first-run window calls, run as that account.
INSTALL = ("import json, sys\n"
           "from camguard.platform.linux.helper_runner import install_helper\n"
           "print(json.dumps(install_helper(pkexec=sys.argv[1])))\n")
# What is at the targets now, read as root inside the scene.
LOOK = ("import json, os, hashlib\n"
        "out = {}\n"
        "for p in ('/usr/libexec/camguard/camguard-helper',\n"
        "          '/usr/share/polkit-1/actions/org.camguard.helper.policy'):\n"
        "    try:\n"
        "        st = os.lstat(p)\n"
        "    except FileNotFoundError:\n"
        "        out[p] = None; continue\n"
        "    out[p] = [oct(st.st_mode), st.st_uid, st.st_gid,\n"
        "              hashlib.sha256(open(p, 'rb').read()).hexdigest()]\n"
        "print(json.dumps(out))\n")
# polkitd reads a new action file a moment after it appears.
KNOWS = ("import subprocess, sys, time\n"
         "end = time.monotonic() + 20\n"
         "while time.monotonic() < end:\n"
         "    if subprocess.run(['pkaction', '--action-id', sys.argv[1]],\n"
         "                      capture_output=True).returncode == 0:\n"
         "        sys.exit(0)\n"
         "    time.sleep(0.1)\n"
         "sys.exit(1)\n")


def pkexec_rule(group: str) -> str:
    """An administrator's password typed in the dialog, as polkit sees it: members of
    ``group`` may run pkexec's generic action, others are refused; plus the README's
    rule for the helper's own action."""
    return ("polkit.addRule(function (action, subject) {\n"
            '    if (action.id == "org.freedesktop.policykit.exec")\n'
            f"        return subject.isInGroup({json.dumps(group)}) ? polkit.Result.YES "
            ": polkit.Result.NO;\n"
            "});\n" + readme_rule(group))


def digest(path: object) -> str:
    with open(str(path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_an_admin_installs_the_helper_and_a_refusal_changes_nothing(
        sandbox: Box, accounts: Accounts) -> None:
    need_tools(["unshare", "mount", "dbus-daemon", "pkaction", POLKITD, "setpriv"])
    admins = accounts.group()
    admin, kid = accounts.user(groups=[admins]), accounts.user()
    pkexec = str(real_pkexec(sandbox.root))
    look = {"argv": [SYSTEM_PYTHON, "-I", "-c", LOOK], "env": {"PATH": "/usr/bin:/bin"}}
    calls = [
        {"argv": [*as_user(kid), SYSTEM_PYTHON, "-c", INSTALL, pkexec],
         "env": sandbox.user_env(kid)},
        look,
        {"argv": [*as_user(admin), SYSTEM_PYTHON, "-c", INSTALL, pkexec],
         "env": sandbox.user_env(admin)},
        look,
        {"argv": [SYSTEM_PYTHON, "-I", "-c", KNOWS, "org.camguard.helper.camera"],
         "env": {"PATH": "/usr/bin:/bin"}},
        {"argv": [*as_user(admin), pkexec, helper_install.HELPER_TARGET, "status"],
         "env": {"PATH": "/usr/bin:/bin"}},
        {"argv": [pkexec, SYSTEM_PYTHON, "-I", helper_install.__file__],
         "env": {"PATH": "/usr/bin:/bin"}},  # root: pkexec asks no one
        look,
    ]
    cfg = {"helper": None, "rule": pkexec_rule(admins),
           "log": str(sandbox.root / "polkit.log"), "calls": calls}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                           SYSTEM_PYTHON, "-I", str(POLKIT_ENV), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=300, check=False)
    log = (sandbox.root / "polkit.log").read_text(errors="replace")
    assert proc.returncode == 0, proc.stderr + log
    (refused, after_refusal, installed, after_install, known, status, as_root,
     after_root) = json.loads(proc.stdout)["answers"]

    ok, said = json.loads(refused["stdout"])
    assert not ok and "polkit said no" in said and "Nothing was changed" in said, refused
    assert json.loads(after_refusal["stdout"]) == {
        helper_install.HELPER_TARGET: None, helper_install.POLICY_TARGET: None}

    ok, said = json.loads(installed["stdout"])
    assert ok, installed
    assert "installed" in said
    want = {helper_install.HELPER_TARGET: ["0o100755", 0, 0, digest(HELPER_SOURCE)],
            helper_install.POLICY_TARGET: ["0o100644", 0, 0, digest(POLICY)]}
    assert json.loads(after_install["stdout"]) == want
    assert known["rc"] == 0, "polkitd never learned camguard's action"
    # The installed helper runs through pkexec under its own action, as root.
    assert status["rc"] == 0, status
    reply = json.loads(status["stdout"])
    assert (reply["ok"], reply["euid"], reply["caller_uid"]) == (True, 0, admin.uid)

    assert as_root["rc"] == helper_install.OK, as_root
    reply = json.loads(as_root["stdout"])
    assert reply["ok"] and {f["path"] for f in reply["installed"]} == set(want)
    assert json.loads(after_root["stdout"]) == want


def test_the_installer_refuses_to_run_without_root() -> None:
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           SYSTEM_PYTHON, "-I", helper_install.__file__],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == helper_install.NOT_ROOT
    assert json.loads(proc.stdout) == {"ok": False,
                                       "error": "the helper's installer must run as root"}


SCENE = ROOT / "tests" / "gui" / "first_run_install_scene.py"


def test_the_first_run_button_installs_it_or_says_why_not(
        sandbox: Box, accounts: Accounts, tmp_path: Path) -> None:
    """The first-run window as each account uses it: the refused account reads why and
    still sees the gap; the administrator's click installs the helper, and the window,
    looking again, no longer lists it."""
    need_tools(["unshare", "mount", "dbus-daemon", "pkaction", POLKITD, "setpriv"])
    admins = accounts.group()
    admin, kid = accounts.user(groups=[admins]), accounts.user()
    pkexec = str(real_pkexec(sandbox.root))
    calls, pictures = [], {}
    for who in (kid, admin):
        home = sandbox.root / "home" / who.name
        config = home / "config"
        config.mkdir(parents=True, exist_ok=True)
        os.chown(config, who.uid, who.gid)
        pictures[who.name] = config / "first-run.png"
        env = {**sandbox.user_env(who), "QT_QPA_PLATFORM": "offscreen",
               "XDG_RUNTIME_DIR": str(config)}
        calls.append({"argv": [*as_user(who), SYSTEM_PYTHON, str(SCENE), pkexec,
                               str(config), str(pictures[who.name])], "env": env})
    cfg = {"helper": None, "rule": pkexec_rule(admins),
           "log": str(sandbox.root / "polkit.log"), "calls": calls}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                           SYSTEM_PYTHON, "-I", str(POLKIT_ENV), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=300, check=False)
    log = (sandbox.root / "polkit.log").read_text(errors="replace")
    assert proc.returncode == 0, proc.stderr + log
    refused, installed = json.loads(proc.stdout)["answers"]
    assert refused["rc"] == 0 and installed["rc"] == 0, (refused, installed)
    refused, installed = json.loads(refused["stdout"]), json.loads(installed["stdout"])

    assert refused["before"] == ["helper"] and refused["offered"]
    assert "polkit said no" in refused["said"] and "Nothing was changed" in refused["said"]
    assert refused["after"] == ["helper"] and refused["button_visible"]

    assert installed["before"] == ["helper"] and installed["offered"]
    assert installed["said"].startswith("The helper is installed")
    assert installed["after"] == [] and not installed["button_visible"]
    shots = ROOT / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path
    shutil.copy(pictures[admin.name], shots / "first-run-helper-installed.png")
    shutil.copy(pictures[kid.name], tmp_path / "first-run-helper-refused.png")
