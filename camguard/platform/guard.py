"""The guard of a block without privileges: ends this account's new users of a blocked
device (the Linux backend's user_block.py switches such a block on).

Runs in the tray, in ``camguard keep-blocks`` and in the selftest, on their monitors.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Callable

from camguard.core.blocks import ActionResult, ActiveBlock, guarding
from camguard.core.models import EventType, MonitorEvent, UsageEvent
from camguard.core.text import literal

log = logging.getLogger(__name__)


class UserGuard:
    """A monitor sink: while a block guards this account, end its processes that open the
    blocked device.

    Threads: :meth:`__call__` runs on the monitor thread and only hands the event to its own
    worker thread (reading the blocks takes a file lock; ending a process waits for it).
    """

    def __init__(self, blocks: Callable[[], list[ActiveBlock]],
                 kill: Callable[[int, float], ActionResult], now: Callable[[], float],
                 owner_of: Callable[[int], int | None], *, uid: int | None = None,
                 report: Callable[[ActionResult], None] | None = None) -> None:
        self._blocks = blocks
        self._owner_of = owner_of
        self._kill = kill
        self._now = now
        self._uid = os.geteuid() if uid is None else uid
        self._report = report
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="camguard-guard")
        self._closed = False

    def __call__(self, ev: MonitorEvent) -> None:
        if self._closed or not isinstance(ev, UsageEvent) or ev.type is not EventType.STARTED:
            return
        if ev.usage.process is None:
            return
        self._pool.submit(self._enforce, ev)

    def _enforce(self, ev: UsageEvent) -> None:
        ref = ev.usage.process
        if ref is None:
            return
        uid = self._owner_of(ref.pid)
        if uid is None:
            return  # already gone
        try:
            blocks = self._blocks()
        except Exception:  # a damaged blocks file must not stop the guard
            log.exception("cannot read the blocks in force")
            return
        if uid != self._uid or not guarding(blocks, ev.usage.device.kind, uid, self._now()):
            return
        result = self._kill(ref.pid, ref.create_time)
        log.warning("%s is blocked: %s opened it: %s", ev.usage.device.kind.value,
                    literal(ref.name, 64), result.message)
        if self._report is not None:
            self._report(result)

    def close(self) -> None:
        """Stop taking events; a kill in flight completes."""
        self._closed = True
        self._pool.shutdown(wait=True)
