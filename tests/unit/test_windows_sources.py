"""The Windows usage sources' decisions, on Linux, against recorded traces (tests/data/windows:
written to the documented shapes, not captured on Windows): the sensor monitor's state
machine (pid changes, a device that vanishes, malformed reports), Core Audio session polls,
and the ConsentStore fallback, which never shows a stale "in use" entry as live use.
Processes are real children of the test; the killer ends them for real (psutil)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import Outcome
from camguard.core.models import DeviceKind
from camguard.platform.process import ProcessDescriber
from camguard.platform.windows.activity import CameraActivity, microphone_users
from camguard.platform.windows.consent import entries_from_export
from camguard.platform.windows.consent_reader import ConsentReader
from camguard.platform.windows.kill import WindowsKiller, refusal
from camguard.platform.windows.regfile import parse
from camguard.platform.windows.registry import Registry
from camguard.platform.windows.sources import FALLBACK_NOTE, CameraSource, MicSource
from tests.fakes import FakeSensorFeed, FakeWinreg

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
ZOOM = "C:\\Program Files\\Zoom\\bin\\Zoom.exe"
TEAMS = "C:\\Program Files (x86)\\Microsoft\\Teams\\current\\Teams.exe"


def load(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_sensor_trace_step_by_step() -> None:
    state = CameraActivity()
    for step in load("sensor_trace.json")["steps"]:
        state.apply(step["event"])
        got = {u.device: sorted(u.pids) for u in state.users()}
        assert got == step["expect"], step["why"]


def test_sensor_reports_that_change_nothing_say_so() -> None:
    state = CameraActivity()
    procs = [{"pid": 5, "streaming": True}]
    report = {"report": {"device": "cam", "name": "c", "processes": procs}}
    assert state.apply(report) is True
    assert state.apply(report) is False
    assert state.apply({"removed": "other"}) is False
    assert state.apply({"removed": "cam"}) is True and state.users() == []


def test_audio_polls() -> None:
    for poll in load("audio_polls.json")["polls"]:
        got = {u.device: sorted(u.pids) for u in microphone_users(poll["endpoints"])}
        assert got == poll["expect"], poll["why"]


def test_camera_source_names_the_real_process_and_wakes(child: subprocess.Popen[bytes]
                                                        ) -> None:
    feed = FakeSensorFeed()
    source = CameraSource(feed, ProcessDescriber())
    wakes: list[int] = []
    source.start(lambda: wakes.append(1))
    feed.send({"report": {"device": "cam0", "name": "Integrated Camera",
                          "processes": [{"pid": child.pid, "streaming": True}]}})
    snap = source.snapshot()
    (usage,) = snap.usages
    assert usage.process is not None and usage.process.pid == child.pid
    assert usage.device.kind is DeviceKind.CAMERA and usage.device.name == "Integrated Camera"
    assert wakes == [1] and snap.degraded is None
    feed.send({"removed": "cam0"})
    assert source.snapshot().usages == frozenset() and wakes == [1, 1]
    source.stop()


def test_camera_source_one_shot_starts_and_stops_the_monitor(
        child: subprocess.Popen[bytes]) -> None:
    feed = FakeSensorFeed([{"report": {"device": "cam0", "name": "Cam",
                                       "processes": [{"pid": child.pid, "streaming": True}]}}])
    snap = CameraSource(feed, ProcessDescriber()).snapshot()
    assert [u.process.pid for u in snap.usages if u.process] == [child.pid]
    assert feed.starts == 1 and feed.on_event is None


def test_stale_consent_entry_is_never_live_use(child: subprocess.Popen[bytes]) -> None:
    """Without the sensor monitor, the ConsentStore names live use only for an exe that
    runs: Zoom (a running process) is shown with a note; Teams, "in use" since a crash in
    2024 with nothing running, is not."""
    entries = entries_from_export((DATA / "consent_hkcu.reg").read_bytes())
    assert any(e.app == TEAMS and e.in_use for e in entries)  # the store says "in use"
    source = CameraSource(None, ProcessDescriber(), unavailable="no sensor monitor here",
                          consent=lambda: entries,
                          processes=lambda: [(child.pid, ZOOM), (os.getpid(), "C:\\x.exe")])
    snap = source.snapshot()
    assert snap.degraded is not None and snap.degraded.reason == "no sensor monitor here"
    got = sorted((u.device.kind, u.process.pid if u.process else None, u.note)
                 for u in snap.usages)
    assert got == [(DeviceKind.CAMERA, child.pid, FALLBACK_NOTE),
                   (DeviceKind.MICROPHONE, child.pid, FALLBACK_NOTE)]
    nothing_runs = CameraSource(None, ProcessDescriber(), consent=lambda: entries,
                                processes=lambda: []).snapshot()
    assert nothing_runs.usages == frozenset() and nothing_runs.degraded is not None


def test_mic_source_polls_and_degrades(child: subprocess.Popen[bytes]) -> None:
    endpoints = [{"id": "mic0", "name": "Microphone", "sessions": [
        {"pid": child.pid, "state": 1}, {"pid": 999_999_999, "state": 1}]}]
    snap = MicSource(lambda: endpoints, ProcessDescriber()).snapshot()
    named = {u.process.pid for u in snap.usages if u.process}
    assert named == {child.pid} and snap.recheck_in == 1.0
    assert any(u.process is None and "pid 999999999" in u.note for u in snap.usages)

    def broken() -> list[dict[str, object]]:
        raise OSError("AUDCLNT_E_DEVICE_INVALIDATED")

    bad = MicSource(broken, ProcessDescriber()).snapshot()
    assert bad.degraded is not None and "AUDCLNT_E_DEVICE_INVALIDATED" in bad.degraded.reason


def test_live_reader_reads_what_the_export_file_holds() -> None:
    """The live reader (winreg, here FakeWinreg fed by the same export) and the .reg decoder
    agree entry for entry."""
    reg = DATA / "consent_hkcu.reg"
    live = ConsentReader(Registry(FakeWinreg.from_reg_file(reg)), roots=("HKCU",)).read()
    assert live == entries_from_export(reg.read_bytes())
    hku = DATA / "consent_hku.reg"
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
    got = ConsentReader(Registry(FakeWinreg.from_reg_file(hku)), roots=(f"HKU\\{sid}",)).read()
    assert [(e.hive, e.in_use) for e in got] == [(f"HKU\\{sid}", True)]


@pytest.mark.parametrize(("pid", "name", "exe", "why"), [
    (4, "System", "", "kernel"),
    (600, "csrss.exe", "C:\\Windows\\System32\\csrss.exe", "crash Windows"),
    (900, "svchost.exe", "c:\\windows\\system32\\SVCHOST.EXE", "Frame Server"),
    (910, "audiodg.exe", "C:\\Windows\\System32\\audiodg.exe", "mute the microphone"),
    (920, "lsass.exe", "", "crash Windows"),  # exe unreadable: refuse, never guess
    (4242, "camguard.exe", "C:\\Program Files\\camguard\\camguard.exe", "camguard itself"),
])
def test_refusals(pid: int, name: str, exe: str, why: str) -> None:
    reason = refusal(pid, name, exe, own={4242})
    assert reason is not None and why in reason


def test_a_fake_system_name_elsewhere_may_be_ended() -> None:
    assert refusal(5000, "svchost.exe", "C:\\Users\\x\\AppData\\svchost.exe", own=()) is None


def test_killer_ends_the_real_process_and_never_a_reused_pid(
        child: subprocess.Popen[bytes]) -> None:
    killer = WindowsKiller(wait=10)
    started = psutil.Process(child.pid).create_time()
    wrong = killer.kill(child.pid, started + 100)
    assert wrong.outcome is Outcome.NOT_FOUND and "another process" in wrong.message
    assert child.poll() is None  # untouched
    me = killer.kill(os.getpid())
    assert me.outcome is Outcome.REFUSED and "camguard itself" in me.message
    done = killer.kill(child.pid, started)
    assert done.outcome is Outcome.DONE, done.message
    assert child.wait(10) is not None
    assert killer.kill(child.pid, started).outcome is Outcome.NOT_FOUND


def test_a_service_reads_every_logged_on_user_and_hklm() -> None:
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
    exports = [DATA / "consent_hku.reg", DATA / "consent_hklm_dword_pairs.reg"]
    winreg = FakeWinreg({k.path: dict(k.values) for f in exports for k in parse(f.read_bytes())})
    for other in (f"{sid}_Classes", ".DEFAULT", "S-1-5-18", "S-1-5-19", "S-1-12-1-1-2-3-4"):
        winreg.CreateKeyEx("HKEY_USERS", other)
    reader = ConsentReader.for_service(Registry(winreg))
    assert reader.roots == ("HKU\\S-1-12-1-1-2-3-4", f"HKU\\{sid}", "HKLM")
    assert sorted({e.hive for e in reader.read()}) == ["HKLM", f"HKU\\{sid}"]


def test_without_the_sensor_monitor_a_consentstore_change_wakes_the_fallback() -> None:
    from tests.fakes import FakeConsentWatcher
    from tests.realenv import wait_until

    watch = FakeConsentWatcher()
    source = CameraSource(None, ProcessDescriber(), consent=lambda: [],
                          processes=lambda: [], watch=watch)
    wakes: list[int] = []
    source.start(lambda: wakes.append(1))
    wait_until(watch.running.is_set, 10, "the watcher thread runs")
    watch.change()
    wait_until(lambda: wakes == [1], 10, "one wake per ConsentStore change")
    source.stop()
    assert not watch.running.is_set()


def test_a_sensor_monitor_that_fails_to_start_degrades_never_raises() -> None:
    running = CameraSource(FakeSensorFeed(fail=True), ProcessDescriber())
    running.start(lambda: None)  # must not raise into the monitor
    snap = running.snapshot()
    assert snap.degraded is not None and "did not start" in snap.degraded.reason
    assert "MF_E_UNSUPPORTED_SERVICE" in snap.degraded.reason
    running.stop()
    one_shot = CameraSource(FakeSensorFeed(fail=True), ProcessDescriber()).snapshot()
    assert one_shot.degraded is not None and "MF_E_UNSUPPORTED_SERVICE" in one_shot.degraded.reason
