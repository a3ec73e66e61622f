"""The helper's authorization through the real pkexec and a real, private polkitd, with the
README's polkit rule: a member of the admin group runs it as root; any other account is
refused by polkit, and camguard's runner says so. tests/polkit_env.py keeps the scene off
the machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from camguard.platform.linux import helper, helper_runner
from tests.conftest import need, need_tools
from tests.service_env import ROOT, SYSTEM_PYTHON, Account, Accounts, Box

pytestmark = pytest.mark.real

POLKIT_ENV = ROOT / "tests" / "polkit_env.py"
HELPER_SOURCE = ROOT / "camguard" / "platform" / "linux" / "helper.py"
POLICY = ROOT / "resources" / "org.camguard.helper.policy"
POLKITD = "/usr/lib/polkit-1/polkitd"
# camguard's own runner, as the tray or CLI of that account calls it.
RUNNER = ("import json, sys\n"
          "from camguard.platform.linux.helper_runner import PkexecHelper\n"
          "print(json.dumps(PkexecHelper(pkexec=sys.argv[1]).call('status')))\n")


def readme_rule(group: str) -> str:
    """The polkit rule the README tells admins to install, for ``group``."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```js\n", text.index("50-camguard.rules")) + len("```js\n")
    rule = text[start:text.index("```", start)]
    assert 'isInGroup("camguard-admins")' in rule
    return rule.replace('"camguard-admins"', json.dumps(group))


def real_pkexec(folder: Path) -> Path:
    """The installed pkexec, or (where the package is not installed) the binary of Debian's
    ``pkexec`` package named by CAMGUARD_PKEXEC_BINARY, made setuid root in ``folder``."""
    installed = shutil.which("pkexec")
    if installed:
        return Path(installed)
    source = Path(os.environ.get("CAMGUARD_PKEXEC_BINARY", "/nonexistent"))
    need(source.is_file(), "pkexec (the Debian package 'pkexec', or CAMGUARD_PKEXEC_BINARY "
                           "naming its /usr/bin/pkexec)")
    target = folder / "pkexec"
    shutil.copy(source, target)
    os.chown(target, 0, 0)
    target.chmod(0o4755)  # what dpkg installs: pkexec must be setuid root to work at all
    return target


def as_user(who: Account) -> list[str]:
    # --init-groups: the account's groups from /etc/group, as a login would give them.
    return ["setpriv", f"--reuid={who.uid}", f"--regid={who.gid}", "--init-groups"]


def test_only_admins_get_the_helper_through_pkexec(sandbox: Box, accounts: Accounts) -> None:
    need_tools(["unshare", "mount", "dbus-daemon", "pkaction", POLKITD, "setpriv"])
    admins = accounts.group()
    admin, kid = accounts.user(groups=[admins]), accounts.user()
    pkexec = real_pkexec(sandbox.root)
    calls = []
    for who in (admin, kid):
        calls.append({"argv": [*as_user(who), str(pkexec), helper_runner.HELPER_PATH, "status"],
                      "env": {"PATH": "/usr/bin:/bin"}})
        calls.append({"argv": [*as_user(who), SYSTEM_PYTHON, "-c", RUNNER, str(pkexec)],
                      "env": sandbox.user_env(who)})
    cfg = {"policy": str(POLICY), "helper": str(HELPER_SOURCE), "rule": readme_rule(admins),
           "log": str(sandbox.root / "polkit.log"), "calls": calls}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                           SYSTEM_PYTHON, "-I", str(POLKIT_ENV), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=300, check=False)
    log = (sandbox.root / "polkit.log").read_text(errors="replace")
    assert proc.returncode == 0, proc.stderr + log
    direct, runner, kid_direct, kid_runner = json.loads(proc.stdout)["answers"]

    assert direct["rc"] == 0, direct
    reply = json.loads(direct["stdout"])
    assert (reply["ok"], reply["euid"], reply["caller_uid"]) == (True, 0, admin.uid)
    code, reply = json.loads(runner["stdout"])
    assert (code, reply["ok"], reply["caller_uid"]) == (helper.OK, True, admin.uid), runner

    # polkit said no: pkexec's 127, and the helper never ran (it would print its JSON).
    assert kid_direct["rc"] == helper_runner.PKEXEC_NOT_AUTHORIZED, kid_direct
    assert kid_direct["stdout"] == "" and "Not authorized" in kid_direct["stderr"]
    code, reply = json.loads(kid_runner["stdout"])
    assert (code, reply) == (helper.REFUSED, {"ok": False,
                                              "error": "not authorized (polkit said no)"})
