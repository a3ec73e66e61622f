"""Thin COM adapters (comtypes, pycaw), Windows only, imported lazily: they turn Windows'
callbacks and session lists into the plain dicts activity.py decides on. NEVER RUN: written
from the Windows SDK headers (mfidl.h, audiopolicy.h) and pycaw's API; there is no Windows
machine here. Everything they feed is tested with recorded traces (tests/data/windows).

* :class:`SensorActivityFeed`: MFCreateSensorActivityMonitor (mfsensorgroup.dll, Windows 10
  1703+) with an IMFSensorActivitiesReportCallback; each report becomes
  ``{"report": {"device", "name", "processes": [{"pid", "streaming"}]}}``.
* :func:`capture_endpoints`: the active capture endpoints (IMMDeviceEnumerator, eCapture),
  each with its sessions (IAudioSessionManager2 -> IAudioSessionControl2 GetProcessId,
  GetState).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable, Mapping
from typing import Any

IID_CALLBACK = "{DE5072EE-DBE3-46DC-8A87-B6F631194751}"
IID_REPORTS = "{683F7A5E-4A19-43CD-B1A9-DBF4AB3F7777}"
IID_REPORT = "{3E8C4BE1-A8C2-4528-90DE-2851BDE5FEAD}"
IID_PROCESS = "{39DC7F4A-B141-4719-813C-A7F46162A2B8}"
IID_MONITOR = "{D0CEF145-B3F4-4340-A2E5-7A5080CA05CB}"
MF_VERSION = 0x00020070
MAX_TEXT = 1024


def _interfaces(comtypes: Any) -> dict[str, Any]:
    """The mfidl.h sensor-activity interfaces, declared for comtypes (vtable order as in the
    SDK header)."""
    from ctypes import POINTER, c_int, c_longlong, c_uint, c_wchar

    COMMETHOD, GUID, HRESULT, IUnknown = (comtypes.COMMETHOD, comtypes.GUID, comtypes.HRESULT,
                                          comtypes.IUnknown)

    class IMFSensorProcessActivity(IUnknown):  # type: ignore[misc, valid-type]
        _iid_ = GUID(IID_PROCESS)
        _methods_ = [  # noqa: RUF012 - comtypes reads a list
            COMMETHOD([], HRESULT, "GetProcessId", (["out"], POINTER(c_uint), "pid")),
            COMMETHOD([], HRESULT, "GetStreamingState", (["out"], POINTER(c_int), "streaming")),
            COMMETHOD([], HRESULT, "GetStreamingMode", (["out"], POINTER(c_int), "mode")),
            COMMETHOD([], HRESULT, "GetReportTime", (["out"], POINTER(c_longlong), "ft"))]

    class IMFSensorActivityReport(IUnknown):  # type: ignore[misc, valid-type]
        _iid_ = GUID(IID_REPORT)
        _methods_ = [  # noqa: RUF012 - comtypes reads a list
            COMMETHOD([], HRESULT, "GetFriendlyName", (["in"], POINTER(c_wchar), "name"),
                      (["in"], c_uint, "cch"), (["out"], POINTER(c_uint), "written")),
            COMMETHOD([], HRESULT, "GetSymbolicLink", (["in"], POINTER(c_wchar), "link"),
                      (["in"], c_uint, "cch"), (["out"], POINTER(c_uint), "written")),
            COMMETHOD([], HRESULT, "GetProcessCount", (["out"], POINTER(c_uint), "count")),
            COMMETHOD([], HRESULT, "GetProcessActivity", (["in"], c_uint, "index"),
                      (["out"], POINTER(POINTER(IMFSensorProcessActivity)), "activity"))]

    class IMFSensorActivitiesReport(IUnknown):  # type: ignore[misc, valid-type]
        _iid_ = GUID(IID_REPORTS)
        _methods_ = [  # noqa: RUF012 - comtypes reads a list
            COMMETHOD([], HRESULT, "GetCount", (["out"], POINTER(c_uint), "count")),
            COMMETHOD([], HRESULT, "GetActivityReport", (["in"], c_uint, "index"),
                      (["out"], POINTER(POINTER(IMFSensorActivityReport)), "report")),
            COMMETHOD([], HRESULT, "GetActivityReportByDeviceName",
                      (["in"], ctypes.c_wchar_p, "name"),
                      (["out"], POINTER(POINTER(IMFSensorActivityReport)), "report"))]

    class IMFSensorActivitiesReportCallback(IUnknown):  # type: ignore[misc, valid-type]
        _iid_ = GUID(IID_CALLBACK)
        _methods_ = [COMMETHOD([], HRESULT, "OnActivitiesReport",  # noqa: RUF012
                               (["in"], POINTER(IMFSensorActivitiesReport), "reports"))]

    class IMFSensorActivityMonitor(IUnknown):  # type: ignore[misc, valid-type]
        _iid_ = GUID(IID_MONITOR)
        _methods_ = [COMMETHOD([], HRESULT, "Start"),  # noqa: RUF012
                     COMMETHOD([], HRESULT, "Stop")]

    return {"callback": IMFSensorActivitiesReportCallback, "monitor": IMFSensorActivityMonitor}


def _text(getter: Callable[..., Any]) -> str:
    buf = ctypes.create_unicode_buffer(MAX_TEXT)
    getter(buf, MAX_TEXT)
    return buf.value


def report_events(reports: Any) -> list[dict[str, Any]]:
    """An IMFSensorActivitiesReport as activity.CameraActivity events."""
    out = []
    for i in range(min(reports.GetCount(), 64)):
        report = reports.GetActivityReport(i)
        procs = []
        for j in range(min(report.GetProcessCount(), 256)):
            act = report.GetProcessActivity(j)
            procs.append({"pid": int(act.GetProcessId()),
                          "streaming": bool(act.GetStreamingState())})
        out.append({"report": {"device": _text(report.GetSymbolicLink),
                               "name": _text(report.GetFriendlyName), "processes": procs}})
    return out


class SensorActivityFeed:
    """sources.SensorFeed over IMFSensorActivityMonitor. Reports arrive on an MTA thread of
    Media Foundation's; ``on_event`` must be quick and thread-safe (it is: sources.py)."""

    def __init__(self) -> None:
        import comtypes  # type: ignore[import-not-found, import-untyped, unused-ignore]

        self.comtypes = comtypes
        self._ifaces = _interfaces(self.comtypes)
        mfplat = ctypes.WinDLL("mfplat.dll")  # type: ignore[attr-defined, unused-ignore]
        self._create = ctypes.WinDLL("mfsensorgroup.dll").MFCreateSensorActivityMonitor  # type: ignore[attr-defined, unused-ignore]
        # HRESULT results raise OSError on failure instead of returning a silent int.
        mfplat.MFStartup.restype = self._create.restype = ctypes.HRESULT  # type: ignore[attr-defined, unused-ignore]
        mfplat.MFStartup(MF_VERSION, 0)
        self._monitor: Any = None
        self._lock = threading.Lock()

    def start(self, on_event: Callable[[Mapping[str, Any]], None]) -> None:
        callback_iface = self._ifaces["callback"]

        class Callback(self.comtypes.COMObject):  # type: ignore[misc, name-defined]
            _com_interfaces_ = [callback_iface]  # noqa: RUF012

            def OnActivitiesReport(self, this: Any, reports: Any) -> int:
                try:
                    for event in report_events(reports):
                        on_event(event)
                except Exception:  # nothing may escape into Media Foundation
                    return 0
                return 0

        def begin() -> None:
            self._callback = Callback()
            monitor = ctypes.POINTER(self._ifaces["monitor"])()
            self._create(self._callback.QueryInterface(callback_iface), ctypes.byref(monitor))
            monitor.Start()
            self._monitor = monitor

        with self._lock:
            _os_error(self.comtypes, begin)

    def stop(self) -> None:
        with self._lock:
            if self._monitor is not None:
                monitor, self._monitor = self._monitor, None
                _os_error(self.comtypes, monitor.Stop)


