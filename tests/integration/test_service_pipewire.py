"""The root service watches each logged-in account's own PipeWire (issue 11).

A real PipeWire and WirePlumber run *as a test account*, their socket at
``<runtime root>/UID/pipewire-0`` as /run/user/UID would hold it, and the account's own
GStreamer "camera" and consumer (tests/pwvideo.py's recipe) are its clients. The service,
started before the session exists, finds it through inotify, names the consumer (the
account's process, by its kernel-given pid) with the chain in status and history, gives a
coverage entry for that account's PipeWire, and forgets the session when it ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from camguard.core.settings import DEFAULT_SOUND_SERVER_EXES
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.linux.user_pipewire import OwnDescriber, accounts_with_pipewire
from camguard.platform.process import ProcessDescriber
from tests import pwvideo, realenv
from tests.conftest import make_standin, need, need_tools
from tests.service_env import Account, Accounts, Box, Service, camguard_as, setpriv

pytestmark = pytest.mark.real


class UserPipeWire:
    """dbus-daemon, pipewire and wireplumber as ``who``; runtime folder ``root/UID``."""

    def __init__(self, b: Box, who: Account, runtime_root: Path) -> None:
        self.who = who
        self.runtime = runtime_root / str(who.uid)
        self.runtime.mkdir(mode=0o700)
        home = b.root / "home" / who.name
        home.mkdir(mode=0o755, exist_ok=True)
        for folder in (self.runtime, home):
            os.chown(folder, who.uid, who.gid)
        self.socket = str(self.runtime / "pipewire-0")
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                    "XDG_RUNTIME_DIR": str(self.runtime),
                    "XDG_STATE_HOME": str(home / "state"),
                    "XDG_CONFIG_HOME": str(home / "config"),
                    "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus",
                    "PIPEWIRE_REMOTE": self.socket}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = b.root / f"pw-{who.name}.log"
        self.spawn(["dbus-daemon", "--session", f"--address=unix:path={self.runtime}/bus",
                    "--nofork"])
        realenv.wait_until((self.runtime / "bus").exists, 15, "the account's session bus")
        self.spawn(["pipewire"])
        realenv.wait_until((self.runtime / "pipewire-0").exists, 15, "the account's PipeWire")
        self.spawn(["wireplumber"])

    def spawn(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            proc = subprocess.Popen([*setpriv(self.who), *cmd], env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd="/")
        self.procs.append(proc)
        return proc

    def gst(self, args: list[str]) -> subprocess.Popen[bytes]:
        return self.spawn(["gst-launch-1.0", "-q", *args])

    def dump(self) -> list[dict[str, Any]]:
        out = subprocess.run([*setpriv(self.who), "pw-dump", "-N"], env=self.env,
                             capture_output=True, timeout=10, check=False).stdout
        return pwvideo.parse_dump(out)

    def node_id(self, name: str) -> int | None:
        return pwvideo.node_in(self.dump(), name)

    def end(self) -> None:
        """The session ends: its processes, then its runtime folder (logind's logout)."""
        for proc in reversed(self.procs):
            pwvideo.end(proc)
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture
def session_root(sandbox: Box, monkeypatch: pytest.MonkeyPatch) -> Path:
    need_tools(["pipewire", "wireplumber", "dbus-daemon", *pwvideo.GST_TOOLS])
    need(pwvideo.has_pipewire_gst(), f"apt-get install {pwvideo.GST_PACKAGES}")
    root = sandbox.root / "run-user"
    root.mkdir(mode=0o755)
    monkeypatch.setenv("CAMGUARD_USER_RUNTIME_ROOT", str(root))
    return root


@pytest.fixture
def sessions() -> Iterator[list[UserPipeWire]]:
    made: list[UserPipeWire] = []
    yield made
    for s in made:
        s.end()


def coverage_of(answer: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [c for c in answer.get("coverage", []) if c["source"] == source]


def users_of(answer: dict[str, Any]) -> dict[int | None, dict[str, Any]]:
    return {u["pid"]: u for d in answer.get("devices", []) for u in d.get("users", [])}


def test_the_service_names_an_accounts_pipewire_camera_user_with_the_chain(
        sandbox: Box, accounts: Accounts, session_root: Path,
        sessions: list[UserPipeWire]) -> None:
    kid = accounts.user()
    sandbox.node("video0")
    svc = Service(sandbox).start()
    # No session yet: said, not silent.
    (cam_cov,) = [c for c in coverage_of(svc.client.status(), "pipewire-users")
                  if c["sensor"] == "camera"]
    assert "no account's session runs PipeWire" in cam_cov["reason"], cam_cov

    pw = UserPipeWire(sandbox, kid, session_root)
    sessions.append(pw)
    source = f"pipewire:{kid.name}"
    realenv.wait_until(lambda: coverage_of(svc.client.status(), source), 30,
                       "the account's PipeWire watched by the service (inotify)")
    states = {c["sensor"]: c["state"] for c in coverage_of(svc.client.status(), source)}
    assert states == {"camera": "watching", "screen": "watching"}, states

    pw.gst(["videotestsrc", "is-live=true", "!",
            "video/x-raw,format=YUY2,width=320,height=240,framerate=15/1", "!",
            "pipewiresink", "mode=provide",
            "stream-properties=props,media.class=Video/Source,node.name=kidcam"])
    found: list[int] = []

    def node() -> bool:
        nid = pw.node_id("kidcam")
        found.extend([nid] if nid is not None else [])
        return nid is not None

    realenv.wait_until(node, 30, f"kidcam in the account's graph ({pw.log})")
    # A node nobody watches raises nothing.
    assert not [u for u in users_of(svc.client.status()).values() if u.get("via") == "pipewire"]

    consumer = pw.gst(["pipewiresrc", f"path={found[0]}", "!", "video/x-raw,format=YUY2",
                       "!", "fakesink"])
    realenv.wait_until(lambda: consumer.pid in users_of(svc.client.status()), 30,
                       f"the consumer named by the service ({svc.log})")
    use = users_of(svc.client.status())[consumer.pid]
    assert use["via"] == "pipewire" and "→ pipewire → pipewire:kidcam" in use["note"], use
    assert use["user"] == kid.name, use
    brokers = {p.pid for p in pw.procs[1:3]}  # pipewire and wireplumber: never the user
    assert not brokers & set(users_of(svc.client.status()))

    # The kill switch, through the service, as the account: the app is the device user;
    # the media server is not one and is refused.
    res = camguard_as(sandbox, kid, "kill", str(pw.procs[1].pid))
    assert res.returncode != 0 and pw.procs[1].poll() is None, res
    assert "it is the sound server" in res.stderr, res
    res = camguard_as(sandbox, kid, "kill", str(consumer.pid))
    assert res.returncode == 0, res
    realenv.wait_until(lambda: consumer.poll() is not None, 30, "the consumer killed")
    realenv.wait_until(lambda: consumer.pid not in users_of(svc.client.status()), 30,
                       "the use ended with the consumer")
    realenv.wait_until(lambda: any(e.get("pid") == consumer.pid
                                   for e in svc.client.history()["entries"]), 30,
                       "the session in the service's history")
    entry = next(e for e in svc.client.history()["entries"] if e.get("pid") == consumer.pid)
    assert entry["kind"] == "camera" and entry["via"] == "pipewire", entry
    assert "→ pipewire → pipewire:kidcam" in entry["note"], entry

    # The service's event log: the app's start, with the chain.
    logs = list(sandbox.root.rglob("events.jsonl"))
    records = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
    (start,) = [r for r in records
                if r["type"] == "device.started" and r.get("pid") == consumer.pid]
    assert start["via"] == "pipewire" and "→ pipewire →" in start["note"], start

    pw.end()  # logout: the session's watcher goes
    realenv.wait_until(lambda: not coverage_of(svc.client.status(), source), 30,
                       "the ended session no longer watched")


def test_accounts_are_found_only_in_their_own_runtime_folders(tmp_path: Path) -> None:
    import socket

    me = os.getuid()
    need(me == 0, "chown needs root")
    good, bad = tmp_path / "4242", tmp_path / "4343"
    for folder in (good, bad):
        folder.mkdir(mode=0o700)
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(folder / "pipewire-0"))
        s.close()
    os.chown(good, 4242, 4242)
    os.chown(good / "pipewire-0", 4242, 4242)
    os.chown(bad, 4343, 4343)  # its socket is root's: not this account's PipeWire
    (tmp_path / "notanumber").mkdir()
    assert [uid for uid, _ in accounts_with_pipewire(tmp_path)] == [4242]


def test_a_pid_of_another_account_is_not_believed() -> None:
    own = OwnDescriber(ProcessDescriber(), uid=os.getuid() + 1)
    assert own.describe(os.getpid()) is None  # ours, not that account's
    mine = OwnDescriber(ProcessDescriber(), uid=os.getuid())
    ref = mine.describe(os.getpid())
    assert ref is not None and ref.pid == os.getpid()


def test_a_media_server_holding_a_camera_is_a_broker_only_while_its_pipewire_is_watched(
        tmp_path: Path) -> None:
    """The service's device-node source: PipeWire's own hold on /dev/video is the apps'
    (named by that account's watcher) only while that account's PipeWire is watched; one
    nobody watches is reported as the holder, never hidden."""
    need_tools(["pipewire"])
    node = make_standin(tmp_path / "dev" / "video0")
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    fd = os.open(node, os.O_RDONLY)
    try:  # a media server that holds the camera node, as PipeWire does for its clients
        proc = subprocess.Popen(realenv.bound_to_tests(["pipewire"]), pass_fds=(fd,),
                                env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    finally:
        os.close(fd)
    try:
        realenv.wait_until((runtime / "pipewire-0").exists, 15, "pipewire up")
        watched = False

        def holders() -> set[int]:
            src = ProcfsSource([f"{tmp_path}/dev/video*"], [], describer=ProcessDescriber(),
                               camera_brokers=DEFAULT_SOUND_SERVER_EXES,
                               broker_watched=lambda pid: watched)
            return {u.process.pid for u in src.snapshot().usages if u.process is not None}

        assert proc.pid in holders()  # its account's PipeWire is not watched: the holder
        watched = True
        assert proc.pid not in holders()  # watched: a broker for the apps named there
    finally:
        pwvideo.end(proc)  # type: ignore[arg-type]
