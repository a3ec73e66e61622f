"""Probes are not alarms (issue 11, item 5): which sessions were probes, and probe storms.

Pure: the Monitor feeds it each look's usages and events and a clock reading.

A **probe** is a session that carried nothing. Where that can be seen, it is decided by
the evidence, never by time alone:

* PipeWire: a client linked to a camera or screen node whose link never became active
  got no frames (``SourceSnapshot.probes``). It is never announced; when it goes away it is
  kept in history as a probe (``EventType.PROBE``). One that starts flowing is a use.
* Recording streams (PulseAudio, pipewire-pulse): a corked stream carries nothing and is no
  use (platform/linux/pulse.py); nothing else is needed here.
* Device nodes (``/dev/video*``, ``/dev/snd/*``; ``via`` "fd" or "fanotify"): /proc and
  fanotify show the open and the close, not whether frames were read (no VIDIOC_STREAMON
  or read() is visible), and a one-shot tool grabs a photo in a few tens of milliseconds.
  So the open is **alerted as it happens**, and a session that closed under the threshold
  is marked ``probe`` in history (``UsageEvent.probe``: "a probe, or a single capture").

A **probe storm** is one app (executable, or name when unknown; its account; the kind of
device) with more than ``storm`` probes within ``window`` seconds. It is surfaced once
(``EventType.PROBE_STORM``) and, while it lasts (until ``window`` seconds without a probe
from that app), that app's new device-node opens are held back for up to ``threshold``
seconds: one that closes in time is a probe in history and no popup; one still open then
is announced as usual (started at its real start, decided by the rules). Rules see a
storming app's use at most ``threshold`` seconds late; that is the price of one alert
instead of one a second.

Uses found another way (a recording stream, an active PipeWire link, raw USB, location)
carry data by construction and are never probes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from camguard.core.models import DeviceKind, EventType, Usage, UsageEvent
from camguard.core.state import UsageKey

# How a usage was found when it is an open device node (procfs.py, fanotify).
NODE_VIAS = frozenset({"fd", "fanotify", ""})
PROBE_KINDS = frozenset({DeviceKind.CAMERA, DeviceKind.MICROPHONE, DeviceKind.SCREEN})
DEFAULT_THRESHOLD = 1.5
DEFAULT_STORM = 10  # probes per window; more is a storm
WINDOW = 60.0

AppKey = tuple[str, str, str]  # (kind, exe or name, account)


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    threshold: float = DEFAULT_THRESHOLD  # seconds; 0 turns probe marking off
    storm: int = DEFAULT_STORM  # more probes than this within ``window``: a storm; 0: off
    window: float = WINDOW


def on_node(usage: Usage) -> bool:
    """A device-node use: whether it carried data is not visible."""
    return usage.via in NODE_VIAS and usage.device.kind in PROBE_KINDS


def app_of(usage: Usage) -> AppKey:
    p = usage.process
    if p is None:
        return (usage.device.kind.value, "", "")
    return (usage.device.kind.value, p.exe or p.name, p.user)


class ProbeFilter:
    """The Monitor's probe bookkeeping (module docstring). Not thread-safe: the monitor
    thread only."""

    def __init__(self, settings: ProbeSettings = ProbeSettings()) -> None:
        self.settings = settings
        self._held: dict[UsageKey, tuple[Usage, float]] = {}  # storm-held opens: since
        self._idle: dict[UsageKey, tuple[Usage, float]] = {}  # linked, no data: since
        self._spent: set[UsageKey] = set()  # linked, no data now, but it carried some
        self._recent: dict[AppKey, deque[float]] = {}  # probe times within the window
        self._storming: dict[AppKey, float] = {}  # app -> its last probe, while storming
        self.promoted: dict[UsageKey, float] = {}  # this look's held opens now announced

    def split(self, usages: Iterable[Usage], probes: Iterable[Usage],
              announced: set[UsageKey], now: float) -> tuple[list[Usage], list[UsageEvent]]:
        """This look's usages the diff may announce, and probe events for what ended."""
        self.promoted = {}
        current = {u.key: u for u in usages}
        loud: list[Usage] = []
        for key, u in current.items():
            held = self._held.get(key)
            if key in announced:
                loud.append(u)
            elif held is not None:
                if now - held[1] >= self.settings.threshold:  # still open: a use
                    del self._held[key]
                    self.promoted[key] = held[1]
                    loud.append(u)
            elif on_node(u) and self._is_storming(app_of(u), now):
                self._held[key] = (u, now)
            else:
                loud.append(u)
        events: list[UsageEvent] = []
        for key, (u, since) in list(self._held.items()):
            if key not in current:
                del self._held[key]
                events += self._probe(u, since, now)
        linked = {p.key: p for p in probes}
        # A link that carried frames and then paused is a use that ended, not a probe.
        self._spent = {k for k in self._spent | (announced & linked.keys()) if k in linked}
        for key, p in linked.items():
            if (key not in self._idle and key not in current and key not in announced
                    and key not in self._spent):
                self._idle[key] = (p, now)
        for key, (u, since) in list(self._idle.items()):
            if key in current:  # it carries data now: a use, announced by the diff
                del self._idle[key]
            elif key not in linked:
                del self._idle[key]
                events += self._probe(u, since, now)
        return loud, events

    def stopped(self, ev: UsageEvent) -> list[UsageEvent]:
        """A stopped event, marked when it was a probe on a device node, and the storm it
        starts, if any."""
        u = ev.usage
        t = self.settings.threshold
        if (ev.type is not EventType.STOPPED or ev.since is None or not on_node(u)
                or t <= 0 or ev.at - ev.since >= t):
            return [ev]
        return [replace(ev, probe=True), *self._count(u, ev.at)]

    def next_due(self) -> float | None:
        """When a held open must be looked at again (announced if still open)."""
        if not self._held:
            return None
        return min(since for _u, since in self._held.values()) + self.settings.threshold

    # -- internals ---------------------------------------------------------------------
    def _probe(self, u: Usage, since: float, at: float) -> list[UsageEvent]:
        return [UsageEvent(EventType.PROBE, u, at, since), *self._count(u, at)]

    def _is_storming(self, app: AppKey, now: float) -> bool:
        last = self._storming.get(app)
        if last is None:
            return False
        if now - last > self.settings.window:
            del self._storming[app]
            return False
        return True

    def _count(self, u: Usage, at: float) -> list[UsageEvent]:
        s = self.settings
        if s.storm <= 0:
            return []
        if len(self._recent) > 4096:  # bounded: forget apps with no probe in the window
            for key in [k for k, v in self._recent.items() if not v or at - v[-1] > s.window]:
                del self._recent[key]
        app = app_of(u)
        times = self._recent.setdefault(app, deque())
        times.append(at)
        while times and at - times[0] > s.window:
            times.popleft()
        if self._is_storming(app, at):
            self._storming[app] = at
            return []
        if len(times) <= s.storm:
            return []
        self._storming[app] = at
        first = times[0]
        note = (f"{len(times)} opens under {s.threshold:g} s within {at - first:.0f} s "
                f"(more than {s.storm} a minute); more are kept in history without a popup")
        return [UsageEvent(EventType.PROBE_STORM, replace(u, note=note), at, first,
                           count=len(times))]
