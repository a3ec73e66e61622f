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
