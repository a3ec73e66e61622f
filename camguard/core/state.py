"""What all sources together see: merged devices, usages and degraded sources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from camguard.core.models import Degraded, Device, SourceSnapshot, Usage

UsageKey = tuple[str, str, int | None, float | None]


@dataclass(frozen=True, slots=True)
class GuardState:
    """A merged, immutable view; safe to hand to another thread."""

    devices: tuple[Device, ...] = ()
    usages: tuple[Usage, ...] = ()
    degraded: tuple[Degraded, ...] = ()
    # When each usage was first seen (wall seconds); missing for a one-shot look.
    first_seen: Mapping[UsageKey, float] = field(default_factory=dict)

    def users_of(self, device: Device) -> list[Usage]:
        return [u for u in self.usages if u.device == device]


def merge(snapshots: Iterable[SourceSnapshot], first_seen: Mapping[UsageKey, float] | None = None
          ) -> GuardState:
    """Merge per-source snapshots; devices that only appear through a usage are added too."""
    devices: dict[tuple[str, str], Device] = {}
    usages: dict[UsageKey, Usage] = {}
    degraded: list[Degraded] = []
    for snap in snapshots:
        for d in snap.devices:
            devices.setdefault((d.kind.value, d.id), d)
        for u in snap.usages:
            devices.setdefault((u.device.kind.value, u.device.id), u.device)
            usages.setdefault(u.key, u)
        if snap.degraded is not None:
            degraded.append(snap.degraded)
    ordered_devices = tuple(sorted(devices.values(), key=lambda d: (d.kind.value, d.id)))
    ordered_usages = tuple(usages[k] for k in sorted(usages, key=usage_sort_key))
    seen = dict(first_seen or {})
    return GuardState(ordered_devices, ordered_usages, tuple(degraded),
                      {k: v for k, v in seen.items() if k in usages})


def usage_sort_key(k: UsageKey) -> tuple[str, str, int, float]:
    return (k[0], k[1], -1 if k[2] is None else k[2], -1.0 if k[3] is None else k[3])
