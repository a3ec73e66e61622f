"""What `camguard` commands put together, run for real: `camguard tray` alone (rules, event
log, clean stop), the tray's microphone block with its long-lived MicControl, a managed
policy's detection settings for every command, and the parental lock on rule changes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.cli.tray import kill_switch, mic_control, selftest_runner
from camguard.core.blocks import BlockTarget
from camguard.core.rules import AppMatch, MatchBy, make_rule
from camguard.core.settings import DetectionSettings
from camguard.platform.clock import SystemClock
from camguard.store.eventlog import last_records
from camguard.store.parental_lock import LockGuard
from camguard.store.rules import RuleFile
from camguard.ui.tray_options import TrayOptions
from tests import realenv
from tests.conftest import Holder, make_standin, need_root
from tests.gui.wiring_rig import Dirs, Live, dirs, launch, lives
from tests.realenv import SoundServer, wait_until

__all__ = ["dirs", "lives"]  # fixtures

REPO = Path(__file__).resolve().parents[2]
EXE = os.path.realpath(sys.executable)


def camguard_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS",
                        "CAMGUARD_SOCKET", "CAMGUARD_POLICY_FILE")}
    for what in ("config", "data", "state"):
        (tmp_path / what).mkdir(exist_ok=True)
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(tmp_path / what)
    # No sound server: the pulse source degrades instead of watching the developer's own.
    env["PULSE_SERVER"] = f"unix:{tmp_path}/no-such-socket"
    env["CAMGUARD_SOCKET"] = str(tmp_path / "no-service.sock")
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camguard", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
                          check=False)


# -- camguard tray, alone --------------------------------------------------------------------
def test_camguard_tray_applies_rules_and_logs_from_start_to_stop(
        tmp_path: Path, devdir: Path, holders: list[Holder]) -> None:
    env = camguard_env(tmp_path, QT_QPA_PLATFORM="offscreen")
    rules = RuleFile(tmp_path / "config" / "rules.json")
    rules.save([make_rule("kill", app=AppMatch(MatchBy.PATH, EXE), kind="camera",
                          label="no python cameras", created_at=SystemClock().now())])
    (tmp_path / "config" / "settings.json").write_text(json.dumps(
        {"detection": {"watch_sound_server": False}, "ui": {"history_retention_days": 30}}))
    node = make_standin(devdir / "video0")
    log = tmp_path / "tray.log"
    cmd = [sys.executable, "-m", "camguard", "-v", "tray", "--camera-glob",
           str(devdir / "video*"), "--mic-glob", str(devdir / "snd" / "pcmC*D*c")]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    events = tmp_path / "state" / "events.jsonl"
    try:
        wait_until(lambda: "tray ready" in log.read_text(), 60, "the tray")
        h = Holder([node])
        holders.append(h)
        wait_until(lambda: h.proc.poll() is not None, 30, "the rule to end the holder")
        wait_until(lambda: any(r["type"] == "decision.made" for r in last_records(events)),
                   10, "the decision in the event log")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "alert shown" not in text  # the rule decided; nobody was asked
    recs = last_records(events)
    types = [r["type"] for r in recs]
    assert types[0] == "camguard.started" and types[-1] == "camguard.stopped", types
    [made] = [r for r in recs if r["type"] == "decision.made"]
    assert made["pid"] == h.pid and made["explanation"] == "killed by rule 'no python cameras'"
    assert any(r["type"] == "device.started" and r["pid"] == h.pid for r in recs)


def test_camguard_tray_with_a_socket_that_does_not_answer_says_so(tmp_path: Path) -> None:
    env = camguard_env(tmp_path, QT_QPA_PLATFORM="offscreen")
    out = run(env, "tray", "--socket", str(tmp_path / "nothing.sock"))
    assert out.returncode == 1 and "no camguard service at" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


# -- the tray's microphone block -------------------------------------------------------------
def muted(srv: SoundServer, source: str) -> bool | None:
    out = srv.pactl("get-source-mute", source)
    return None if out.returncode != 0 else out.stdout.strip() == "Mute: yes"


@pytest.mark.real
@pytest.mark.parametrize("fresh_sound_server", ["pulseaudio"], indirect=True)
def test_the_trays_mic_block_keeps_muting_new_sources(
        fresh_sound_server: SoundServer, tmp_path: Path, devdir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    need_root()
    srv = fresh_sound_server
    monkeypatch.setenv("PULSE_SERVER", srv.env["PULSE_SERVER"])
    monkeypatch.setenv("CAMGUARD_STATE_DIR", str(tmp_path / "state"))
    make_standin(devdir / "snd" / "pcmC0D0c")
    settings = DetectionSettings(camera_globs=(str(devdir / "video*"),),
                                 mic_globs=(str(devdir / "snd" / "pcmC*D*c"),))
    mic = mic_control()
    assert mic is not None
    try:
        _killer, blocks = kill_switch(settings, mic)
        assert blocks is not None
        report = blocks.block(BlockTarget.MICROPHONE, None)
        assert report.result.ok, report
        # A microphone that appears during the block is muted too: the long-lived
        # MicControl's watcher keeps all-off in force (a CLI block could not).
        assert srv.pactl("load-module", "module-null-source", "source_name=late"
                         ).returncode == 0
        wait_until(lambda: muted(srv, "late") is True, 15, "the new source muted")
        assert blocks.unblock(BlockTarget.MICROPHONE).result.ok
        wait_until(lambda: muted(srv, "late") is False, 15, "the new source unmuted")
    finally:
        mic.close()


# -- detection settings under a managed policy, for every command ---------------------------
POLICY = """[settings]
camera_globs = ["{glob}"]
locked = ["camera_globs"]
"""


def test_a_locked_policy_glob_wins_over_the_settings_file_and_the_command_line(
        tmp_path: Path, devdir: Path, holders: list[Holder]) -> None:
    watched = make_standin(devdir / "video0")
    other = tmp_path / "elsewhere"
    other.mkdir()
    decoy = make_standin(other / "video9")
    holders.append(Holder([watched, decoy]))
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(glob=devdir / "video*"))
    env = camguard_env(tmp_path, CAMGUARD_POLICY_FILE=str(policy))
    (tmp_path / "config" / "settings.json").write_text(json.dumps(
        {"detection": {"camera_globs": [str(other / "video*")],
                       "watch_sound_server": False}}))

    def cameras(*args: str) -> tuple[list[str], str]:
        out = run(env, "status", "--json", "--mic-glob", f"{devdir}/snd/pcm*c", *args)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        return [d["path"] for d in doc["devices"] if d["kind"] == "camera"], out.stderr

    paths, err = cameras()
    assert paths == [str(watched)] and err == ""
    paths, err = cameras("--camera-glob", str(other / "video*"))
    assert paths == [str(watched)]
    assert "--camera-glob ignored: the setting 'camera_globs' is locked by policy" in err

    # Not locked: the policy's value is a default; the file, then the command line, win.
    policy.write_text(POLICY.format(glob=devdir / "video*").replace(
        'locked = ["camera_globs"]', ""))
    assert cameras()[0] == [str(decoy)]
    assert cameras("--camera-glob", str(devdir / "video*"))[0] == [str(watched)]


# -- the parental lock on rule changes -------------------------------------------------------
def test_changing_rules_needs_the_lock_password(tmp_path: Path) -> None:
    env = camguard_env(tmp_path)
    guard = LockGuard(tmp_path / "config" / "lock.json", SystemClock(), base=0.001)
    assert guard.set_password("letmein").ok
    add = ["rules", "add", "--name", "zoom", "--verdict", "allow", "--label", "z"]
    out = run(env, *add)
    assert out.returncode == 3 and "changing rules" in out.stderr, out.stderr
    assert RuleFile(tmp_path / "config" / "rules.json").load().rules == []
    out = run(env, *add, "--password-stdin", stdin="wrong\n")
    assert out.returncode == 3 and "wrong password" in out.stderr
    realenv.wait_until(lambda: guard.status()["retry_after"] == 0, 10, "the back-off")
    out = run(env, *add, "--password-stdin", stdin="letmein\n")
    assert out.returncode == 0, out.stderr
    [rule] = RuleFile(tmp_path / "config" / "rules.json").load().rules
    for args in (("rules", "remove", rule.id), ("rules", "mode", "notify-only"),
                 ("rules", "import", str(tmp_path / "config" / "rules.json"))):
        assert run(env, *args).returncode == 3, args
    assert run(env, "rules", "mode").returncode == 0  # showing changes nothing
    out = run(env, "rules", "remove", rule.id, "--password-stdin", stdin="letmein\n")
    assert out.returncode == 0, out.stderr


# -- the self-test from the settings window --------------------------------------------------
@pytest.mark.real
def test_the_settings_window_runs_the_real_selftest(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live],
        monkeypatch: pytest.MonkeyPatch) -> None:
    need_root()
    monkeypatch.setenv("PULSE_SERVER", f"unix:{dirs.root}/no-such-server")
    node = make_standin(dirs.devdir / "video0")
    before = os.stat(node).st_mode
    settings = DetectionSettings(camera_globs=(dirs.camera_glob,), mic_globs=(dirs.mic_glob,),
                                 watch_sound_server=False)
    live = launch(qtbot, dirs, holders, TrayOptions(selftest=selftest_runner(settings)))
    lives.append(live)
    live.controller.request_settings()
    assert live.parts.windows is not None
    dlg = live.parts.windows.settings
    assert dlg is not None and not dlg.general.selftest_button.isHidden()
    with qtbot.waitSignal(dlg.selftest_finished, timeout=110_000) as done:
        dlg.general.selftest_button.click()
    [text] = done.args
    lines = text.splitlines()
    assert f"PASSED        camera.detected.held {node}: camguard named its own open" in text
    assert any(ln.startswith("PASSED        kill-switch.on camera") for ln in lines), text
    assert re.fullmatch(r"selftest: \d+ passed, 0 failed, \d+ not provable \([0-9.]+ s\)",
                        lines[-1]), text
    assert dlg.general.selftest_output.toPlainText().endswith(lines[-1])
    assert os.stat(node).st_mode == before  # switched back on
