"""fanotify (FAN_REPORT_FID) on watched device nodes: who opened a node, straight from the kernel.

inotify says *that* a node was opened, not by whom; the fd scan answers who, but only for an
fd still open when it looks. fanotify in FID mode reports opens and closes of character
devices WITH the opener's pid (~130 us); it needs CAP_SYS_ADMIN (fanotify_init(2)). Classic
fanotify (fd-reporting) drops device-node events, and permission events are refused on
character devices (EINVAL), so this only observes. Unavailable (not root, old kernel) means
:func:`open_reader` returns None and camguard works as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from camguard.core.models import ProcessRef

log = logging.getLogger(__name__)

# include/uapi/linux/fanotify.h
FAN_CLASS_NOTIF = 0x0
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_REPORT_FID = 0x200
FAN_MARK_ADD = 0x1
FAN_MARK_REMOVE = 0x2
FAN_CLOSE_WRITE = 0x08
FAN_CLOSE_NOWRITE = 0x10
FAN_OPEN = 0x20
FAN_Q_OVERFLOW = 0x4000
FAN_CLOSE = FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE
FAN_EVENT_INFO_TYPE_FID = 1
FANOTIFY_METADATA_VERSION = 3
AT_FDCWD = -100
MAX_HANDLE_SZ = 128  # include/linux/exportfs.h

# struct fanotify_event_metadata {u32 event_len; u8 vers; u8 reserved; u16 metadata_len;
# u64 mask; s32 fd; s32 pid}; info header {u8 type; u8 pad; u16 len}; then fsid (2 x s32)
# and struct file_handle {u32 handle_bytes; s32 handle_type; u8 f_handle[]}.
_META = struct.Struct("=IBBHQii")
_INFO = struct.Struct("=BBH")
_FSID = struct.Struct("=II")
_HANDLE = struct.Struct("=Ii")

# Episodes tracked at once (a process holds few files on a camera).
MAX_OPEN_RECORDS = 4096


@dataclass(frozen=True, slots=True)
class FanEvent:
    """One kernel report: ``mask`` bits (OPEN and CLOSE may be merged) by ``pid`` on ``path``."""

    mask: int
    pid: int
    path: str
    at: float


@dataclass(frozen=True, slots=True)
class Transient:
    """One use of a node by one process, from its first open to its last close, both seen
    by fanotify (an "episode"). ``seen``: a snapshot reported it from its fd, so its close
    ends a session already reported; otherwise it is a use no /proc scan ever saw."""

    process: ProcessRef
    path: str
    opened: float
    closed: float
    exited: bool  # the process was gone before camguard could describe it
    seen: bool = False


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_init.restype = ctypes.c_int
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                                   ctypes.c_char_p]
    libc.fanotify_mark.restype = ctypes.c_int
    libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                                       ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    libc.name_to_handle_at.restype = ctypes.c_int
    return libc


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


class FanotifyReader:
    """An fanotify group with inode marks on the watched nodes (not thread-safe: one owner)."""

    MASK = FAN_OPEN | FAN_CLOSE

    def __init__(self) -> None:
        self._libc = _libc()
        fd: int = self._libc.fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK
                                      | FAN_REPORT_FID, os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            raise _oserror("fanotify_init")
        self._fd = fd
        self._keys: dict[bytes, str] = {}  # fsid + handle type + handle -> node path

    def fileno(self) -> int:
        return self._fd

    def watch(self, paths: Iterable[str]) -> dict[str, str]:
        """Mark exactly ``paths``; returns the nodes that could not be marked, and why.

        Keys are recomputed each time: a node re-created at the same path is a new inode
        with a new handle (the old inode's mark goes away with the inode)."""
        problems: dict[str, str] = {}
        keys: dict[bytes, str] = {}
        for path in paths:
            try:
                key = self._key(path)
                if self._keys.get(key) != path:
                    self._mark(FAN_MARK_ADD, path)
                keys[key] = path
            except OSError as exc:
                problems[path] = str(exc)
        kept = set(keys.values())
        for path in set(self._keys.values()) - kept:
            # A path still wanted may hold a new inode now: removing by path would unmark it.
            with contextlib.suppress(OSError):  # gone with its inode
                self._mark(FAN_MARK_REMOVE, path)
        self._keys = keys
        return problems

    def read(self) -> list[FanEvent]:
        """Every queued event on a watched node (an overflow is reported as path ``""``)."""
        events: list[FanEvent] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return events
            if not data:
                return events
            events.extend(self._parse(data, time.monotonic()))

    def close(self) -> None:
        os.close(self._fd)

    def _parse(self, data: bytes, now: float) -> list[FanEvent]:
        out: list[FanEvent] = []
        off = 0
        while off + _META.size <= len(data):
            length, vers, _, meta_len, mask, fd, pid = _META.unpack_from(data, off)
            if length < _META.size or vers != FANOTIFY_METADATA_VERSION:
                log.debug("fanotify: unexpected event (len %d, version %d)", length, vers)
                break
            if fd >= 0:  # never with FAN_REPORT_FID; close it rather than leak it
                os.close(fd)
            if mask & FAN_Q_OVERFLOW:
                out.append(FanEvent(mask, pid, "", now))
            else:
                path = self._path_of(data[off + meta_len:off + length])
                if path is not None:
                    out.append(FanEvent(mask, pid, path, now))
            off += length
        return out

    def _path_of(self, info: bytes) -> str | None:
        pos = 0
        while pos + _INFO.size <= len(info):
            kind, _, length = _INFO.unpack_from(info, pos)
            if length < _INFO.size:
                return None
            if kind == FAN_EVENT_INFO_TYPE_FID:
                start = pos + _INFO.size
                size, _ = _HANDLE.unpack_from(info, start + _FSID.size)
                end = start + _FSID.size + _HANDLE.size + size
                return self._keys.get(info[start:end])
            pos += length
        return None

    def _key(self, path: str) -> bytes:
        """fsid + file handle, laid out as the kernel reports them in the FID record."""
        buf = ctypes.create_string_buffer(_HANDLE.size + MAX_HANDLE_SZ)
        _HANDLE.pack_into(buf, 0, MAX_HANDLE_SZ, 0)
        mount_id = ctypes.c_int()
        if self._libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), buf,
                                        ctypes.byref(mount_id), 0) < 0:
            raise _oserror("name_to_handle_at")
        size, _ = _HANDLE.unpack_from(buf, 0)
        # glibc's statvfs folds the kernel's two fsid words into one: val[0] | val[1] << 32.
        fsid = os.statvfs(path).f_fsid
        return _FSID.pack(fsid & 0xFFFFFFFF, fsid >> 32) + buf.raw[:_HANDLE.size + size]

    def _mark(self, flags: int, path: str) -> None:
        if self._libc.fanotify_mark(self._fd, flags, self.MASK, AT_FDCWD,
                                    os.fsencode(path)) < 0:
            raise _oserror("fanotify_mark")


CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h


def _has_sys_admin() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def open_reader() -> FanotifyReader | None:
    """An fanotify group, or None where the kernel or our privileges do not allow one.

    Since Linux 5.13 an unprivileged user may create an FID group too, but every event from
    another process then carries pid 0 (fanotify_user.c: copy_event_to_user, FANOTIFY_UNPRIV),
    which inotify already tells us: only a CAP_SYS_ADMIN listener is worth running."""
    # Said at INFO (``-v``): whether fanotify runs decides whether 1 ms opens are seen.
    if not _has_sys_admin():
        log.info("fanotify not used: no CAP_SYS_ADMIN (openers would show as pid 0); "
                 "using inotify and /proc only")
        return None
    try:
        reader = FanotifyReader()
    except (OSError, AttributeError) as exc:  # EPERM, ENOSYS, EINVAL; no such libc symbol
        log.info("fanotify unavailable, using inotify and /proc only: %s", exc)
        return None
    log.info("fanotify in use: the kernel names the process behind every open and close")
    return reader


@dataclass(slots=True)
class _Track:
    """The open episode of one (pid, node): how many of its opens are not closed yet."""

    count: int
    ref: ProcessRef
    exited: bool
    opened: float
    last: float
    seen: bool = False
    # Begun by a merged OPEN|CLOSE on a held file: close then reopen, or close, reopen and
    # close again (same bits). The next scan tells: held, or not (then it ended there).
    unsure: bool = False


