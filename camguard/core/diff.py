"""The snapshot diff: which usages started and which stopped between two looks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from camguard.core.models import EventType, Usage, UsageEvent
from camguard.core.state import UsageKey, usage_sort_key


def index(usages: Iterable[Usage]) -> dict[UsageKey, Usage]:
    return {u.key: u for u in usages}


def diff(
    before: Mapping[UsageKey, Usage],
    after: Iterable[Usage],
    at: float,
    first_seen: Mapping[UsageKey, float] | None = None,
) -> list[UsageEvent]:
    """Events that turn ``before`` into ``after``: stopped ones first, then started ones.

    Stopped before started, so that a consumer counting live users never sees a device
    "in use twice" when one process hands it to another within one snapshot. The order
    inside each group is deterministic (sorted by key) to keep logs and tests stable.
    """
    now = index(after)
    seen = first_seen or {}
    events = [
        UsageEvent(EventType.STOPPED, before[k], at, seen.get(k))
        for k in sorted(before.keys() - now.keys(), key=usage_sort_key)
    ]
    events += [
        UsageEvent(EventType.STARTED, now[k], at)
        for k in sorted(now.keys() - before.keys(), key=usage_sort_key)
    ]
    return events
