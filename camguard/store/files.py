"""Private files: atomic 0600 writes, keeping a damaged file aside instead of losing it, and
the one reader of ``settings.json`` (each owner then takes its own section)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from camguard.store import paths

# settings.json is written by camguard and edited by hand: a few kilobytes. Far more is not a
# settings file, and reading it all would let it take the memory of every camguard started.
MAX_SETTINGS_BYTES = 1 << 20


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, its folder 0700.

    A temporary file in the same folder, fsync'ed, then ``os.replace``: a reader sees the old
    or the new content, never half of it. ``O_NOFOLLOW`` refuses a symlink planted at the
    temporary name.
    """
    paths.private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask; be exact
        view = memoryview(data)
        while view:  # os.write may write less than asked (large files, signals)
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)


def aside_path(path: Path) -> Path:
    """The first free ``<name>.corrupt-N`` beside ``path``, to keep a damaged file."""
    for n in range(1, 10_000):
        aside = path.with_name(f"{path.name}.corrupt-{n}")
        if not aside.exists():
            return aside
    return path.with_name(f"{path.name}.corrupt-{os.getpid()}")


# O_CLOEXEC and O_NOFOLLOW do not exist on Windows (its handles are not inherited by default,
# and a lock file there is never a symlink camguard follows into another file's lock).
_LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_BINARY", 0))


def _win_lock(fd: int, *, wait: bool, locking: Any = None) -> bool:
    """Lock the first byte of ``fd`` (Windows: msvcrt.locking, released when the fd is
    closed). ``wait``: until it is ours (LK_LOCK gives up after 10 s, so retry); else one
    try. True when held. NEVER RUN on Windows: tested on Linux with a Fake msvcrt."""
    if locking is None:
        import msvcrt  # type: ignore[import-not-found, unused-ignore]

        locking = msvcrt
    while True:
        try:
            locking.locking(fd, locking.LK_LOCK if wait else locking.LK_NBLCK, 1)
            return True
        except OSError:  # EDEADLOCK after LK_LOCK's ten tries, EACCES for LK_NBLCK
            if not wait:
                return False


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` across processes (the tray, the CLI and the
    service may rewrite the same file at once). The lock file is 0600 in a 0700 folder."""
    paths.private_dir(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, _LOCK_FLAGS, 0o600)
    try:
        if sys.platform == "win32":
            _win_lock(fd, wait=True)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def held_by_us(lock_path: Path) -> Iterator[bool]:
    """Try to take an exclusive lock on ``lock_path`` (0600) without waiting: True while we
    hold it, False when another process does (on Windows through msvcrt.locking)."""
    fd = os.open(lock_path, _LOCK_FLAGS, 0o600)
    try:
        if sys.platform == "win32":
            yield _win_lock(fd, wait=False)
            return
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def read_settings(path: Path) -> tuple[dict[str, Any], str | None]:
    """The JSON object in ``settings.json`` and, when it cannot be used, why (then ``{}``:
    the defaults). A missing file is no problem. Never raises; never changes the file."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"cannot read {path}: {exc.strerror or exc}; using defaults"
    if len(raw) > MAX_SETTINGS_BYTES:
        return {}, f"{path} is larger than {MAX_SETTINGS_BYTES} bytes; using defaults"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSON and UTF-8 errors alike
        return {}, f"{path} is not valid JSON ({exc}); using defaults"
    if not isinstance(doc, dict):
        return {}, f"{path} is not a JSON object; using defaults"
    return doc, None
