"""The root service names the apps recording at each logged-in account's sound server
(issue 11).

A real PulseAudio with a sine microphone runs *as a test account*, its socket at
``<runtime root>/UID/pulse/native`` as /run/user/UID would hold it, and the account's own
``parecord`` records from it. The service, started before the session exists, finds it
through inotify, runs its ``service-pulse`` child as the account, names the recorder (the
account's process) in status, the event log and history, ends the session when the
recording stops, says "blind" while the server is dead and "watching" again once it is
back, and its children die with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import realenv
from tests.audio import Recording, parecord
from tests.conftest import need_tools
from tests.service_env import Account, Accounts, Box, Service, camguard_as, setpriv

pytestmark = pytest.mark.real


class AccountPulse:
    """PulseAudio as ``who`` (sine microphone ``sinemic``); its runtime folder
    ``runtime_root/UID``; stopped and started again at will."""

    def __init__(self, b: Box, who: Account, runtime_root: Path) -> None:
        self.box, self.who = b, who
        self.runtime = runtime_root / str(who.uid)
        self.runtime.mkdir(mode=0o700)
        os.chown(self.runtime, who.uid, who.gid)
        home = b.root / "home" / who.name
        home.mkdir(mode=0o755, exist_ok=True)
        os.chown(home, who.uid, who.gid)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                    "XDG_RUNTIME_DIR": str(self.runtime),
                    "PULSE_SERVER": f"unix:{self.runtime}/pulse/native"}
        self.proc = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [*setpriv(self.who), "pulseaudio", "--daemonize=no", "--exit-idle-time=-1",
             "--disallow-exit", "-n", "--log-target=stderr",
             "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=spk",
             "--load=module-sine-source source_name=sinemic rate=48000 frequency=440"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd="/")
        self.box.procs.append(proc)  # type: ignore[arg-type]
        realenv.wait_until(lambda: self.pactl("info").returncode == 0, 20,
                           f"PulseAudio of {self.who.name}")
        return proc

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*setpriv(self.who), "pactl", *args], env=self.env,
                              capture_output=True, text=True, timeout=20, check=False)

    def record(self) -> Recording:
        return Recording(self.env, [*setpriv(self.who), *parecord()])


def coverage_of(answer: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [c for c in answer.get("coverage", []) if c["source"] == source]


def users_of(answer: dict[str, Any]) -> dict[int | None, dict[str, Any]]:
    return {u["pid"]: u for d in answer.get("devices", []) for u in d.get("users", [])}


def children_of(uid: int) -> list[int]:
    """The pids of ``uid``'s ``camguard service-pulse`` children."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"service-pulse" in argv:
            found.append(int(name))
    return found


