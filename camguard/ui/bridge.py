"""Thread hops into and out of the GUI thread: monitor events in, worker results back.

Qt delivers a signal emitted on another thread to a receiver living on the GUI thread as a
queued call (Qt docs, "Signals and Slots Across Threads"), so neither the monitor thread nor
a worker ever touches a widget, and the GUI thread never waits for either of them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal, Slot

from camguard.core.models import MonitorEvent

log = logging.getLogger(__name__)

T = TypeVar("T")


class MonitorBridge(QObject):
    """A Monitor sink whose events come out, on the GUI thread, as ``event_received``.

    Create it on the GUI thread; :meth:`sink` is called on the monitor thread and only
    emits (cheap, never blocks). Payloads are the monitor's frozen dataclasses.
    """

    event_received = Signal(object)

    def sink(self, ev: MonitorEvent) -> None:
        try:
            self.event_received.emit(ev)
        except RuntimeError:  # the bridge was deleted while the monitor was stopping
            log.debug("dropped %s: the GUI side is gone", type(ev).__name__)


class Worker(QObject):
    """Runs blocking calls on its own threads and hands each result back on the GUI thread.

    ``submit(fn, done)`` returns at once; ``done(result)`` later runs on the thread that
    created the Worker (the GUI thread). An exception from ``fn`` is logged and given to
    ``failed`` (if passed) instead of ``done``. Calls on one lane run in submission order.
    """

    _finished = Signal(object)

    def __init__(self, name: str = "camguard-worker", threads: int = 1,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._closed = False
        self._pending = 0
        # Queued even when a call finishes before submit() returns: ``done`` then never
        # runs inside submit(), always later from the event loop.
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def pending(self) -> int:
        """Calls submitted whose result has not been handed back yet (for tests and quit)."""
        return self._pending

    def submit(self, fn: Callable[[], T], done: Callable[[T], None] | None = None,
               failed: Callable[[BaseException], None] | None = None) -> bool:
        """Run ``fn`` off the GUI thread; False if the worker is already shut down."""
        with self._lock:
            if self._closed:
                return False
            self._pending += 1
        future = self._pool.submit(fn)

        def finished(f: concurrent.futures.Future[T]) -> None:
            with self._lock:
                if self._closed:
                    return
            with contextlib.suppress(RuntimeError):  # the GUI side is gone (quitting)
                self._finished.emit((f, done, failed))

        future.add_done_callback(finished)
        return True

    @Slot(object)
    def _deliver(self, item: tuple[Any, Any, Any]) -> None:
        future, done, failed = item
        self._pending -= 1
        exc = future.exception()
        if exc is not None:
            log.error("background call failed", exc_info=exc)
            if failed is not None:
                failed(exc)
            return
        if done is not None:
            done(future.result())

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls; with ``wait``, let the running ones finish (a kill in flight
        should complete rather than leave a process half-ended). Results are not delivered."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
