"""The contract test for the Windows platform, on Linux: the backend is imported with Fake
``winreg`` and ``comtypes`` modules in sys.modules (tests.fakes), and every capability must
be present or a null object that says why in one sentence; its usage sources must answer a
snapshot without raising (degraded, saying why, where Windows itself is missing)."""

from __future__ import annotations

import ctypes
import sys
import types
from typing import Any

import pytest

from camguard import platform as facade
from camguard.platform import base
from camguard.platform.process import ProcessDescriber
from tests.fakes import FakeWinreg
from tests.unit.test_contracts import NULLS, SETTINGS, capabilities


def fake_comtypes() -> types.ModuleType:
    """Enough of comtypes for com.py to declare its interfaces; Windows' DLLs stay absent."""
    mod = types.ModuleType("comtypes")
    mod.GUID = str  # type: ignore[attr-defined]
    mod.HRESULT = int  # type: ignore[attr-defined]
    mod.COMMETHOD = lambda *a: a  # type: ignore[attr-defined]
    # A ctypes type, as comtypes' is, so that POINTER(interface) can be declared.
    mod.IUnknown = type("IUnknown", (ctypes.c_void_p,), {})  # type: ignore[attr-defined]
    mod.COMObject = type("COMObject", (), {})  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Any:
    winreg = FakeWinreg()
    monkeypatch.setitem(sys.modules, "winreg", winreg)
    monkeypatch.setitem(sys.modules, "comtypes", fake_comtypes())
    monkeypatch.setattr(sys, "platform", "win32")
    chosen = facade.current.__wrapped__()  # the façade's choice, without its cache
    return chosen


def test_the_facade_chooses_the_windows_backend_on_win32(windows: Any) -> None:
    from camguard.platform.windows.backend import WindowsPlatform

    assert isinstance(windows, WindowsPlatform) and windows.name == "win32"


def test_every_windows_capability_is_provided_or_a_null_object(windows: Any) -> None:
    assert isinstance(windows, base.Platform)
    built = capabilities(windows)
    for name, (obj, protocol) in built.items():
        assert obj is not None, name
        assert isinstance(obj, protocol), (name, obj)
        if isinstance(obj, NULLS):
            reason = obj.reason
            assert reason and "\n" not in reason and ". " not in reason, (name, reason)
    nulls = sorted(n for n, (obj, _p) in built.items() if isinstance(obj, NULLS))
    # What is not finished, said plainly (packaging/README.md lists the same).
    assert nulls == ["freezer", "mic_switch", "origin_resolver", "probes"]
    assert built["autostart"][0].is_enabled() is False  # the HKCU Run key, in FakeWinreg
    assert str(built["service_transport"][0].default_address()) == "\\\\.\\pipe\\camguard"
    with pytest.raises(OSError, match="a named pipe has no socket peer"):
        built["service_transport"][0].peer_credentials(None)


def test_windows_sources_snapshot_without_windows(windows: Any) -> None:
    sources = windows.usage_sources(SETTINGS.__class__(watch_sound_server=True),
                                    ProcessDescriber())
    assert [s.name for s in sources] == ["mf-sensor", "wasapi"]
    for source in sources:
        assert isinstance(source, base.UsageSource)
        snap = source.snapshot()
        assert snap.degraded is not None and snap.usages == frozenset(), source.name
    camera, mic = (s.snapshot().degraded for s in sources)
    assert camera is not None and "sensor monitor" in camera.reason
    assert mic is not None and "pycaw" in mic.reason


def test_windows_system_paths_move_with_the_variables(windows: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Any) -> None:
    got = windows.system_paths()
    monkeypatch.delenv("CAMGUARD_DATA_DIR", raising=False)
    assert got.service_data_dir().name == "data"
    assert got.service_data_dir().parent.name == "camguard"
    monkeypatch.setenv("CAMGUARD_DATA_DIR", str(tmp_path))
    assert got.service_data_dir() == tmp_path


def test_elevated_windows_denies_by_machine_policy_and_reads_every_users_store(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The service (elevated, LocalSystem) flips HKLM's policy and reads each logged-on
    user's ConsentStore; a user's camguard flips and reads its own (HKCU)."""
    from camguard.core.models import DeviceKind
    from camguard.platform.windows.backend import WindowsPlatform
    from camguard.platform.windows.consent_reader import ConsentReader
    from camguard.platform.windows.enforcer import WindowsEnforcer

    monkeypatch.setitem(sys.modules, "comtypes", fake_comtypes())
    seen: list[tuple[str, ...]] = []
    real_read = ConsentReader.read

    def read(self: ConsentReader) -> Any:
        seen.append(tuple(self.roots))
        return real_read(self)

    monkeypatch.setattr(ConsentReader, "read", read)
    for elevated, policy in ((True, True), (False, False)):
        plat = WindowsPlatform(FakeWinreg(), elevated=elevated)
        enforcer = plat.enforcer(SETTINGS, plat.killer(()))
        assert isinstance(enforcer, WindowsEnforcer) and enforcer.machine is policy
        assert enforcer.devices is None  # no cfgmgr32 here: the privacy switches remain
        [camera] = plat.usage_sources(SETTINGS, ProcessDescriber())[:1]
        camera.snapshot()  # the fallback reads the ConsentStore
        assert enforcer.holders(DeviceKind.CAMERA) == []
    assert seen[0] == ("HKLM",) and seen[-1] == ("HKCU", "HKLM")  # no user hives in HKU here
