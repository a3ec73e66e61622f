"""The device-node source: who holds which camera or raw audio node, found on inotify wake-ups.

psutil's ``open_files()`` keeps regular files only (``S_ISREG``), so it never lists a camera;
we read ``/proc/PID/fd`` links ourselves (``os.readlink`` with ``dir_fd``, ~2-4 us per fd) and
use psutil only to name the holders. inotify tells us *that* a node was opened or closed
(any process, ~0.2 ms) but not *who*; the scan answers who. Counting opens minus closes per
node also reveals a holder we cannot see (another user's process, without privileges).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable

from camguard.core.coverage import Coverage
from camguard.core.models import (
    UNSEEN_PROCESS_NOTE,
    Degraded,
    Device,
    DeviceKind,
    SourceSnapshot,
    Usage,
)
from camguard.platform.base import Wake
from camguard.platform.linux.coverage import procfs_coverage
from camguard.platform.linux.devices import DeviceTable, expand_globs
from camguard.platform.linux.episodes import SessionSplitter
from camguard.platform.linux.fanotify import FanEvent, OpenLog
from camguard.platform.linux.fdscan import (
    Identity,
    Pairs,
    Pending,
    ProcUnreadableError,
    Scanner,
    identity,
)
from camguard.platform.linux.hidden import REFRESH as HIDDEN_REFRESH
from camguard.platform.linux.hidden import HiddenHolders
from camguard.platform.linux.holder_search import HolderSearch
from camguard.platform.linux.inotify import InotifyWatcher
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

# Majors of real video4linux and ALSA nodes (Documentation/admin-guide/devices.txt). Only
# these are matched by device number as well as by path, to catch an alias node made with
# CAP_MKNOD; stand-in nodes in tests use the null driver's 1:3 and must not alias /dev/null.
V4L2_MAJOR = 81
ALSA_MAJOR = 116

# How soon to look again while the next phase of a session split waits: at once (the
# monitor's settle still batches), or a storm of fast reopens builds a backlog of phases.
RECHECK = 0.001


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
        camera_brokers: Collection[str] = (),
        broker_watched: Callable[[int], bool] | None = None,
        proc_root: str = "/proc",
        sys_root: str = "/sys",
    ) -> None:
        self._globs = {DeviceKind.CAMERA: tuple(camera_globs),
                       DeviceKind.MICROPHONE: tuple(mic_globs)}
        self._describer = describer
        self._sound_servers = frozenset(sound_server_exes)
        # Media servers that hold a camera for the apps the PipeWire source names.
        self._camera_brokers = frozenset(camera_brokers)
        # The service: a media server is a broker only when its account's PipeWire is
        # watched (user_pipewire.py); one nobody watches is reported as the holder.
        self._broker_watched = broker_watched
        self._proc_root = proc_root
        self._table = DeviceTable(sys_root=sys_root, proc_root=proc_root)
        self._lock = threading.Lock()
        # Holders in processes whose fd tables we cannot read (without privileges).
        self._hidden = HiddenHolders()
        self._events_lost = False
        self._unwatchable: dict[str, str] = {}
        self._watcher: InotifyWatcher | None = None
        # What changed since the last look (filled by the inotify thread), and what the last
        # look found: together they let most looks skip the full /proc scan.
        self._pending_opens: dict[str, int] = {}
        self._pending_closes: dict[str, int] = {}
        self._structural = False
        self._pairs: Pairs | None = None
        self._last_paths: set[str] = set()
        # Which processes a look reads, and the fd counts kept between looks for it.
        self._search = HolderSearch(proc_root)
        # The identity of each node at the last look, and of nodes unlinked since (a
        # hot-unplug): a process holding one still uses it, through a "(deleted)" fd.
        self._identities: dict[str, Identity] = {}
        self._removed: dict[str, set[Identity]] = {}
        # Root only: fanotify names openers (a hint for the scan), and where each use ends:
        # a brief use no scan could see, and a close then reopen (two sessions, not one).
        self._open_log = OpenLog(describer.describe)
        self._split = SessionSplitter(self._open_log, self._sound_servers,
                                      self._camera_brokers, broker_watched)

    # -- UsageSource ---------------------------------------------------------------------
    def snapshot(self) -> SourceSnapshot:
        self._search.new_look()
        devices = self._devices()
        by_path = {d.path: d for d in devices if d.path}
        alias = {rdev: path for path, rdev in self._table.rdevs(by_path).items()
                 if os.major(rdev) in (V4L2_MAJOR, ALSA_MAJOR)}
        self._note_removed(by_path)
        pending = self._take_pending()
        with self._lock:
            lost, self._events_lost = self._events_lost, False
        if lost:
            self._hidden.clear_events()
        self._hidden.events(pending[0], pending[1])
        self._pump()
        hints, episodes = self._open_log.take()
        if not episodes and not self._split.busy and self._quiet(pending, set(by_path)):
            if not self._hidden.watching:
                return SourceSnapshot(self.name, frozenset(devices),
                                      degraded=self._degraded(0))
            self._hidden.refresh(self._search.hidden_counts(Scanner(by_path, self._proc_root),
                                                            fresh=True))
            return SourceSnapshot(self.name, frozenset(devices), degraded=self._degraded(0),
                                  recheck_in=HIDDEN_REFRESH)
        scanned = time.monotonic()
        scanner = Scanner(by_path, self._proc_root, alias.keys(), self._removed)
        opens, closes, structural = pending
        watcher = self._watcher
        if (self._pairs is not None and not (episodes or opens or closes or structural)
                and self._split.busy and watcher is not None and watcher.fanotify_active
                and set(by_path) == self._last_paths):
            # Only the next phase of a split is due and fanotify, which reports every open
            # and close of the nodes, reported none: the holders are those of the last scan.
            holders, full, phase_only = self._pairs, False, True
        else:
            phase_only = False
            try:
                holders, full = self._search.collect(
                    scanner, self._pairs, pending, hints,
                    full=(self._hidden.wants_full_scan()
                          and not self._hidden.visible_may_explain()),
                    all_watched=self._all_watched)
            except ProcUnreadableError as exc:
                self._pairs = None
                return SourceSnapshot(self.name, frozenset(devices),
                                      degraded=Degraded(self.name, str(exc)))
            if full:  # forget unlinked nodes nobody holds any more
                self._removed = {p: ids for p, ids in self._removed.items() if holders.get(p)}
        new, gone = _changes(self._pairs or {}, holders)
        self._pairs = holders
        self._last_paths = set(by_path)
        usages: set[Usage] = set()
        held = self._held(holders, alias, by_path)
        recheck = self._hidden.decide(new, gone, scanner.hidden_fds if full else None,
                                      time.monotonic())
        if not full and self._hidden.watching:
            self._hidden.refresh(self._search.hidden_counts(scanner))
        for path in self._hidden.in_use():
            if path in by_path:
                usages.add(Usage(by_path[path], None, note=UNSEEN_PROCESS_NOTE, via="inotify"))
        # Every open behind an fd the scan found is queued by now (fsnotify_open runs before
        # fd_install): read them, so a held fd is matched to its episode.
        if not phase_only:
            self._pump()
            # Episodes that ended during the scan, and any a merged event left unsure.
            episodes += self._open_log.settle({key for key, _ in pairs_of(holders, alias)},
                                              scanned)
        usages |= self._split.usages(
            held, episodes, lambda p: by_path.get(p) or self._vanished_device(p),
            time.monotonic())
        if self._split.busy:
            recheck = RECHECK  # the next phase (a use ends, a brief one shows) comes soon
        return SourceSnapshot(self.name, frozenset(devices), frozenset(usages),
                              degraded=self._degraded(scanner.hidden), recheck_in=recheck)

    def _note_removed(self, by_path: dict[str, Device]) -> None:
        """Remember the identity of every node, and of each one gone since the last look."""
        now = {path: ident for path in by_path if (ident := identity(path)) is not None}
        for path, ident in self._identities.items():
            if now.get(path) != ident:
                self._removed.setdefault(path, set()).add(ident)
        self._identities = now

    def _held(self, holders: Pairs, alias: dict[int, str], by_path: dict[str, Device]
              ) -> dict[tuple[int, str], tuple[Usage, int]]:
        """(pid, node) -> its usage from the fd, and how many fds it holds there."""
        held: dict[tuple[int, str], tuple[Usage, int]] = {}
        for found, pairs in holders.items():
            path = found
            if found.startswith("rdev:"):
                major, minor = (int(x) for x in found[5:].split(":"))
                path = alias.get(os.makedev(major, minor), found)
            device = by_path.get(path) or self._vanished_device(path)
            for pid in sorted({pid for pid, _ in pairs}):
                ref = self._describer.describe(pid)
                if ref is None:
                    continue  # exited between the scan and now
                if device.kind is DeviceKind.MICROPHONE and ref.exe in self._sound_servers:
                    continue  # the sound server holds it for apps that pulse.py names
                if (device.kind is DeviceKind.CAMERA and ref.exe in self._camera_brokers
                        and (self._broker_watched is None or self._broker_watched(pid))):
                    continue  # PipeWire holds it for apps that pipewire.py names
                files = sum(1 for p, _ in pairs if p == pid)
                held[(pid, path)] = (Usage(device, ref, via="fd"), files)
        return held

    def _pump(self) -> None:
        if self._watcher is not None:
            self._watcher.pump()

    def _all_watched(self, paths: Collection[str]) -> bool:
        watcher = self._watcher
        with self._lock:
            unwatchable = bool(self._unwatchable)
        return watcher is not None and not unwatchable and set(paths) <= watcher.watched()

    def _quiet(self, pending: Pending, paths: set[str]) -> bool:
        """True when a look cannot find anything: every node is watched, none is held, and
        none was opened since the last full look. The periodic safety rescan then only
        burns CPU (a full scan is ~80 ms with 13,000 fds: 0.3% of a core every 30 s); it
        still runs whenever something is held (a fork-shared fd closes without an event)
        or a node cannot be watched."""
        opens, closes, structural = pending
        watcher = self._watcher
        if (watcher is None or self._pairs is None or opens or closes or structural
                or any(self._pairs.values()) or self._hidden.in_use()
                or self._hidden.wants_full_scan()
                or paths != self._last_paths or not paths <= watcher.watched()):
            return False
        with self._lock:
            return not self._unwatchable

    def _take_pending(self) -> Pending:
        with self._lock:
            pending = (self._pending_opens, self._pending_closes, self._structural)
            self._pending_opens, self._pending_closes, self._structural = {}, {}, False
        return pending

    def start(self, wake: Wake) -> None:
        if self._watcher is not None:
            return
        # psutil names the holders: imported now (~20 ms), before a watch can report an
        # open, not on the first opener's path to its alert and its freeze (issue 16). A
        # one-shot look (`camguard status`) never starts the source and never pays it.
        import psutil  # noqa: F401
        self._watcher = InotifyWatcher(self, wake)
        self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def coverage(self, last: SourceSnapshot | None) -> list[Coverage]:
        watcher = self._watcher
        return procfs_coverage(self.name, self._globs, last, fanotify_active=(
            None if watcher is None else watcher.fanotify_active))

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
            pending = self._pending_opens if delta > 0 else self._pending_closes
            pending[path] = pending.get(path, 0) + 1

    def _fanotify(self, events: list[FanEvent]) -> None:
        self._open_log.add(events)

    def _mark_structural(self) -> None:
        with self._lock:
            self._structural = True

    def _reset_counts(self, lost: bool = False) -> None:
        """Watches changed (``lost``: events were dropped, a queue overflow): look fully."""
        with self._lock:
            self._structural = True
            self._events_lost = self._events_lost or lost

    def _set_unwatchable(self, problems: dict[str, str]) -> None:
        with self._lock:
            self._unwatchable = problems


def pairs_of(holders: Pairs, alias: dict[int, str]) -> set[tuple[tuple[int, str], int]]:
    """Every (pid, node path) the scan found held, with its fd (aliases by their node)."""
    out = set()
    for found, pairs in holders.items():
        path = found
        if found.startswith("rdev:"):
            major, minor = (int(x) for x in found[5:].split(":"))
            path = alias.get(os.makedev(major, minor), found)
        out |= {((pid, path), fd) for pid, fd in pairs}
    return out


def _changes(before: Pairs, after: Pairs) -> tuple[dict[str, int], dict[str, int]]:
    """Per node, how many fds visible processes gained and lost between two scans."""
    new = {p: len(after.get(p, set()) - before.get(p, set())) for p in after}
    gone = {p: len(before.get(p, set()) - after.get(p, set())) for p in before}
    return ({p: n for p, n in new.items() if n}, {p: n for p, n in gone.items() if n})
