"""Which processes a look at the device nodes reads, and what it keeps between looks to read few.

:class:`HolderSearch` is the part of the procfs source (procfs.py) that decides, from what
changed since the last look, whether a look reads every process, only the known holders, or
the known holders and every process whose fd count changed; and that keeps those per-process
fd counts, the processes whose fd tables we can and cannot read, and the look's pid list.
It runs on the monitor thread only, inside :meth:`ProcfsSource.snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from camguard.platform.linux.fdscan import Pairs, Pending, ProcUnreadableError, Scanner
from camguard.platform.linux.pidlist import PidList, search_openers

# A safety rescan while something is held sweeps every process's fd count once in this many
# (5 minutes at the default 30 s), or at once when a holder lost a node without a close.
SWEEP_EVERY = 10


class HolderSearch:
    """The processes a look reads, and the fd counts, readable pids and pid list behind it."""

    def __init__(self, proc_root: str) -> None:
        self._fd_counts: dict[int, int] = {}
        self._rescans = 0  # safety rescans since the last fd-count sweep
        self._readable_pids: set[int] = set()  # processes whose fd table we can read
        self._unreadable: set[int] = set()  # and those we could not, at the last look
        self._pidlist = PidList(proc_root)
        self._look_pids: tuple[list[int], set[int]] | None = None  # this look's

    def new_look(self) -> None:
        """A look begins: its pids are listed again when first needed."""
        self._look_pids = None

    def hidden_counts(self, scanner: Scanner, *, fresh: bool = False) -> dict[int, int]:
        """The fd count of every process whose fd table we cannot read, without a full
        scan: one stat each, and one probe for each process new since the last look.
        ``fresh``: list /proc (an idle look), else the look's list (module pidlist)."""
        counts: dict[int, int] = {}
        try:
            pids, new = self._pids_now(fresh=fresh)
        except ProcUnreadableError:
            return counts
        readable, known = self._readable_pids, self._fd_counts
        if fresh:
            readable.intersection_update(pids)  # a listing is exact: forget the gone
        readable -= new  # a new process, even under a pid seen before
        # (one comprehension: a loop with a set update per pid was ~1 ms at 10,000)
        for pid in [p for p in pids if p not in readable and (p in new or p not in known)]:
            count = scanner.probe(pid)
            if count is None:
                readable.add(pid)
            elif count >= 0:
                counts[pid] = count
        self._unreadable = set(counts)
        return counts

    def _pids_now(self, *, fresh: bool = False) -> tuple[list[int], set[int]]:
        """This look's pids, newest first, and those new since the last look: listed
        (``fresh``, or the first need of a look) or extended from the last listing by the
        kernel's pid cursor (pidlist.py). One per look; raises ProcUnreadableError."""
        if fresh or self._look_pids is None:
            self._look_pids = self._pidlist.fresh() if fresh else self._pidlist.current()
        return self._look_pids

    def collect(self, scanner: Scanner, prev: Pairs | None, pending: Pending, hints: set[int],
                *, full: bool, all_watched: Callable[[Collection[str]], bool]
                ) -> tuple[Pairs, bool]:
        """The holders now: a full scan, or (after opens only, or closes only, since the last
        look) a shortcut that reads only the processes that can have changed. ``prev``: the
        holders the last look found (None: there was none). ``hints``: pids fanotify saw
        opening a node, looked at first. ``full``: a hidden holder must be re-checked, which
        needs every process's fd count. ``all_watched``: whether every one of these nodes is
        watched (asked only when a rescan could do with less). Also says whether it was full.

        Closes only: just the known holders can have lost a device. Opens only: the known
        holders stay holders, and the new opener is looked for first among processes whose
        fd count changed (newest first), stopping once every open is attributed. The
        periodic rescan, while every node is watched: the known holders and every process
        whose fd count changed (see :meth:`_rescan`). Anything else (hot-plug, a queue
        overflow, a first look, an unwatched node) is a full scan.
        """
        opens, closes, structural = pending
        found: Pairs = {}
        if (not full and prev is not None and not structural and not (opens or closes)
                and not set(prev) - scanner.targets and all_watched(scanner.targets)
                and any(self._fd_counts.values())):
            return self._rescan(scanner, prev)
        if (full or prev is None or structural or not (opens or closes) or (opens and closes)
                or set(prev) - scanner.targets):
            for pid in self._pids_now(fresh=True)[0]:
                scanner.scan(pid, found)
            self._fd_counts = scanner.fd_counts
            self._unreadable = set(scanner.hidden_fds)
            return found, True
        known = {pid for pairs in prev.values() for pid, _ in pairs}
        for pid in known:
            scanner.scan(pid, found)
        if closes:
            # Their counts now: a holder that closes and opens again must look changed
            # then, or the search reads it last (after every other process; issue 16).
            self._fd_counts.update(scanner.fd_counts)
            return found, False

        def attributed() -> bool:
            return all(len(found.get(p, set()) - prev.get(p, set())) >= n
                       for p, n in opens.items())

        if not attributed():
            # fanotify named them: read just those, without listing /proc (flat at any
            # number of processes, issue 16); a hint that exited reads as nothing.
            for pid in sorted(hints - known):
                scanner.scan(pid, found)
        if not attributed():
            order, new = self._pids_now()
            search_openers(scanner, found, attributed, order=order, new=new,
                           skip=known | hints, counts=self._fd_counts,
                           unreadable=self._unreadable)
        self._fd_counts.update(scanner.fd_counts)
        return found, False

    def _rescan(self, scanner: Scanner, prev: Pairs) -> tuple[Pairs, bool]:
        """The safety rescan while something is held, and whether it was a full look.

        Every open of a watched node raises an event, so what a rescan can find without
        one is an fd that moved without an open: inherited by fork, or passed over a unix
        socket. Either shows first as a known holder losing a node with no close event
        (the last close of a shared description is the only one fanotify/inotify report),
        so most rescans read just the known holders (a few readlinks at any number of
        processes) and sweep every process's fd count only when a holder lost a node that
        way, or every :data:`SWEEP_EVERY`-th time: the one thing left to the sweep is a
        process that received a node while its sender still holds it (issue 16: 0.32% of
        a core at 10,000 processes swept every 30 s)."""
        self._rescans += 1
        if self._rescans < SWEEP_EVERY and not scanner.hidden_fds:
            found: Pairs = {}
            for pid in sorted({pid for pairs in prev.values() for pid, _ in pairs}):
                scanner.scan(pid, found)
            if found == prev and not scanner.hidden_fds:
                self._fd_counts.update(scanner.fd_counts)
                return found, False
        self._rescans = 0
        return self._sweep(scanner, prev), True

    def _sweep(self, scanner: Scanner, prev: Pairs) -> Pairs:
        """Every process whose fd count changed since the last look, or that is new, and
        the known holders (a fork-shared fd closes without an event): one stat per process
        instead of one readlink per fd (issue 16). A process whose count did not change
        cannot hold a node it did not hold then without an open, and every open of a
        watched node raises an event that makes the next look search for it. (Not read: a
        pid reused with exactly the old process's fd count, holding a node it inherited or
        was passed instead of opening it.) Processes we cannot read count as changed, so
        the hidden-holder counts stay whole. The kernel gives the count since Linux 6.2 (0
        before: the caller then scans everything)."""
        found: Pairs = {}
        known = {pid for pairs in prev.values() for pid, _ in pairs}
        before = self._fd_counts
        counts: dict[int, int] = {}
        for pid in self._pids_now(fresh=True)[0]:
            count = scanner.fd_count(pid)
            if pid in known or count != before.get(pid):
                scanner.scan(pid, found)
                count = scanner.fd_counts.get(pid, count)
            if count >= 0 and pid not in scanner.hidden_fds:
                counts[pid] = count
        self._fd_counts = counts
        self._unreadable = set(scanner.hidden_fds)
        return found