class OpenLog:
    """Per (pid, node), counts opens minus closes into episodes; fed by the reader thread.

    An episode runs from the open that takes the count from 0 to the close that brings it
    back to 0. FAN_CLOSE fires when an open file is released (the last fd sharing it closes:
    fs/file_table.c __fput), so the count is of open files, not of fds. A completed episode
    is what ends a session: a close followed by a reopen within a millisecond is two
    episodes, hence two sessions, even if no look happens in between.
    """

    def __init__(self, describe: Callable[[int], ProcessRef | None]) -> None:
        self._describe = describe
        self._lock = threading.Lock()
        self._tracks: dict[tuple[int, str], _Track] = {}
        self._hints: set[int] = set()
        self._done: list[Transient] = []

    def add(self, events: Iterable[FanEvent]) -> None:
        for ev in events:
            if not ev.path:  # overflow: counts are unreliable now; the scan still holds
                with self._lock:
                    self._tracks.clear()
                continue
            if ev.pid <= 0:  # not ours to know (an unprivileged group): inotify covers it
                continue
            key = (ev.pid, ev.path)
            opened, closed = bool(ev.mask & FAN_OPEN), bool(ev.mask & FAN_CLOSE)
            ref = self._describe(ev.pid) if opened else None
            with self._lock:
                track = self._tracks.get(key)
                if opened:
                    self._hints.add(ev.pid)
                if opened and closed and track is not None and track.count == 1:
                    # The kernel merges one process's unread events on one file into one
                    # (fanotify.c: fanotify_merge); with the file held before, the likely
                    # order is the one a single-fd program does: close, then reopen.
                    log.debug("fanotify: merged open and close of held %s by pid %d: a "
                              "close then a reopen, or also a close (the next scan says)",
                              ev.path, ev.pid)
                    self._end(key, track, ev.at)
                    self._begin(key, ev.pid, ref, ev.at).unsure = True
                    continue
                if opened:
                    if track is None:
                        track = self._begin(key, ev.pid, ref, ev.at)
                    else:
                        track.count += 1
                        track.last = ev.at
                if closed and track is not None:
                    # A merged OPEN|CLOSE on a file not held before: open, then its close.
                    track.count -= 1
                    track.last = ev.at
                    if track.count <= 0:
                        self._end(key, track, ev.at)
                # A close with no open on record: opened before we watched (a scan adopts
                # those), or a fork-shared file released by another process.

    def _begin(self, key: tuple[int, str], pid: int, ref: ProcessRef | None, at: float
               ) -> _Track:
        # Named at the open, while it surely runs: a one-frame grabber may be gone by the look.
        track = _Track(1, ref or ProcessRef(pid, 0.0), ref is None, at, at)
        if len(self._tracks) < MAX_OPEN_RECORDS:
            self._tracks[key] = track
        return track

    def _end(self, key: tuple[int, str], track: _Track, at: float) -> None:
        self._tracks.pop(key, None)
        self._done.append(Transient(track.ref, key[1], track.opened, at, track.exited,
                                    track.seen))

    def take(self) -> tuple[set[int], list[Transient]]:
        """The pids that opened a node since the last take, and the completed episodes."""
        with self._lock:
            hints, done = self._hints, self._done
            self._hints, self._done = set(), []
        return hints, done

    def settle(self, held: Collection[tuple[int, str]], scanned: float) -> list[Transient]:
        """After a scan that began at ``scanned``: an unsure episode read before it and not
        held now had ended at its merged event. Returns every episode completed since the
        last take (those included)."""
        with self._lock:
            for key, track in list(self._tracks.items()):
                if track.unsure and track.last < scanned:
                    track.unsure = False
                    if key not in held:
                        self._end(key, track, track.opened)
            done, self._done = self._done, []
        return done

    def reported(self, pid: int, path: str, ref: ProcessRef, files: int, now: float) -> None:
        """A snapshot reported ``pid`` holding ``path`` from its fd: its episode is seen.

        Called after a last read of the queue, so the open of any fd the scan found is on
        record, unless it predates the marks: then the held files are adopted as an episode.
        An episode that ended since (the close was just read) is marked too."""
        key = (pid, path)
        with self._lock:
            track = self._tracks.get(key)
            if track is not None:
                track.seen = True
                return
            for i in range(len(self._done) - 1, -1, -1):
                t = self._done[i]
                if (t.process.pid, t.path) == key:
                    self._done[i] = dataclasses.replace(t, seen=True)
                    return
            if len(self._tracks) < MAX_OPEN_RECORDS:
                self._tracks[key] = _Track(files, ref, False, now, now, seen=True)

    def prune(self, held: Collection[tuple[int, str]], now: float, after: float = 1.0) -> None:
        """End the episodes not held by this look whose last event is ``after`` s old."""
        with self._lock:
            for key, track in list(self._tracks.items()):
                if key not in held and now - track.last >= after:
                    # Its close was lost (merged into an event read as a reopen): it ended
                    # by now. An adopted count left too high ends the same way.
                    self._end(key, track, track.last)


def transient_note(t: Transient) -> str:
    # Events are stamped when read (~0.1 ms after the fact), so the span is approximate.
    ms = max(1, math.ceil((t.closed - t.opened) * 1000))
    note = f"opened and closed within about {ms} ms"
    if t.exited:
        note += "; the process exited before camguard could name it"
    return note
