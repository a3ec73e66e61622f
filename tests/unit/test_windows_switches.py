"""Windows decisions that write or admit: the ConsentStore/policy switches (FakeWinreg fed by a
recorded export), the HKCU Run autostart, and who may use the service's named pipe (recorded
SIDs and groups, tests/data/windows/pipe_callers.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camguard.core.models import DeviceKind
from camguard.platform.windows.autostart import RUN_KEY, RunKeyAutostart, tray_command
from camguard.platform.windows.pipe_authz import PipeCaller, Role, authorize
from camguard.platform.windows.registry import Registry
from camguard.platform.windows.switches import (
    CONSENT_KEY,
    POLICY_KEY,
    Change,
    ConsentSwitch,
    plan_restore,
)
from tests.fakes import FakeWinreg

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
WEBCAM = CONSENT_KEY.format(cap="webcam")


def hkcu_registry() -> Registry:
    return Registry(FakeWinreg.from_reg_file(DATA / "consent_hkcu.reg"))


def test_deny_the_camera_and_restore_exactly() -> None:
    reg = hkcu_registry()
    switch = ConsentSwitch(reg)
    change = switch.deny(DeviceKind.CAMERA)
    assert change is not None and change.old == ("Allow", 1)
    assert reg.get(WEBCAM, "Value") == ("Deny", 1)
    assert switch.deny(DeviceKind.CAMERA) is None  # already denied: nothing of ours to undo
    again = Change.from_text(change.to_text())
    assert again == change
    assert switch.restore(again).endswith("restored")
    assert reg.get(WEBCAM, "Value") == ("Allow", 1)


def test_restore_leaves_a_value_someone_else_changed() -> None:
    reg = hkcu_registry()
    switch = ConsentSwitch(reg)
    change = switch.deny(DeviceKind.MICROPHONE)
    assert change is not None
    reg.set(change.key, "Value", "Prompt", 1)  # the user chose otherwise meanwhile
    assert "left as it is" in switch.restore(change)
    assert reg.get(change.key, "Value") == ("Prompt", 1)


def test_policy_switch_is_removed_when_it_was_absent() -> None:
    reg = hkcu_registry()
    switch = ConsentSwitch(reg)
    change = switch.deny(DeviceKind.CAMERA, policy=True)
    assert change is not None and change.old is None
    assert reg.get(POLICY_KEY, "LetAppsAccessCamera") == (2, 4)
    switch.restore(change)
    assert reg.get(POLICY_KEY, "LetAppsAccessCamera") is None


def test_plan_restore_keeps_when_the_value_vanished() -> None:
    change = Change(WEBCAM, "Value", ("Deny", 1), ("Allow", 1))
    assert plan_restore(change, None)[0] == "keep"
    assert plan_restore(change, ("Deny", 1)) == ("set", ("Allow", 1))


def test_run_key_autostart() -> None:
    reg = Registry(FakeWinreg())
    entry = RunKeyAutostart(reg, '"C:\\Program Files\\camguard\\camguard-tray.exe"')
    assert entry.is_enabled() is False
    entry.set(True)
    assert entry.is_enabled() is True
    assert reg.get(RUN_KEY, "camguard") == ('"C:\\Program Files\\camguard\\camguard-tray.exe"', 1)
    entry.set(False)
    entry.set(False)  # switching off what is off is not a failure
    assert entry.is_enabled() is False


@pytest.mark.parametrize(("exe", "want"), [
    ("C:\\Program Files\\camguard\\camguard.exe",
     '"C:\\Program Files\\camguard\\camguard-tray.exe"'),
    ("C:\\Python311\\python.exe", '"C:\\Python311\\pythonw.exe" -m camguard tray'),
])
def test_tray_command_is_quoted(exe: str, want: str) -> None:
    assert tray_command(exe) == want


def test_pipe_callers_recorded() -> None:
    doc = json.loads((DATA / "pipe_callers.json").read_text(encoding="utf-8"))
    for c in doc["callers"]:
        caller = PipeCaller(c["pid"], c["user"], tuple((s, a) for s, a in c["groups"]))
        role, why = authorize(caller, doc["admin_group"])
        assert role is Role(c["role"]), (c["why"], why)


def test_a_configured_admin_group_replaces_administrators() -> None:
    parents = "S-1-5-21-3623811015-3361044348-30300820-1105"
    caller = PipeCaller(10, "S-1-5-21-3623811015-3361044348-30300820-1001",
                        (("S-1-5-32-544", 15), (parents, 7), ("S-1-5-4", 7)))
    assert authorize(caller, parents)[0] is Role.ADMIN
    assert authorize(caller)[0] is Role.ADMIN
    plain = PipeCaller(10, caller.user_sid, (("S-1-5-32-544", 15), ("S-1-5-4", 7)))
    assert authorize(plain, parents)[0] is Role.USER
    assert authorize(plain, "not a sid")[0] is Role.REFUSED
