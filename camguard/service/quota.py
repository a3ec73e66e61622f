"""Connection quotas per account, slots kept for admins, and refusals logged without flooding.

One account must not be able to lock everyone else out of the API (docs/security.md): each
uid that is not an admin may hold at most ``per_uid`` connections (``watch`` ones included)
and all of them together at most ``max_clients - admin_reserve``; the last
``admin_reserve`` slots are kept for admins and root. A watch that sits open holds a slot
only until the same account needs it: opening more than ``watches_per_uid`` watches, or any
connection past the account's quota, closes that account's oldest watch instead of refusing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_MAX_CLIENTS = 64
DEFAULT_PER_UID = 8
DEFAULT_ADMIN_RESERVE = 8
DEFAULT_WATCHES_PER_UID = 4
LOG_EVERY = 60.0  # seconds: at most one warning per uid per minute about refusals


@dataclass(eq=False)
class Slot:
    """One connection's place. ``evicted`` is set when its watch must make room."""

    uid: int
    admin: bool
    watch: bool = False
    evicted: threading.Event = field(default_factory=threading.Event)


class Quotas:
    """Thread-safe: the accept thread takes slots, connection threads give them back."""

    def __init__(self, max_clients: int = DEFAULT_MAX_CLIENTS, *,
                 per_uid: int = DEFAULT_PER_UID, admin_reserve: int = DEFAULT_ADMIN_RESERVE,
                 watches_per_uid: int = DEFAULT_WATCHES_PER_UID) -> None:
        self.max_clients = max(1, max_clients)
        self.reserve = min(max(0, admin_reserve), self.max_clients - 1)
        self.per_uid = max(1, per_uid)
        self.watches_per_uid = max(1, min(watches_per_uid, self.per_uid))
        self._lock = threading.Lock()
        self._slots: set[Slot] = set()
        # Live watches per uid, oldest first (the order they started in).
        self._watches: dict[int, OrderedDict[int, Slot]] = {}

    def _count(self, uid: int | None = None) -> int:
        """Slots held (by ``uid``), not counting watches already told to go."""
        return sum(1 for s in self._slots
                   if (uid is None or s.uid == uid) and not s.evicted.is_set())

    def acquire(self, uid: int, admin: bool) -> Slot | str:
        """A slot for a new connection of ``uid``, or why not (the client is told busy)."""
        with self._lock:
            total = self._count()
            if admin:
                if total >= self.max_clients:
                    return "too many clients; try again later"
            else:
                make_room = self._count(uid) >= self.per_uid
                if make_room and self._oldest_watch(uid) is None:
                    return (f"your account already has {self.per_uid} connections open; "
                            "close one and try again")
                if total - make_room >= self.max_clients - self.reserve:
                    return "too many clients; try again later"
                if make_room:
                    self._evict_oldest(uid)
            slot = Slot(uid, admin)
            self._slots.add(slot)
            return slot

    def start_watch(self, slot: Slot) -> None:
        """``slot`` turned into a watch; an account past its watch quota loses its oldest."""
        with self._lock:
            slot.watch = True
            mine = self._watches.setdefault(slot.uid, OrderedDict())
            mine[id(slot)] = slot
            if not slot.admin:
                while sum(not s.evicted.is_set() for s in mine.values()) > \
                        self.watches_per_uid:
                    if not self._evict_oldest(slot.uid):
                        break

    def release(self, slot: Slot) -> None:
        with self._lock:
            self._slots.discard(slot)
            mine = self._watches.get(slot.uid)
            if mine is not None:
                mine.pop(id(slot), None)
                if not mine:
                    del self._watches[slot.uid]

    def _oldest_watch(self, uid: int) -> Slot | None:
        for slot in self._watches.get(uid, OrderedDict()).values():
            if not slot.evicted.is_set():
                return slot
        return None

    def _evict_oldest(self, uid: int) -> bool:
        """Tell ``uid``'s oldest live watch to close (its slot counts as free from now)."""
        slot = self._oldest_watch(uid)
        if slot is None:
            return False
        slot.evicted.set()
        log.info("uid %d: closing its oldest watch to make room for a new connection", uid)
        return True


class RefusalLog:
    """Refused connections as at most one WARNING per uid per :data:`LOG_EVERY` seconds,
    with how many more were refused in between (a flood must not flood the log too)."""

    def __init__(self, monotonic: Callable[[], float], every: float = LOG_EVERY) -> None:
        self._now = monotonic
        self._every = every
        self._lock = threading.Lock()
        # uid -> (when the last warning was written, refusals since then, last reason)
        self._seen: dict[int, tuple[float, int, str]] = {}

    def refused(self, uid: int, why: str) -> None:
        now = self._now()
        with self._lock:
            last = self._seen.get(uid)
            if last is not None and now - last[0] < self._every:
                self._seen[uid] = (last[0], last[1] + 1, why)
                return
            self._seen[uid] = (now, 0, why)
        more = "" if last is None or not last[1] else \
            f" ({last[1]} more refused in the {now - last[0]:.0f} s before)"
        log.warning("refused a connection from uid %d: %s%s", uid, why, more)

    def flush(self) -> None:
        """Write the count of refusals not yet reported once their minute is over."""
        now = self._now()
        with self._lock:
            due = [(uid, n, why) for uid, (at, n, why) in self._seen.items()
                   if n and now - at >= self._every]
            for uid, _n, why in due:
                self._seen[uid] = (now, 0, why)
            for uid in [u for u, (at, n, _w) in self._seen.items()
                        if not n and now - at >= 2 * self._every]:
                del self._seen[uid]
        for uid, n, why in due:
            log.warning("refused %d more connections from uid %d in the last minute: %s",
                        n, uid, why)


class Turns:
    """Takes turns at expensive requests (``history``): one at a time per account, and at
    most ``lanes`` at once for everyone. A reader builds and encodes a large answer in
    Python, holding the interpreter lock; thirty of one account's at once would starve the
    monitor's thread of it and delay camera events (bench/service_abuse.py). Waiting for a
    turn holds no lock the monitor needs."""

    def __init__(self, lanes: int = 2) -> None:
        self._lanes = threading.BoundedSemaphore(lanes)
        self._per_uid: dict[int, tuple[threading.Lock, int]] = {}
        self._lock = threading.Lock()

    def run(self, uid: int, work: Callable[[], bytes]) -> bytes:
        with self._lock:
            mine, users = self._per_uid.get(uid, (threading.Lock(), 0))
            self._per_uid[uid] = (mine, users + 1)
        try:
            with mine, self._lanes:
                return work()
        finally:
            with self._lock:
                lock, users = self._per_uid[uid]
                if users == 1:
                    del self._per_uid[uid]
                else:
                    self._per_uid[uid] = (lock, users - 1)
