"""`camguard selftest` for real: stand-in camera nodes, real PulseAudio and PipeWire servers,
the real kill switch (as root: the in-process helper), and an honest report."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from camguard.core.settings import DetectionSettings
from tests.conftest import Holder, make_standin, need, need_root, need_tools
from tests.realenv import SoundServer

REPO = Path(__file__).resolve().parents[2]
ACL = "system.posix_acl_access"

pytestmark = pytest.mark.real


def facts(node: Path) -> tuple[int, int, int, bytes | None]:
    st = os.stat(node)
    try:
        acl: bytes | None = os.getxattr(node, ACL)
    except OSError:
        acl = None
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, acl


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Private camguard folders; no sound server unless a test adds one."""
    need_root()
    return {**os.environ, "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
            "CAMGUARD_CONFIG_DIR": str(tmp_path / "config"),
            "CAMGUARD_DATA_DIR": str(tmp_path / "data"),
            "PULSE_SERVER": f"unix:{tmp_path}/no-such-server"}


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A stand-in device folder every user can walk into (pytest's tmp root is 0700), so an
    unprivileged open is refused by the node's own permissions and nothing else."""
    need_root()
    need_tools(["setfacl", "dd"])
    d = Path(tempfile.mkdtemp(prefix="camguard-selftest-", dir="/tmp"))
    d.chmod(0o755)
    (d / "snd").mkdir(mode=0o755)
    yield d
    shutil.rmtree(d)


class Run:
    """One `camguard selftest --json` child: its pid (what camguard must name), exit code and
    report."""

    def __init__(self, env: dict[str, str], devdir: Path, *extra: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "camguard", "selftest", "--json", "--camera-glob",
             f"{devdir}/video*", "--mic-glob", f"{devdir}/snd/pcmC*D*c", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        self.out, self.err = proc.communicate(timeout=110)
        self.pid, self.code = proc.pid, proc.returncode
        assert "Traceback" not in self.err, self.err
        self.doc: dict[str, Any] = json.loads(self.out)
        self.checks: list[dict[str, str]] = self.doc["checks"]

    def one(self, name: str, device: str | None = None) -> dict[str, str]:
        found = [c for c in self.checks
                 if c["name"] == name and (device is None or c["device"] == device)]
        assert len(found) == 1, f"{name} {device}: {found}\n{self.out}"
        return found[0]

    def status(self, name: str, device: str | None = None) -> str:
        return self.one(name, device)["status"]

    def rms(self, name: str) -> float:
        m = re.search(r"RMS ([0-9.]+)", self.one(name)["detail"])
        assert m is not None, self.one(name)
        return float(m.group(1))


def test_selftest_proves_detection_block_and_restore(
        sound_server: SoundServer, reachable: Path, env: dict[str, str]) -> None:
    node = make_standin(reachable / "video0")
    os.chown(node, 0, 44)
    node.chmod(0o660)
    subprocess.run(["setfacl", "-m", "u:nobody:rw", str(node)], check=True)
    before = facts(node)
    cam = str(node)

    r = Run({**env, **sound_server.env}, reachable)

    assert r.code == 0, r.out + r.err
    assert r.doc["summary"]["failed"] == 0 and r.doc["summary"]["ok"] is True
    # Detection: camguard named the selftest's own pid for the node it held open...
    held = r.one("camera.detected.held", cam)
    assert held["status"] == "passed" and f"pid {r.pid})" in held["detail"]
    # ...and says what it could not prove about a node that is not a camera.
    frames = r.one("camera.frames", cam)
    assert frames["status"] == "not-provable"
    assert "opened and detected; no frames: not a real V4L2 device" in frames["detail"]
    assert r.status("camera.detected.opencv", cam) in ("passed", "not-provable")
    # The microphone: a real recording, named with the right pid, loud, silent, loud again.
    mic = r.one("microphone.detected")
    assert mic["status"] == "passed" and mic["device"] == "pulse:sinemic"
    assert f"pid {r.pid})" in mic["detail"]
    for name in ("microphone.recorded", "microphone.blocked.muted", "microphone.blocked.silent",
                 "microphone.restored.level", "microphone.restored.mute"):
        assert r.status(name) == "passed", r.one(name)
    assert r.rms("microphone.recorded") > 1000
    assert r.rms("microphone.blocked.silent") < 2
    assert r.rms("microphone.restored.level") > 1000
    # The kill switch was on, closed the node to an unprivileged user, and came off again.
    for name in ("kill-switch.on", "kill-switch.off"):
        assert {(c["device"], c["status"]) for c in r.checks if c["name"] == name} == {
            ("camera", "passed"), ("microphone", "passed")}, r.out
    assert r.status("camera.blocked.node", cam) == "passed"
    blocked_open = r.one("camera.blocked.open", cam)
    assert blocked_open["status"] == "passed" and "nobody" in blocked_open["detail"]
    assert "root opens any node" in blocked_open["detail"]  # says what it cannot prove
    assert r.status("camera.restored.node", cam) == "passed"
    assert r.status("camera.restored.open", cam) == "passed"
    # Restored for real, as seen from outside the selftest.
    assert facts(node) == before
    assert sound_server.pactl("get-source-mute", "sinemic").stdout.strip() == "Mute: no"
    blocks = subprocess.run([sys.executable, "-m", "camguard", "blocks", "--json",
                             "--camera-glob", f"{reachable}/video*"], capture_output=True,
                            text=True, timeout=60, cwd=REPO, env={**env, **sound_server.env},
                            check=False)
    assert json.loads(blocks.stdout)["blocks"] == []


def test_no_sound_server_and_an_unreachable_folder_are_reported_not_crashed(
        devdir: Path, env: dict[str, str]) -> None:
    node = make_standin(devdir / "video0")
    before = facts(node)

    r = Run(env, devdir)

    assert r.code == 0, r.out + r.err
    mic = [c for c in r.checks if c["name"].startswith("microphone.")]
    assert mic and all(c["status"] == "not-provable" for c in mic), mic
    assert "no sound server answers" in r.one("microphone.server")["detail"]
    assert r.status("camera.detected.held", str(node)) == "passed"
    # pytest's tmp root is 0700: nobody was refused before the block too, and it says so.
    blocked_open = r.one("camera.blocked.open", str(node))
    assert blocked_open["status"] == "not-provable"
    assert "refused before the block too" in blocked_open["detail"]
    assert [c["device"] for c in r.checks if c["name"] == "kill-switch.on"] == ["camera"]
    assert facts(node) == before


def test_broken_opencv_and_portaudio_become_findings(
        pulseaudio: SoundServer, devdir: Path, env: dict[str, str], tmp_path: Path) -> None:
    # Modules that fail the way a missing native library makes them fail, first on the path.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cv2.py").write_text(
        "raise ImportError('libGL.so.1: cannot open shared object file')\n")
    (broken / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    node = make_standin(devdir / "video0")

    r = Run({**env, **pulseaudio.env, "PYTHONPATH": str(broken)}, devdir)

    assert r.code == 0, r.out + r.err
    assert "libGL.so.1" in r.one("camera.detected.opencv", str(node))["detail"]
    assert r.status("camera.detected.held", str(node)) == "passed"
    recorded = r.one("microphone.recorded")
    assert recorded["status"] == "not-provable"
    assert "PortAudio library not found" in recorded["detail"]
    # No baseline level, so no silence claim; the mute itself is still checked.
    assert not [c for c in r.checks if c["name"] == "microphone.blocked.silent"]
    assert r.status("microphone.blocked.muted") == "passed"


def test_a_program_using_the_camera_is_not_ended(
        devdir: Path, env: dict[str, str], holders: list[Holder]) -> None:
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)

    r = Run(env, devdir)

    on = r.one("kill-switch.on")
    assert on["status"] == "not-provable" and f"(pid {h.pid}) holds" in on["detail"]
    assert h.proc.poll() is None and facts(node)[0] == 0o666
    assert r.code == 0


def test_the_users_own_block_is_left_alone(devdir: Path, env: dict[str, str]) -> None:
    node = make_standin(devdir / "video0")
    glob = ["--camera-glob", f"{devdir}/video*"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "camguard", *args, *glob],
                              capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
                              check=False)

    assert cli("block", "camera").returncode == 0
    try:
        r = Run(env, devdir)
        on = r.one("kill-switch.on")
        assert on["status"] == "not-provable" and "switched off already" in on["detail"]
        assert facts(node) == (0, 0, 0, None)  # still off
    finally:
        assert cli("unblock", "camera").returncode == 0
    assert facts(node)[0] == 0o666


