"""Who holds which device node: a /proc/*/fd scan, woken by inotify on the nodes themselves.

psutil's ``open_files()`` keeps regular files only (``S_ISREG``), so it never lists a camera;
we read ``/proc/PID/fd`` links ourselves (``os.readlink`` with ``dir_fd``, ~2-4 us per fd) and
use psutil only to name the holders. inotify tells us *that* a node was opened or closed
(any process, ~0.2 ms) but not *who*; the scan answers who. Counting opens minus closes per
node also reveals a holder we cannot see (another user's process, without privileges).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import logging
import os
import select
import stat
import threading
import time
from collections.abc import Collection, Iterable

from camguard.core.models import (
    UNSEEN_PROCESS_NOTE,
    Degraded,
    Device,
    DeviceKind,
    SourceSnapshot,
    Usage,
)
from camguard.platform.base import Wake
from camguard.platform.linux.devices import DeviceTable, expand_globs, watch_dirs
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

# Majors of real video4linux and ALSA nodes (Documentation/admin-guide/devices.txt). Only
# these are matched by device number as well as by path, to catch an alias node made with
# CAP_MKNOD; stand-in nodes in tests use the null driver's 1:3 and must not alias /dev/null.
V4L2_MAJOR = 81
ALSA_MAJOR = 116
# fd targets under /dev that are never cameras or microphones: skip the stat() for them.
_BORING_DEV = ("/dev/null", "/dev/zero", "/dev/pts/", "/dev/tty", "/dev/urandom",
               "/dev/random", "/dev/ptmx", "/dev/full", "/dev/console",
               "/dev/shm/")  # noqa: S108 (a prefix to skip, not a temp file)
_DELETED = " (deleted)"

# How long an inotify-announced open may stay unattributed before it is reported as held by
# a process we cannot see. open(2) raises IN_OPEN before the fd is installed in the opener's
# table (fs/open.c: do_sys_openat2 -> do_filp_open ... fd_install), so a scan a few
# microseconds later can miss it: we look again instead of guessing.
UNSEEN_GRACE = 0.05
RECHECK = 0.01


Pairs = dict[str, set[tuple[int, int]]]
# Opens and closes per node since the last look, and whether anything structural happened.
_Pending = tuple[dict[str, int], dict[str, int], bool]


class _Scanner:
    """Reads one process's fd table and keeps the device-matching entries."""

    FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

    def __init__(self, paths: Collection[str], proc_root: str,
                 alias_rdevs: Collection[int] = ()) -> None:
        self.targets = frozenset(paths)
        self.deleted = {p + _DELETED: p for p in self.targets}
        self.proc_root = proc_root
        self.alias_rdevs = frozenset(alias_rdevs)
        self.hidden = 0
        # Number of open fds per pid, as the kernel reports it in st_size of /proc/PID/fd
        # (fs/proc/fd.c, Linux >= 6.2; 0 before, which only disables the shortcut).
        self.fd_counts: dict[int, int] = {}

    def pids(self) -> list[int]:
        try:
            entries = os.listdir(self.proc_root)
        except OSError as exc:
            raise ProcUnreadableError(f"cannot list {self.proc_root}: {exc}") from exc
        return [int(e) for e in entries if e.isdigit()]

    def fd_count(self, pid: int) -> int:
        try:
            return os.stat(f"{self.proc_root}/{pid}/fd").st_size
        except OSError:
            return -1

    def scan(self, pid: int, into: Pairs) -> None:
        """Add ``pid``'s matching ``(pid, fd)`` pairs to ``into``; vanished = nothing."""
        try:
            dfd = os.open(f"{self.proc_root}/{pid}/fd", self.FLAGS)
        except PermissionError:
            self.hidden += 1
            return
        except OSError:  # vanished (ENOENT), or gone mid-way (ESRCH)
            return
        try:
            try:
                fds = os.listdir(dfd)
                self.fd_counts[pid] = os.fstat(dfd).st_size
            except PermissionError:
                self.hidden += 1
                return
            except OSError:
                return
            links = _readlinks(dfd, fds)
            # Set operations run in C: most processes hold nothing of interest, and for them
            # this is the whole cost after the readlinks themselves.
            if (self.targets.isdisjoint(links) and self.deleted.keys().isdisjoint(links)
                    and not self.alias_rdevs):
                return
            for fd, target in zip(fds, links, strict=True):
                if target in self.targets:
                    into.setdefault(target, set()).add((pid, int(fd)))
                elif target in self.deleted:  # held across a hot-unplug: still in use
                    into.setdefault(self.deleted[target], set()).add((pid, int(fd)))
                elif (self.alias_rdevs and target.startswith("/dev/")
                      and not target.startswith(_BORING_DEV)):
                    # Only under /dev: a stat() per regular file would double the scan.
                    # An alias made elsewhere needs CAP_MKNOD, i.e. an attacker who is
                    # already root; inotify does not see it either (another inode).
                    alias = _alias_of(dfd, fd, self.alias_rdevs)
                    if alias is not None:
                        into.setdefault(alias, set()).add((pid, int(fd)))
        finally:
            os.close(dfd)


