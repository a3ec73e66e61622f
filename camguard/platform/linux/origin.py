"""The origin of a running executable on Linux (platform.base.OriginResolver).

A sandbox first (Flatpak, Snap, AppImage: platform/linux/sandbox.py, a few small reads in
``/proc``), else the Debian package that owns the file (platform/linux/dpkg.py, with the
file's md5 checked against dpkg's), else ``local`` with the file's SHA-256. The file is read
through ``/proc/PID/exe`` when the pid is known, so a sandboxed app's file (whose path means
something only inside its mount namespace) and a file replaced since the process started
are the ones that run. Results for files are cached by (path, device, inode, size, mtime)
and the dpkg database's generation; a file's first lookup reads it whole (md5 or SHA-256),
so callers run it off the event path. Thread-safe; never raises.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from camguard.core.origin import ExeOrigin, OriginKind
from camguard.platform.linux.dpkg import DEFAULT_ADMIN_DIR, DpkgIndex
from camguard.platform.linux.sandbox import sandbox_origin
from camguard.store.hashing import sha256_file

log = logging.getLogger(__name__)

_CACHE_SIZE = 2048
_DELETED = " (deleted)"

Key = tuple[str, int, int, int, int, int]


class LinuxOriginResolver:
    def __init__(self, admin_dir: Path | str = DEFAULT_ADMIN_DIR, proc_root: str = "/proc",
                 *, root: str = "/") -> None:
        self.dpkg = DpkgIndex(admin_dir, root)
        self._proc = proc_root
        self._cache: dict[Key, ExeOrigin] = {}
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Read dpkg's database now (about 0.1 s for 2,000 packages) rather than at the
        first lookup."""
        self.dpkg.refresh()

    def origin(self, pid: int | None, exe: str) -> ExeOrigin | None:
        """Where ``exe`` (run by ``pid``, when known) comes from; None when the executable
        is unknown or cannot be examined at all."""
        try:
            return self._origin(pid, exe, compute=True)
        except Exception:  # a bug here must never take detection or a decision down
            log.exception("origin of %r failed", exe)
            return None

    def cached(self, pid: int | None, exe: str) -> ExeOrigin | None:
        """The origin if it costs no file read (a sandbox, or a file looked up before);
        else None. For callers on the event path."""
        try:
            return self._origin(pid, exe, compute=False)
        except Exception:
            log.exception("origin of %r failed", exe)
            return None

    def _origin(self, pid: int | None, exe: str, *, compute: bool) -> ExeOrigin | None:
        if exe.endswith(_DELETED):
            exe = exe[: -len(_DELETED)]
        if not exe.startswith("/"):
            return None
        if pid is None:
            exe = os.path.realpath(exe)  # a path given by hand may be a symlink
        sandboxed = sandbox_origin(pid, exe, self._proc)
        if sandboxed is not None:
            return sandboxed
        opened, st = self._stat(pid, exe)
        if st is None:
            return None
        if compute:
            self.dpkg.refresh()
        key = (exe, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, self.dpkg.generation)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None or not compute:
            return hit
        found = self._file_origin(exe, opened)
        if found is None:
            return None
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _stat(self, pid: int | None, exe: str) -> tuple[str, os.stat_result | None]:
        """The file the process runs (``/proc/PID/exe``; the path when that is unreadable,
        as for another account's process) and its identity."""
        for opened in ([f"{self._proc}/{pid}/exe"] if pid is not None else []) + [exe]:
            try:
                return opened, os.stat(opened)
            except (OSError, ValueError):
                continue
        return exe, None

    def _file_origin(self, exe: str, opened: str) -> ExeOrigin | None:
        owner = self.dpkg.owner(exe)
        if owner is not None:
            check = self.dpkg.verify(owner, opened)
            return ExeOrigin(OriginKind.DEB, owner.package, check.verified, "", check.why)
        digest = sha256_file(opened)
        if digest is None:
            return None
        return ExeOrigin(OriginKind.LOCAL, exe, None, digest)
