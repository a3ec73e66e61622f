"""Test doubles. Only at boundaries: a scripted usage source for the monitor's own logic."""

from __future__ import annotations

import threading

from camguard.core.models import SourceSnapshot
from camguard.platform.base import Wake


class FakeSource:
    """A UsageSource whose snapshots the test sets; ``push`` sets one and wakes the monitor."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self._snap = SourceSnapshot(name)
        self._wake: Wake | None = None
        self._lock = threading.Lock()
        self.looks = 0
        self.fail_next = False

    def snapshot(self) -> SourceSnapshot:
        with self._lock:
            self.looks += 1
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("boom")
            return self._snap

    def push(self, snap: SourceSnapshot) -> None:
        with self._lock:
            self._snap = snap
        if self._wake is not None:
            self._wake()

    def start(self, wake: Wake) -> None:
        self._wake = wake

    def stop(self) -> None:
        self._wake = None
