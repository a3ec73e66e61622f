"""Fan-out of events to ``watch`` clients, each through its own bounded queue.

The monitor thread publishes and must never wait for a client: an event that does not fit
in a subscriber's queue drops that subscriber (its connection is then closed) instead of
holding up detection, history and enforcement for everyone.

A subscriber that *answers* (a tray that asks its person about each usage: ``watch`` with
``answers``, switched off and on by its ``asking`` request while its alerts are paused) is
what lets the service freeze an app while asking (service/enforcement.py): it freezes only
when such a subscriber can see the usage, and lets the app go when the last one leaves or
stops answering (:attr:`EventHub.on_change`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from camguard.core.models import Usage

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event line and the usage it is about (None: for everyone, e.g. a gap)."""

    payload: Mapping[str, Any]
    usage: Usage | None = None


class Subscription:
    """One watcher's queue. ``dropped`` turns True when it fell too far behind. ``answers``:
    it asks a person about each usage it sees (a tray whose alerts are not paused);
    ``owner``: the (uid, pid) of the client, whose ``asking`` request switches it."""

    def __init__(self, accept: Callable[[Outgoing], bool], maxsize: int, *,
                 answers: bool = False, owner: tuple[int, int] | None = None) -> None:
        self.accept = accept
        self.queue: queue.Queue[Outgoing] = queue.Queue(maxsize)
        self.dropped = False
        self.answers = answers
        self.owner = owner

    def get(self, timeout: float) -> Outgoing | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class EventHub:
    """Thread-safe: publish from any thread (never blocks); subscribe from connection threads."""

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self._maxsize = maxsize
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        # Called (on the caller's thread) when an answering subscriber left or stopped
        # answering: the service lets go the apps nobody can answer about now.
        self.on_change: Callable[[], None] | None = None

    def subscribe(self, accept: Callable[[Outgoing], bool], *, answers: bool = False,
                  owner: tuple[int, int] | None = None) -> Subscription:
        sub = Subscription(accept, self._maxsize, answers=answers, owner=owner)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub not in self._subs:
                return
            self._subs.remove(sub)
        if sub.answers:
            self._changed()

    def answerable(self, usage: Usage) -> bool:
        """Whether a subscriber that answers can see ``usage`` (someone can be asked)."""
        with self._lock:
            subs = [s for s in self._subs if s.answers and not s.dropped]
        probe = Outgoing({}, usage)
        return any(s.accept(probe) for s in subs)

    def set_answering(self, owner: tuple[int, int], on: bool) -> int:
        """Switch the subscriptions of the client ``owner`` (uid, pid) answering or not (its
        alerts paused); how many it has."""
        with self._lock:
            mine = [s for s in self._subs if s.owner == owner]
            for s in mine:
                s.answers = on
        if mine and not on:
            self._changed()
        return len(mine)

    def _changed(self) -> None:
        hook = self.on_change
        if hook is not None:
            try:
                hook()
            except Exception:
                log.exception("letting go what nobody can answer about failed")

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, item: Outgoing) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.dropped:
                continue
            try:
                if not sub.accept(item):
                    continue
                sub.queue.put_nowait(item)
            except queue.Full:
                sub.dropped = True
                self.unsubscribe(sub)  # an answering one: on_change lets its apps go
                log.warning("a watch client fell %d events behind; dropping it",
                            self._maxsize)
            except Exception:
                log.exception("a watch filter failed")
