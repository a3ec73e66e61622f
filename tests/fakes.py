"""Test doubles. Only at boundaries: a scripted usage source for the monitor's own logic."""

from __future__ import annotations

import threading

from camguard.core.models import SourceSnapshot
from camguard.platform.base import Wake


class FakeSource:
    """A UsageSource whose snapshots the test sets; ``push`` sets one and wakes the monitor."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self._snap = SourceSnapshot(name)
        self._wake: Wake | None = None
        self._lock = threading.Lock()
        self.looks = 0
        self.fail_next = False

    def snapshot(self) -> SourceSnapshot:
        with self._lock:
            self.looks += 1
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("boom")
            return self._snap

    def push(self, snap: SourceSnapshot) -> None:
        with self._lock:
            self._snap = snap
        if self._wake is not None:
            self._wake()

    def start(self, wake: Wake) -> None:
        self._wake = wake

    def stop(self) -> None:
        self._wake = None


class FakeRegistry:
    """HKEY_LOCAL_MACHINE as a recorded ``reg export`` shows it (tests/data/policy.reg.json).

    Implements camguard.store.policy_registry.RegistryAccess. The data is the text right of
    '=' in a .reg file: ``"text"`` (REG_SZ), ``dword:0000001e``, ``hex(7):..`` (REG_MULTI_SZ,
    UTF-16LE), ``hex(2):..`` (REG_EXPAND_SZ), ``hex(b):..`` (REG_QWORD), ``hex:..``.
    Key paths are case-insensitive, like the registry's.
    """

    HIVE = "HKEY_LOCAL_MACHINE\\"

    def __init__(self, export: dict[str, dict[str, str]], *, fail: bool = False) -> None:
        self.keys = {k[len(self.HIVE):].casefold(): v for k, v in export.items()
                     if k.upper().startswith(self.HIVE)}
        self.fail = fail

    @classmethod
    def from_file(cls, path: object, **kw: bool) -> FakeRegistry:
        import json  # local imports: this class is appended to a shared file
        from pathlib import Path

        doc = json.loads(Path(str(path)).read_text(encoding="utf-8"))
        return cls({k: v for k, v in doc.items() if not k.startswith("_")}, **kw)

    def values(self, key: str) -> list[tuple[str, object, int]] | None:
        if self.fail:
            raise PermissionError(5, "Access is denied")
        found = self.keys.get(key.casefold())
        if found is None:
            return None
        return [(name, *self.decode(text)) for name, text in found.items()]

    @staticmethod
    def decode(text: str) -> tuple[object, int]:
        if text.startswith('"'):
            return text[1:-1].replace('\\"', '"').replace("\\\\", "\\"), 1
        if text.startswith("dword:"):
            return int(text[6:], 16), 4
        kind, _, hexes = text.partition(":")
        raw = bytes(int(h, 16) for h in hexes.split(",") if h)
        if kind == "hex(7)":
            return [s for s in raw.decode("utf-16-le").split("\x00") if s], 7
        if kind == "hex(2)":
            return raw.decode("utf-16-le").rstrip("\x00"), 2
        if kind == "hex(b)":
            return int.from_bytes(raw, "little"), 11
        return raw, 3


class FakeHal:
    """CoreAudio's or CoreMediaIO's object tree as recorded property values (implements
    camguard.platform.macos.hal.PropertyAccess). ``values[(obj, selector, scope)]`` is a list
    of object ids, an int (UInt32) or a str (CFString); ``fail[(obj, selector)]`` an OSStatus.
    :meth:`fire` calls the listeners of one property, as the HAL does on a change."""

    GLOBAL = int.from_bytes(b"glob", "big")

    def __init__(self) -> None:
        self.values: dict[tuple[int, int, int], object] = {}
        self.fail: dict[tuple[int, int], int] = {}
        self.listeners: dict[int, tuple[int, int, object]] = {}
        self._next = 0

    def set(self, obj: int, selector: int, value: object, scope: int | None = None) -> None:
        self.values[(obj, selector, self.GLOBAL if scope is None else scope)] = value

    def _get(self, obj: int, selector: int, scope: int) -> object:
        from camguard.platform.macos.hal import HalError

        if (obj, selector) in self.fail:
            raise HalError(self.fail[(obj, selector)], f"fake {selector:#x} on {obj}")
        if (obj, selector, scope) not in self.values:
            raise HalError(int.from_bytes(b"who?", "big"), f"fake {selector:#x} on {obj}")
        return self.values[(obj, selector, scope)]

    def ids(self, obj: int, selector: int, scope: int = GLOBAL) -> list[int]:
        value = self._get(obj, selector, scope)
        assert isinstance(value, list)
        return list(value)

    def u32(self, obj: int, selector: int, scope: int = GLOBAL) -> int:
        value = self._get(obj, selector, scope)
        assert isinstance(value, int)
        return value

    def text(self, obj: int, selector: int, scope: int = GLOBAL) -> str:
        value = self._get(obj, selector, scope)
        assert isinstance(value, str)
        return value

    def set_u32(self, obj: int, selector: int, scope: int, value: int) -> None:
        from camguard.platform.macos.hal import HalError

        if (obj, selector) in self.fail:
            raise HalError(self.fail[(obj, selector)], f"fake setting {selector:#x} on {obj}")
        if (obj, selector, scope) not in self.values:
            raise HalError(int.from_bytes(b"who?", "big"), f"fake {selector:#x} on {obj}")
        self.values[(obj, selector, scope)] = value

    def listen(self, obj: int, selector: int, callback: object) -> object:
        self._next += 1
        self.listeners[self._next] = (obj, selector, callback)
        return self._next

    def unlisten(self, token: object) -> None:
        self.listeners.pop(int(str(token)), None)

    def fire(self, obj: int, selector: int) -> int:
        called = 0
        for o, s, callback in list(self.listeners.values()):
            if (o, s) == (obj, selector):
                callback()  # type: ignore[operator]
                called += 1
        return called


class FakePyObjCFramework:
    """A stand-in for pyobjc's ``CoreAudio`` or ``CoreMediaIO`` module, answering from a
    FakeHal in the calling convention camguard.platform.macos.hal.PyObjCProperties assumes
    (output parameters returned after the OSStatus, property data as bytes). It mirrors that
    assumption; it proves nothing about real pyobjc."""

    def __init__(self, hal: FakeHal, prefix: str) -> None:
        import struct
        import types

        def address(selector: int, scope: int, element: int) -> tuple[int, int, int]:
            return (selector, scope, element)

        def data(obj: int, addr: tuple[int, int, int]) -> tuple[int, bytes]:
            try:
                value = hal.values[(obj, addr[0], addr[1])]
            except KeyError:
                return int.from_bytes(b"who?", "big"), b""
            if (obj, addr[0]) in hal.fail:
                return hal.fail[(obj, addr[0])], b""
            if isinstance(value, list):
                return 0, struct.pack(f"={len(value)}I", *value)
            if isinstance(value, int):
                return 0, struct.pack("=I", value)
            return 0, str(value).encode("utf-8")

        def size(obj: int, addr: tuple[int, int, int], _q: int, _qd: object, _out: object
                 ) -> tuple[int, int]:
            status, raw = data(obj, addr)
            return status, len(raw)

        def get(obj: int, addr: tuple[int, int, int], *_rest: object) -> tuple[int, int, bytes]:
            status, raw = data(obj, addr)
            return status, len(raw), raw

        def put(obj: int, addr: tuple[int, int, int], _q: int, _qd: object, size: int,
                raw: bytes) -> int:
            from camguard.platform.macos.hal import HalError

            try:
                hal.set_u32(obj, addr[0], addr[1], struct.unpack("=I", raw[:size])[0])
            except HalError as exc:
                return exc.status
            return 0

        def add(obj: int, addr: tuple[int, int, int], _queue: object, block: object) -> int:
            hal.listen(obj, addr[0], lambda: block(1, [addr]))  # type: ignore[operator]
            return 0

        def remove(obj: int, addr: tuple[int, int, int], _queue: object, block: object) -> int:
            for token, (o, s, _cb) in list(hal.listeners.items()):
                if (o, s) == (obj, addr[0]):
                    hal.unlisten(token)
            return 0

        self.module = types.ModuleType("CoreAudio" if prefix == "AudioObject" else "CoreMediaIO")
        for name, fn in (("PropertyAddress", address), ("GetPropertyDataSize", size),
                         ("GetPropertyData", get), ("SetPropertyData", put),
                         ("AddPropertyListenerBlock", add),
                         ("RemovePropertyListenerBlock", remove)):
            setattr(self.module, prefix + name, fn)


class FakeFoundation:
    """pyobjc's ``Foundation`` as far as the macOS source's run-loop thread uses it: a run
    loop that, having no input sources, returns at once as NSRunLoop does."""

    def __init__(self) -> None:
        import types

        self.turns = 0
        fake = self

        class Loop:
            def runMode_beforeDate_(self, mode: str, until: float) -> bool:
                fake.turns += 1
                return False

        class NSRunLoop:
            @staticmethod
            def currentRunLoop() -> Loop:
                return Loop()

        class NSDate:
            @staticmethod
            def dateWithTimeIntervalSinceNow_(seconds: float) -> float:
                return seconds

        self.module = types.ModuleType("Foundation")
        self.module.NSRunLoop = NSRunLoop  # type: ignore[attr-defined]
        self.module.NSDate = NSDate  # type: ignore[attr-defined]
        self.module.NSDefaultRunLoopMode = "kCFRunLoopDefaultMode"  # type: ignore[attr-defined]


class FakePeerSocket:
    """A connected socket as getsockopt(SOL_LOCAL, ...) answers on macOS: recorded bytes for
    LOCAL_PEERCRED (1) and LOCAL_PEERPID (2)."""

    def __init__(self, peercred: bytes, peerpid: bytes) -> None:
        self.answers = {(0, 1): peercred, (0, 2): peerpid}

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        return self.answers[(level, option)][:size]
class FakeWinreg:
    """The stdlib ``winreg`` module on Linux, for camguard.platform.windows.registry.Registry:
    a registry held in memory, fed by a recorded ``reg export`` (``from_reg_file``). Hive
    constants are the hive names; key paths are case-insensitive, like the registry's."""

    HKEY_CURRENT_USER = "HKEY_CURRENT_USER"
    HKEY_LOCAL_MACHINE = "HKEY_LOCAL_MACHINE"
    HKEY_USERS = "HKEY_USERS"
    KEY_READ, KEY_SET_VALUE, KEY_NOTIFY, KEY_WOW64_64KEY = 0x20019, 0x2, 0x10, 0x100
    REG_SZ, REG_DWORD, REG_QWORD = 1, 4, 11

    class Handle:
        def __init__(self, path: str) -> None:
            self.path = path

        def __enter__(self) -> FakeWinreg.Handle:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def __init__(self, keys: dict[str, dict[str, tuple[object, int]]] | None = None) -> None:
        self.keys: dict[str, tuple[str, dict[str, tuple[object, int]]]] = {}
        for path, values in (keys or {}).items():
            self._create(path).update(values)

    @classmethod
    def from_reg_file(cls, path: object) -> FakeWinreg:
        from pathlib import Path

        from camguard.platform.windows.regfile import parse

        return cls({k.path: dict(k.values) for k in parse(Path(str(path)).read_bytes())})

    def _create(self, path: str) -> dict[str, tuple[object, int]]:
        parts = path.split("\\")
        for n in range(1, len(parts) + 1):
            sub = "\\".join(parts[:n])
            self.keys.setdefault(sub.casefold(), (sub, {}))
        return self.keys[path.casefold()][1]

    def _values(self, handle: FakeWinreg.Handle) -> dict[str, tuple[object, int]]:
        return self.keys[handle.path.casefold()][1]

    def OpenKey(self, root: str, sub: str, reserved: int = 0, access: int = 0
                ) -> FakeWinreg.Handle:
        path = f"{root}\\{sub}" if sub else root
        if path.casefold() not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return self.Handle(path)

    def CreateKeyEx(self, root: str, sub: str, reserved: int = 0,
                    access: int = 0) -> FakeWinreg.Handle:
        self._create(f"{root}\\{sub}")
        return self.Handle(f"{root}\\{sub}")

    def EnumValue(self, handle: FakeWinreg.Handle, index: int
                  ) -> tuple[str, object, int]:
        items = list(self._values(handle).items())
        if index >= len(items):
            raise OSError(259, "No more data is available")
        name, (data, kind) = items[index]
        return name, data, kind

    def EnumKey(self, handle: FakeWinreg.Handle, index: int) -> str:
        prefix = handle.path.casefold() + "\\"
        names = sorted(shown.rsplit("\\", 1)[1] for low, (shown, _v) in self.keys.items()
                       if low.startswith(prefix) and "\\" not in low[len(prefix):])
        if index >= len(names):
            raise OSError(259, "No more data is available")
        return names[index]

    def QueryValueEx(self, handle: FakeWinreg.Handle, name: str
                     ) -> tuple[object, int]:
        for key, found in self._values(handle).items():
            if key.casefold() == name.casefold():
                return found
        raise FileNotFoundError(2, "The system cannot find the file specified")

    def SetValueEx(self, handle: FakeWinreg.Handle, name: str, reserved: int,
                   kind: int, data: object) -> None:
        values = self._values(handle)
        for key in [k for k in values if k.casefold() == name.casefold()]:
            del values[key]
        values[name] = (data, kind)

    def DeleteValue(self, handle: FakeWinreg.Handle, name: str) -> None:
        values = self._values(handle)
        found = [k for k in values if k.casefold() == name.casefold()]
        if not found:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        del values[found[0]]