def scan_holders(paths: Collection[str], proc_root: str = "/proc",
                 alias_rdevs: Collection[int] = ()) -> tuple[dict[str, list[tuple[int, int]]], int]:
    """Map each of ``paths`` to the ``(pid, fd)`` pairs that hold it open (a full scan).

    Also returns how many processes could not be inspected (their ``fd`` folder was not
    readable: another user's, without privileges). A process that vanishes mid-scan is
    skipped. ``alias_rdevs``: device numbers to match even under another path.
    """
    scanner = _Scanner(paths, proc_root, alias_rdevs)
    found: Pairs = {}
    for pid in scanner.pids():
        scanner.scan(pid, found)
    return {k: sorted(v) for k, v in found.items()}, scanner.hidden


def _readlinks(dfd: int, fds: list[str]) -> list[str]:
    """The targets of ``fds`` (names inside the open ``/proc/PID/fd`` folder ``dfd``)."""
    try:
        return list(map(functools.partial(os.readlink, dir_fd=dfd), fds))
    except OSError:  # one closed between listdir and readlink: go one by one
        links = []
        for fd in fds:
            try:
                links.append(os.readlink(fd, dir_fd=dfd))
            except OSError:
                links.append("")
        return links


def _alias_of(dfd: int, fd: str, rdevs: Collection[int]) -> str | None:
    try:
        st = os.stat(fd, dir_fd=dfd)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode) and st.st_rdev in rdevs:
        return f"rdev:{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return None


class ProcUnreadableError(OSError):
    """/proc itself cannot be listed (not mounted, or hidepid with no access)."""