def test_the_service_names_an_app_recording_at_an_accounts_pulseaudio(
        sandbox: Box, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    need_tools(["pulseaudio", "pactl", "parecord", "setpriv"])
    runtime_root = sandbox.root / "run-user"
    runtime_root.mkdir(mode=0o755)
    monkeypatch.setenv("CAMGUARD_USER_RUNTIME_ROOT", str(runtime_root))
    kid = accounts.user()
    sandbox.node("video0")
    svc = Service(sandbox).start()
    # No session yet: said, not silent.
    before = svc.client.status()
    (empty,) = coverage_of(before, "pulse-users")
    assert empty["sensor"] == "microphone" and empty["state"] == "watching", empty
    assert "no account's session has a sound server" in empty["reason"], empty

    pulse = AccountPulse(sandbox, kid, runtime_root)
    source = f"pulse:{kid.name}"

    def state() -> str | None:
        found = coverage_of(svc.client.status(), source)
        return found[0]["state"] if found else None

    realenv.wait_until(lambda: state() == "watching", 60,
                       f"the account's sound server watched by the service ({svc.log})")
    (cov,) = coverage_of(svc.client.status(), source)
    assert cov["sensor"] == "microphone" and kid.name in cov["reason"], cov
    assert not coverage_of(svc.client.status(), "pulse-users")  # the account's entry instead
    realenv.wait_until(lambda: len(children_of(kid.uid)) == 1, 30,
                       "one service-pulse child, as the account")

    rec = pulse.record()
    try:
        rec.wait_loud()
        realenv.wait_until(lambda: rec.pid in users_of(svc.client.status()), 30,
                           f"the recorder named by the service ({svc.log})")
        use = users_of(svc.client.status())[rec.pid]
        assert use["via"] == "pulse" and use["user"] == kid.name, use
        assert f"recording at the sound server of {kid.name}" in use["note"], use
        assert pulse.proc.pid not in users_of(svc.client.status())  # never the server

        # The service's microphone switch still reaches the account's server (user_mic.py).
        res = camguard_as(sandbox, kid, "panic")
        assert res.returncode == 0, res
        rec.wait_silent()
        res = camguard_as(sandbox, kid, "unblock", "all")
        assert res.returncode == 0, res
        rec.wait_loud()
        assert rec.pid in users_of(svc.client.status())

        # The kill switch through the service, as the account: the sound server is refused.
        res = camguard_as(sandbox, kid, "kill", str(pulse.proc.pid))
        assert res.returncode != 0 and pulse.proc.poll() is None, res
        assert "it is the sound server" in res.stderr, res
    finally:
        rec.end()  # the recording stops: the session ends
    realenv.wait_until(lambda: rec.pid not in users_of(svc.client.status()), 30,
                       "the use ended with the recording")
    realenv.wait_until(lambda: any(e.get("pid") == rec.pid
                                   for e in svc.client.history()["entries"]), 30,
                       "the session in the service's history")
    entry = next(e for e in svc.client.history()["entries"] if e.get("pid") == rec.pid)
    assert entry["kind"] == "microphone" and entry["via"] == "pulse", entry
    records = [json.loads(line) for f in sandbox.root.rglob("events.jsonl")
               for line in f.read_text().splitlines()]
    (start,) = [r for r in records
                if r["type"] == "device.started" and r.get("pid") == rec.pid]
    assert start["via"] == "pulse" and kid.name in start["note"], start

    # The server dies: blind, with the reason; back: watching again (the child reconnects,
    # or is started again).
    pulse.proc.send_signal(signal.SIGKILL)
    pulse.proc.wait(10)
    realenv.wait_until(lambda: state() == "blind", 30, "the dead server's coverage blind")
    (cov,) = coverage_of(svc.client.status(), source)
    assert "sound server" in cov["reason"], cov
    pulse.proc = pulse.start()
    realenv.wait_until(lambda: state() == "watching", 60, "watching again")

    # The child dies: started again (back-off), and watching again. (The server's new
    # socket may already have brought a new child: the session ended and began again.)
    realenv.wait_until(lambda: len(children_of(kid.uid)) == 1, 30, "one child")
    (child,) = children_of(kid.uid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGKILL)
    realenv.wait_until(lambda: len(new := children_of(kid.uid)) == 1 and new != [child], 30,
                       f"one new child after {child} was killed")
    realenv.wait_until(lambda: state() == "watching", 60, "watching after the restart")

    # The service's children die with it, even killed outright.
    svc.kill()
    realenv.wait_until(lambda: not children_of(kid.uid), 20,
                       "the service-pulse child gone with the service")


def test_the_service_names_an_app_recording_through_an_accounts_pipewire_pulse(
        sandbox: Box, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through PipeWire's pulse server (pipewire-pulse), the desktop default now:
    the app is named by the pid its stream claims, checked as the account's."""
    from tests.integration.test_service_pipewire import UserPipeWire

    need_tools(["pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon", "pactl",
                "parecord", "setpriv"])
    runtime_root = sandbox.root / "run-user"
    runtime_root.mkdir(mode=0o755)
    monkeypatch.setenv("CAMGUARD_USER_RUNTIME_ROOT", str(runtime_root))
    kid = accounts.user()
    svc = Service(sandbox).start()
    pw = UserPipeWire(sandbox, kid, runtime_root)
    try:
        env = {**pw.env, "PULSE_SERVER": f"unix:{pw.runtime}/pulse/native"}
        server = pw.spawn(["pipewire-pulse"])

        def pactl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*setpriv(kid), "pactl", *args], env=env,
                                  capture_output=True, text=True, timeout=20, check=False)

        realenv.wait_until(lambda: pactl("info").returncode == 0, 20, "pipewire-pulse")
        pactl("load-module", "module-null-sink", "sink_name=spk", "channel_map=mono")
        pactl("load-module", "module-remap-source", "master=spk.monitor",
              "source_name=kidmic", "channels=1", "channel_map=mono")
        realenv.wait_until(lambda: "kidmic" in pactl("list", "short", "sources").stdout, 20,
                           "the account's microphone")
        source = f"pulse:{kid.name}"
        realenv.wait_until(
            lambda: [c["state"] for c in coverage_of(svc.client.status(), source)]
            == ["watching"], 60, f"the account's pipewire-pulse watched ({svc.log})")
        rec = Recording(env, [*setpriv(kid), *parecord("kidmic")])
        try:
            realenv.wait_until(lambda: rec.pid in users_of(svc.client.status()), 30,
                               f"the recorder named by the service ({svc.log})")
            use = users_of(svc.client.status())[rec.pid]
            assert use["via"] == "pulse" and use["user"] == kid.name, use
            assert server.pid not in users_of(svc.client.status())  # never the bridge
            res = camguard_as(sandbox, kid, "kill", str(server.pid))
            assert res.returncode != 0 and server.poll() is None, res
            assert "it is the sound server" in res.stderr, res
        finally:
            rec.end()
        realenv.wait_until(lambda: rec.pid not in users_of(svc.client.status()), 30,
                           "the use ended with the recording")
    finally:
        pw.end()
    realenv.wait_until(lambda: not coverage_of(svc.client.status(), f"pulse:{kid.name}"), 60,
                       "the ended session no longer watched")
