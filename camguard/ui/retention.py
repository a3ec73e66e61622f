"""History retention: sessions older than the configured days deleted at start and daily."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from camguard.core.clock import Clock
from camguard.store.history import HistoryStore
from camguard.ui.bridge import Worker

log = logging.getLogger(__name__)

RETENTION_MS = 24 * 3600 * 1000


class Retention(QObject):
    """Deletes sessions older than ``days`` (0: keep forever) now and every 24 hours."""

    purged = Signal(int)  # how many sessions went (tests, logs)

    def __init__(self, store: HistoryStore, clock: Clock, io: Worker, days: int,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._clock = clock
        self._io = io
        self.days = days
        self.timer = QTimer(self)
        self.timer.setInterval(RETENTION_MS)
        self.timer.timeout.connect(self.run)

    def start(self) -> None:
        self.run()
        self.timer.start()

    @Slot()
    def run(self) -> None:
        days = self.days
        if days <= 0:
            return
        cutoff = self._clock.now() - days * 86400.0
        store = self._store

        def done(count: int) -> None:
            if count:
                log.info("history retention: %d session(s) older than %d day(s) deleted",
                         count, days)
            self.purged.emit(count)

        self._io.submit(lambda: store.purge_older_than(cutoff), done)
