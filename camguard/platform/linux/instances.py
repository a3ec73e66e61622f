"""Which processes are camguard itself (the tray, a command, a bundle), so a kill can refuse
them, and whether a process uses a camera or microphone right now.

A process is camguard when its executable is a frozen ``camguard`` bundle, or when it is a
Python interpreter running the ``camguard`` module (``-m camguard``) or a script named
``camguard`` (the console script): its real executable and command line, never its name
(``comm`` is whatever the process chose). The tray's single-instance socket cannot tell: Qt
binds it in a temporary folder and renames it (``UserAccessOption``), so the kernel
(``/proc/net/unix``) only knows the temporary path.

Anyone may start ``python3 -m camguard`` from a folder of their own, so being camguard only
refuses a *kill by hand*; a process that holds a camera or microphone is still ended (a
block, a rule): the protection never shields a device user (see :func:`holds_device`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Sequence

PYTHON_EXE = re.compile(r"python(3(\.[0-9]+)?)?")
MODULES = frozenset({"camguard", "camguard.__main__", "camguard.cli"})
# Interpreter options that take a separate argument (python3 --help).
OPTIONS_WITH_ARG = frozenset({"-X", "-W", "--check-hash-based-pycs"})
MAX_ARGS = 64
MAX_FDS = 65536


def camguard_instance(pid: int, proc_root: str = "/proc") -> str | None:
    """``"camguard"`` when ``pid`` is a camguard process (see above), else None."""
    try:
        exe = os.readlink(f"{proc_root}/{pid}/exe").removesuffix(" (deleted)")
        with open(f"{proc_root}/{pid}/cmdline", "rb") as f:
            raw = f.read(1 << 16)
    except OSError:
        return None
    if os.path.basename(exe) == "camguard":
        return "camguard"
    if not PYTHON_EXE.fullmatch(os.path.basename(exe)):
        return None
    argv = raw.decode("utf-8", "surrogateescape").split("\0")[:MAX_ARGS]
    return "camguard" if _runs_camguard(argv[1:]) else None


def _runs_camguard(args: Sequence[str]) -> bool:
    """``args`` (after the interpreter) run the camguard module or the camguard script."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m" or (arg.startswith("-") and not arg.startswith("--")
                           and arg.endswith("m") and arg[1:].isalpha()):
            return i + 1 < len(args) and args[i + 1] in MODULES  # -m, or -Im / -Em ...
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:] in MODULES  # -mcamguard
        if arg in ("-c", "-", "--"):
            return False  # code from the command line or stdin: nothing to go by
        if not arg.startswith("-"):
            return os.path.basename(arg) == "camguard"  # the script python runs
        i += 2 if arg in OPTIONS_WITH_ARG else 1
    return False


def holds_device(pid: int, globs: Sequence[str], proc_root: str = "/proc") -> bool:
    """True when ``pid`` holds open a character device whose path matches one of ``globs``."""
    fd_dir = f"{proc_root}/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds[:MAX_FDS]:
        try:
            path = os.readlink(f"{fd_dir}/{fd}").removesuffix(" (deleted)")
        except OSError:
            continue
        if not any(fnmatch.fnmatchcase(path, g) for g in globs):
            continue
        try:
            if stat.S_ISCHR(os.stat(f"{fd_dir}/{fd}").st_mode):
                return True
        except OSError:
            continue
    return False
