"""Start at login on Linux desktops: the user's XDG autostart entry for camguard.

The entry is ``$XDG_CONFIG_HOME/autostart/camguard.desktop`` (``~/.config`` when unset).
Per the XDG Autostart spec (https://specifications.freedesktop.org/autostart-spec/latest/),
a user entry with the same name as a system one (``$XDG_CONFIG_DIRS/autostart``, e.g. the
package's ``/etc/xdg/autostart/camguard.desktop``) replaces it, and ``Hidden=true`` in the
user entry turns the system one off. So turning start-at-login off removes camguard's own
entry, or, when a system entry would still start camguard, writes a ``Hidden=true`` one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from camguard.store.files import write_private

log = logging.getLogger(__name__)

FILE_NAME = "camguard.desktop"
DEFAULT_COMMAND = ("camguard", "tray")  # a package's entry: camguard is on PATH there
MARKER = "# Written by camguard (Settings, Start at login). Turn it off there."

# Desktop Entry spec, "The Exec key": an argument holding one of these must be quoted, and
# inside quotes these four must be escaped with a backslash.
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
_ESCAPE_IN_QUOTES = set("\"`$\\")


def _write(path: Path, text: str) -> None:
    write_private(path, text.encode("utf-8"))


def quote_exec(argv: Sequence[str]) -> str:
    """The Exec value for ``argv`` (quoting per the Desktop Entry spec, ``%`` doubled)."""
    if not argv:
        raise ValueError("empty command")
    parts = []
    for arg in argv:
        if not arg or any(ord(c) < 0x20 or c == "\x7f" for c in arg):
            raise ValueError(f"cannot start at login with argument {arg!r}")
        word = arg.replace("%", "%%")  # a lone % would be read as a field code (%f, %u)
        if any(c in _RESERVED for c in word):
            word = '"' + "".join("\\" + c if c in _ESCAPE_IN_QUOTES else c
                                 for c in word) + '"'
        parts.append(word)
    # The value is then a "string": its own backslashes are escaped once more.
    return " ".join(parts).replace("\\", "\\\\")


def running_command(executable: str | None = None, frozen: bool | None = None
                    ) -> tuple[str, ...]:
    """The tray command of *this* camguard, by absolute path.

    ``camguard tray`` in an entry works only where camguard is on the login session's PATH
    (a package); a ``make run`` checkout, a venv or ``pip install --user`` put it elsewhere
    or nowhere, and the desktop then fails silently at every login. The interpreter that
    runs camguard now (``sys.executable -m camguard``; the bundle itself when frozen) starts
    the same camguard from any login shell.
    """
    exe = executable if executable is not None else sys.executable
    is_frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    if not exe:
        return DEFAULT_COMMAND
    exe = os.path.abspath(exe)
    return (exe, "tray") if is_frozen else (exe, "-m", "camguard", "tray")


def desktop_entry(argv: Sequence[str] = DEFAULT_COMMAND) -> str:
    return "\n".join([
        MARKER,
        "[Desktop Entry]",
        "Type=Application",
        "Name=camguard",
        "GenericName=Camera and microphone guard",
        "Comment=Know the instant any program turns on your camera or microphone",
        f"Exec={quote_exec(argv)}",
        "Icon=camguard",
        "Terminal=false",
        "X-GNOME-Autostart-enabled=true",
        "",
    ])


def hidden_entry() -> str:
    return "\n".join([MARKER, "[Desktop Entry]", "Type=Application", "Name=camguard",
                      "Hidden=true", ""])


def read_entry(path: Path) -> dict[str, str] | None:
    """The ``[Desktop Entry]`` keys of a desktop file; None when missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    keys: dict[str, str] = {}
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            continue
        if group == "Desktop Entry" and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), value.strip())
    return keys


def starts(keys: Mapping[str, str] | None) -> bool:
    """Whether an entry starts its program at login (spec: Hidden; GNOME's own key)."""
    if keys is None:
        return False
    return (keys.get("Hidden", "false").lower() != "true"
            and keys.get("X-GNOME-Autostart-enabled", "true").lower() != "false")


class Autostart:
    """camguard's autostart entry. File operations on the caller's thread (milliseconds).

    ``env`` (default ``os.environ``) gives ``XDG_CONFIG_HOME``, ``XDG_CONFIG_DIRS`` and
    ``HOME``, so tests point it at a temporary folder.
    """

    def __init__(self, env: Mapping[str, str] | None = None,
                 command: Sequence[str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self.command = tuple(command) if command is not None else running_command()
        quote_exec(self.command)  # refuse a command that cannot be written, now

    @property
    def path(self) -> Path:
        home = self._env.get("XDG_CONFIG_HOME", "")
        if not home or not os.path.isabs(home):  # spec: a relative value is ignored
            home = os.path.join(self._env.get("HOME") or os.path.expanduser("~"), ".config")
        return Path(home) / "autostart" / FILE_NAME

    def system_paths(self) -> list[Path]:
        dirs = self._env.get("XDG_CONFIG_DIRS", "") or "/etc/xdg"
        return [Path(d) / "autostart" / FILE_NAME for d in dirs.split(":")
                if d and os.path.isabs(d)]

    def _system_starts(self) -> bool:
        # The first system entry found wins (XDG base dir spec: earlier dirs are preferred).
        for path in self.system_paths():
            keys = read_entry(path)
            if keys is not None:
                return starts(keys)
        return False

    def is_enabled(self) -> bool:
        """Whether camguard starts at login (the user entry, else a system one)."""
        if self.path.exists():
            return starts(read_entry(self.path))
        return self._system_starts()

    def enable(self) -> None:
        """Write the entry (replacing a Hidden one). Raises OSError when it cannot."""
        _write(self.path, desktop_entry(self.command))
        log.info("start at login: wrote %s", self.path)

    def disable(self) -> None:
        """Stop starting at login. Raises OSError when the entry cannot be changed."""
        if self._system_starts():
            _write(self.path, hidden_entry())
            log.info("start at login: %s hides the system entry", self.path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
            log.info("start at login: removed %s", self.path)

    def set(self, enabled: bool) -> None:
        if enabled:
            self.enable()
        else:
            self.disable()