class ProcfsSource:
    """Device nodes matched by path globs; holders from /proc; wake-ups from inotify.

    Threads: :meth:`snapshot` runs on the monitor thread and blocks for one /proc scan
    (~40 ms with 1,000 processes and 11,000 fds). :meth:`start` runs an inotify reader
    thread that only counts opens/closes and calls ``wake`` (never scans itself).
    """

    name = "procfs"

    def __init__(
        self,
        camera_globs: Iterable[str],
        mic_globs: Iterable[str],
        *,
        describer: ProcessDescriber,
        sound_server_exes: Collection[str] = (),
        proc_root: str = "/proc",
        sys_root: str = "/sys",
    ) -> None:
        self._globs = {DeviceKind.CAMERA: tuple(camera_globs),
                       DeviceKind.MICROPHONE: tuple(mic_globs)}
        self._describer = describer
        self._sound_servers = frozenset(sound_server_exes)
        self._proc_root = proc_root
        self._table = DeviceTable(sys_root=sys_root, proc_root=proc_root)
        self._lock = threading.Lock()
        self._open_counts: dict[str, int] = {}
        self._unwatchable: dict[str, str] = {}
        self._unseen_since: dict[str, float] = {}
        self._watcher: _InotifyWatcher | None = None
        # What changed since the last look (filled by the inotify thread), and what the last
        # look found: together they let most looks skip the full /proc scan.
        self._pending_opens: dict[str, int] = {}
        self._pending_closes: dict[str, int] = {}
        self._structural = False
        self._pairs: Pairs | None = None
        self._fd_counts: dict[int, int] = {}

    # -- UsageSource ---------------------------------------------------------------------
    def snapshot(self) -> SourceSnapshot:
        devices = self._devices()
        by_path = {d.path: d for d in devices if d.path}
        alias = {rdev: path for path, rdev in self._table.rdevs(by_path).items()
                 if os.major(rdev) in (V4L2_MAJOR, ALSA_MAJOR)}
        scanner = _Scanner(by_path, self._proc_root, alias.keys())
        try:
            holders = self._collect(scanner, self._take_pending())
        except ProcUnreadableError as exc:
            self._pairs = None
            return SourceSnapshot(self.name, frozenset(devices),
                                  degraded=Degraded(self.name, str(exc)))
        self._pairs = holders
        usages: set[Usage] = set()
        fd_counts: dict[str, int] = {}
        for found, pairs in holders.items():
            path = found
            if found.startswith("rdev:"):
                major, minor = (int(x) for x in found[5:].split(":"))
                path = alias.get(os.makedev(major, minor), found)
            device = by_path.get(path) or self._vanished_device(path)
            fd_counts[path] = fd_counts.get(path, 0) + len(pairs)
            for pid in sorted({pid for pid, _ in pairs}):
                ref = self._describer.describe(pid)
                if ref is None:
                    continue  # exited between the scan and now
                if device.kind is DeviceKind.MICROPHONE and ref.exe in self._sound_servers:
                    continue  # the sound server holds it for apps that pulse.py names
                usages.add(Usage(device, ref, via="fd"))
        recheck = self._unseen(by_path, fd_counts, usages)
        return SourceSnapshot(self.name, frozenset(devices), frozenset(usages),
                              degraded=self._degraded(scanner.hidden), recheck_in=recheck)

    def _collect(self, scanner: _Scanner, pending: _Pending) -> Pairs:
        """The holders now: a full scan, or (after opens only, or closes only, since the last
        look) a shortcut that reads only the processes that can have changed.

        Closes only: just the known holders can have lost a device. Opens only: the known
        holders stay holders, and the new opener is looked for first among processes whose
        fd count changed (newest first), stopping once every open is attributed. Anything
        else (hot-plug, a queue overflow, a periodic rescan, a first look) is a full scan.
        """
        prev = self._pairs
        opens, closes, structural = pending
        found: Pairs = {}
        if (prev is None or structural or not (opens or closes) or (opens and closes)
                or set(prev) - scanner.targets):
            for pid in scanner.pids():
                scanner.scan(pid, found)
            self._fd_counts = scanner.fd_counts
            return found
        known = {pid for pairs in prev.values() for pid, _ in pairs}
        for pid in known:
            scanner.scan(pid, found)
        if closes:
            return found

        def attributed() -> bool:
            return all(len(found.get(p, set()) - prev.get(p, set())) >= n
                       for p, n in opens.items())

        if not attributed():
            candidates = [pid for pid in scanner.pids() if pid not in known]
            counts = self._fd_counts
            changed = {pid for pid in candidates if scanner.fd_count(pid) != counts.get(pid)}
            order = sorted(changed, reverse=True) + sorted(
                (pid for pid in candidates if pid not in changed), reverse=True)
            for pid in order:
                scanner.scan(pid, found)
                if attributed():
                    break
        self._fd_counts.update(scanner.fd_counts)
        return found

    def _take_pending(self) -> _Pending:
        with self._lock:
            pending = (self._pending_opens, self._pending_closes, self._structural)
            self._pending_opens, self._pending_closes, self._structural = {}, {}, False
        return pending

    def start(self, wake: Wake) -> None:
        if self._watcher is not None:
            return
        self._watcher = _InotifyWatcher(self, wake)
        self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    # -- helpers -------------------------------------------------------------------------
    def globs(self) -> dict[DeviceKind, tuple[str, ...]]:
        return dict(self._globs)

    def _devices(self) -> list[Device]:
        return [self._table.device(kind, path, self.name)
                for kind, path in expand_globs(self._globs)]

    def _vanished_device(self, path: str) -> Device:
        kind = DeviceKind.CAMERA
        for k, patterns in self._globs.items():
            if any(fnmatch.fnmatchcase(path, g) for g in patterns):
                kind = k
        return Device(kind, path, name="(removed)", path=path, source=self.name)

    def _unseen(self, by_path: dict[str, Device], fd_counts: dict[str, int],
                usages: set[Usage]) -> float | None:
        """Add a process-less usage for a node opened more often than we can see held."""
        now = time.monotonic()
        recheck: float | None = None
        with self._lock:
            counts = dict(self._open_counts)
        for path, opened in counts.items():
            device = by_path.get(path)
            if device is None or opened <= fd_counts.get(path, 0):
                self._unseen_since.pop(path, None)
                continue
            since = self._unseen_since.setdefault(path, now)
            if now - since < UNSEEN_GRACE:
                recheck = RECHECK
                continue
            usages.add(Usage(device, None, note=UNSEEN_PROCESS_NOTE, via="inotify"))
        return recheck

    def _degraded(self, hidden: int) -> Degraded | None:
        with self._lock:
            unwatchable = dict(self._unwatchable)
        if not unwatchable:
            return None
        paths = ", ".join(sorted(unwatchable)[:5])
        return Degraded(self.name, f"cannot watch {paths} ({next(iter(unwatchable.values()))});"
                                   " changes there are seen only by the periodic rescan")

    # Called by the watcher thread.
    def _count(self, path: str, delta: int) -> None:
        with self._lock:
            self._open_counts[path] = max(0, self._open_counts.get(path, 0) + delta)
            pending = self._pending_opens if delta > 0 else self._pending_closes
            pending[path] = pending.get(path, 0) + 1

    def _mark_structural(self) -> None:
        with self._lock:
            self._structural = True

    def _reset_counts(self, paths: Iterable[str]) -> None:
        with self._lock:
            self._structural = True
            keep = set(paths)
            self._open_counts = {p: c for p, c in self._open_counts.items() if p in keep}

    def _set_unwatchable(self, problems: dict[str, str]) -> None:
        with self._lock:
            self._unwatchable = problems


