"""The façade contract (tests/unit/test_contracts.py) for macOS, on Linux: the backend is
imported with Fake pyobjc modules, the façade picks it for ``darwin``, and every capability
is a working object or a null object that says why in one sentence."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from camguard import platform as facade
from camguard.platform import base, null
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
    nulls = sorted(n for n, (obj, _p) in built.items() if isinstance(obj, NULLS))
    assert nulls == ["enforcer", "mic_switch", "probes"]  # what is not built yet, said why
    (source,) = p.usage_sources(SETTINGS, ProcessDescriber())
    assert isinstance(source, MacSource) and isinstance(source, base.UsageSource)
    snap = source.snapshot()
    assert snap.source == "macos" and snap.usages == frozenset() and snap.degraded is None


def test_without_pyobjc_the_source_says_what_to_install(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    for name in PYOBJC_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # an import of it raises ImportError
    (source,) = MacPlatform((14, 5)).usage_sources(SETTINGS, ProcessDescriber())
    assert isinstance(source, UnavailableSource) and isinstance(source, base.UsageSource)
    snap = source.snapshot()
    assert snap.degraded is not None and "pyobjc-framework-CoreAudio" in snap.degraded.reason
    source.start(lambda: None)
    source.stop()


def test_the_mac_null_objects_answer_like_the_others() -> None:
    p = MacPlatform((14, 5))
    assert p.mic_control() is None
    applied = p.enforcer(SETTINGS, p.killer(())).apply(
        null.DeviceKind.CAMERA, null.BlockOptions())
    assert applied.result.outcome is null.Outcome.FAILED
    assert "not built yet" in applied.result.message
    assert p.probes().sound_server_facts().reachable is False
