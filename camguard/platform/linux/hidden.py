"""Who holds a node without camguard being able to see it: another account's process.

Without privileges camguard cannot read another account's ``/proc/PID/fd``, but inotify
still reports every open and close of the node. Counting opens minus closes is not enough:
inotify merges an event identical to the one still unread before it (inotify(7), "If
successive output inotify events produced on the inotify file descriptor are identical ...
they are coalesced into a single event"), so two back-to-back opens count as one, and the
count drifts either way (a hidden holder missed, or a phantom one with every opener visible).

So the events are only a reason to look again. What decides is a re-check against /proc:
the number of open fds of every process, which the kernel gives to anyone as the size of
``/proc/PID/fd`` (fs/proc/fd.c: proc_fd_getattr, Linux >= 6.2) even where the fd table
itself is unreadable. An open that no visible process explains is held by a hidden process
only if a hidden process's fd count rose since the look before the open; such a process holds the
node until its count falls back to what it was before, or it exits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# open(2) raises IN_OPEN before the fd is installed in the opener's table (fs/open.c:
# do_sys_openat2 -> do_filp_open ... fd_install), so a visible opener can be missed for a
# few microseconds: an open no one explains is re-checked for this long before it counts.
GRACE = 0.05
RECHECK = 0.01
# A suspect counts once its fd count has stayed up this long, re-checked by full scans in
# between: a process merely busy at the moment of an open (one starting up, a short-lived
# helper) is back down or gone by then; a holder still holds.
CONFIRM = 0.25
# While idle, re-read the hidden processes' fd counts this often (one listing of /proc and
# one stat per process), so a process that opens the node has a base from before.
REFRESH = 5.0


@dataclass(slots=True)
class _Unexplained:
    """Opens and closes of one node since the last decision, and the evidence base."""

    opens: int = 0
    closes: int = 0
    new: int = 0  # fds visible processes gained on the node meanwhile
    gone: int = 0  # fds visible processes lost on it
    first: float | None = None  # when an open was first left unexplained
    base: dict[int, int] = field(default_factory=dict)  # hidden fd counts before the open
    # A look that reads only the likely openers (the processes whose fd count changed) left
    # it unexplained: only a full scan decides now.
    tried: bool = False


@dataclass(slots=True)
class _Holder:
    """A hidden process suspected of holding a node."""

    files: int  # how many files it opened there (its fd count rose by that much)
    base: int  # its fd count before it opened them
    cohort: int  # suspects of one unexplained open share a number
    at: float  # when it became a suspect (monotonic)
    confirmed: bool = False  # its count fell when the node was closed


class HiddenHolders:
    """Per node, the uninspectable processes holding it and how many files each holds.

    Runs on the monitor thread (inside ``ProcfsSource.snapshot``); not thread-safe.
    """

    def __init__(self, grace: float = GRACE) -> None:
        self._grace = grace
        self._holders: dict[str, dict[int, _Holder]] = {}
        self._cohorts = 0
        self._since: dict[str, float] = {}
        self._todo: dict[str, _Unexplained] = {}
        self._fds: dict[int, int] | None = None  # hidden pid -> fd count at the last full look
        self._now = 0.0

    def wants_full_scan(self) -> bool:
        """An open the quick look (the likely openers only) did not explain while hidden
        processes exist, or a suspect still on probation: only a full scan re-checks.

        An open a visible process explains, the usual case, never costs a full scan: that
        is every process's fd table (~100 ms with 1,000 processes and 13,000 fds), against
        ~10 ms for the few whose fd count changed."""
        return ((bool(self._fds) and any(t.tried for t in self._todo.values()))
                or self._probation() is not None)

    def visible_may_explain(self) -> bool:
        """Every pending open and close is new, on a node no hidden process is suspected
        of holding, and no suspect is on probation: a look that reads only the processes
        that can have changed may explain them all by visible fds, with no full scan (whose
        cost grows with every process on the machine; issue 16). If it does not, the next
        look is full, as before."""
        return self._probation() is None and all(
            t.first is None and not t.tried and not self._holders.get(p)
            for p, t in self._todo.items())

    def _probation(self) -> float | None:
        """How long until the next suspect's probation ends, or None if none is on it."""
        left = [h.at + CONFIRM - self._now for hs in self._holders.values()
                for h in hs.values() if self._now - h.at < CONFIRM]
        return max(0.0, min(left)) if left else None

    @property
    def watching(self) -> bool:
        """Hidden processes exist (camguard runs without privileges): keep a fresh base."""
        return bool(self._fds)

    def refresh(self, hidden_fds: Mapping[int, int]) -> None:
        """A look without a full scan: the fd counts of the hidden processes now, so the
        base an open is compared with is that of the look just before it, processes
        started meanwhile included (a stale base lets processes that were merely busy or
        new since pass for holders)."""
        if self._fds and not self._todo:
            self._fds = dict(hidden_fds)

    def clear_events(self) -> None:
        """Events were lost (queue overflow, re-watch): nothing is left to explain."""
        self._todo.clear()

    def in_use(self) -> dict[str, float]:
        """Nodes held by a hidden process, with the earliest evidence of that (monotonic)."""
        return {p: self._since[p] for p, hs in self._holders.items()
                if any(self._now - h.at >= CONFIRM for h in hs.values())}

    def events(self, opens: Mapping[str, int], closes: Mapping[str, int]) -> None:
        """inotify's opens and closes per node since the last look (before its scan)."""
        for path in set(opens) | set(closes):
            todo = self._todo.setdefault(path, _Unexplained())
            todo.opens += opens.get(path, 0)
            todo.closes += closes.get(path, 0)

    def decide(self, new: Mapping[str, int], gone: Mapping[str, int],
               hidden_fds: Mapping[int, int] | None, now: float) -> float | None:
        """Fold in one look: the fds visible processes gained (``new``) and lost (``gone``)
        per node, and, after a full scan, the fd count of every process the scan could
        not read. Returns when to look again (a decision still waits), or None."""
        self._now = now
        for path, todo in self._todo.items():
            todo.new += new.get(path, 0)
            todo.gone += gone.get(path, 0)
        if hidden_fds is None:
            # A shortcut look: with no hidden process at the last full scan, none can hold
            # anything (root sees every fd table). Otherwise what a visible opener explains
            # is done; the rest waits for the full re-check, which the next look makes.
            if not self._fds:
                self._todo.clear()
            for path, todo in list(self._todo.items()):
                if _explained(todo) and not (todo.closes and self._holders.get(path)):
                    del self._todo[path]
                else:  # unexplained, or a close where a hidden holder may be the closer
                    todo.tried = True
            return RECHECK if self._todo or self._probation() is not None else None
        before = self._fds or {}
        self._fds = dict(hidden_fds)
        closing = {p for p, todo in self._todo.items() if todo.closes > todo.gone}
        for path, holders in self._holders.items():
            self._recheck_holders(holders, before, hidden_fds, path in closing)
        recheck: float | None = None
        for path, todo in list(self._todo.items()):
            if todo.first is None:
                todo.base = dict(before)
            # Net opens no visible process explains; inotify's counts are lower bounds
            # (merged events), so a close counted here may stand for several.
            net = _net(todo)
            if _explained(todo):
                del self._todo[path]
                continue
            todo.first = now if todo.first is None else todo.first
            if now - todo.first < self._grace:
                recheck = RECHECK  # the opener's fd may not be installed yet: look again
                continue
            self._opened(path, net, todo, hidden_fds)
            del self._todo[path]
        for path in [p for p, hs in self._holders.items() if not hs]:
            del self._holders[path]
            self._since.pop(path, None)
        probation = self._probation()
        if probation is not None:
            recheck = min(recheck if recheck is not None else probation, probation) or RECHECK
        return recheck

    def _recheck_holders(self, holders: dict[int, _Holder], before: Mapping[int, int],
                         hidden_fds: Mapping[int, int], closing: bool) -> None:
        dropped: set[int] = set()
        for pid, h in list(holders.items()):
            count = hidden_fds.get(pid, -1)  # -1: exited, its files are closed
            if closing and count < before.get(pid, count):
                h.confirmed = True  # its count fell as the node was closed: a real holder
                dropped.add(h.cohort)
            if count <= h.base:
                # Back to no more fds than before its open (or gone): what it opened is
                # closed. Holding the node it cannot be below base + 1.
                del holders[pid]
            elif count - h.base < h.files:
                h.files = count - h.base  # closed some of them
        for cohort in dropped:
            # Every process whose count rose with an open is a suspect; the one that fell
            # at the closes was the holder. Once no such one is left, the others were
            # only busy at the same moment (a process starting up, say): not holders.
            if not any(h.cohort == cohort and h.confirmed for h in holders.values()):
                for pid in [p for p, h in holders.items() if h.cohort == cohort]:
                    del holders[pid]

    def _opened(self, path: str, net: int, todo: _Unexplained,
                hidden_fds: Mapping[int, int]) -> None:
        """Give the unexplained opens to the hidden processes whose fd count rose since the
        look before them; none rose: a visible process's open the scans missed, no holder."""
        holders = self._holders.setdefault(path, {})
        self._cohorts += 1
        for pid, count in hidden_fds.items():
            base = todo.base.get(pid)
            if base is None:
                # Started after the look before the open (looks refresh the base at least
                # every REFRESH s): on a busy machine other accounts start processes all
                # the time, and each one's whole fd count would pass for a rise.
                continue
            if count > base:
                h = holders.get(pid)
                if h is None:
                    holders[pid] = _Holder(count - base, base, self._cohorts, self._now)
                else:
                    h.files += count - base
        if holders:
            log.debug("%s: %d open(s) no visible fd explains (%d opens, %d closes, %d new, "
                      "%d gone); suspects (pid: files): %s", path, net, todo.opens,
                      todo.closes, todo.new, todo.gone,
                      {pid: h.files for pid, h in holders.items()})
        if holders and path not in self._since:
            assert todo.first is not None  # noqa: S101 (set just before)
            self._since[path] = todo.first


def _net(todo: _Unexplained) -> int:
    """Opens no visible process explains; inotify's counts are lower bounds (merged
    events), so a close counted here may stand for several."""
    return (todo.opens - todo.new) - max(0, todo.closes - todo.gone)


def _explained(todo: _Unexplained) -> bool:
    return _net(todo) <= 0 or todo.opens <= todo.new
