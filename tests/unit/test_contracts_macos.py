"""The façade contract (tests/unit/test_contracts.py) for macOS, on Linux: the backend is
imported with Fake pyobjc modules, the façade picks it for ``darwin``, and every capability
is a working object or a null object that says why in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from camguard import platform as facade
from camguard.core.blocks import BlockOptions, Outcome
from camguard.core.models import DeviceKind
from camguard.platform import base
from camguard.platform.macos import hal
from camguard.platform.macos.backend import MacPlatform, UnavailableSource
from camguard.platform.macos.source import MacSource
from camguard.platform.process import ProcessDescriber
from tests.fakes import FakeFoundation, FakeHal, FakePyObjCFramework
from tests.unit.test_contracts import NULLS, SETTINGS, capabilities

PYOBJC_MODULES = ("objc", "Foundation", "CoreAudio", "CoreMediaIO", "AVFoundation")


@pytest.fixture
def fake_pyobjc(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeHal]:
    """Fake CoreAudio, CoreMediaIO and Foundation modules over recorded object trees."""
    audio, cmio = FakeHal(), FakeHal()
    for tree in (audio, cmio):
        tree.set(hal.SYSTEM_OBJECT, hal.DEVICES, [])
    monkeypatch.setitem(sys.modules, "CoreAudio",
                        FakePyObjCFramework(audio, "AudioObject").module)
    monkeypatch.setitem(sys.modules, "CoreMediaIO",
                        FakePyObjCFramework(cmio, "CMIOObject").module)
    monkeypatch.setitem(sys.modules, "Foundation", FakeFoundation().module)
    return {"audio": audio, "cmio": cmio}


def test_importing_the_backend_loads_no_pyobjc() -> None:
    code = ("import sys, camguard.platform.macos.backend, camguard.platform.macos.source; "
            f"print([m for m in {PYOBJC_MODULES!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_facade_chooses_the_mac_backend_on_darwin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    chosen = facade.current.__wrapped__()  # the cached choice stays this machine's
    assert isinstance(chosen, MacPlatform) and chosen.name == "darwin"


def test_every_mac_capability_is_provided_or_a_null_object(
        fake_pyobjc: dict[str, FakeHal]) -> None:
    p = MacPlatform((14, 5))
    assert isinstance(p, base.Platform)
    built = capabilities(p)
    for name, (obj, protocol) in built.items():
        assert obj is not None, name
        assert isinstance(obj, protocol), (name, obj)
        if isinstance(obj, NULLS):
            reason: Any = obj.reason
            assert reason and "\n" not in reason and ". " not in reason, (name, reason)
    # Where an app comes from (its Team ID) is not read on macOS yet, and freezing while
    # asking has no journal and watchdog there: said plainly.
    assert [n for n, (obj, _p) in built.items() if isinstance(obj, NULLS)] == [
        "origin_resolver", "freezer"]
    (source,) = p.usage_sources(SETTINGS, ProcessDescriber())
    assert isinstance(source, MacSource) and isinstance(source, base.UsageSource)
    snap = source.snapshot()
    assert snap.source == "macos" and snap.usages == frozenset() and snap.degraded is None


def test_without_pyobjc_each_capability_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PYOBJC_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # an import of it raises ImportError
    p = MacPlatform((14, 5))
    built = capabilities(p)
    assert [n for n, (obj, _p) in built.items() if isinstance(obj, NULLS)] == [
        "mic_switch", "origin_resolver", "freezer"]
    assert "pyobjc-framework-CoreAudio" in built["mic_switch"][0].reason
    blocked = built["enforcer"][0].apply(DeviceKind.MICROPHONE, BlockOptions())
    assert blocked.steps == () and "pyobjc-framework-CoreAudio" in blocked.result.message
    (source,) = p.usage_sources(SETTINGS, ProcessDescriber())
    assert isinstance(source, UnavailableSource) and isinstance(source, base.UsageSource)
    snap = source.snapshot()
    assert snap.degraded is not None and "pyobjc-framework-CoreAudio" in snap.degraded.reason
    source.start(lambda: None)
    source.stop()


def test_the_mac_answers_where_macos_has_no_such_thing(
        fake_pyobjc: dict[str, FakeHal]) -> None:
    p = MacPlatform((14, 5))
    assert p.mic_control() is None
    applied = p.enforcer(SETTINGS, p.killer(())).apply(DeviceKind.CAMERA, BlockOptions())
    assert applied.steps == () and applied.result.outcome is Outcome.FAILED
    assert "no third-party app switch a camera off" in applied.result.message
    probes = p.probes()
    assert probes.sound_server_facts().reachable is False and probes.open_holders(["x"]) == {}
    assert probes.process_owner(os.getpid()) == os.geteuid()
    assert probes.process_owner(2**22 + 12345) is None


def test_camguard_status_through_the_mac_backend(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Any, fake_pyobjc: dict[str, FakeHal]) -> None:
    """The whole path on Linux: CLI -> app -> façade -> MacSource -> Fake pyobjc."""
    import json

    from camguard.cli import main

    cmio = fake_pyobjc["cmio"]
    cmio.set(hal.SYSTEM_OBJECT, hal.DEVICES, [30])
    cmio.set(30, hal.DEVICE_UID, "cam")
    cmio.set(30, hal.NAME, "FaceTime HD Camera")
    cmio.set(30, hal.RUNNING_SOMEWHERE, 1)
    fake_pyobjc["audio"].set(hal.SYSTEM_OBJECT, hal.PROCESS_OBJECTS, [])
    for var in ("STATE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"CAMGUARD_{var}_DIR", str(tmp_path / var.lower()))
    monkeypatch.setenv("CAMGUARD_SOCKET", str(tmp_path / "no-service.sock"))
    monkeypatch.setattr(facade, "current", lambda: MacPlatform((14, 5)))
    assert main(["status", "--json"]) == 0
    (device,) = json.loads(capsys.readouterr().out)["devices"]
    assert (device["id"], device["source"]) == ("cmio:cam", "macos")
    (user,) = device["users"]
    assert user["pid"] is None and "reads the unified log only while it watches" in user["note"]
