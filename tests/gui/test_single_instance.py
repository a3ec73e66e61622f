"""One tray per user: the local socket, a second instance's "show", a stale socket file."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.ui.single_instance import SingleInstance, instance_name


def test_a_second_instance_asks_the_first_to_show(qtbot: QtBot, tmp_path: Path) -> None:
    name = str(tmp_path / "tray.sock")
    first = SingleInstance(name)
    assert first.claim()
    try:
        assert stat.S_ISSOCK(os.stat(name).st_mode)
        second = SingleInstance(name)
        assert not second.claim()
        with qtbot.waitSignal(first.show_requested, timeout=5000):
            assert second.ask_running_to_show()
    finally:
        first.close()
    # Once the first is gone, the next one takes over.
    third = SingleInstance(name)
    assert third.claim()
    third.close()


def test_a_socket_left_by_a_crashed_instance_is_replaced(tmp_path: Path) -> None:
    name = str(tmp_path / "tray.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(name)  # a socket file nobody listens on: what a crash leaves behind
    dead.close()
    inst = SingleInstance(name)
    assert not inst.ask_running_to_show()
    assert inst.claim()
    assert SingleInstance(name).ask_running_to_show()
    inst.close()


def test_the_name_is_private_and_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                          ) -> None:
    monkeypatch.setenv("CAMGUARD_STATE_DIR", str(tmp_path / "state"))
    name = instance_name(uid=1234)
    assert name == str(tmp_path / "state" / "camguard-tray-1234.sock")
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    monkeypatch.delenv("CAMGUARD_STATE_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert instance_name(uid=1234) == str(tmp_path / "camguard-tray-1234.sock")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert instance_name(uid=1234) == "camguard-tray-1234.sock"
