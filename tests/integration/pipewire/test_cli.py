"""The command line over a real PipeWire with real video (tests/pwvideo.py):
`status --json` names the PipeWire client and says what each source covers (PipeWire gone,
X11, not root: by really removing the component), `watch --json` and `kill` treat the
client, never the broker, as the user."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from camguard.platform.linux.pipewire import UNREACHABLE, X11_SCREEN, PipeWireSource
from camguard.platform.process import ProcessDescriber
from tests import pwvideo
from tests.conftest import need_tools, nobody_python
from tests.pwvideo import users
from tests.realenv import SoundServer, wait_until

# -- camguard status --json: "coverage" from the real sources --------------------------------
STATUS = ("import runpy, sys; sys.path[:0] = sys.argv[1:3]; "
          "sys.argv = ['camguard', *sys.argv[3:]]; "
          "runpy.run_module('camguard', run_name='__main__')")


def status_json(tmp_path: Path, devdir: Path, env: dict[str, str],
                prefix: list[str] | None = None, paths: list[str] | None = None
                ) -> dict[str, Any]:
    base = {"CAMGUARD_CONFIG_DIR": str(tmp_path / "cfg"), "CAMGUARD_DATA_DIR": str(
        tmp_path / "data"), "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
        "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket", "XDG_SESSION_TYPE": "wayland",
        # This look, not a system service that may run on the machine.
        "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[3])}  # this tree's camguard
    cmd = ([*prefix, "-c", STATUS, *(paths or [])] if prefix
           else [sys.executable, "-m", "camguard"])
    out = subprocess.run([*cmd, "status", "--json", "--camera-glob", f"{devdir}/video*",
                          "--mic-glob", f"{devdir}/snd/pcm*c"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, **base, **env}, cwd="/", check=False)
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def coverage(doc: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    return {(c["sensor"], c["source"]): (c["state"], c["reason"]) for c in doc["coverage"]}


def test_status_json_names_the_pipewire_consumer_and_covers_every_sensor(
        gst: None, pipewire: SoundServer, video: list[subprocess.Popen[bytes]],
        tmp_path: Path, devdir: Path) -> None:
    remote = pwvideo.remote_of(pipewire)
    cam, node = pwvideo.start_camera(remote, "fakecam-cli", tmp_path / "cam.log")
    video.append(cam)
    consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
    video.append(consumer)
    source = PipeWireSource(ProcessDescriber(), remote=remote)
    wait_until(lambda: consumer.pid in users(source.snapshot()), 15, "the consumer linked")
    doc = status_json(tmp_path, devdir, {"PIPEWIRE_REMOTE": remote})
    (device,) = [d for d in doc["devices"] if d["id"] == "pipewire:fakecam-cli"]
    (user,) = device["users"]
    assert user["pid"] == consumer.pid and user["via"] == "pipewire"
    assert "→ pipewire → pipewire:fakecam-cli" in user["note"]
    cov = coverage(doc)
    assert cov[("camera", "pipewire")][0] == "watching"
    assert cov[("screen", "pipewire")][0] == "watching"
    assert cov[("microphone", "pulse")][0] == "blind"  # no sound server at PULSE_SERVER
    assert {k[0] for k in cov} == {"camera", "microphone", "screen", "location"}
    assert all(set(c) == {"sensor", "source", "state", "reason"} for c in doc["coverage"])


def test_status_json_coverage_when_pipewire_is_gone_and_on_x11(
        tmp_path: Path, devdir: Path) -> None:
    need_tools(("pw-dump",))
    doc = status_json(tmp_path, devdir, {"PIPEWIRE_REMOTE": str(tmp_path / "no-pipewire-0"),
                                         "XDG_SESSION_TYPE": "x11"})
    cov = coverage(doc)
    state, reason = cov[("camera", "pipewire")]
    assert state == "blind" and reason.startswith(UNREACHABLE)
    assert cov[("screen", "pipewire")] == ("blind", X11_SCREEN)
    assert [d["source"] for d in doc["degraded"]] == ["pulse"]  # no PipeWire is not degraded


def test_status_json_as_an_ordinary_user_is_partial_for_device_nodes(
        tmp_path: Path, devdir: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="camguard-cov-"))
    try:
        folder.chmod(0o777)
        run_as_nobody, paths = nobody_python(folder)
        doc = status_json(folder, devdir, {"PIPEWIRE_REMOTE": str(folder / "none")},
                          run_as_nobody, paths)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    state, reason = coverage(doc)[("camera", "procfs")]
    assert state == "partial" and reason.startswith("fanotify unavailable: not root")
    if os.geteuid() == 0:
        root = coverage(status_json(tmp_path, devdir, {}))[("camera", "procfs")]
        assert root[0] == "watching"


def test_watch_json_names_the_app_and_camguard_kill_ends_its_session(
        gst: None, pipewire: SoundServer, video: list[subprocess.Popen[bytes]],
        tmp_path: Path, devdir: Path) -> None:
    """`camguard watch --json` and `camguard kill` as a user runs them: the PipeWire client
    is the user in the events and the one the kill switch ends."""
    remote = pwvideo.remote_of(pipewire)
    cam, node = pwvideo.start_camera(remote, "fakecam-watch", tmp_path / "cam.log")
    video.append(cam)
    env = {**os.environ, "CAMGUARD_CONFIG_DIR": str(tmp_path / "cfg"),
           "CAMGUARD_DATA_DIR": str(tmp_path / "data"),
           "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
           "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock"),
           "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket", "PIPEWIRE_REMOTE": remote,
           "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    watch = subprocess.Popen([sys.executable, "-m", "camguard", "watch", "--json",
                              "--camera-glob", f"{devdir}/video*"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert watch.stdout is not None
        first = json.loads(watch.stdout.readline())  # the pulse source degrades: running
        assert first["event"] == "degraded" and first["source"] == "pulse"
        consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
        video.append(consumer)
        started_line = json.loads(watch.stdout.readline())
        assert (started_line["event"], started_line["pid"]) == ("started", consumer.pid)
        assert started_line["kind"] == "camera" and started_line["via"] == "pipewire"
        assert started_line["device"] == "pipewire:fakecam-watch"
        assert started_line["note"].startswith("gst-launch-1.0 → pipewire →")
        killed = subprocess.run([sys.executable, "-m", "camguard", "kill", str(consumer.pid),
                                 "--create-time", str(started_line["create_time"])],
                                capture_output=True, text=True, timeout=60, env=env,
                                check=False)
        assert killed.returncode == 0, killed.stderr
        stopped_line = json.loads(watch.stdout.readline())
        assert (stopped_line["event"], stopped_line["pid"]) == ("stopped", consumer.pid)
        consumer.wait(10)
        watch.send_signal(signal.SIGINT)
        _rest, err = watch.communicate(timeout=20)
        assert watch.returncode == 0 and "Traceback" not in err
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
