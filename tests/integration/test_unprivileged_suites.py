"""The kill, block and GUI suites a second time, as an unprivileged test account.

Every other run of these files is root's, so the tray's unprivileged Kill (this account's
processes only) and Block (no helper: end this account's holders and guard the camera from
the tray) would never run. Here a fresh account runs them with the system python (the
venv's python lives under /root), camguard and the venv's packages on PYTHONPATH. Root-only
tests skip in that inner run, and only those: any other skip, a failure or an error fails
this test, and so does a run that passed too little to have meant anything.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.service_env import ROOT, SYSTEM_PYTHON, Accounts, Box, setpriv

pytestmark = pytest.mark.real

SUITES = ("tests/integration/test_kill.py", "tests/integration/test_kill_branches.py",
          "tests/integration/test_block.py", "tests/integration/test_user_block.py",
          "tests/gui/test_alert_popup.py", "tests/gui/test_tray.py", "tests/gui/test_wiring.py")
# The tests that exercise the unprivileged paths: each must have passed in the inner run.
MUST_PASS = ("test_kill_ends_the_real_process_off_the_gui_thread",
             "test_block_without_the_helper_ends_this_accounts_holder")
ROOT_ONLY = "needs root (mknod, other users, device modes)"


def summary(out: str) -> dict[str, int]:
    """pytest's last line, as counts: {"passed": 40, "skipped": 3, ...}."""
    last = out.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


def test_kill_block_and_gui_suites_as_an_unprivileged_account(sandbox: Box,
                                                             accounts: Accounts) -> None:
    who = accounts.user()
    home = sandbox.root / "home" / who.name
    home.mkdir(mode=0o700)
    os.chown(home, who.uid, who.gid)
    env = {**sandbox.user_env(who), "TMPDIR": str(home), "QT_QPA_PLATFORM": "offscreen",
           "CAMGUARD_REQUIRE_REAL": "0",  # this run's skips are judged below, one by one
           # No system service: the CLI acts itself, as on a machine without the service.
           "CAMGUARD_SOCKET": str(home / "no-service.sock")}
    proc = subprocess.run(
        [*setpriv(who), SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-rA", "--basetemp", str(home / "t"), *SUITES],
        capture_output=True, text=True, timeout=900, cwd=ROOT, env=env, check=False)
    out = proc.stdout + proc.stderr
    counts = summary(proc.stdout)
    assert proc.returncode == 0, out[-6000:]
    assert not counts.get("failed") and not counts.get("error") and not counts.get("errors"), out
    assert counts.get("passed", 0) >= 40, out[-3000:]  # 43 when written
    skips = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", proc.stdout, re.MULTILINE)
    assert set(skips) <= {ROOT_ONLY}, skips
    passed = set(re.findall(r"^PASSED (\S+)", proc.stdout, re.MULTILINE))
    for name in MUST_PASS:
        assert any(f"::{name}" in p for p in passed), (name, sorted(passed))
    # And it really ran as that account, not as root: its files are that account's.
    assert (home / "t").stat().st_uid == who.uid
