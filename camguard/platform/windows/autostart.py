"""Starting the tray at login: the ``camguard`` value of ``HKCU\\...\\Run`` (the MSI writes
the HKLM one for every user). A thin adapter over registry.Registry."""

from __future__ import annotations

import sys
from pathlib import PureWindowsPath
from typing import Any

from camguard.platform.windows.regfile import REG_SZ

RUN_KEY = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
VALUE = "camguard"


def tray_command(executable: str = sys.executable) -> str:
    """The Run value: the bundle's camguard-tray.exe (no console window) next to
    camguard.exe, else this Python's pythonw.exe running the tray, always quoted."""
    exe = PureWindowsPath(executable)
    tray = exe.with_name("camguard-tray.exe")
    if exe.name.casefold() in ("camguard.exe", "camguard-tray.exe"):
        return f'"{tray}"'
    pythonw = exe.with_name("pythonw.exe")
    return f'"{pythonw}" -m camguard tray'


class RunKeyAutostart:
    """AutostartEntry through the HKCU Run key. ``set`` raises OSError when it cannot."""

    def __init__(self, registry: Any, command: str | None = None) -> None:
        self.registry = registry
        self.command = command or tray_command()

    def is_enabled(self) -> bool:
        found = self.registry.get(RUN_KEY, VALUE)
        return found is not None and isinstance(found[0], str) and bool(found[0].strip())

    def set(self, enabled: bool) -> None:
        if enabled:
            self.registry.set(RUN_KEY, VALUE, self.command, REG_SZ)
        else:
            self.registry.delete(RUN_KEY, VALUE)
