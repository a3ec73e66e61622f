"""inotify on watched device nodes (open/close) and on their folders (hot-plug).

inotify fires IN_OPEN / IN_CLOSE_* on a device node whenever ANY process opens or closes it
(inotify(7); measured ~0.2 ms), but does not say which process: the watcher only counts and
wakes the monitor, which then asks the fd scanner who it was.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import select
import threading
from typing import TYPE_CHECKING

from camguard.platform.base import Wake
from camguard.platform.linux.devices import expand_globs, watch_dirs
from camguard.platform.linux.fanotify import FanEvent, FanotifyReader, open_reader

if TYPE_CHECKING:
    from camguard.platform.linux.procfs import ProcfsSource

log = logging.getLogger(__name__)


class InotifyWatcher:
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
        # Nodes unlinked while a process held them (a hot-unplug): the kernel keeps the
        # watch on the inode until its last close (then IN_IGNORED), which is how that
        # holder's close is seen; the path now names another node, or none.
        self._unlinked: dict[int, str] = {}
        # Root only (None otherwise): the same nodes through fanotify, which names the opener.
        self._fan = open_reader()
        # fanotify is *read* by a thread of its own that does nothing else, so that its
        # queue is emptied at once: the kernel merges one process's unread events on one
        # file into one, so a reader held up while a process closes, reopens, closes and
        # reopens loses a session boundary (docs/benchmarks.md, "Open/close storm"). What
        # it reads waits in _fan_pending, in order, for this thread or the monitor thread
        # (pump()) to hand to the source. _fan_read_lock: reading and queueing, together;
        # _fan_lock: handing over (one batch at a time, in order) and re-marking.
        self._fan_lock = threading.Lock()
        self._fan_read_lock = threading.Lock()
        self._fan_pending: list[FanEvent] = []
        self._poller = select.poll()
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._fan_r, self._fan_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)  # "read some"
        self._thread = threading.Thread(target=self._run, name="camguard-inotify", daemon=True)
        self._fan_thread = threading.Thread(target=self._drain_fanotify,
                                            name="camguard-fanotify", daemon=True)

    @property
    def fanotify_active(self) -> bool:
        """fanotify reports every open and close of the watched nodes (root)."""
        return self._fan is not None

    def watched(self) -> set[str]:
        """The nodes watched right now (read from the monitor thread: a copy)."""
        return set(self._nodes.values())

    def start(self) -> None:
        self._rewatch()
        self._thread.start()
        if self._fan is not None:
            self._fan_thread.start()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        self._thread.join(2)
        if self._fan_thread.is_alive():
            self._fan_thread.join(2)
        for fd in (self._stop_r, self._stop_w, self._fan_r, self._fan_w):
            os.close(fd)
        self._ino.close()
        if self._fan is not None:
            self._fan.close()

    def _rewatch(self) -> None:
        """(Re)establish watches to match what the globs match now.

        A folder or node may appear between listing what exists and arming a watch on it
        (a card's folder and node made together, just after the old folder's watch ended):
        nothing would ever report it. So after arming, look again, until nothing new shows up.
        """
        globs = self._source.globs()
        problems: dict[str, str] = {}
        wanted_nodes: set[str] = set()
        for _ in range(8):
            wanted_nodes = {path for _, path in expand_globs(globs)}
            wanted_dirs = watch_dirs(globs)
            problems = self._arm(wanted_nodes, wanted_dirs)
            if ({path for _, path in expand_globs(globs)} == wanted_nodes
                    and watch_dirs(globs) == wanted_dirs):
                break
        with self._fan_lock:
            fan_problems = {} if self._fan is None else self._fan.watch(wanted_nodes)
        for path, why in fan_problems.items():
            log.debug("fanotify cannot mark %s (%s): inotify only there", path, why)
        self._source._reset_counts()
        self._source._set_unwatchable(problems)

    def _arm(self, wanted_nodes: set[str], wanted_dirs: set[str]) -> dict[str, str]:
        """Watch exactly these nodes and folders; what could not be watched, and why."""
        problems: dict[str, str] = {}
        for wd, path in list(self._nodes.items()):
            if path not in wanted_nodes:
                self._rm(wd)
                del self._nodes[wd]
        for wd, d in list(self._dirs.items()):
            if d not in wanted_dirs:  # the watch moved down (or up) the tree
                self._rm(wd)
                del self._dirs[wd]
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
        return problems

    def _matches(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, g) for gs in self._source.globs().values()
                   for g in gs)

    def _rm(self, wd: int) -> None:
        with contextlib.suppress(OSError):
            self._ino.rm_watch(wd)  # may be gone already (IN_IGNORED raced us)

    def _on_node(self, wd: int, node: str, mask: int) -> bool:
        """Count an open or close of a watched node; True if the watches must be redone."""
        f = self._f
        if mask & f.OPEN:
            self._source._count(node, +1)
        if mask & (f.CLOSE_WRITE | f.CLOSE_NOWRITE):
            self._source._count(node, -1)
        if mask & f.IGNORED:  # the kernel dropped the watch: forget it
            del self._nodes[wd]
        if mask & (f.DELETE_SELF | f.IGNORED | f.ATTRIB):
            self._source._mark_structural()
            return bool(mask & (f.DELETE_SELF | f.IGNORED))
        return False

    def _on_unlinked(self, wd: int, mask: int) -> bool:
        """The last holder of an unlinked node closed it (then the watch ends): True if a
        close was counted."""
        f = self._f
        path = self._unlinked[wd]
        if mask & f.IGNORED:
            del self._unlinked[wd]
        if mask & (f.CLOSE_WRITE | f.CLOSE_NOWRITE):
            self._source._count(path, -1)
            return True
        return False

    def _run(self) -> None:
        f = self._f
        poller = self._poller
        poller.register(self._ino.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        poller.register(self._fan_r, select.POLLIN)
        while True:
            try:
                ready = dict(poller.poll())
            except InterruptedError:
                continue
            if self._stop_r in ready:
                return
            fan_events = False
            if self._fan_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._fan_r, 4096)
                fan_events = self._hand_over()
            try:
                events = self._ino.read(timeout=0)
            except OSError:
                log.exception("inotify read failed")
                return
            changed = False
            rewatch = False
            for ev in events:
                if ev.mask & f.Q_OVERFLOW:
                    # Events were dropped: nothing pending can be explained now; rescan.
                    self._source._reset_counts(lost=True)
                    rewatch = True
                    continue
                if ev.wd in self._unlinked:
                    changed = self._on_unlinked(ev.wd, ev.mask) or changed
                    continue
                node = self._nodes.get(ev.wd)
                if node is not None:
                    rewatch = self._on_node(ev.wd, node, ev.mask) or rewatch
                    changed = True
                elif ev.wd in self._dirs:
                    if ev.mask & f.IGNORED:
                        del self._dirs[ev.wd]
                        rewatch = changed = True
                    elif ev.mask & f.ISDIR or self._matches(f"{self._dirs[ev.wd]}/{ev.name}"):
                        # Hot-plug of a node we care about (ignore the ttys, pts, ...).
                        rewatch = changed = True
            if rewatch:
                for wd, p in list(self._nodes.items()):
                    if not os.path.exists(p):
                        self._unlinked[wd] = self._nodes.pop(wd)
                self._rewatch()
            if changed or fan_events:
                self._wake()

    def _drain_fanotify(self) -> None:
        """The fanotify thread: read as soon as anything is queued, and only read."""
        fan = self._fan
        if fan is None:
            return
        poller = select.poll()
        poller.register(fan.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            try:
                ready = dict(poller.poll())
            except InterruptedError:
                continue
            if self._stop_r in ready:
                return
            if not self._read_fanotify(fan):
                if self._fan is not fan:  # it failed: inotify only from now on
                    with self._fan_lock, self._fan_read_lock:
                        fan.close()
                    return
                continue
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
                os.write(self._fan_w, b"x")

    def _read_fanotify(self, fan: FanotifyReader) -> bool:
        """Read what is queued into _fan_pending; True when something was."""
        with self._fan_read_lock:
            if self._fan is not fan:
                return False
            try:
                events = fan.read()
            except OSError:
                log.exception("fanotify read failed: inotify only from now on")
                self._fan = None
                return False
            self._fan_pending.extend(events)
        return bool(events)

    def _hand_over(self) -> bool:
        """Give the source what was read, in order; True when there was something."""
        with self._fan_lock:
            with self._fan_read_lock:
                batch, self._fan_pending = self._fan_pending, []
            if batch:
                self._source._fanotify(batch)
        return bool(batch)

    def pump(self) -> None:
        """Read what fanotify queued so far, now (monitor thread): the scan that follows an
        open must find its episode on record, even when the other threads are slow to run."""
        fan = self._fan
        if fan is not None:
            self._read_fanotify(fan)
        self._hand_over()
