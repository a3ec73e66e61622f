"""The managed policy on Windows: ``HKLM\\Software\\Policies\\camguard`` (Group Policy, Intune).

Read through :class:`RegistryAccess`: winreg on Windows, ``tests.fakes.FakeRegistry`` (fed
by a recorded ``reg export``) in tests, so the parsing is tested on every platform.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol

from camguard.store.policy import (
    RULES,
    SETTINGS,
    Policy,
    PolicyError,
    SettingSpec,
    policy_from_mapping,
)

REGISTRY_KEY = "Software\\Policies\\camguard"
REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11


class RegistryAccess(Protocol):
    """Read access to HKEY_LOCAL_MACHINE (winreg on Windows; FakeRegistry in tests)."""

    def values(self, key: str) -> list[tuple[str, Any, int]] | None:
        """(name, data, type) of each value of ``key``; None when the key does not exist.
        Raises OSError when it exists but cannot be read."""
        ...


class WinregAccess:
    """:class:`RegistryAccess` through the stdlib winreg module (Windows only)."""

    def values(self, key: str) -> list[tuple[str, Any, int]] | None:
        if sys.platform == "win32":
            import winreg

            try:
                # KEY_WOW64_64KEY: Group Policy writes the 64-bit view; a 32-bit Python
                # would otherwise be redirected to WOW6432Node and see no policy.
                handle = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key, 0,
                                        winreg.KEY_READ | winreg.KEY_WOW64_64KEY)
            except FileNotFoundError:
                return None
            out: list[tuple[str, Any, int]] = []
            with handle:
                index = 0
                while True:
                    try:
                        name, data, kind = winreg.EnumValue(handle, index)
                    except OSError:  # ERROR_NO_MORE_ITEMS ends the enumeration
                        return out
                    out.append((name, data, kind))
                    index += 1
        return None


class WindowsRegistryPolicyReader:
    """Settings as values of the key (REG_SZ, REG_DWORD for numbers and 0/1 switches,
    REG_MULTI_SZ for lists and ``Locked``); rules as REG_SZ JSON objects in its ``Rules``
    subkey, one value each (the shape an ADMX list element writes)."""

    def __init__(self, registry: RegistryAccess | None = None, key: str = REGISTRY_KEY) -> None:
        self.registry = registry if registry is not None else WinregAccess()
        self.key = key

    @property
    def source(self) -> str:
        return f"registry HKLM\\{self.key}"

    def read(self) -> Policy | None:
        try:
            top = self.registry.values(self.key)
            rule_values = self.registry.values(self.key + "\\Rules")
        except OSError as exc:
            raise PolicyError(f"cannot read {self.source}: {exc}") from exc
        if top is None and rule_values is None:
            return None
        doc: dict[str, Any] = {"settings": {}, "locked": []}
        problems: list[str] = []
        for name, data, kind in top or []:
            low = name.lower()  # registry value names are case-insensitive
            if low == "locked":
                doc["locked"] = _reg_list(data, kind)
            else:
                doc["settings"][low] = _reg_value(SETTINGS.get(low), data, kind)
        rules: list[Any] = []
        for name, data, kind in sorted(rule_values or [], key=lambda v: _order(v[0])):
            if kind not in (REG_SZ, REG_EXPAND_SZ):
                problems.append(f"Rules\\{name}: a rule must be REG_SZ JSON")
                continue
            try:
                rules.append(json.loads(data))
            except (ValueError, RecursionError) as exc:
                problems.append(f"Rules\\{name}: not JSON ({exc})")
        doc[RULES] = rules
        policy = policy_from_mapping(doc, self.source)
        extra = tuple(f"{self.source}: {p}" for p in problems)
        return Policy(policy.source, policy.settings, policy.locked, policy.rules,
                      (*policy.problems, *extra))


def _order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def _reg_list(data: Any, kind: int) -> Any:
    if kind == REG_MULTI_SZ and isinstance(data, list):
        return [v for v in data if v]
    if kind in (REG_SZ, REG_EXPAND_SZ) and isinstance(data, str):
        return [v.strip() for v in data.split(",") if v.strip()]  # "a, b" typed by hand
    return data


def _reg_value(spec: SettingSpec | None, data: Any, kind: int) -> Any:
    """Registry data as the setting's type (check_value then judges it)."""
    if spec is None:
        return data
    if spec.type == "bool" and kind == REG_DWORD and data in (0, 1):
        return bool(data)
    if spec.type == "list":
        return _reg_list(data, kind)
    if spec.type == "number" and kind in (REG_SZ, REG_EXPAND_SZ) and isinstance(data, str):
        try:
            return float(data)
        except ValueError:
            return data
    return data
