"""``panic`` through the service reaches each logged-in account's sound server (issue 17).

It answered "no microphone found": the root service has no sound server of its own and
never reached the users'. Here a real PulseAudio runs as a test account, at
``<runtime root>/UID/pulse/native`` as systemd-logind's /run/user/UID would hold it; the
root service mutes its microphones when that account says ``camguard panic`` and gives
back exactly what it found on ``unblock``. A microphone the account had muted itself stays
muted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import realenv
from tests.conftest import need_tools
from tests.service_env import Account, Accounts, Box, Service, camguard_as, setpriv

pytestmark = pytest.mark.real


class UserPulse:
    """PulseAudio as ``who``, its socket in ``runtime/UID/pulse/native``."""

    def __init__(self, b: Box, who: Account, runtime_root: Path) -> None:
        self.who = who
        self.runtime = runtime_root / str(who.uid)
        self.runtime.mkdir(mode=0o700)
        os.chown(self.runtime, who.uid, who.gid)
        home = b.root / "home" / who.name
        home.mkdir(mode=0o755, exist_ok=True)
        os.chown(home, who.uid, who.gid)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(home),
                    "XDG_RUNTIME_DIR": str(self.runtime),
                    "PULSE_SERVER": f"unix:{self.runtime}/pulse/native"}
        self.proc = subprocess.Popen(
            [*setpriv(who), "pulseaudio", "--daemonize=no", "--exit-idle-time=-1",
             "--disallow-exit", "-n", "--log-target=stderr",
             "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=spk",
             "--load=module-sine-source source_name=sinemic rate=48000 frequency=440",
             "--load=module-null-source source_name=ownmuted"],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, cwd=str(home))
        b.procs.append(self.proc)  # type: ignore[arg-type]
        realenv.wait_until(lambda: self.pactl("info").returncode == 0, 20,
                           f"PulseAudio of {who.name}")

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*setpriv(self.who), "pactl", *args], env=self.env,
                              capture_output=True, text=True, timeout=20, check=False)

    def muted(self, source: str) -> bool:
        return self.pactl("get-source-mute", source).stdout.strip() == "Mute: yes"


def test_panic_through_the_service_mutes_the_accounts_microphones(
        sandbox: Box, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    need_tools(["pulseaudio", "pactl"])
    runtime_root = sandbox.root / "run-user"
    runtime_root.mkdir(mode=0o755)
    monkeypatch.setenv("CAMGUARD_USER_RUNTIME_ROOT", str(runtime_root))
    kid = accounts.user()
    pulse = UserPulse(sandbox, kid, runtime_root)
    assert pulse.pactl("set-source-mute", "ownmuted", "1").returncode == 0
    sandbox.node("video0")
    Service(sandbox).start()

    res = camguard_as(sandbox, kid, "panic")
    assert "no microphone found" not in res.stdout + res.stderr, res
    assert res.returncode == 0, res
    realenv.wait_until(lambda: pulse.muted("sinemic"), 20, "sinemic muted by the service")
    assert f"{kid.name}: all microphones off (muted sinemic" in res.stdout, res.stdout

    res = camguard_as(sandbox, kid, "unblock", "all")
    assert res.returncode == 0, res
    realenv.wait_until(lambda: not pulse.muted("sinemic"), 20, "sinemic back on")
    assert pulse.muted("ownmuted")  # muted by its owner before: stays muted


def test_without_any_sound_server_the_service_says_so(
        sandbox: Box, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime_root = sandbox.root / "run-user"
    runtime_root.mkdir(mode=0o755)
    monkeypatch.setenv("CAMGUARD_USER_RUNTIME_ROOT", str(runtime_root))
    kid = accounts.user()
    Service(sandbox).start()
    res = camguard_as(sandbox, kid, "block", "microphone")
    # No capture node and no account's sound server: nothing was switched off, and it says so.
    assert "microphone: nothing to do: no microphone found" in res.stderr, res
    assert res.returncode != 0
