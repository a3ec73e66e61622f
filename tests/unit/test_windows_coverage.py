"""What the Windows sources say they see (coverage), and the service's microphone: the
service (LocalSystem) cannot see people's Core Audio sessions, so it names microphone users
from every logged-on user's ConsentStore and says "partial", never "watching". On Linux:
WindowsPlatform with FakeWinreg fed by recorded exports (tests/data/windows), real child
processes standing for the apps."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.coverage import CoverageState
from camguard.core.models import DeviceKind
from camguard.core.settings import DetectionSettings
from camguard.platform.process import ProcessDescriber
from camguard.platform.windows.backend import WindowsPlatform
from camguard.platform.windows.consent import entries_from_export
from camguard.platform.windows.coverage import SERVICE_MIC, SERVICE_MIC_NOTE, ServiceMicSource
from camguard.platform.windows.regfile import parse
from camguard.platform.windows.sources import CameraSource, MicSource
from tests.fakes import FakeWinreg

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
ZOOM = "C:\\Program Files\\Zoom\\bin\\Zoom.exe"


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def service_sources(monkeypatch: pytest.MonkeyPatch, *, elevated: bool) -> list[object]:
    exports = [DATA / "consent_hku.reg", DATA / "consent_hklm_dword_pairs.reg"]
    winreg = FakeWinreg({k.path: dict(k.values) for f in exports for k in parse(f.read_bytes())})
    monkeypatch.setitem(sys.modules, "winreg", winreg)
    plat = WindowsPlatform(winreg, elevated=elevated)
    # The service's settings: no sound server of its own (cli/service_run.py).
    return list(plat.usage_sources(DetectionSettings(watch_sound_server=False),
                                   ProcessDescriber()))


def test_the_service_says_its_microphone_is_partial_and_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sources = service_sources(monkeypatch, elevated=True)
    names = [getattr(s, "name", "") for s in sources]
    assert names == ["mf-sensor", "consentstore-mic"]
    mic = sources[1]
    assert isinstance(mic, ServiceMicSource)
    snap = mic.snapshot()
    assert snap.degraded is None  # it reads every logged-on user's store (FakeWinreg)
    [cov] = mic.coverage(snap)
    assert cov.sensor == "microphone" and cov.state is CoverageState.PARTIAL
    assert "cannot see people's Core Audio capture sessions" in cov.reason
    assert "tray watches their own microphone live" in cov.reason
    # The camera source's ConsentStore fallback leaves the microphone to that source.
    camera = sources[0]
    assert isinstance(camera, CameraSource)
    assert camera.fallback_kinds == frozenset({DeviceKind.CAMERA})


def test_an_unelevated_run_without_the_sound_server_adds_no_consent_microphone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    names = [getattr(s, "name", "") for s in service_sources(monkeypatch, elevated=False)]
    assert names == ["mf-sensor"]


def test_the_service_names_a_running_app_the_store_says_records(
        child: subprocess.Popen[bytes]) -> None:
    entries = entries_from_export((DATA / "consent_hkcu.reg").read_bytes())
    assert any(e.app == ZOOM and e.kind == "microphone" and e.in_use for e in entries)
    source = ServiceMicSource(lambda: entries, lambda: [(child.pid, ZOOM)], ProcessDescriber())
    snap = source.snapshot()
    assert [(u.device.kind, u.process.pid if u.process else None, u.note)
            for u in snap.usages] == [(DeviceKind.MICROPHONE, child.pid, SERVICE_MIC_NOTE)]
    # Nothing running with that exe: the store's "in use" is history, never shown.
    assert ServiceMicSource(lambda: entries, lambda: [], ProcessDescriber()
                            ).snapshot().usages == frozenset()


def test_an_unreadable_store_leaves_the_service_blind_on_the_microphone() -> None:
    def broken() -> list[object]:
        raise OSError("access denied to HKU\\S-1-5-21-1")

    source = ServiceMicSource(broken, lambda: [], ProcessDescriber())  # type: ignore[arg-type]
    snap = source.snapshot()
    assert snap.degraded is not None and "access denied" in snap.degraded.reason
    [cov] = source.coverage(snap)
    assert cov.state is CoverageState.BLIND and cov.reason.startswith(SERVICE_MIC)
    [none] = ServiceMicSource(None, None, ProcessDescriber()).coverage(None)
    assert none.state is CoverageState.BLIND and "no winreg" in none.reason


def test_the_trays_sources_say_what_they_watch() -> None:
    [mic] = MicSource(lambda: [], ProcessDescriber()).coverage(None)
    assert mic.state is CoverageState.WATCHING and "this logon session" in mic.reason
    [gone] = MicSource(None, ProcessDescriber(), unavailable="no pycaw").coverage(None)
    assert (gone.state, gone.reason) == (CoverageState.BLIND, "no pycaw")
    [fallback] = CameraSource(None, ProcessDescriber(), unavailable="no sensor monitor",
                              consent=lambda: [], processes=lambda: []).coverage(None)
    assert fallback.state is CoverageState.PARTIAL and "ConsentStore" in fallback.reason
    [blind] = CameraSource(None, ProcessDescriber(), unavailable="no sensor monitor"
                           ).coverage(None)
    assert (blind.state, blind.reason) == (CoverageState.BLIND, "no sensor monitor")
