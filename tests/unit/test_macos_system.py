"""macOS capabilities that run anywhere POSIX: the killer against real child processes, the
LaunchAgent file, the peer identity decoded from constructed xucred bytes, the folders."""

from __future__ import annotations

import os
import plistlib
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import Outcome
from camguard.platform.macos import system
from tests.fakes import FakePeerSocket
from tests.realenv import wait_until

REPO = Path(__file__).resolve().parents[2]


class Victim:
    """A process that is not our child (psutil would reap our own children and hide the
    signal): a launcher starts it, prints its pid, then how it ended."""

    def __init__(self, code: str = "import signal; signal.pause()", exe: str = sys.executable
                 ) -> None:
        launcher = ("import subprocess, sys; p = subprocess.Popen([sys.argv[1], '-c', "
                    "sys.argv[2]]); print(p.pid, flush=True); print(p.wait(), flush=True)")
        self.launcher = subprocess.Popen([sys.executable, "-c", launcher, exe, code],
                                         stdout=subprocess.PIPE, text=True)
        assert self.launcher.stdout is not None
        self.pid = int(self.launcher.stdout.readline())

    def status(self) -> int:
        """The exit status (negative: the signal), once it has ended."""
        assert self.launcher.stdout is not None
        return int(self.launcher.stdout.readline())

    def alive(self) -> bool:
        return self.launcher.poll() is None

    def close(self) -> None:
        if psutil.pid_exists(self.pid):
            os.kill(self.pid, 9)
        self.launcher.communicate()


@pytest.fixture
def child() -> Iterator[Victim]:
    victim = Victim()
    yield victim
    victim.close()


def test_the_killer_ends_the_process_it_was_told(child: Victim) -> None:
    created = psutil.Process(child.pid).create_time()
    result = system.MacKiller().kill(child.pid, created)
    assert result.outcome is Outcome.DONE, result.message
    assert child.status() == -15  # SIGTERM was enough


def test_the_killer_escalates_to_sigkill(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = (f"import signal, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(ready)!r}).touch(); signal.pause()")
    victim = Victim(code)
    try:
        wait_until(ready.exists, 10, "the child to ignore SIGTERM")
        result = system.MacKiller(grace=0.2).kill(victim.pid)
        assert result.outcome is Outcome.DONE and victim.status() == -9
    finally:
        victim.close()


def test_the_killer_refuses_a_reused_pid_and_protected_ones(child: Victim) -> None:
    killer = system.MacKiller()
    stale = psutil.Process(child.pid).create_time() - 10
    refused = killer.kill(child.pid, stale)
    assert refused.outcome is Outcome.REFUSED and "different process" in refused.message
    assert child.alive() and psutil.pid_exists(child.pid)  # nothing was signalled
    assert killer.kill(1).outcome is Outcome.REFUSED
    assert killer.kill(os.getpid()).outcome is Outcome.REFUSED
    forced = killer.kill(child.pid, force=True)
    assert forced.outcome is Outcome.DONE and child.status() == -9
    assert killer.kill(child.pid).outcome is Outcome.NOT_FOUND


def test_a_hostile_process_name_is_shown_literally(tmp_path: Path) -> None:
    exe = tmp_path / "evil\x1b[2Jname"
    exe.symlink_to(sys.executable)
    victim = Victim(exe=str(exe))
    try:
        result = system.MacKiller().kill(victim.pid)
        assert result.outcome is Outcome.DONE and "\x1b" not in result.message
        assert "evil" in result.message
    finally:
        victim.close()


def test_the_launch_agent_is_written_private_and_removed(tmp_path: Path) -> None:
    entry = system.LaunchAgentAutostart({"HOME": str(tmp_path)},
                                        system_agent=tmp_path / "none.plist")
    assert not entry.is_enabled()
    entry.set(True)
    assert entry.is_enabled() and stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    doc = plistlib.loads(entry.path.read_bytes())
    assert doc["Label"] == "org.camguard.tray" and doc["ProgramArguments"][-1] == "tray"
    shipped = plistlib.loads((REPO / "packaging/macos/org.camguard.agent.plist").read_bytes())
    for key in ("ProgramArguments", "RunAtLoad", "KeepAlive", "LimitLoadToSessionType",
                "ThrottleInterval", "AssociatedBundleIdentifiers"):
        assert doc[key] == shipped[key], key  # the user's agent behaves as the .pkg's
    entry.set(False)
    assert not entry.path.exists() and not entry.is_enabled()


def test_the_pkg_agent_cannot_be_switched_off_by_a_user_file(tmp_path: Path) -> None:
    agent = tmp_path / "org.camguard.agent.plist"
    agent.write_bytes(b"")
    entry = system.LaunchAgentAutostart({"HOME": str(tmp_path)}, system_agent=agent)
    assert entry.is_enabled()
    with pytest.raises(OSError, match="starts camguard for every user"):
        entry.set(False)


def xucred(uid: int, groups: list[int], version: int = 0) -> bytes:
    padded = (groups + [0] * 16)[:16]
    return struct.pack("=IIh2x16I", version, uid, len(groups), *padded)


def test_peer_identity_from_local_peercred_and_local_peerpid() -> None:
    sock = FakePeerSocket(xucred(501, [20, 12, 61]), struct.pack("=i", 4321))
    got = system.MacSocketTransport().peer_credentials(sock)  # type: ignore[arg-type]
    assert got == (4321, 501, 20)


@pytest.mark.parametrize(("raw", "match"), [
    (xucred(0, [0])[:10], "gave 10 bytes"),
    (xucred(0, [0], version=7), "unknown xucred"),
    (xucred(0, []), "unknown xucred"),
    (struct.pack("=IIh2x16I", 0, 0, 99, *[0] * 16), "unknown xucred")])
def test_malformed_peer_credentials_are_an_error(raw: bytes, match: str) -> None:
    with pytest.raises(OSError, match=match):
        system.decode_xucred(raw)


def test_folders_sit_under_library_unless_moved(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    for var in ("CAMGUARD_DATA_DIR", "CAMGUARD_STATE_DIR", "CAMGUARD_CONFIG_DIR",
                "CAMGUARD_SOCKET"):
        monkeypatch.delenv(var, raising=False)
    p = system.MacSystemPaths()
    assert p.service_data_dir() == Path("/Library/Application Support/camguard")
    assert p.service_config_dir() == Path("/Library/Preferences/camguard")
    assert system.MacSocketTransport().default_address() == system.DEFAULT_SOCKET
    monkeypatch.setenv("CAMGUARD_STATE_DIR", str(tmp_path))
    assert p.service_state_dir() == tmp_path
    assert system.MacNotifications().available
