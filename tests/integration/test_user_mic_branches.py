"""The service's per-account microphone switch (user_mic.py) on real folders, real sockets and
a real PulseAudio run by a test account: which runtime folders count, an account that cannot
be reached next to one that can, and what a restore says about state it cannot use."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.blocks import Outcome
from camguard.platform.linux.user_mic import EachUserMicSwitch, accounts_with_sound
from tests import realenv
from tests.conftest import need_root, need_tools
from tests.integration.test_service_mic import UserPulse
from tests.service_env import Accounts, Box

pytestmark = pytest.mark.real

NO_ACCOUNT = 2_000_000_123  # a uid no passwd entry names


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def runtime_dir(root: Path, name: str, uid: int, mode: int = 0o700) -> Path:
    d = root / name
    d.mkdir()
    (d / "pulse").mkdir()
    d.chmod(mode)
    os.chown(d, uid, uid)
    return d


def listen(path: Path, listeners: list[socket.socket]) -> Path:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()
    listeners.append(s)
    return path


def test_only_an_accounts_own_private_folder_with_a_socket_counts(
        tmp_path: Path, listeners: list[socket.socket]) -> None:
    need_root()
    assert list(accounts_with_sound(tmp_path / "missing")) == []
    root = tmp_path / "run-user"
    root.mkdir()
    good = listen(runtime_dir(root, str(NO_ACCOUNT), NO_ACCOUNT) / "pulse" / "native",
                  listeners)
    (root / "seat0").mkdir()  # not a uid
    runtime_dir(root, "4101", 4101)  # no sound server in it
    listen(runtime_dir(root, "0", 0) / "pulse" / "native", listeners)  # root's: never
    listen(runtime_dir(root, "4102", 4103) / "pulse" / "native", listeners)  # not its owner's
    listen(runtime_dir(root, "4104", 4104, 0o777) / "pulse" / "native", listeners)  # writable
    (runtime_dir(root, "4105", 4105) / "pulse" / "native").write_text("")  # not a socket
    assert list(accounts_with_sound(root)) == [(NO_ACCOUNT, good)]


def test_a_restore_of_data_it_cannot_use_switches_nothing(tmp_path: Path) -> None:
    switch = EachUserMicSwitch(tmp_path)  # no account has a sound server here
    for junk in ("not json", "[1, 2]", "{}"):
        r = switch.restore(junk)
        assert (r.outcome, r.message) == (Outcome.DONE, "nothing was muted"), junk
    r = switch.restore(json.dumps({"4106": None, "x\x1b[31m": None}))
    assert r.outcome is Outcome.FAILED
    assert r.message == ("uid 4106: its sound server is gone (nothing to switch back on); "
                         "uid x\\x1b[31m: its sound server is gone (nothing to switch back on)")


def test_an_account_that_cannot_be_reached_fails_the_mute(
        tmp_path: Path, listeners: list[socket.socket]) -> None:
    need_root()
    listen(runtime_dir(tmp_path, str(NO_ACCOUNT), NO_ACCOUNT) / "pulse" / "native", listeners)
    r, data = EachUserMicSwitch(tmp_path).mute_all()
    assert r.outcome is Outcome.FAILED
    assert r.message.startswith(f"microphones not muted: {NO_ACCOUNT}: uid {NO_ACCOUNT}: no "
                                "such account"), r.message
    assert json.loads(data) == {}


def test_one_account_muted_and_one_not_then_restored(
        sandbox: Box, accounts: Accounts, listeners: list[socket.socket]) -> None:
    need_tools(["pulseaudio", "pactl"])
    root = sandbox.root / "run-user"
    root.mkdir(mode=0o755)
    kid = accounts.user()
    pulse = UserPulse(sandbox, kid, root)
    listen(runtime_dir(root, str(NO_ACCOUNT), NO_ACCOUNT) / "pulse" / "native", listeners)
    switch = EachUserMicSwitch(root)

    r, data = switch.mute_all()
    assert r.outcome is Outcome.DONE, r.message
    assert r.message.startswith(f"{kid.name}: all microphones off (muted sinemic"), r.message
    assert (f"; NOT muted: {NO_ACCOUNT}: uid {NO_ACCOUNT}: no such account" in r.message)
    assert pulse.muted("sinemic")
    saved = json.loads(data)
    assert set(saved) == {str(kid.uid)}

    # State the child cannot use: it switches nothing back on, and says so.
    bad = switch.restore(json.dumps({str(kid.uid): "not a saved state"}))
    assert (bad.outcome, bad.message) == (
        Outcome.DONE, f"{kid.name}: microphones back on (none was muted by camguard)")
    assert pulse.muted("sinemic")

    # An account whose server is gone is reported next to the one restored.
    back = switch.restore(json.dumps({**saved, "4107": None}))
    assert back.outcome is Outcome.DONE, back.message
    assert back.message.endswith("; uid 4107: its sound server is gone (nothing to switch "
                                 "back on)"), back.message
    realenv.wait_until(lambda: not pulse.muted("sinemic"), 20, "sinemic back on")
