"""Thin adapter over the stdlib ``winreg`` module (given to the constructor: the real one on
Windows, ``tests.fakes.FakeWinreg`` on Linux): read a subtree, read and write one value,
wait for a change. No decisions here; consent.py, switches.py and autostart.py make them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

MAX_KEYS = 20_000  # a ConsentStore has a few hundred; bound a hostile or corrupt one
HIVES = {"HKCU": "HKEY_CURRENT_USER", "HKLM": "HKEY_LOCAL_MACHINE", "HKU": "HKEY_USERS"}


def load_winreg() -> Any:
    """The stdlib winreg (Windows only): ImportError elsewhere."""
    import winreg

    return winreg


class Registry:
    """Keys are written hive first with the short names: ``HKCU\\SOFTWARE\\...``."""

    def __init__(self, winreg: Any) -> None:
        self.winreg = winreg

    def _root(self, path: str) -> tuple[Any, str]:
        hive, _, rest = path.partition("\\")
        return getattr(self.winreg, HIVES[hive]), rest

    def _open(self, path: str, access: int) -> Any:
        root, sub = self._root(path)
        return self.winreg.OpenKey(root, sub, 0, access | self.winreg.KEY_WOW64_64KEY)

    def walk(self, path: str) -> Iterator[tuple[str, dict[str, tuple[Any, int]]]]:
        """(path, values) of ``path`` and every key below it, parents first; nothing when
        ``path`` does not exist. Raises OSError when a key cannot be read."""
        todo = [path]
        seen = 0
        while todo:
            current = todo.pop(0)
            seen += 1
            if seen > MAX_KEYS:
                raise OSError(f"more than {MAX_KEYS} keys below {path}")
            try:
                handle = self._open(current, self.winreg.KEY_READ)
            except FileNotFoundError:
                continue
            with handle:
                values: dict[str, tuple[Any, int]] = {}
                for name, data, kind in self._enum(handle, self.winreg.EnumValue):
                    values[name] = (data, kind)
                children = [f"{current}\\{n}" for n in self._enum(handle, self.winreg.EnumKey)]
            todo.extend(children)
            yield current, values

    def _enum(self, handle: Any, fn: Callable[[Any, int], Any]) -> Iterator[Any]:
        index = 0
        while index < MAX_KEYS:
            try:
                yield fn(handle, index)
            except OSError:  # ERROR_NO_MORE_ITEMS ends an enumeration
                return
            index += 1

    def subkeys(self, path: str) -> list[str]:
        """The names of ``path``'s direct subkeys ([] when it does not exist)."""
        try:
            handle = self._open(path, self.winreg.KEY_READ)
        except FileNotFoundError:
            return []
        with handle:
            return list(self._enum(handle, self.winreg.EnumKey))

    def get(self, path: str, name: str) -> tuple[Any, int] | None:
        try:
            with self._open(path, self.winreg.KEY_READ) as handle:
                data, kind = self.winreg.QueryValueEx(handle, name)
                return data, kind
        except FileNotFoundError:
            return None

    def set(self, path: str, name: str, data: Any, kind: int) -> None:
        root, sub = self._root(path)
        with self.winreg.CreateKeyEx(root, sub, 0, self.winreg.KEY_SET_VALUE
                                     | self.winreg.KEY_WOW64_64KEY) as handle:
            self.winreg.SetValueEx(handle, name, 0, kind, data)

    def delete(self, path: str, name: str) -> None:
        try:
            with self._open(path, self.winreg.KEY_SET_VALUE) as handle:
                self.winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            return
