"""Coverage: for each sensor and each source, whether camguard watches it, partly, or not at
all, and why (``camguard status --json``'s ``"coverage"``). A blind spot is said, never
silent."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from camguard.core.text import json_safe


class CoverageState(enum.StrEnum):
    WATCHING = "watching"  # every use through this source is seen and named
    PARTIAL = "partial"  # some uses are seen, or seen but not named (the reason says which)
    BLIND = "blind"  # nothing through this source is seen


@dataclass(frozen=True, slots=True)
class Coverage:
    """One sensor ("camera", "microphone", "screen", "location") through one source."""

    sensor: str
    source: str
    state: CoverageState
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"sensor": self.sensor, "source": self.source, "state": self.state.value,
                "reason": json_safe(self.reason)}


def coverage_list(entries: Iterable[Coverage]) -> list[dict[str, Any]]:
    """The JSON list, sorted by sensor then source (stable output)."""
    return [c.as_dict() for c in sorted(entries, key=lambda c: (c.sensor, c.source))]