class FakeSensorFeed:
    """camguard.platform.windows.sources.SensorFeed replaying recorded sensor-monitor events
    (tests/data/windows/sensor_trace.json) on the caller's thread."""

    def __init__(self, events: list[dict[str, object]] | None = None, *,
                 fail: bool = False) -> None:
        self.events = list(events or [])
        self.on_event: object = None
        self.starts = 0
        self.fail = fail  # Start() fails as com.SensorActivityFeed reports it: OSError

    def start(self, on_event: object) -> None:
        self.starts += 1
        if self.fail:
            raise OSError("COM error: MF_E_UNSUPPORTED_SERVICE")
        self.on_event = on_event
        for event in self.events:
            on_event(event)  # type: ignore[operator]

    def stop(self) -> None:
        self.on_event = None

    def send(self, event: dict[str, object]) -> None:
        assert self.on_event is not None, "the feed is not started"
        self.on_event(event)  # type: ignore[operator]


class FakeEndpointVolume:
    """Core Audio's IAudioEndpointVolume of one capture endpoint (GetMute/SetMute), for
    camguard.platform.windows.mute; ``fail`` makes SetMute raise as COM does (OSError)."""

    def __init__(self, muted: bool = False, *, fail: bool = False) -> None:
        self.muted = muted
        self.fail = fail
        self.calls: list[bool] = []

    def GetMute(self) -> int:
        return int(self.muted)

    def SetMute(self, mute: bool, context: object) -> None:
        if self.fail:
            raise OSError(-2004287480, "AUDCLNT_E_DEVICE_INVALIDATED")
        self.calls.append(bool(mute))
        self.muted = bool(mute)


class FakeConsentWatcher:
    """consent_reader.ConsentWatcher without pywin32: ``run`` blocks on the caller's thread
    and wakes once per :meth:`change`, until :meth:`stop`."""

    def __init__(self) -> None:
        import threading  # local import: this class is appended to a shared file

        self._cond = threading.Condition()
        self._pending = 0
        self._stopped = False
        self.running = threading.Event()

    def run(self, wake: object) -> None:
        self.running.set()
        with self._cond:
            while not self._stopped:
                while self._pending:
                    self._pending -= 1
                    wake()  # type: ignore[operator]
                self._cond.wait()
        self.running.clear()

    def change(self) -> None:
        with self._cond:
            self._pending += 1
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
