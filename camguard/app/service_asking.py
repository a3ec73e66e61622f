"""Service mode: the tray tells the service whether it answers now (service/answers.py).
Its watch stream answers while its alerts are not paused; pausing them sends ``asking``
off, so the service lets go at once the apps it paused for this tray (and pauses no more)
rather than holding them, unanswered, until the freezer's limit; resuming sends it on."""

from __future__ import annotations

import logging
import threading

from camguard.app.guard_service import ServiceGuard
from camguard.core.text import literal
from camguard.service.client import ServiceUnavailable

log = logging.getLogger(__name__)


class ServiceAsking:
    """``answers`` for the feed's watch (each reconnect); ``paused`` from the tray's io lane
    (TrayOptions.on_paused). Any thread."""

    def __init__(self, guard: ServiceGuard) -> None:
        self._guard = guard
        self._lock = threading.Lock()
        self._on = True

    def answers(self) -> bool:
        with self._lock:
            return self._on

    def paused(self, paused: bool) -> None:
        with self._lock:
            if self._on is not paused:
                return
            self._on = not paused
        try:
            answer = self._guard.client.asking(not paused)
        except ServiceUnavailable as exc:  # the next watch says it
            log.info("could not tell the service: %s", literal(str(exc), 300))
            return
        if answer.get("ok") is not True:
            log.info("the service did not take asking=%s: %s", not paused,
                     literal(str(answer.get("error")), 300))