class _InotifyWatcher:
    """inotify on every matched node (open/close) and on their folders (hot-plug)."""

    def __init__(self, source: ProcfsSource, wake: Wake) -> None:
        from inotify_simple import INotify
        from inotify_simple import flags as f

        self._f = f
        self._source = source
        self._wake = wake
        self._ino = INotify()
        self._node_mask = f.OPEN | f.CLOSE_WRITE | f.CLOSE_NOWRITE | f.DELETE_SELF | f.ATTRIB
        self._dir_mask = f.CREATE | f.DELETE | f.MOVED_TO | f.MOVED_FROM
        self._nodes: dict[int, str] = {}
        self._dirs: dict[int, str] = {}
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="camguard-inotify", daemon=True)

    def start(self) -> None:
        self._rewatch()
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        self._thread.join(2)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._ino.close()

    def _rewatch(self) -> None:
        """(Re)establish watches to match what the globs match now."""
        globs = self._source.globs()
        wanted_nodes = {path for _, path in expand_globs(globs)}
        wanted_dirs = watch_dirs(globs)
        problems: dict[str, str] = {}
        for wd, path in list(self._nodes.items()):
            if path not in wanted_nodes:
                self._rm(wd)
                del self._nodes[wd]
        have = set(self._nodes.values())
        for path in sorted(wanted_nodes - have):
            try:
                self._nodes[self._ino.add_watch(path, self._node_mask)] = path
            except OSError as exc:  # needs read permission on the node (inotify(7))
                problems[path] = exc.strerror or str(exc)
        have_dirs = set(self._dirs.values())
        for d in sorted(wanted_dirs - have_dirs):
            try:
                self._dirs[self._ino.add_watch(d, self._dir_mask)] = d
            except OSError as exc:
                problems[d] = exc.strerror or str(exc)
        self._source._reset_counts(self._nodes.values())
        self._source._set_unwatchable(problems)

    def _matches(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) for gs in self._source.globs().values()
                   for g in gs)

    def _rm(self, wd: int) -> None:
        with contextlib.suppress(OSError):
            self._ino.rm_watch(wd)  # may be gone already (IN_IGNORED raced us)

    def _run(self) -> None:
        f = self._f
        poller = select.poll()
        poller.register(self._ino.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            try:
                ready = dict(poller.poll())
            except InterruptedError:
                continue
            if self._stop_r in ready:
                return
            try:
                events = self._ino.read(timeout=0)
            except OSError:
                log.exception("inotify read failed")
                return
            changed = False
            rewatch = False
            for ev in events:
                if ev.mask & f.Q_OVERFLOW:
                    # Counts are unreliable after an overflow: forget them, rescan.
                    self._source._reset_counts(())
                    rewatch = True
                    continue
                node = self._nodes.get(ev.wd)
                if node is not None:
                    if ev.mask & f.OPEN:
                        self._source._count(node, +1)
                    if ev.mask & (f.CLOSE_WRITE | f.CLOSE_NOWRITE):
                        self._source._count(node, -1)
                    if ev.mask & (f.DELETE_SELF | f.IGNORED | f.ATTRIB):
                        self._source._mark_structural()
                        rewatch = rewatch or bool(ev.mask & (f.DELETE_SELF | f.IGNORED))
                    changed = True
                elif ev.wd in self._dirs:
                    if ev.mask & f.IGNORED:
                        del self._dirs[ev.wd]
                        rewatch = changed = True
                    elif ev.mask & f.ISDIR or self._matches(f"{self._dirs[ev.wd]}/{ev.name}"):
                        # Hot-plug of a node we care about (ignore the ttys, pts, ...).
                        rewatch = changed = True
            if rewatch:
                self._nodes = {wd: p for wd, p in self._nodes.items() if os.path.exists(p)}
                self._rewatch()
            if changed:
                self._wake()
