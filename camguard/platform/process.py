"""Describe a process (name, exe, cmdline, user, ancestors) without ever raising for it.

psutil is used only to *name* processes and, elsewhere, to signal them: it cannot list
device files (``open_files()`` keeps regular files only), so finding holders is procfs.py's job.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from typing import TYPE_CHECKING

from camguard.core.models import ProcessRef
from camguard.core.script import is_module, script_argument

if TYPE_CHECKING:  # imported at the first description: a look that finds no holder (most
    # `camguard status` runs) never pays psutil's import (issue 16)
    import psutil

log = logging.getLogger(__name__)

MAX_PARENTS = 16


class ProcessDescriber:
    """Builds :class:`ProcessRef` objects, cached by ``(pid, create_time)``.

    Thread-safe. A process that vanished or cannot be read gives None (vanished) or a
    partial description (fields we may not read are left empty), never an exception.
    """

    def __init__(self, max_cache: int = 4096) -> None:
        self._cache: dict[tuple[int, float], ProcessRef] = {}
        self._lock = threading.Lock()
        self._max = max_cache

    def describe(self, pid: int) -> ProcessRef | None:
        import psutil

        try:
            proc = psutil.Process(pid)
            create_time = proc.create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except (psutil.AccessDenied, OSError, ValueError):
            return ProcessRef(pid=pid, create_time=0.0)
        key = (pid, create_time)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        ref = self._build(proc, pid, create_time)
        if ref is None:
            return None
        with self._lock:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = ref
        return ref

    def alive(self, ref: ProcessRef) -> bool:
        """True if ``ref`` still names the same running process (pid *and* create time)."""
        import psutil

        try:
            proc = psutil.Process(ref.pid)
            return proc.create_time() == ref.create_time and proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.Error, OSError):
            return False

    @staticmethod
    def _build(proc: psutil.Process, pid: int, create_time: float) -> ProcessRef | None:
        import psutil

        try:
            with proc.oneshot():
                name = _text(proc.name)
                exe = _text(proc.exe)
                cmdline = _cmdline(proc)
                user = _text(proc.username)
                parents = _parents(proc)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        return ProcessRef(pid=pid, create_time=create_time, name=name, exe=exe,
                          cmdline=cmdline, user=user, parents=parents,
                          script=script_path(pid, exe, cmdline))


def script_path(pid: int, exe: str, cmdline: tuple[str, ...],
                proc_root: str = "/proc") -> str:
    """The script the interpreter ``pid`` runs (core.script reads the command line): its
    absolute path, a relative one resolved against the process's working folder, kept only
    when it names a regular file (looked at through ``/proc/PID/cwd`` and ``/proc/PID/root``,
    so a process in its own mount namespace is looked at in its own files); ``-m module``
    for a Python module; "" for none (or when it cannot be read)."""
    arg = script_argument(exe, cmdline)
    if arg is None:
        return ""
    if is_module(arg):
        return arg
    base = os.path.join(proc_root, str(pid))
    try:
        cwd = os.readlink(os.path.join(base, "cwd")) if not arg.startswith("/") else "/"
        full = os.path.normpath(os.path.join(cwd, arg))
        # Through the process's own root: its /, its mounts (a sandbox, a chroot).
        seen = os.path.join(base, "root", full.lstrip("/"))
        if not stat.S_ISREG(os.stat(seen).st_mode):
            return ""
    except (OSError, ValueError):  # gone, not ours to read, a NUL in a hostile path
        return ""
    return full


def _text(getter: object) -> str:
    import psutil

    try:
        value = getter()  # type: ignore[operator]
    except (psutil.AccessDenied, OSError, ValueError, KeyError):
        return ""
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        raise
    except psutil.Error:
        return ""
    return value if isinstance(value, str) else str(value)


def _cmdline(proc: psutil.Process) -> tuple[str, ...]:
    import psutil

    try:
        return tuple(str(a) for a in proc.cmdline())
    except (psutil.AccessDenied, OSError, ValueError):
        return ()


def _parents(proc: psutil.Process) -> tuple[str, ...]:
    import psutil

    names: list[str] = []
    try:
        for parent in proc.parents()[:MAX_PARENTS]:
            try:
                names.append(parent.name())
            except psutil.Error:
                names.append("?")
    except (psutil.Error, OSError):
        pass
    return tuple(names)


# create_time is ticks/CLK_TCK + btime on Linux; half a tick tells two processes apart.
_CTIME_TOLERANCE = 0.005


class RunningBinary:
    """The binary a process runs, read through the kernel's link to it (``/proc/PID/exe``
    where there is a /proc), never through its path: the process's owner may have pointed
    that path elsewhere since it started (a symlink to a file only root may read), and the
    root service must not read what it names (store.hashing.BinarySource)."""

    def __init__(self, proc_root: str = "/proc") -> None:
        self._root = proc_root
        self._linked = os.path.exists(os.path.join(proc_root, "self", "exe"))

    def path(self, process: ProcessRef) -> str:
        return os.path.join(self._root, str(process.pid), "exe") if self._linked \
            else process.exe

    def same(self, process: ProcessRef) -> bool:
        import psutil

        try:
            started = psutil.Process(process.pid).create_time()
        except (psutil.Error, OSError, ValueError):
            return False
        return abs(started - process.create_time) <= _CTIME_TOLERANCE


class RunningScript(RunningBinary):
    """The script an interpreter runs, for the root service: read through the process's
    own root (``/proc/PID/root``: its mounts, its sandbox), and only when the process's
    owner could read it too (owned by them, or readable by anyone): a user's process must
    not make root hash a file that user may not read, by naming it as its script."""

    def path(self, process: ProcessRef) -> str:
        if not process.script.startswith("/"):
            return ""
        if not self._linked:
            return process.script
        base = os.path.join(self._root, str(process.pid))
        seen = os.path.join(base, "root", process.script.lstrip("/"))
        try:
            owner = os.stat(base).st_uid
            st = os.stat(seen)
        except (OSError, ValueError):
            return ""
        if st.st_uid != owner and not st.st_mode & stat.S_IROTH and owner != 0:
            return ""
        return seen


def lineage(pid: int, depth: int = 64) -> list[tuple[int, float]]:
    """``(pid, create_time)`` of ``pid`` and its ancestors, itself first (up to ``depth``);
    empty when it is gone. A parent that cannot be read ends the chain there."""
    import psutil

    chain: list[tuple[int, float]] = []
    try:
        proc: psutil.Process | None = psutil.Process(pid)
        while proc is not None and len(chain) < depth:
            chain.append((proc.pid, proc.create_time()))
            proc = proc.parent()
    except (psutil.Error, OSError, ValueError):
        pass
    return chain
