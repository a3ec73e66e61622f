"""SHA-256 of executables, streamed with a size cap, cached by file identity, off the hot path.

An app is its executable path plus its SHA-256 (ARCHITECTURE.md, "Identity"). Hashing a
200 MB browser takes a good part of a second, so the history store hands it to
:class:`BackgroundHasher` instead of doing it on the monitor thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import stat
import threading
from collections.abc import Callable
from typing import Protocol

from camguard.core.models import ProcessRef

log = logging.getLogger(__name__)

# Bigger files are not hashed (NULL): no real camera app is a 2 GB binary, and a hostile
# process must not make camguard read an endless file.
MAX_HASH_BYTES = 1 << 30
_CHUNK = 1 << 20
_CACHE_SIZE = 512

Hasher = Callable[[ProcessRef], str | None]
Deliver = Callable[[str | None], None]


class BinarySource(Protocol):
    """Where to read the binary a process runs (platform.process.RunningBinary: through
    the kernel's link to it, never through a path its owner may have pointed elsewhere),
    and whether the process is still the one meant once the hash is done."""

    def path(self, process: ProcessRef) -> str: ...

    def same(self, process: ProcessRef) -> bool: ...


def sha256_file(path: str, limit: int = MAX_HASH_BYTES) -> str | None:
    """Hex SHA-256 of the regular file at ``path``; None if missing, unreadable or too big."""
    digest, _key = _hash_with_key(path, limit, None)
    return digest


def _hash_with_key(path: str, limit: int, cache: dict[tuple[object, ...], str] | None,
                   *, named: bool = True) -> tuple[str | None, tuple[object, ...] | None]:
    try:
        # O_NONBLOCK: a path swapped for a FIFO must not hang the hashing thread.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):  # ValueError: an embedded NUL in a hostile path
        return None, None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None, None
        # A file read through a process's link is known by its identity alone (every
        # process of one binary has its own link).
        key = ((path,) if named else ()) + (st.st_dev, st.st_ino, st.st_size,
                                            st.st_mtime_ns, st.st_ctime_ns)
        if cache is not None and key in cache:
            return cache[key], key
        h = hashlib.sha256()
        total = 0
        while chunk := os.read(fd, _CHUNK):
            total += len(chunk)
            if total > limit:  # the file grew while we read it
                return None, None
            h.update(chunk)
        return h.hexdigest(), key
    except OSError:
        return None, None
    finally:
        os.close(fd)


class ExeHasher:
    """``ProcessRef -> sha256 | None`` over ``p.exe``, with a small cache.

    The cache key includes device, inode, size, mtime and ctime, so a binary replaced at
    the same path is hashed again. Thread-safe. Never raises.
    """

    def __init__(self, limit: int = MAX_HASH_BYTES, *, source: BinarySource | None = None
                 ) -> None:
        """``source``: read the binary through it (the root service: see BinarySource);
        None: the process's exe path, as the user's own camguard may."""
        self._limit = limit
        self._source = source
        self._cache: dict[tuple[object, ...], str] = {}
        self._lock = threading.Lock()

    def __call__(self, process: ProcessRef) -> str | None:
        if not process.exe:
            return None
        source = self._source
        path = process.exe if source is None else source.path(process)
        # One lock over the whole hash: hashing is rare (once per binary) and runs on one
        # background thread, so serialising it costs nothing and keeps the cache simple.
        with self._lock:
            digest, key = _hash_with_key(path, self._limit, self._cache,
                                         named=source is None)
            if digest is not None and key is not None and key not in self._cache:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = digest
        if source is not None and not source.same(process):
            return None  # it exited and its pid may name another process's binary now
        return digest


class ScriptHasher:
    """``ProcessRef -> sha256 | None`` of the script an interpreter runs
    (``ProcessRef.script``), with a small cache keyed like :class:`ExeHasher`'s. Thread-safe;
    never raises. A module (``-m module``) or no script gives None."""

    def __init__(self, limit: int = MAX_HASH_BYTES, *, source: BinarySource | None = None
                 ) -> None:
        """``source``: where to read the script (the root service: platform.process.
        RunningScript, through the process's own root, only a file the process's owner
        could read); None: the script's path, as the user's own camguard may."""
        self._limit = limit
        self._source = source
        self._cache: dict[tuple[object, ...], str] = {}
        self._lock = threading.Lock()

    def __call__(self, process: ProcessRef) -> str | None:
        if not process.script.startswith("/"):
            return None
        source = self._source
        path = process.script if source is None else source.path(process)
        if not path:
            return None
        with self._lock:
            digest, key = _hash_with_key(path, self._limit, self._cache)
            if digest is not None and key is not None and key not in self._cache:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = digest
        if source is not None and not source.same(process):
            return None
        return digest


class BackgroundHasher:
    """One daemon thread that hashes executables and hands each result to a callback.

    ``submit`` never blocks. The callback runs on the hashing thread; an exception from it
    or from the hasher is logged, never raised.
    """

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self._queue: queue.Queue[tuple[ProcessRef, Deliver] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._idle = threading.Condition()
        self._pending = 0

    def submit(self, process: ProcessRef, deliver: Deliver) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="camguard-hasher",
                                                daemon=True)
                self._thread.start()
        with self._idle:
            self._pending += 1
        self._queue.put((process, deliver))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job was delivered; False if ``timeout`` ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            process, deliver = job
            try:
                digest = self._hasher(process)
            except Exception:
                log.exception("hashing %r failed", process.exe)
                digest = None
            try:
                deliver(digest)
            except Exception:
                log.exception("storing the hash of %r failed", process.exe)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
