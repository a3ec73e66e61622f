"""Python's cyclic garbage collector runs on the GUI thread only, from the event loop.

CPython runs an automatic collection on whichever thread happens to allocate when a
generation's threshold is passed: in the tray that is often a worker (a history query, a
kill, the monitor). A cycle that holds a Qt wrapper (a widget, a lambda slot capturing
``self``) is then finalised on that thread, and Qt objects must be destroyed on the thread
they live on: the test suite crashed with SIGSEGV in 2 of 6 full runs, with the collector
running on the history window's worker thread (issue 18). The cure is the one pyqtgraph
ships as ``GarbageCollector``: switch the automatic collector off and run the same
generational collections from a timer on the GUI thread.
"""

from __future__ import annotations

import gc
import logging

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

INTERVAL_MS = 250


def collect_due() -> int:
    """Collect the oldest generation whose threshold the counters have passed, as CPython's
    automatic collector would; returns objects found unreachable (-1: none due)."""
    counts = gc.get_count()
    thresholds = gc.get_threshold()
    for generation in (2, 1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            return gc.collect(generation)
    return -1


class GuiThreadCollector(QObject):
    """While alive and started, cyclic garbage is collected only on the thread that made it.

    Create it on the GUI thread. ``start`` turns the automatic collector off; ``stop``
    collects once more here and turns it back on as it was.
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def collect(self) -> None:
        found = collect_due()
        if found > 0:
            log.debug("collected %d unreachable objects on the GUI thread", found)

    def stop(self) -> None:
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
