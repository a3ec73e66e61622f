"""The live ConsentStore: read through registry.Registry (HKCU and HKLM; a service reads
``HKU\\<SID>`` for each logged-on user) into consent.ConsentEntry, and woken by
``RegNotifyChangeKeyValue`` on the subtree (pywin32), re-armed after every signal because
one arming signals once. Thin adapters; the decisions are consent.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camguard.platform.windows.consent import ConsentEntry, entries
from camguard.platform.windows.pipe_authz import is_sid
from camguard.platform.windows.registry import HIVES, Registry

CONSENT_SUBKEY = ("SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\CapabilityAccessManager"
                  "\\ConsentStore")
REG_NOTIFY_CHANGE_NAME = 0x1
REG_NOTIFY_CHANGE_LAST_SET = 0x4


def user_roots(hku_subkeys: list[str]) -> tuple[str, ...]:
    """``HKU\\<SID>`` of each user's loaded hive, from the names under HKEY_USERS: local and
    domain accounts (S-1-5-21-...) and Entra ID accounts (S-1-12-1-...); not the
    ``_Classes`` hives, ``.DEFAULT`` or the service accounts (S-1-5-18, -19, -20)."""
    return tuple(f"HKU\\{name}" for name in sorted(hku_subkeys)
                 if name.startswith(("S-1-5-21-", "S-1-12-1-")) and not name.endswith("_Classes")
                 and is_sid(name))


class ConsentReader:
    def __init__(self, registry: Registry, roots: tuple[str, ...] = ("HKCU", "HKLM")) -> None:
        self.registry = registry
        self.roots = roots

    @classmethod
    def for_service(cls, registry: Registry) -> ConsentReader:
        """A service (LocalSystem) has no user hive of its own: every logged-on user's, and
        HKLM."""
        return cls(registry, (*user_roots(registry.subkeys("HKU")), "HKLM"))

    def read(self) -> list[ConsentEntry]:
        """Every entry of every root; OSError when a key cannot be read, ValueError when a
        value is not what the store documents."""
        keys = []
        for root in self.roots:
            hive = root.partition("\\")[0]
            for path, values in self.registry.walk(f"{root}\\{CONSENT_SUBKEY}"):
                # consent.entries wants the long hive names a .reg file has.
                keys.append((HIVES[hive] + path[len(hive):], values))
        return entries(keys)


class ConsentWatcher:
    """Calls ``wake`` whenever a key or value under the ConsentStore changes, until
    :meth:`stop`. Runs on the caller's thread (:meth:`run`); pywin32 modules given."""

    def __init__(self, win32api: Any, win32event: Any, win32con: Any,
                 root: str = "HKCU") -> None:
        self.api, self.event, self.con = win32api, win32event, win32con
        self.root = root
        self._stop = win32event.CreateEvent(None, True, False, None)

    @classmethod
    def load(cls) -> ConsentWatcher:
        import win32api  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32con  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32event  # type: ignore[import-not-found, import-untyped, unused-ignore]

        return cls(win32api, win32event, win32con)

    def run(self, wake: Callable[[], None]) -> None:
        hive = getattr(self.con, HIVES[self.root])
        key = self.api.RegOpenKeyEx(hive, CONSENT_SUBKEY, 0, self.con.KEY_NOTIFY)
        changed = self.event.CreateEvent(None, False, False, None)
        try:
            while True:
                self.api.RegNotifyChangeKeyValue(
                    key, True, REG_NOTIFY_CHANGE_NAME | REG_NOTIFY_CHANGE_LAST_SET, changed, True)
                which = self.event.WaitForMultipleObjects([changed, self._stop], False,
                                                          self.event.INFINITE)
                if which != self.event.WAIT_OBJECT_0:
                    return
                wake()
        finally:
            self.api.RegCloseKey(key)

    def stop(self) -> None:
        self.event.SetEvent(self._stop)
