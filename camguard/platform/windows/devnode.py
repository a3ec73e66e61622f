"""Switching camera devices off and on at the driver level (Device Manager's "Disable
device"): the one block on Windows that no program can go around, since the device is gone
for everyone until enabled again. Needs an elevated process (the service, or camguard run as
administrator); camguard uses it only when asked (``block camera --unbind-usb`` on Linux is
the same idea: the device leaves its driver).

Why not only the ConsentStore (switches.py): Microsoft documents that desktop apps which do
not ask Windows for the camera are not stopped by the privacy switches; a disabled device
stops them all.

:func:`plan_disable` and :func:`plan_enable` are the decisions (pure): disable only devices
that are enabled now, and on undo enable only devices camguard disabled that are still
disabled (a device someone disabled by hand, before or during the block, stays disabled).
:class:`CfgMgrDevices` is the thin ctypes adapter over setupapi.dll (SetupDiGetClassDevsW,
SetupDiEnumDeviceInfo, SetupDiGetDeviceInstanceIdW) and cfgmgr32.dll (CM_Locate_DevNodeW,
CM_Get_DevNode_Status, CM_Disable_DevNode, CM_Enable_DevNode). NEVER RUN: written from the
Windows SDK headers (setupapi.h, cfgmgr32.h); there is no Windows machine here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Device setup classes of cameras: "Camera" (Windows 10+ UVC) and "Image" (older webcams,
# scanners too: only devices whose instance id names a USB video interface are taken).
GUID_DEVCLASS_CAMERA = "{CA3E7AB9-B4C3-4AE6-8251-579EF933890F}"
GUID_DEVCLASS_IMAGE = "{6BDD1FC6-810F-11D0-BEC7-08002BE2092F}"
DIGCF_PRESENT = 0x2
CR_SUCCESS = 0
DN_STARTED = 0x8
CM_PROB_DISABLED = 22
CM_DISABLE_UI_NOT_OK = 0x4
CM_LOCATE_DEVNODE_NORMAL = 0
MAX_DEVICES = 64
MAX_ID = 200  # MAX_DEVICE_ID_LEN


def is_camera(instance_id: str, setup_class: str) -> bool:
    """A camera device: every "Camera" class device; in the "Image" class only USB video
    (class 0E) interfaces, so a scanner is never switched off."""
    if setup_class.upper() == GUID_DEVCLASS_CAMERA:
        return True
    upper = instance_id.upper()
    return setup_class.upper() == GUID_DEVCLASS_IMAGE and upper.startswith("USB\\") and (
        "MI_" in upper or "CLASS_0E" in upper)


def plan_disable(devices: Mapping[str, bool]) -> list[str]:
    """``{instance id: disabled now}`` -> the ids to disable (enabled now), sorted."""
    return sorted(dev for dev, disabled in list(devices.items())[:MAX_DEVICES] if not disabled)


def plan_enable(data: str, devices: Mapping[str, bool]) -> tuple[list[str], list[str]]:
    """(ids to enable, ids gone): of the ids camguard disabled (``data``, JSON), those still
    present and disabled; a device unplugged meanwhile is gone (nothing to undo)."""
    try:
        ours = json.loads(data) if data else []
    except ValueError:
        return [], []
    if not isinstance(ours, list):
        return [], []
    ids = [d for d in ours[:MAX_DEVICES] if isinstance(d, str) and 0 < len(d) <= MAX_ID]
    return (sorted(d for d in ids if devices.get(d) is True),
            sorted(d for d in ids if d not in devices))


class CfgMgrDevices:
    """``cameras()`` -> {instance id: disabled}; ``disable(id)``, ``enable(id)`` raise
    OSError with the CONFIGRET code. ``dlls``: (setupapi, cfgmgr32), ctypes.WinDLL on
    Windows (the tests give Fake* objects)."""

    def __init__(self, dlls: tuple[Any, Any] | None = None) -> None:
        if dlls is None:
            import ctypes

            dlls = (ctypes.WinDLL("setupapi", use_last_error=True),  # type: ignore[attr-defined, unused-ignore]
                    ctypes.WinDLL("cfgmgr32", use_last_error=True))  # type: ignore[attr-defined, unused-ignore]
        self.setupapi, self.cfgmgr = dlls

    def cameras(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for guid in (GUID_DEVCLASS_CAMERA, GUID_DEVCLASS_IMAGE):
            for instance in self._instances(guid):
                if is_camera(instance, guid) and len(out) < MAX_DEVICES:
                    out[instance] = self._disabled(instance)
        return out

    def _instances(self, guid_text: str) -> list[str]:
        import ctypes
        import uuid

        class GUID(ctypes.Structure):
            _fields_ = [("bytes", ctypes.c_byte * 16)]

        class SP_DEVINFO_DATA(ctypes.Structure):
            _fields_ = [("cbSize", ctypes.c_ulong), ("ClassGuid", GUID),
                        ("DevInst", ctypes.c_ulong), ("Reserved", ctypes.c_void_p)]

        guid = GUID()
        ctypes.memmove(guid.bytes, uuid.UUID(guid_text).bytes_le, 16)
        self.setupapi.SetupDiGetClassDevsW.restype = ctypes.c_void_p
        handle = self.setupapi.SetupDiGetClassDevsW(ctypes.byref(guid), None, None,
                                                    DIGCF_PRESENT)
        if handle in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_last_error(), "SetupDiGetClassDevsW failed")  # type: ignore[attr-defined, unused-ignore]
        found = []
        try:
            for index in range(MAX_DEVICES):
                info = SP_DEVINFO_DATA()
                info.cbSize = ctypes.sizeof(SP_DEVINFO_DATA)
                if not self.setupapi.SetupDiEnumDeviceInfo(ctypes.c_void_p(handle), index,
                                                           ctypes.byref(info)):
                    break  # ERROR_NO_MORE_ITEMS
                buf = ctypes.create_unicode_buffer(MAX_ID + 1)
                if self.setupapi.SetupDiGetDeviceInstanceIdW(
                        ctypes.c_void_p(handle), ctypes.byref(info), buf, MAX_ID + 1, None):
                    found.append(buf.value)
        finally:
            self.setupapi.SetupDiDestroyDeviceInfoList(ctypes.c_void_p(handle))
        return found

    def _devinst(self, instance: str) -> Any:
        import ctypes

        devinst = ctypes.c_ulong()
        code = self.cfgmgr.CM_Locate_DevNodeW(ctypes.byref(devinst), instance,
                                              CM_LOCATE_DEVNODE_NORMAL)
        if code != CR_SUCCESS:
            raise OSError(code, f"CM_Locate_DevNodeW({instance}) failed: CONFIGRET {code}")
        return devinst

    def _disabled(self, instance: str) -> bool:
        import ctypes

        status, problem = ctypes.c_ulong(), ctypes.c_ulong()
        code = self.cfgmgr.CM_Get_DevNode_Status(ctypes.byref(status), ctypes.byref(problem),
                                                 self._devinst(instance), 0)
        if code != CR_SUCCESS:
            raise OSError(code, f"CM_Get_DevNode_Status failed: CONFIGRET {code}")
        return problem.value == CM_PROB_DISABLED

    def disable(self, instance: str) -> None:
        code = self.cfgmgr.CM_Disable_DevNode(self._devinst(instance), CM_DISABLE_UI_NOT_OK)
        if code != CR_SUCCESS:  # CR_NOT_DISABLEABLE (0x21), CR_ACCESS_DENIED (0x33)...
            raise OSError(code, f"CM_Disable_DevNode failed: CONFIGRET 0x{code:x}")

    def enable(self, instance: str) -> None:
        code = self.cfgmgr.CM_Enable_DevNode(self._devinst(instance), 0)
        if code != CR_SUCCESS:
            raise OSError(code, f"CM_Enable_DevNode failed: CONFIGRET 0x{code:x}")
