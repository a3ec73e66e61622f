"""The clock protocol: core code never reads time itself, so tests can freeze it."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall time, seconds since the epoch (for timestamps people read)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (for durations, deadlines and back-off)."""
        ...


class FrozenClock:
    """A clock that moves only when told to (tests, replays)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
