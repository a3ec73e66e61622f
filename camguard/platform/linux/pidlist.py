"""The processes to search for the opener of a node, newest first, without listing /proc on
every open (issue 16: freeze while asking, without privileges).

Listing /proc costs ~0.5 ms per 1,000 processes (6-12 ms at 10,000 on a loaded 2-core
machine), and an unprivileged camguard must search /proc on every open inotify reports,
before it can name and pause the opener. But the kernel hands out pids in order: the next
pid is the first free one above the namespace's cursor, wrapping at ``pid_max``
(kernel/pid.c: alloc_pid -> idr_alloc_cyclic). ``/proc/sys/kernel/ns_last_pid`` reads that
cursor and ``/proc/stat``'s ``processes`` counts every fork since boot (threads included),
so after one listing the processes made since are among the pids between the cursor then
and the cursor now, as long as fewer than ``pid_max`` were made meanwhile (no full turn).
Threads take their ids from the same cursor, and ``/proc/TID`` (not listed, but there)
shows the whole process's fd table under the thread's id: only thread-group leaders are
kept (pidfd_open refuses the others). A pid placed out of order (clone3's set_tid, a write
to ns_last_pid: both need CAP_CHECKPOINT_RESTORE over the namespace, i.e. root here; CRIU
restores) is not in the list until the next listing, which every idle look and any list
older than :data:`MAX_AGE` makes. Pids that exit stay in the list until then (they read as
gone: one failed ``stat``).

Only where the two agree: ``proc_root`` is ``/proc`` and it shows this process's own pid
namespace (``/proc/self`` is our pid); elsewhere (a fake /proc in tests, /proc of another
namespace) every call lists. Not thread-safe: the monitor thread only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping

from camguard.platform.linux.fdscan import Pairs, ProcUnreadableError, Scanner

# At most this many forks since the last listing, and a cursor moved by at most this much,
# to extend the list instead of listing again.
MAX_NEW = 4096
# A list older than this (seconds) is listed again before it is used.
MAX_AGE = 30.0
_CURSOR = "/proc/sys/kernel/ns_last_pid"


class PidList:
    """The pids of ``proc_root``: listed, or extended by the processes made since (module
    docstring); newest first (pids are handed out rising and wrap at pid_max: the newest
    are those just below the cursor, and those above it are from before a wrap)."""

    def __init__(self, proc_root: str = "/proc") -> None:
        self._root = proc_root
        self._usable = proc_root == "/proc" and _own_namespace()
        self._order: list[int] = []  # newest first
        self._known: set[int] = set()
        self._cursor = -1
        self._forks = -1
        self._at = 0.0
        # How the last call got its list: "listed" or "extended" (for tests and benches).
        self.last = ""

    def fresh(self) -> tuple[list[int], set[int]]:
        """List ``proc_root`` now: every pid, newest first (and no pid known to be new: a
        listing does not say which are)."""
        cursor, forks = self._counters() if self._usable else (None, None)
        try:
            entries = os.listdir(self._root)
        except OSError as exc:
            raise ProcUnreadableError(f"cannot list {self._root}: {exc}") from exc
        pids = sorted((int(e) for e in entries if e.isdigit()), reverse=True)
        if cursor is not None:  # those above the cursor are from before a wrap: oldest
            pids = [p for p in pids if p <= cursor] + [p for p in pids if p > cursor]
        self._order, self._known = pids, set(pids)
        self._cursor = cursor if cursor is not None else -1
        self._forks = forks if forks is not None else -1
        self._at = time.monotonic()
        self.last = "listed"
        return pids, set()

    def current(self) -> tuple[list[int], set[int]]:
        """Every pid that may exist now, newest first, without listing when the last
        listing is recent and few processes were made since (else :meth:`fresh`); and the
        pids made since the last call (a pid in it is a new process even if an exited one
        had the same pid: its fd count says nothing)."""
        if not self._usable or self._cursor < 0 or time.monotonic() - self._at > MAX_AGE:
            return self.fresh()
        cursor, forks = self._counters()
        if (cursor is None or forks is None or self._forks < 0
                or not 0 <= forks - self._forks <= MAX_NEW
                or not 0 <= cursor - self._cursor <= MAX_NEW):
            return self.fresh()  # a turn of the pid space, or too many to try one by one
        # Threads take ids from the same cursor, and /proc/TID (not listed, but there)
        # shows the process's fd table under the thread's id: processes only.
        new = [p for p in range(cursor, self._cursor, -1) if _is_process(p)]
        self._cursor, self._forks = cursor, forks
        if new:
            self._order = [p for p in new if p not in self._known] + self._order
            self._known.update(new)
        self.last = "extended"
        return self._order, set(new)

    @staticmethod
    def _counters() -> tuple[int | None, int | None]:
        """The pid cursor, then the fork count (read before listing: a pid made after the
        listing is above that cursor)."""
        return _read_int(_CURSOR), _forks()


def _read_int(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            return int(fh.read(32))
    except (OSError, ValueError):
        return None


def _forks() -> int | None:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"processes "):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _is_process(pid: int) -> bool:
    """``pid`` is a running process (a thread group's leader), not a thread or gone:
    pidfd_open refuses a thread's id (EINVAL before Linux 6.9, ENOENT since)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    os.close(fd)
    return True


def _own_namespace() -> bool:
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def search_openers(scanner: Scanner, found: Pairs, attributed: Callable[[], bool], *,
                   order: list[int], new: Collection[int], skip: Collection[int],
                   counts: Mapping[int, int], unreadable: Collection[int]) -> None:
    """Look for the opener(s) of what was opened since the last look among ``order``
    (newest first), until ``attributed``: a process that is ``new`` or whose fd count
    changed since the last look (``counts``) is read as the walk meets it, before any
    older one is even ``stat``-ed; those whose count did not change are read only when
    that finds nobody, and before them those whose fd table was unreadable at the last
    look (another account's: platform/linux/hidden.py counts them instead). The reading
    order of ``stat``-ing every process first, but an opener that started recently (a
    one-shot tool; a browser's new media process) is read after a few ``stat`` calls
    instead of one per process on the machine (~1.5 ms per 1,000; issue 16)."""
    later: list[int] = []
    unchanged: list[int] = []
    for pid in order:
        if pid in skip:
            continue
        if pid in unreadable and pid not in new:
            later.append(pid)
        elif pid not in new and scanner.fd_count(pid) == counts.get(pid):
            unchanged.append(pid)
        else:
            scanner.scan(pid, found)
            if attributed():
                return
    for pid in later + unchanged:
        scanner.scan(pid, found)
        if attributed():
            return
