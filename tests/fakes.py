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