def test_as_an_ordinary_user_the_block_closes_the_users_own_openers(reachable: Path) -> None:
    """Without root or the helper the camera block guards the account's own apps (issue
    17): the selftest says the node is left as it is, and proves that an app of the account
    that opens it during the block is closed."""
    from tests.integration.test_kill import run_as_nobody

    need(not Path("/usr/libexec/camguard/camguard-helper").exists(),
         "the helper is not installed here (pkexec would ask for a password)")
    node = make_standin(reachable / "video0")
    state = Path(tempfile.mkdtemp(prefix="camguard-state-", dir="/tmp"))
    try:
        os.chown(state, 65534, 65534)
        r = run_as_nobody("selftest", "--json", "--camera-glob", f"{reachable}/video*",
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent",
                               "CAMGUARD_STATE_DIR": str(state),
                               "CAMGUARD_CONFIG_DIR": str(state / "config"),
                               "PULSE_SERVER": f"unix:{state}/none"})
        checks = {(c["name"], c["device"]): c for c in json.loads(r.stdout)["checks"]}
        assert [c for c in checks.values() if c["status"] == "failed"] == []
        assert r.returncode == 0, r.stdout + r.stderr
        assert checks[("camera.detected.held", str(node))]["status"] == "passed"
        on = checks[("kill-switch.on", "camera")]
        assert on["status"] == "passed" and "other accounts are not covered" in on["detail"]
        left = checks[("camera.blocked.node", str(node))]
        assert left["status"] == "not-provable" and "left as it is" in left["detail"]
        guarded = checks[("camera.blocked.open", str(node))]
        assert guarded["status"] == "passed" and "was closed after" in guarded["detail"]
        assert checks[("camera.restored.node", str(node))]["status"] == "passed"
        assert facts(node)[0] == 0o666
    finally:
        shutil.rmtree(state)