def _com_ready(comtypes: Any) -> None:
    """COM on this thread: the MTA, unless the thread already chose (comtypes makes the
    importing thread an STA; RPC_E_CHANGED_MODE then, and pycaw works in either)."""
    with contextlib.suppress(OSError):
        comtypes.CoInitializeEx(comtypes.COINIT_MULTITHREADED)


def _os_error(comtypes: Any, call: Callable[[], Any]) -> Any:
    """``call()`` with comtypes' COMError (not an OSError) turned into OSError, which the
    sources and the mute switch report as degraded or failed."""
    try:
        return call()
    except comtypes.COMError as exc:
        raise OSError(f"COM error: {exc}") from exc


def capture_endpoints() -> list[Mapping[str, Any]]:
    """One poll of the active capture endpoints and their sessions (pycaw)."""
    import comtypes  # type: ignore[import-not-found, import-untyped, unused-ignore]

    result: list[Mapping[str, Any]] = _os_error(comtypes, _capture_endpoints)
    return result


def _capture_endpoints() -> list[Mapping[str, Any]]:
    # Plain imports (not importlib) so that PyInstaller bundles them.
    import comtypes  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pycaw.constants  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pycaw.pycaw  # type: ignore[import-not-found, import-untyped, unused-ignore]

    constants, audio = pycaw.constants, pycaw.pycaw

    _com_ready(comtypes)
    enumerator = audio.AudioUtilities.GetDeviceEnumerator()
    devices = enumerator.EnumAudioEndpoints(constants.EDataFlow.eCapture.value,
                                            constants.DEVICE_STATE.ACTIVE.value)
    out: list[Mapping[str, Any]] = []
    for i in range(min(devices.GetCount(), 64)):
        dev = devices.Item(i)
        manager = dev.Activate(audio.IAudioSessionManager2._iid_, comtypes.CLSCTX_ALL, None)
        manager = manager.QueryInterface(audio.IAudioSessionManager2)
        sessions = manager.GetSessionEnumerator()
        found = []
        for j in range(min(sessions.GetCount(), 256)):
            control = sessions.GetSession(j).QueryInterface(audio.IAudioSessionControl2)
            found.append({"pid": int(control.GetProcessId()), "state": int(control.GetState())})
        name = audio.AudioUtilities.CreateDevice(dev).FriendlyName or ""
        out.append({"id": dev.GetId(), "name": name, "sessions": found})
    return out


