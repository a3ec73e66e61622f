"""The root service reads each logged-in account's Flatpak location grants (issue 11).

A test account runs its own session bus at ``<runtime root>/UID/bus`` (as /run/user/UID/bus)
and the real ``xdg-permission-store`` on it; the grant is written with the store's own
``SetPermission`` (gdbus, as the account), as the location portal writes it. The real root
service's status names the account's grant in its coverage (``portal:<account>``), read by
a child run as the account; what such a child may say is checked in the same place.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from camguard.core.coverage import CoverageState
from camguard.platform.linux.user_portal import coverage_from_child
from tests import realenv
from tests.conftest import need, need_tools
from tests.service_env import Accounts, Box, Service, setpriv

pytestmark = pytest.mark.real

PERMISSION_STORE = "/usr/libexec/xdg-permission-store"
STORE = "org.freedesktop.impl.portal.PermissionStore"
STORE_PATH = "/org/freedesktop/impl/portal/PermissionStore"


def test_the_service_lists_an_accounts_flatpak_location_grants(
        sandbox: Box, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    need_tools(["dbus-daemon", "gdbus"])
    need(os.path.exists(PERMISSION_STORE), "apt-get install xdg-desktop-portal")
    root = sandbox.root / "run-user"
    root.mkdir(mode=0o755)
    monkeypatch.setenv("CAMGUARD_USER_RUNTIME_ROOT", str(root))
    kid = accounts.user()
    runtime = root / str(kid.uid)
    home = sandbox.root / "home" / kid.name
    for folder, mode in ((runtime, 0o700), (home, 0o755)):
        folder.mkdir(mode=mode)
        os.chown(folder, kid.uid, kid.gid)
    bus = f"unix:path={runtime}/bus"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
           "XDG_DATA_HOME": str(home / "data"), "DBUS_SESSION_BUS_ADDRESS": bus}

    def spawn(cmd: list[str]) -> None:
        sandbox.procs.append(subprocess.Popen(  # type: ignore[arg-type]
            [*setpriv(kid), *cmd], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/"))

    spawn(["dbus-daemon", "--session", f"--address={bus}", "--nofork"])
    realenv.wait_until((runtime / "bus").exists, 15, "the account's session bus")
    spawn([PERMISSION_STORE])

    def grant() -> bool:
        used = str(int(time.monotonic() * 1e6) - 3_000_000)
        return subprocess.run(
            [*setpriv(kid), "gdbus", "call", "--session", "--dest", STORE, "--object-path",
             STORE_PATH, "--method", f"{STORE}.SetPermission", "location", "true",
             "location", "org.example.Maps", f"['EXACT', '{used}']"],
            env=env, capture_output=True, timeout=20, check=False).returncode == 0

    realenv.wait_until(grant, 20, "the grant written by the account's permission store")
    svc = Service(sandbox).start()
    source = f"portal:{kid.name}"
    (cov,) = [c for c in svc.client.status()["coverage"] if c["source"] == source]
    assert cov["sensor"] == "location" and cov["state"] == "watching", cov
    (maps,) = cov["apps"]
    assert maps["app_id"] == "org.example.Maps" and maps["access"] == "EXACT"
    assert maps["allowed"] is True and maps["last_used"].endswith("Z"), maps


def test_what_an_accounts_child_says_is_taken_only_when_well_formed() -> None:
    assert coverage_from_child(["nonsense"], "portal:x").state is CoverageState.BLIND
    assert coverage_from_child({"state": "owned"}, "portal:x").state is CoverageState.BLIND
    cov = coverage_from_child({"state": "watching", "reason": "r" * 10_000, "apps": [
        {"app_id": "org.ok", "access": "CITY", "last_used": 1.8e9, "note": 7},
        {"app_id": 3}, "junk", {"app_id": "org.<b>x</b>\x1b", "last_used": True},
        {"app_id": "org.future", "last_used": 1e300}]}, "portal:x")
    assert cov.state is CoverageState.WATCHING and len(cov.reason) < 1000
    assert [a.app_id for a in cov.apps] == ["org.ok", "org.<b>x</b>\\x1b", "org.future"]
    assert [a.last_used for a in cov.apps] == [1.8e9, None, None]
    assert cov.apps[0].note == ""