def test_cancel_during_the_block_still_switches_back_on(
        devdir: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain function the Settings button calls, cancelled right as the block goes on."""
    from camguard.app.killswitch import build_block_manager
    from camguard.selftest.runner import run_selftest

    for key in ("CAMGUARD_STATE_DIR", "CAMGUARD_CONFIG_DIR", "PULSE_SERVER"):
        monkeypatch.setenv(key, env[key])
    node = make_standin(devdir / "video0")
    settings = DetectionSettings(camera_globs=(f"{devdir}/video*",),
                                 mic_globs=(f"{devdir}/snd/pcmC*D*c",))
    cancel = threading.Event()
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("switching off"):
            cancel.set()  # the next step stops; the block has just been switched on

    report = run_selftest(settings, blocks=build_block_manager(settings), cancel=cancel,
                          progress=progress)

    by_name = {c.name: c for c in report.snapshot()}
    assert by_name["selftest.cancelled"].status.value == "failed" and not report.ok
    assert by_name["kill-switch.on"].status.value == "passed"
    assert by_name["kill-switch.off"].status.value == "passed"
    assert "switching back on: camera" in lines
    assert facts(node)[0] == 0o666
    assert not [t.name for t in threading.enumerate() if t.name == "camguard-monitor"]


def test_human_report_without_the_kill_switch(devdir: Path, env: dict[str, str]) -> None:
    node = make_standin(devdir / "video0")
    r = subprocess.run([sys.executable, "-m", "camguard", "selftest", "--no-block",
                        "--camera-glob", f"{devdir}/video*"], capture_output=True, text=True,
                       timeout=110, cwd=REPO, env=env, check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert f"PASSED        camera.detected.held {node}: camguard named its own open" in r.stdout
    assert any(ln.startswith("NOT-PROVABLE  kill-switch.on: ") and "--no-block" in ln
               for ln in lines)
    assert re.fullmatch(r"selftest: \d+ passed, 0 failed, \d+ not provable \([0-9.]+ s\)",
                        lines[-1])
    assert not any(ln.startswith(("PASSED        camera.blocked", "PASSED        kill-switch"))
                   for ln in lines)
