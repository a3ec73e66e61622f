"""Coverage: for each sensor and each source, whether camguard watches it, partly, or not at
all, and why (``camguard status --json``'s ``"coverage"``). A blind spot is said, never
silent."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from camguard.core.serialize import rfc3339
from camguard.core.text import json_safe


class CoverageState(enum.StrEnum):
    WATCHING = "watching"  # every use through this source is seen and named
    PARTIAL = "partial"  # some uses are seen, or seen but not named (the reason says which)
    BLIND = "blind"  # nothing through this source is seen


@dataclass(frozen=True, slots=True)
class AppGrant:
    """An app a source knows to be allowed (or refused) a sensor, and when it last used it:
    e.g. a Flatpak app's location grant in the portal permission store."""

    app_id: str
    access: str  # as the store says: "EXACT", "CITY", ..., "NONE" (refused)
    last_used: float | None = None  # seconds since the epoch; None: never, or not known
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"app_id": json_safe(self.app_id), "access": json_safe(self.access),
                "allowed": self.access.upper() != "NONE",
                "last_used": None if self.last_used is None else rfc3339(self.last_used),
                "note": json_safe(self.note) if self.note else None}


@dataclass(frozen=True, slots=True)
class Coverage:
    """One sensor ("camera", "microphone", "screen", "location") through one source."""

    sensor: str
    source: str
    state: CoverageState
    reason: str = ""
    # What the source knows of each app's grant (only some sources: "apps" in the JSON).
    apps: tuple[AppGrant, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sensor": self.sensor, "source": self.source,
                               "state": self.state.value, "reason": json_safe(self.reason)}
        if self.apps:
            out["apps"] = [a.as_dict() for a in self.apps]
        return out


def coverage_list(entries: Iterable[Coverage]) -> list[dict[str, Any]]:
    """The JSON list, sorted by sensor then source (stable output)."""
    return [c.as_dict() for c in sorted(entries, key=lambda c: (c.sensor, c.source))]
