"""CoreAudio and CoreMediaIO objects: which cameras and microphones exist, which are
"running somewhere", and which processes record (CoreAudio process objects, macOS 14.2+).

Two halves. The readers (``read_cameras``, ``read_microphones``, ``read_processes``) are
pure walks over a :class:`PropertyAccess`; :class:`PyObjCProperties` is the thin adapter that
answers it with pyobjc's ``AudioObject*``/``CMIOObject*`` functions. pyobjc is imported only
when a :class:`PyObjCProperties` is built, never when this module is imported.

NOT RUN ON macOS: the pyobjc calling convention below (output parameters returned as a tuple
after the status, ``None`` for an output buffer) is pyobjc's general rule, not something
verified against pyobjc-framework-CoreAudio/-CoreMediaIO; pyobjc's own notes say its
CoreAudio wrappers are unproven (docs/apinotes/CoreAudio.rst).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from camguard.core.models import DeviceKind
from camguard.platform.macos.state import AudioProcess, DeviceReading

log = logging.getLogger(__name__)

MAX_OBJECTS = 512  # devices or process objects per list: a bound, not an expectation
MAX_TEXT = 1024


def fourcc(code: str) -> int:
    """A four-character code as CoreAudio's headers spell it ('gone' -> 0x676f6e65)."""
    raw = code.encode("ascii")
    if len(raw) != 4:
        raise ValueError(f"not a four-character code: {code!r}")
    return int.from_bytes(raw, "big")


# Selectors and scopes (CoreAudio/AudioHardware.h, AudioHardwareBase.h, CoreMediaIO/
# CMIOHardwareObject.h, CMIOHardwareDevice.h). The same codes serve both frameworks.
SYSTEM_OBJECT = 1  # kAudioObjectSystemObject, kCMIOObjectSystemObject
SCOPE_GLOBAL = fourcc("glob")
SCOPE_INPUT = fourcc("inpt")
ELEMENT_MAIN = 0
DEVICES = fourcc("dev#")  # kAudioHardwarePropertyDevices, kCMIOHardwarePropertyDevices
DEVICE_UID = fourcc("uid ")
NAME = fourcc("lnam")  # kAudioObjectPropertyName, kCMIOObjectPropertyName
STREAMS = fourcc("stm#")  # kAudioDevicePropertyStreams (input scope: it can record)
RUNNING_SOMEWHERE = fourcc("gone")  # k{Audio,CMIO}DevicePropertyDeviceIsRunningSomewhere
# macOS 14.2+ (AudioHardware.h): the process objects and what each one does.
PROCESS_OBJECTS = fourcc("prs#")  # kAudioHardwarePropertyProcessObjectList
PROCESS_PID = fourcc("ppid")  # kAudioProcessPropertyPID
PROCESS_BUNDLE = fourcc("pbid")  # kAudioProcessPropertyBundleID
PROCESS_RUNNING_INPUT = fourcc("piri")  # kAudioProcessPropertyIsRunningInput
MUTE = fourcc("mute")  # kAudioDevicePropertyMute (input scope: the microphone)
UNKNOWN_PROPERTY = fourcc("who?")  # kAudioHardwareUnknownPropertyError


