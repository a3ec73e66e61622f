"""Fan-out of events to ``watch`` clients, each through its own bounded queue.

The monitor thread publishes and must never wait for a client: an event that does not fit
in a subscriber's queue drops that subscriber (its connection is then closed) instead of
holding up detection, history and enforcement for everyone.
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
    """One watcher's queue. ``dropped`` turns True when it fell too far behind."""

    def __init__(self, accept: Callable[[Outgoing], bool], maxsize: int) -> None:
        self.accept = accept
        self.queue: queue.Queue[Outgoing] = queue.Queue(maxsize)
        self.dropped = False

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

    def subscribe(self, accept: Callable[[Outgoing], bool]) -> Subscription:
        sub = Subscription(accept, self._maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

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
                self.unsubscribe(sub)
                log.warning("a watch client fell %d events behind; dropping it",
                            self._maxsize)
            except Exception:
                log.exception("a watch filter failed")