def capture_volumes() -> dict[str, Any]:
    """{endpoint id: IAudioEndpointVolume} of the active capture endpoints (pycaw), for
    mute.EndpointMute (whose GetMute/SetMute calls may still raise COMError: VolumeGuard)."""
    import comtypes  # type: ignore[import-not-found, import-untyped, unused-ignore]

    found: dict[str, Any] = _os_error(comtypes, _capture_volumes)
    return {ep: VolumeGuard(comtypes, vol) for ep, vol in found.items()}


class VolumeGuard:
    """An IAudioEndpointVolume whose COMError is an OSError."""

    def __init__(self, comtypes: Any, volume: Any) -> None:
        self.comtypes, self.volume = comtypes, volume

    def GetMute(self) -> int:  # the COM method's name
        return int(_os_error(self.comtypes, self.volume.GetMute))

    def SetMute(self, mute: bool, context: Any) -> None:
        _os_error(self.comtypes, lambda: self.volume.SetMute(int(mute), context))


def _capture_volumes() -> dict[str, Any]:
    import comtypes  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pycaw.constants  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import pycaw.pycaw  # type: ignore[import-not-found, import-untyped, unused-ignore]

    constants, audio = pycaw.constants, pycaw.pycaw
    _com_ready(comtypes)
    devices = audio.AudioUtilities.GetDeviceEnumerator().EnumAudioEndpoints(
        constants.EDataFlow.eCapture.value, constants.DEVICE_STATE.ACTIVE.value)
    out = {}
    for i in range(min(devices.GetCount(), 64)):
        dev = devices.Item(i)
        iface = dev.Activate(audio.IAudioEndpointVolume._iid_, comtypes.CLSCTX_ALL, None)
        out[str(dev.GetId())] = iface.QueryInterface(audio.IAudioEndpointVolume)
    return out