class HalError(OSError):
    """A property call returned a non-zero OSStatus."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: OSStatus {status}")
        self.status = status


class PropertyAccess(Protocol):
    """Reading and watching properties of one framework's objects. Any thread; each call is
    one HAL round trip (microseconds). Raises :class:`HalError`."""

    def ids(self, obj: int, selector: int, scope: int = SCOPE_GLOBAL) -> list[int]: ...

    def u32(self, obj: int, selector: int, scope: int = SCOPE_GLOBAL) -> int: ...

    def text(self, obj: int, selector: int, scope: int = SCOPE_GLOBAL) -> str: ...

    def set_u32(self, obj: int, selector: int, scope: int, value: int) -> None: ...

    def listen(self, obj: int, selector: int, callback: Callable[[], None]) -> object: ...

    def unlisten(self, token: object) -> None: ...


def text_or(access: PropertyAccess, obj: int, selector: int) -> str:
    """A text property, or "" when the object has none."""
    try:
        return access.text(obj, selector)[:MAX_TEXT]
    except HalError:
        return ""


def read_cameras(cmio: PropertyAccess) -> list[DeviceReading]:
    """Every CoreMediaIO device (cameras, including virtual ones) and whether it runs."""
    out = []
    for dev in cmio.ids(SYSTEM_OBJECT, DEVICES)[:MAX_OBJECTS]:
        uid = text_or(cmio, dev, DEVICE_UID) or f"object-{dev}"
        out.append(DeviceReading(DeviceKind.CAMERA, uid, text_or(cmio, dev, NAME),
                                 cmio.u32(dev, RUNNING_SOMEWHERE) != 0))
    return out


def input_devices(audio: PropertyAccess) -> list[int]:
    """The CoreAudio devices with input streams (those that can record)."""
    out = []
    for dev in audio.ids(SYSTEM_OBJECT, DEVICES)[:MAX_OBJECTS]:
        try:
            if audio.ids(dev, STREAMS, SCOPE_INPUT):
                out.append(dev)
        except HalError:
            continue
    return out


def read_microphones(audio: PropertyAccess) -> list[DeviceReading]:
    """Every CoreAudio device with input streams. IsRunningSomewhere covers output too, so
    a device that only plays sound is left out: its running says nothing about recording."""
    out = []
    for dev in input_devices(audio):
        uid = text_or(audio, dev, DEVICE_UID) or f"object-{dev}"
        out.append(DeviceReading(DeviceKind.MICROPHONE, uid, text_or(audio, dev, NAME),
                                 audio.u32(dev, RUNNING_SOMEWHERE) != 0))
    return out


def read_processes(audio: PropertyAccess) -> list[AudioProcess] | None:
    """CoreAudio's process objects (macOS 14.2+); None where the HAL does not know the
    property (older systems), so the caller falls back to the log."""
    try:
        objects = audio.ids(SYSTEM_OBJECT, PROCESS_OBJECTS)[:MAX_OBJECTS]
    except HalError as exc:
        if exc.status == UNKNOWN_PROPERTY:
            return None
        raise
    out = []
    for obj in objects:
        try:
            pid = audio.u32(obj, PROCESS_PID)
            running = audio.u32(obj, PROCESS_RUNNING_INPUT) != 0
        except HalError:
            continue  # the process went away between the list and the question
        if pid > 0:
            out.append(AudioProcess(pid, text_or(audio, obj, PROCESS_BUNDLE), running))
    return out


def watched(audio: PropertyAccess, cmio: PropertyAccess) -> list[tuple[PropertyAccess, int, int]]:
    """The properties whose change means "look again": each device's running state, the
    device lists (hot-plug) and the process-object list."""
    out: list[tuple[PropertyAccess, int, int]] = [
        (audio, SYSTEM_OBJECT, DEVICES), (cmio, SYSTEM_OBJECT, DEVICES),
        (audio, SYSTEM_OBJECT, PROCESS_OBJECTS)]
    for access in (audio, cmio):
        try:
            out += [(access, dev, RUNNING_SOMEWHERE)
                    for dev in access.ids(SYSTEM_OBJECT, DEVICES)[:MAX_OBJECTS]]
        except HalError as exc:
            log.info("cannot list devices to watch: %s", exc)
    return out


class PyObjCProperties:
    """:class:`PropertyAccess` through pyobjc: ``framework`` is "CoreAudio" (``AudioObject*``
    functions) or "CoreMediaIO" (``CMIOObject*``). NOT RUN ON macOS (module docstring)."""

    def __init__(self, framework: str) -> None:
        self._mod: Any = _framework(framework)
        self._prefix = "AudioObject" if framework == "CoreAudio" else "CMIOObject"
        self._address: Any = getattr(self._mod, f"{self._prefix}PropertyAddress")

    def _fn(self, name: str) -> Any:
        return getattr(self._mod, f"{self._prefix}{name}")

    def _raw(self, obj: int, selector: int, scope: int) -> bytes:
        addr = self._address(selector, scope, ELEMENT_MAIN)
        if self._prefix == "AudioObject":
            status, size = self._fn("GetPropertyDataSize")(obj, addr, 0, None, None)
            if status != 0:
                raise HalError(status, f"size of {selector:#x} on {obj}")
            status, _size, data = self._fn("GetPropertyData")(obj, addr, 0, None, size, None)
        else:  # CMIO has a separate "data used" output
            status, size = self._fn("GetPropertyDataSize")(obj, addr, 0, None, None)
            if status != 0:
                raise HalError(status, f"size of {selector:#x} on {obj}")
            status, _used, data = self._fn("GetPropertyData")(obj, addr, 0, None, size, None,
                                                              None)
        if status != 0:
            raise HalError(status, f"property {selector:#x} on {obj}")
        return bytes(data) if not isinstance(data, str) else data.encode("utf-8")

    def ids(self, obj: int, selector: int, scope: int = SCOPE_GLOBAL) -> list[int]:
        raw = self._raw(obj, selector, scope)
        return list(struct.unpack(f"={len(raw) // 4}I", raw[: len(raw) // 4 * 4]))

    def u32(self, obj: int, selector: int, scope: int = SCOPE_GLOBAL) -> int:
        raw = self._raw(obj, selector, scope)
        if len(raw) < 4:
            raise HalError(-1, f"property {selector:#x} on {obj} is {len(raw)} bytes")
        return int(struct.unpack("=I", raw[:4])[0])

    def text(self, obj: int, selector: int, scope: int = SCOPE_GLOBAL) -> str:
        # CFStringRef properties: pyobjc hands back the bridged NSString's UTF-8 here.
        return self._raw(obj, selector, scope).decode("utf-8", "replace")

    def set_u32(self, obj: int, selector: int, scope: int, value: int) -> None:
        addr = self._address(selector, scope, ELEMENT_MAIN)
        status = self._fn("SetPropertyData")(obj, addr, 0, None, 4, struct.pack("=I", value))
        if status != 0:
            raise HalError(status, f"setting {selector:#x} on {obj}")

    def listen(self, obj: int, selector: int, callback: Callable[[], None]) -> object:
        addr = self._address(selector, SCOPE_GLOBAL, ELEMENT_MAIN)

        def block(_count: int, _addresses: object) -> None:
            callback()

        # A NULL queue: the HAL calls the block on its own notification thread, so no run
        # loop of ours has to turn for CoreAudio (AudioHardware.h, ListenerBlock).
        status = self._fn("AddPropertyListenerBlock")(obj, addr, None, block)
        if status != 0:
            raise HalError(status, f"listening to {selector:#x} on {obj}")
        return _Listener(obj, addr, block)

    def unlisten(self, token: object) -> None:
        if isinstance(token, _Listener):
            self._fn("RemovePropertyListenerBlock")(token.obj, token.addr, None, token.block)


def _framework(name: str) -> Any:
    """pyobjc's module, by a plain import statement so that PyInstaller's analysis sees it
    and bundles it (an importlib call by name would be invisible to it)."""
    if name == "CoreAudio":
        import CoreAudio  # type: ignore[import-not-found, unused-ignore]

        return CoreAudio
    if name == "CoreMediaIO":
        import CoreMediaIO  # type: ignore[import-not-found, unused-ignore]

        return CoreMediaIO
    raise ValueError(f"not a HAL framework: {name!r}")


@dataclass(frozen=True)
class _Listener:
    obj: int
    addr: Any
    block: Callable[[int, object], None]
